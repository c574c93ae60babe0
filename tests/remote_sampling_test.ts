/**
 * Jaeger remote sampling against a real Jaeger v2 serving file strategies: the per-operation
 * probabilities it serves change the share of each operation's traces that Jaeger receives, a new
 * strategy is picked up on the next refresh, and the local `/health: 0` rule still wins.
 */

import assert from "node:assert/strict";
import { startJaeger } from "./harness/jaeger.ts";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { waitFor } from "./harness/wait.ts";

const FIXTURE = new URL("./fixtures/traced_service.ts", import.meta.url).pathname;
const SERVICE = "kraken-fixture-rs";
const HELLO = "GET /hello/{name}";
const ECHO = "GET /echo/{name}";

function strategies(hello: number, echo: number) {
  return {
    service_strategies: [{
      service: SERVICE,
      type: "probabilistic",
      param: 1,
      operation_strategies: [
        { operation: HELLO, type: "probabilistic", param: hello },
        { operation: ECHO, type: "probabilistic", param: echo },
      ],
    }],
    default_strategy: { type: "probabilistic", param: 1 },
  };
}

/** The fixture's `kraken_tracing_sampling_rate` for `operation`, from `/metrics`. */
async function servedRate(port: number, operation: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`kraken_tracing_sampling_rate{operation="${operation}"}`)
  );
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

Deno.test("remote sampling: Jaeger's per-operation strategies set each operation's share in Jaeger", async () => {
  await using jaeger = await startJaeger({
    remoteSampling: { strategies: strategies(0.2, 1) },
  });
  await using group = new ProcessGroup();
  const [port] = freePorts(1);
  const tracing = {
    enabled: true,
    sampling: {
      default_rate: 1,
      remote: { enabled: true, refresh_interval: "300ms" },
      // No floor: the shares measured are the strategy's alone.
      adaptive: { floor_per_interval: 0 },
    },
    export: { batch_timeout: "100ms" },
    safeguards: { load_threshold: 1 },
  };
  const proc = group.spawnDeno(FIXTURE, [
    "--name=rs",
    `--port=${port}`,
    `--tracing=${JSON.stringify(tracing)}`,
  ], {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint,
      // The standard spelling of the endpoint wins over the file's default.
      OTEL_TRACES_SAMPLER: "parentbased_jaeger_remote",
      OTEL_TRACES_SAMPLER_ARG: `endpoint=${jaeger.samplingUrl}`,
    },
  });
  await waitForHttp(`http://127.0.0.1:${port}/stats`, { process: proc });
  await waitFor(
    "the fixture to take Jaeger's strategy",
    async () => (await servedRate(port, HELLO)) === 0.2,
    { timeoutMs: 10_000 },
  );

  const N = 300;
  const send = async (path: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      await res.body?.cancel();
    }
  };
  const count = async (operation: string) =>
    (await jaeger.findTraces({ service: SERVICE, operation, limit: 5000 })).length;
  await send("/hello/a", N);
  await send("/echo/a", 50);
  await send("/health", 20);
  await waitFor("every echo trace in Jaeger", async () => (await count(ECHO)) === 50, {
    timeoutMs: 15_000,
  });
  const hello1 = await count(HELLO);
  // 300 at 20 %: 60 expected, sd ≈ 7.
  assert.ok(hello1 >= 30 && hello1 <= 95, `hello at 0.2: ${hello1} of ${N}`);
  assert.deepEqual(
    (await jaeger.findTraces({ service: SERVICE, operation: "GET /health", limit: 100 })).length,
    0,
    "the local /health: 0 rule wins over the strategy's 1",
  );

  // A new strategy: hello at 100 %, echo at 0 %.
  await jaeger.setStrategies(strategies(1, 0), SERVICE);
  await waitFor(
    "the fixture to take the new strategy",
    async () => (await servedRate(port, ECHO)) === 0,
    { timeoutMs: 10_000 },
  );
  await send("/hello/b", 100);
  await send("/echo/b", 100);
  await waitFor("the second hello traces", async () => (await count(HELLO)) === hello1 + 100, {
    timeoutMs: 15_000,
  });
  assert.equal(await count(ECHO), 50, "echo at 0 % adds no trace");
});
