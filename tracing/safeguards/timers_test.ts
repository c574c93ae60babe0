import assert from "node:assert/strict";
import { ManualTimers, systemTimers } from "./timers.ts";

Deno.test("ManualTimers fires intervals in time order and reschedules after late firings", () => {
  const timers = new ManualTimers(1000);
  const log: string[] = [];
  const a = timers.setInterval(() => log.push(`a@${timers.now()}`), 100);
  timers.setInterval(() => log.push(`b@${timers.now()}`), 150);
  timers.advance(300);
  assert.deepEqual(log, ["a@1100", "b@1150", "a@1200", "a@1300", "b@1300"]);
  assert.equal(timers.now(), 1300);
  log.length = 0;
  timers.clearInterval(a);
  timers.stall(500);
  assert.deepEqual(log, [], "a stalled loop fires nothing");
  timers.advance(0);
  assert.deepEqual(log, ["b@1800"], "the overdue interval fires late, once");
  timers.advance(150);
  assert.deepEqual(log, ["b@1800", "b@1950"]);
  assert.equal(timers.pending, 1);
});

Deno.test("systemTimers runs a real unref'd interval", async () => {
  const start = systemTimers.now();
  let fired = 0;
  let id = 0;
  await new Promise<void>((resolve) => {
    id = systemTimers.setInterval(() => {
      if (++fired === 2) resolve();
    }, 5);
  });
  systemTimers.clearInterval(id);
  assert.ok(systemTimers.now() - start >= 9);
});
