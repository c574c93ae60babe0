import assert from "node:assert/strict";
import { EventLoopDelayMonitor, InFlightCounter, LoadSources } from "./load.ts";
import { ManualTimers } from "../../common/timers.ts";

/** A monitor on manual timers: 100 ms samples, a 10-sample window, 100 ms reads as load 1. */
function monitorRig() {
  const timers = new ManualTimers();
  const monitor = new EventLoopDelayMonitor({
    sampleIntervalMs: 100,
    maxDelayMs: 100,
    windowSize: 10,
    timers,
  });
  return { timers, monitor };
}

Deno.test("event-loop delay is averaged over the window and normalised by the max delay", () => {
  const { timers, monitor } = monitorRig();
  monitor.start();
  // Spans start every 10 ms: the monitor keeps sampling.
  const spans = timers.setInterval(() => monitor.touch(), 10);
  timers.advance(1000);
  assert.equal(monitor.load(), 0, "on-time ticks");
  // A 500 ms stall right after a tick makes the next tick 400 ms late: one sample of 400 ms in
  // a 10-sample window.
  timers.stall(500);
  timers.advance(0);
  assert.equal(monitor.meanDelayMs, 40);
  assert.equal(monitor.load(), 0.4);
  timers.advance(1000);
  assert.equal(monitor.load(), 0, "forgotten after a window");
  // Every tick 90 ms late: each one comes 190 ms after the previous instead of 100 ms.
  for (let i = 0; i < 10; i++) {
    timers.stall(190);
    timers.advance(0);
  }
  assert.ok(Math.abs(monitor.load() - 0.9) < 1e-9, `load ${monitor.load()}`);
  for (let i = 0; i < 10; i++) {
    timers.stall(500);
    timers.advance(0);
  }
  assert.equal(monitor.load(), 1, "capped at 1");
  timers.clearInterval(spans);
  monitor.stop();
  assert.equal(timers.pending, 0);
});

Deno.test("event-loop delay sleeps while no span starts and wakes on the next one", () => {
  const { timers, monitor } = monitorRig();
  monitor.start();
  assert.ok(monitor.sampling);
  timers.advance(100);
  assert.equal(monitor.sampling, false, "a sample period without a touch: asleep");
  assert.equal(timers.pending, 0, "no timer wakes an idle process");
  timers.advance(10_000);
  assert.equal(monitor.load(), 0);

  // A busy second: spans keep starting and every sample is 90 ms late.
  monitor.touch();
  assert.ok(monitor.sampling, "a touch wakes it");
  for (let i = 0; i < 10; i++) {
    monitor.touch();
    timers.stall(190);
    timers.advance(0);
  }
  assert.ok(Math.abs(monitor.load() - 0.9) < 1e-9, `load ${monitor.load()}`);
  // Then nothing starts: the next sample (on time) finds no touch since the last one and sleeps.
  timers.advance(100);
  assert.equal(monitor.sampling, false);
  assert.ok(Math.abs(monitor.load() - 0.81) < 1e-9, `one on-time sample of ten: ${monitor.load()}`);
  // Asleep, each period slept through reads as an on-time sample, as ticks of an idle loop would.
  timers.advance(500);
  assert.ok(Math.abs(monitor.load() - 0.36) < 1e-9, `load ${monitor.load()}`);
  monitor.touch();
  assert.ok(Math.abs(monitor.load() - 0.36) < 1e-9, "waking keeps the reading");
  assert.equal(timers.pending, 1);
  timers.advance(100);
  assert.ok(Math.abs(monitor.load() - 0.27) < 1e-9, `one more on-time sample: ${monitor.load()}`);
  assert.equal(monitor.sampling, false, "no touch since waking: asleep again");
  timers.advance(5_000);
  assert.equal(monitor.load(), 0, "a window slept through reads idle");

  monitor.stop();
  monitor.touch();
  assert.equal(timers.pending, 0, "a stopped monitor stays stopped");
});

Deno.test("event-loop delay measures a real blocked loop", async () => {
  const monitor = new EventLoopDelayMonitor({
    sampleIntervalMs: 10,
    maxDelayMs: 100,
    windowSize: 5,
  });
  monitor.start();
  await new Promise((r) => setTimeout(r, 5));
  monitor.touch();
  const until = performance.now() + 80;
  while (performance.now() < until) { /* block the event loop */ }
  await new Promise((r) => setTimeout(r, 15));
  monitor.stop();
  assert.ok(monitor.meanDelayMs >= 10, `mean delay ${monitor.meanDelayMs}`);
  assert.ok(monitor.load() > 0.1);
});

Deno.test("in-flight load is requests over the max, capped", () => {
  const counter = new InFlightCounter(4);
  const load = counter.load;
  counter.begin();
  counter.begin();
  assert.equal(load(), 0.5);
  for (let i = 0; i < 10; i++) counter.begin();
  assert.equal(load(), 1);
  for (let i = 0; i < 20; i++) counter.end();
  assert.equal(counter.inFlight, 0, "never negative");
});

Deno.test("LoadSources starts the event-loop monitor only when asked", () => {
  const timers = new ManualTimers();
  const sources = new LoadSources({ maxInFlight: 2, maxEventLoopDelayMs: 50, timers });
  const inFlight = sources.get("in_flight");
  assert.equal(timers.pending, 0);
  sources.inFlight.begin();
  assert.equal(inFlight(), 0.5);
  const gate = { allow: () => true };
  assert.equal(sources.touchingGate(gate), gate, "no monitor: the gate as it is");
  const loop = sources.get("event_loop_delay");
  assert.equal(sources.get("event_loop_delay"), loop, "one monitor per process");
  assert.equal(timers.pending, 1);
  const touching = sources.touchingGate(gate);
  assert.equal(touching.allow(), true, "the gate's answer");
  timers.advance(100);
  assert.equal(touching.allow(), true);
  timers.stall(500);
  timers.advance(0);
  assert.equal(loop(), 0.8, "one tick 400 ms late over 10 samples: 40 ms of a 50 ms max");
  assert.equal(timers.pending, 1, "a span start since the last sample: still sampling");
  timers.advance(100);
  assert.equal(timers.pending, 0, "no span start since the last sample: asleep");
  assert.equal(loop(), 0.8);
  touching.allow();
  assert.equal(timers.pending, 1, "a span start wakes it");
  sources.stop();
  assert.equal(timers.pending, 0);
});
