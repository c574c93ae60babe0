import assert from "node:assert/strict";
import { BREAKER_STATE_CODE, CircuitBreaker, type CircuitBreakerOptions } from "./breaker.ts";
import { ManualTimers } from "../../common/timers.ts";

interface Rig {
  breaker: CircuitBreaker;
  timers: ManualTimers;
  logs: string[];
  changes: string[];
  setLoad(v: number): void;
}

function rig(options: CircuitBreakerOptions = {}): Rig {
  const timers = new ManualTimers();
  const logs: string[] = [];
  const changes: string[] = [];
  let load = 0;
  const breaker = new CircuitBreaker({
    loadThreshold: 0.9,
    cooldownMs: 5000,
    exportFailureThreshold: 3,
    queueFullThreshold: 2,
    loadPollIntervalMs: 1000,
    halfOpenSpansPerPoll: 2,
    load: () => load,
    timers,
    logger: {
      info: (msg, fields) => logs.push(`info ${fields?.state} ${fields?.reason}: ${msg}`),
      warn: (msg, fields) => logs.push(`warn ${fields?.state} ${fields?.reason}: ${msg}`),
    },
    onStateChange: (state, previous, reason) => changes.push(`${previous}->${state}:${reason}`),
    ...options,
  });
  breaker.start();
  return { breaker, timers, logs, changes, setLoad: (v) => load = v };
}

// The transitions of a breaker that export failures open and a successful probe export closes.
const EXPORT_FAILURE_CYCLE = [
  "closed->open:export_failures",
  "open->half_open:cooldown_elapsed",
  "half_open->closed:export_success",
];

function allowed(breaker: CircuitBreaker, n: number): number {
  let yes = 0;
  for (let i = 0; i < n; i++) if (breaker.allow()) yes++;
  return yes;
}

Deno.test("high load opens the breaker, cooldown half-opens it, recovered load closes it", () => {
  const { breaker, timers, logs, changes, setLoad } = rig();
  assert.equal(allowed(breaker, 100), 100);
  setLoad(0.95);
  timers.advance(1000);
  assert.equal(breaker.state, "open");
  assert.equal(breaker.stateCode, 2, "gauge value of open");
  assert.equal(BREAKER_STATE_CODE[breaker.state], 2);
  assert.equal(allowed(breaker, 100), 0);
  // Still overloaded after the cooldown: stays open, silently.
  timers.advance(10_000);
  assert.equal(breaker.state, "open");
  setLoad(0.2);
  timers.advance(1000);
  assert.equal(breaker.state, "half_open");
  assert.equal(allowed(breaker, 100), 2, "a trickle of two spans per poll");
  timers.advance(1000);
  assert.equal(breaker.state, "closed", "opened for load alone: recovered load closes it");
  assert.deepEqual(changes, [
    "closed->open:load",
    "open->half_open:cooldown_elapsed",
    "half_open->closed:load_recovered",
  ]);
  assert.equal(logs.length, 3, "each transition logged exactly once");
  assert.match(logs[0], /^warn open load: tracing circuit breaker opened/);
  breaker.stop();
  assert.equal(timers.pending, 0);
});

Deno.test("consecutive export failures open it; a successful probe export closes it", () => {
  const { breaker, timers, changes, logs } = rig();
  breaker.recordExportFailure();
  breaker.recordExportFailure();
  breaker.recordExportSuccess();
  breaker.recordExportFailure();
  breaker.recordExportFailure();
  assert.equal(breaker.state, "closed", "a success resets the streak");
  breaker.recordExportFailure();
  assert.equal(breaker.state, "open");
  // Failures of batches still in flight while open change nothing and log nothing.
  for (let i = 0; i < 10; i++) breaker.recordExportFailure();
  assert.equal(logs.length, 1);
  timers.advance(5000);
  assert.equal(breaker.state, "half_open");
  timers.advance(1000);
  assert.equal(breaker.state, "half_open", "opened for exports: only an export can close it");
  assert.equal(allowed(breaker, 5), 2, "trickle refilled every poll");
  breaker.recordExportSuccess();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(changes, EXPORT_FAILURE_CYCLE);
  breaker.stop();
});

Deno.test("a failed probe reopens it for another cooldown", () => {
  const { breaker, timers, changes } = rig();
  for (let i = 0; i < 3; i++) breaker.recordExportFailure();
  timers.advance(5000);
  assert.equal(breaker.state, "half_open");
  breaker.recordExportFailure();
  assert.equal(breaker.state, "open");
  timers.advance(4000);
  assert.equal(breaker.state, "open", "a fresh cooldown");
  timers.advance(1000);
  assert.equal(breaker.state, "half_open");
  breaker.recordQueueFull();
  assert.equal(breaker.state, "open", "a full queue also fails the probe");
  assert.deepEqual(changes.slice(2), [
    "half_open->open:probe_failed",
    "open->half_open:cooldown_elapsed",
    "half_open->open:probe_failed",
  ]);
  breaker.stop();
});

Deno.test("a queue full over consecutive polls opens it; an isolated one does not", () => {
  const { breaker, timers } = rig();
  breaker.recordQueueFull();
  timers.advance(1000);
  timers.advance(1000);
  breaker.recordQueueFull();
  timers.advance(1000);
  assert.equal(breaker.state, "closed", "not consecutive");
  breaker.recordQueueFull();
  breaker.recordQueueFull();
  timers.advance(1000);
  assert.equal(breaker.state, "open");
  breaker.stop();
});

Deno.test("a disabled breaker always allows and starts no timer", () => {
  const { breaker, timers, setLoad, changes } = rig({ circuitBreakerEnabled: false });
  setLoad(1);
  for (let i = 0; i < 10; i++) breaker.recordExportFailure();
  breaker.recordQueueFull();
  timers.advance(10_000);
  assert.equal(timers.pending, 0);
  assert.equal(allowed(breaker, 10), 10);
  assert.equal(timers.pending, 0, "span starts do not start one either");
  assert.deepEqual(changes, []);
  breaker.stop();
});

Deno.test("closed, the load poll sleeps through a poll interval without a span start; the next one wakes it", () => {
  const { breaker, timers, setLoad, changes } = rig();
  assert.equal(allowed(breaker, 5), 5);
  timers.advance(1000);
  assert.ok(breaker.polling, "a span started since the last poll");
  timers.advance(1000);
  assert.equal(breaker.polling, false, "asleep");
  assert.equal(timers.pending, 0, "no timer wakes an idle process");
  // Load read while asleep decides nothing: no span waits on it.
  setLoad(0.95);
  timers.advance(10_000);
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.allow(), true, "the span that wakes it is allowed");
  assert.ok(breaker.polling);
  timers.advance(1000);
  assert.equal(breaker.state, "open", "the first poll after waking reads the load");
  assert.deepEqual(changes, ["closed->open:load"]);
  breaker.stop();
  assert.equal(timers.pending, 0);
  breaker.allow();
  assert.equal(timers.pending, 0, "a stopped breaker's poll stays stopped");
});

Deno.test("export failures open a breaker whose poll sleeps; the poll wakes for the cooldown", () => {
  const { breaker, timers, changes } = rig();
  timers.advance(1000);
  assert.equal(breaker.polling, false);
  // The spans of the last busy moment are exported later, and their exports fail.
  for (let i = 0; i < 3; i++) breaker.recordExportFailure();
  assert.equal(breaker.state, "open");
  assert.ok(breaker.polling, "opening wakes the poll");
  timers.advance(6000);
  assert.equal(breaker.state, "half_open", "the cooldown elapsed at a poll");
  breaker.recordExportSuccess();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(changes, EXPORT_FAILURE_CYCLE);
  breaker.stop();
});

Deno.test("timed-out exports open the breaker after export_timeout_threshold, before the failure threshold", () => {
  const { breaker, changes } = rig({ exportFailureThreshold: 5, exportTimeoutThreshold: 3 });
  breaker.recordExportFailure(true);
  breaker.recordExportFailure(true);
  assert.equal(breaker.state, "closed");
  breaker.recordExportFailure(true);
  assert.equal(breaker.state, "open");
  assert.deepEqual(changes, ["closed->open:export_timeouts"]);
});

Deno.test("a success resets the timeout count; fast failures still need the failure threshold", () => {
  const { breaker } = rig({ exportFailureThreshold: 5, exportTimeoutThreshold: 3 });
  breaker.recordExportFailure(true);
  breaker.recordExportFailure(true);
  breaker.recordExportSuccess();
  breaker.recordExportFailure(true);
  breaker.recordExportFailure(false);
  breaker.recordExportFailure(false);
  assert.equal(breaker.state, "closed", "1 timeout and 3 failures since the success");
  breaker.recordExportFailure(true);
  assert.equal(breaker.state, "closed", "2 timeouts, 4 failures");
  breaker.recordExportFailure(false);
  assert.equal(breaker.state, "open", "5 failures");
});
