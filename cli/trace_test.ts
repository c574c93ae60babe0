import assert from "node:assert/strict";
import { EXIT, parseTraceArgs, runTrace, UsageError } from "./trace.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, output: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

Deno.test("kraken trace arguments: an id, or a search with its options", () => {
  assert.equal(
    parseTraceArgs(["4BF92F3577B34DA6A3CE929D0E0E4736"]).traceId,
    "4bf92f3577b34da6a3ce929d0e0e4736",
  );
  assert.equal(
    parseTraceArgs(["abc"]).traceId,
    "0".repeat(29) + "abc",
    "short ids are zero-padded",
  );
  const search = parseTraceArgs([
    "--service",
    "kraken-agent",
    "--operation=agent.download_blob",
    "--since",
    "2h",
    "--slowest",
    "3",
    "--errors",
    "--json",
  ]);
  assert.deepEqual(
    { ...search },
    {
      service: "kraken-agent",
      operation: "agent.download_blob",
      sinceMs: 7_200_000,
      slowest: 3,
      limit: 500,
      errors: true,
      json: true,
    },
  );
  for (
    const [args, message] of [
      [[], /trace id, or --service/],
      [["xyz"], /not a trace id/],
      [["abc", "--service", "s"], /not both/],
      [["--service"], /needs a value/],
      [["--service", "s", "--slowest", "0"], /positive integer/],
      [["--service", "s", "--since", "soon"], /duration/],
      [["--bogus"], /unknown flag/],
    ] as const
  ) {
    assert.throws(
      () => parseTraceArgs(args),
      (e: Error) => e instanceof UsageError && message.test(e.message),
    );
  }
});

Deno.test("kraken trace exit codes: usage 2, Jaeger unreachable 3, non-JSON answer 3", async () => {
  const usage = capture();
  assert.equal(await runTrace(["--slowest", "x"], usage.output), EXIT.usage);
  assert.match(usage.err.join("\n"), /Usage:/);

  // A port nobody listens on: bind, note it, close.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const down = capture();
  const env = (name: string) =>
    name === "KRAKEN_JAEGER_QUERY" ? `http://127.0.0.1:${port}` : undefined;
  assert.equal(await runTrace(["4bf92f3577b34da6a3ce929d0e0e4736"], down.output, env), EXIT.jaeger);
  assert.match(
    down.err.join("\n"),
    new RegExp(`cannot reach Jaeger at http://127\\.0\\.0\\.1:${port}`),
  );

  // Something that is not Jaeger's query API.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("<html>nope</html>", { status: 502 }),
  );
  try {
    const bad = capture();
    const code = await runTrace(
      ["--jaeger", `http://127.0.0.1:${server.addr.port}`, "4bf92f3577b34da6a3ce929d0e0e4736"],
      bad.output,
      () => undefined,
    );
    assert.equal(code, EXIT.jaeger);
    assert.match(bad.err.join("\n"), /answered 502 with something that is not JSON/);
  } finally {
    await server.shutdown();
  }
});
