import assert from "node:assert/strict";
import { allowedCpus } from "./cpu_pinning.ts";
import { externalTest } from "../tests/harness/external.ts";
import { ProcessGroup } from "../tests/harness/procs.ts";
import { measureAgentGets, parseVariant, renderAgentGets, variantTracing } from "./agent_get.ts";

Deno.test("agent_get: variants are off or a rate, with ~nobreaker and @<checkout>", () => {
  assert.deepEqual(parseVariant("off"), {
    label: "off",
    rate: undefined,
    noBreaker: false,
    tree: undefined,
  });
  assert.deepEqual(parseVariant("10%~nobreaker@/tmp/base"), {
    label: "10%~nobreaker@/tmp/base",
    rate: 0.1,
    noBreaker: true,
    tree: "/tmp/base",
  });
  assert.equal(parseVariant("0%").rate, 0);
  assert.deepEqual(parseVariant("10%~delay=200~batch=128").export, {
    batchTimeoutMs: 200,
    maxBatchSize: 128,
  });
  const small = variantTracing(parseVariant("100%~delay=200~batch=128"), "http://sink");
  assert.deepEqual(small.export, {
    protocol: "http/protobuf",
    batch_timeout: "200ms",
    max_batch_size: 128,
  });
  for (const bad of ["on", "101%", "10", "10%~fast", "off@", "off~nobreaker", "10%~delay=0"]) {
    assert.throws(() => parseVariant(bad), /variant/, bad);
  }
  assert.deepEqual(variantTracing(parseVariant("off"), "http://sink"), { enabled: false });
  const traced = variantTracing(parseVariant("0%~nobreaker"), "http://sink");
  assert.deepEqual(traced.sampling, { default_rate: 0 });
  assert.deepEqual(traced.safeguards, { load_threshold: 1, circuit_breaker_enabled: false });
});

externalTest(
  "agent_get: two agents, one traced, each serve their GETs; figures are reported",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "agent-get-test-" });
    try {
      await using group = new ProcessGroup();
      const variants = ["off", "100%"].map(parseVariant);
      const clientCpus = await allowedCpus(Deno.pid);
      const result = await measureAgentGets({
        dir,
        group,
        variants,
        gets: 20,
        runs: 2,
        blobBytes: 4096,
        idleSeconds: 0.2,
      });
      assert.equal(result.runs.length, 2);
      for (const run of result.runs) {
        assert.deepEqual(run.map((f) => f.count), [20, 20]);
        assert.ok(run.every((f) => f.p50Micros > 0 && f.cpuSeconds >= 0));
      }
      assert.equal(result.idleMsPerSecond.length, 2);
      // The agents ran on CPUs of their own; the client has its CPUs back.
      if (navigator.hardwareConcurrency >= 2) {
        assert.match(result.pinning, /^client on CPU 0, nodes under test on CPU 1/);
        for (const pid of result.pids) assert.notEqual(await allowedCpus(pid), "0");
      }
      assert.equal(await allowedCpus(Deno.pid), clientCpus);
      const text = renderAgentGets(variants, result);
      assert.match(text, /^CPUs: .+\nidle CPU, ms\/s: off [\d.]+, 100% [\d.]+/);
      assert.match(text, /\| 2 \| 100% \| 20 \| \d+ µs \| \d+ µs \| \d+ \|/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
