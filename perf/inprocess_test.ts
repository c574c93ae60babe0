import assert from "node:assert/strict";
import { inProcessStacks, measureInProcess, serveOne, serveRequests } from "./inprocess.ts";

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

Deno.test("serveRequests: the sampled stack exports its spans as a role does, none dropped", async () => {
  const stacks = inProcessStacks();
  try {
    stacks.activate(stacks.sampled);
    // Past the queue's 2048 spans: a loop that never turns the event loop drops from here on.
    await serveRequests(stacks.sampled, 3000);
    const stats = stacks.sampled.tracing.stats();
    assert.equal(stats.spansSampled, 6000);
    assert.equal(stats.droppedQueueFull, 0);
    assert.ok(stats.exported >= 5000, `exported ${stats.exported}`);
  } finally {
    await stacks.shutdown();
  }
});
