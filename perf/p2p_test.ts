import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { formatP2p, measureP2p, perfRecord } from "./p2p.ts";

externalTest("perf/p2p: two agents pull a blob from one origin; figures are reported", async () => {
  const result = await measureP2p({
    sizeBytes: 6 * 1024 * 1024 + 123,
    pieceBytes: 1024 * 1024,
    agents: 2,
    rounds: 1,
  });
  assert.equal(result.agents, 2);
  assert.equal(result.rounds, 1);
  assert.equal(result.pages, "recycled");
  const { median, min, max } = result.mbPerSecond;
  assert.ok(min > 0 && min <= median && median <= max && Number.isFinite(max), `${min} ${max}`);
  assert.ok(result.agentCpuSecondsPerGiB > 0, String(result.agentCpuSecondsPerGiB));
  assert.ok(result.originCpuSecondsPerGiB >= 0, String(result.originCpuSecondsPerGiB));
  const share = result.agentToAgentPieceShare;
  assert.ok(share !== undefined && share >= 0 && share <= 1, String(share));
  assert.match(formatP2p(result, "off"), /\| 1 → 2 \| off \| recycled \| 6 MiB \| 1 \|/);
});

Deno.test("perf/p2p: perfRecord creates the directory its output goes to", async () => {
  const root = await Deno.makeTempDir({ prefix: "perf-record-" });
  try {
    let recorder: Deno.ChildProcess | undefined;
    try {
      recorder = perfRecord(Deno.pid, `${root}/not/yet/agent0.data`);
    } catch (error) {
      // Without Linux perf, or without leave to run it (the unit tests), only the directory is
      // there to check.
      if (!(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable)) {
        throw error;
      }
    }
    assert.ok((await Deno.stat(`${root}/not/yet`)).isDirectory);
    if (recorder) {
      try {
        recorder.kill("SIGINT");
      } catch {
        // perf may have exited already (no permission to profile here).
      }
      await recorder.status;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
