import assert from "node:assert/strict";
import { allocationDifference, measureAllocation } from "./request_allocation.ts";

Deno.test("measureAllocation: a sampled request allocates more than an untraced one, by function", async () => {
  const r = await measureAllocation({ requests: 500, warmup: 200 });
  for (const stack of [r.untraced, r.sampled, r.unsampled]) {
    assert.ok(stack.bytesPerRequest > 1000, `${stack.bytesPerRequest} bytes per request`);
    const sum = stack.byFunction.reduce((s, f) => s + f.bytesPerRequest, 0);
    assert.ok(Math.abs(sum - stack.bytesPerRequest) < 1e-6 * stack.bytesPerRequest);
  }
  // Two recorded spans, their contexts and the server span's attributes are at least a kilobyte.
  assert.ok(r.sampled.bytesPerRequest > r.untraced.bytesPerRequest + 1000);
  // The tracer's span start allocates in the sampled stack only.
  const startSpan = (fs: { name: string }[]) =>
    fs.some((f) => f.name.startsWith("startSpan tracer.ts"));
  assert.ok(startSpan(r.sampled.byFunction));
  assert.ok(!startSpan(r.untraced.byFunction));
});

Deno.test("allocationDifference: per function, largest change first, either sign", () => {
  const diff = allocationDifference(
    {
      bytesPerRequest: 30,
      byFunction: [{ name: "a", bytesPerRequest: 20 }, { name: "b", bytesPerRequest: 10 }],
    },
    {
      bytesPerRequest: 40,
      byFunction: [{ name: "b", bytesPerRequest: 35 }, { name: "c", bytesPerRequest: 5 }],
    },
  );
  assert.deepEqual(diff, [
    { name: "b", bytesPerRequest: -25 },
    { name: "a", bytesPerRequest: 20 },
    { name: "c", bytesPerRequest: -5 },
  ]);
});
