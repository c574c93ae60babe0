import assert from "node:assert/strict";
import { ManualTimers, sleep, systemTimers } from "./timers.ts";

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

Deno.test("ManualTimers fires a timeout once, in order with intervals, unless cleared", async () => {
  const timers = new ManualTimers(0);
  const log: string[] = [];
  timers.setInterval(() => log.push(`i@${timers.now()}`), 100);
  timers.setTimeout(() => log.push(`t@${timers.now()}`), 150);
  const cleared = timers.setTimeout(() => log.push("cleared"), 120);
  timers.clearTimeout(cleared);
  assert.equal(timers.nextDue, 100);
  timers.advance(350);
  assert.deepEqual(log, ["i@100", "t@150", "i@200", "i@300"]);
  assert.equal(timers.pending, 1, "the fired timeout is gone");
  assert.equal(timers.nextDue, 400);

  let woke = -1;
  const slept = sleep(timers, 50).then(() => woke = timers.now());
  timers.advance(49);
  await Promise.resolve();
  assert.equal(woke, -1, "not before its time");
  timers.advance(1);
  await slept;
  assert.equal(woke, 400);
});

Deno.test("systemTimers runs a real timeout and clears one", async () => {
  const start = systemTimers.now();
  let cleared = false;
  const id = systemTimers.setTimeout(() => cleared = true, 1);
  systemTimers.clearTimeout(id);
  // Timers fire in due order: had the cleared one survived, it would have fired before this one.
  await new Promise<void>((resolve) => systemTimers.setTimeout(resolve, 5));
  assert.ok(systemTimers.now() - start >= 4);
  assert.equal(cleared, false);
});
