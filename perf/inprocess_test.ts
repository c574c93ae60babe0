import assert from "node:assert/strict";
import { inProcessStacks, measureInProcess, serveOne } from "./inprocess.ts";

Deno.test("inProcessStacks: the sampled stack records two spans a request, the others none", async () => {
  const stacks = inProcessStacks();
  try {
    for (const stack of [stacks.untraced, stacks.sampled, stacks.unsampled]) {
      stacks.activate(stack);
      for (let i = 0; i < 5; i++) await serveOne(stack.router);
    }
    assert.equal(stacks.sampled.tracing.stats().spansSampled, 10);
    assert.equal(stacks.unsampled.tracing.stats().spansCreated, 10);
    assert.equal(stacks.unsampled.tracing.stats().spansSampled, 0);
    assert.equal(stacks.untraced.tracing.stats().spansCreated, 0);
  } finally {
    await stacks.shutdown();
  }
});

Deno.test("measureInProcess: per-request figures and their differences", async () => {
  const r = await measureInProcess({ requests: 300, warmup: 50 });
  for (const v of [r.untracedMicros, r.sampledMicros, r.unsampledMicros]) assert.ok(v > 0);
  assert.equal(r.sampledAddedMicros, r.sampledMicros - r.untracedMicros);
  assert.equal(r.unsampledAddedMicros, r.unsampledMicros - r.untracedMicros);
});
