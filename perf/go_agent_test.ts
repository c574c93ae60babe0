import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { ProcessGroup } from "../tests/harness/procs.ts";
import { startGoAgent } from "./go_agent.ts";

// It starts nothing, but it holds a process group as a real start would.
externalTest("startGoAgent: refuses at once, naming nginx, when nginx is not on PATH", async () => {
  const empty = await Deno.makeTempDir();
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", empty);
  try {
    await using group = new ProcessGroup();
    await assert.rejects(
      startGoAgent({
        binary: "/nonexistent/agent",
        dir: `${empty}/agent`,
        group,
        tracker: "127.0.0.1:1",
        buildIndex: "127.0.0.1:2",
      }),
      /runs nginx .*apt-get install nginx/,
    );
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(empty, { recursive: true });
  }
});
