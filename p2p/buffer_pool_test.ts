import assert from "node:assert/strict";
import { ManualTimers } from "../common/timers.ts";
import { PieceBufferPool } from "./buffer_pool.ts";

Deno.test("buffer pool: a buffer given back is the next take's, the smallest that fits", () => {
  const pool = new PieceBufferPool({ timers: new ManualTimers() });
  const small = pool.take(100), big = pool.take(1000);
  assert.equal(small.length, 100, "a new buffer has exactly the length asked for");
  pool.give(big);
  pool.give(small);
  assert.equal(pool.idleBytes, 1100);
  assert.equal(pool.take(50), small, "the smallest waiting buffer that fits");
  assert.equal(pool.take(50), big, "then the next one that fits");
  assert.equal(pool.idleBytes, 0);
  const fresh = pool.take(50);
  assert.ok(fresh !== small && fresh !== big, "an empty pool allocates");
  pool.give(small);
  assert.notEqual(pool.take(101), small, "a buffer too small for the take stays waiting");
  assert.equal(pool.idleBytes, 100);
  pool.close();
});

Deno.test("buffer pool: at most maxIdleBytes wait; a buffer given twice is kept once", () => {
  const pool = new PieceBufferPool({ maxIdleBytes: 250, timers: new ManualTimers() });
  const [a, b, c] = [pool.take(100), pool.take(100), pool.take(100)];
  pool.give(a);
  pool.give(a);
  assert.equal(pool.idleBytes, 100, "the second give of the same buffer is ignored");
  pool.give(b);
  pool.give(c);
  assert.equal(pool.idleBytes, 200, "the third would exceed 250 bytes: left to the GC");
  assert.deepEqual(new Set([pool.take(100), pool.take(100)]), new Set([a, b]));
  assert.notEqual(pool.take(100), c);
  pool.close();
});

Deno.test("buffer pool: waiting buffers are dropped within 1.5 idleMs of the last take", () => {
  const timers = new ManualTimers();
  const pool = new PieceBufferPool({ idleMs: 1000, timers });
  assert.equal(timers.pending, 0, "no sweep while nothing waits");
  const buf = pool.take(64);
  pool.give(buf);
  assert.equal(timers.pending, 1, "the sweep runs while buffers wait");
  timers.advance(600);
  assert.equal(pool.take(64), buf, "still there after 600 ms");
  pool.give(buf);
  timers.advance(600);
  assert.equal(pool.idleBytes, 64, "600 ms after the last take: kept");
  timers.advance(900);
  assert.equal(pool.idleBytes, 0, "1500 ms after the last take (sweeps every 500 ms): dropped");
  assert.equal(timers.pending, 0, "and the sweep stopped");
  assert.notEqual(pool.take(64), buf);
  pool.close();
});

Deno.test("buffer pool: close drops the waiting buffers and every later give", () => {
  const timers = new ManualTimers();
  const pool = new PieceBufferPool({ timers });
  const buf = pool.take(64);
  pool.give(pool.take(32));
  pool.close();
  assert.equal(pool.idleBytes, 0);
  assert.equal(timers.pending, 0);
  pool.give(buf);
  assert.equal(pool.idleBytes, 0, "given after close: dropped");
});

Deno.test("buffer pool: a take of an invalid length throws", () => {
  const pool = new PieceBufferPool({ timers: new ManualTimers() });
  for (const n of [-1, 1.5, Number.NaN]) assert.throws(() => pool.take(n), RangeError);
  pool.close();
});
