import assert from "node:assert/strict";
import { ActiveHealthChecker, PassiveHealthFilter } from "./healthcheck.ts";
import { HashRing } from "./hashring.ts";
import { ManualTimers } from "../common/timers.ts";
import { waitFor } from "../tests/harness/wait.ts";

Deno.test("passive filter: 3 failures within the window exclude a host for 5 minutes", () => {
  let now = 1_000_000;
  const filter = new PassiveHealthFilter({ now: () => now });
  filter.failed("a:1");
  now += 60_000;
  filter.failed("a:1");
  assert.ok(filter.isHealthy("a:1"));
  now += 60_000;
  filter.failed("a:1");
  assert.ok(!filter.isHealthy("a:1"));
  assert.ok(filter.isHealthy("b:1"));
  now += 5 * 60_000 - 1;
  assert.ok(!filter.isHealthy("a:1"));
  now += 1;
  assert.ok(filter.isHealthy("a:1"));
});

Deno.test("passive filter: failures older than the window do not count", () => {
  let now = 0;
  const filter = new PassiveHealthFilter({ now: () => now });
  filter.failed("a:1");
  filter.failed("a:1");
  now += 5 * 60_000;
  filter.failed("a:1");
  filter.failed("a:1");
  assert.ok(filter.isHealthy("a:1"));
  filter.failed("a:1");
  assert.ok(!filter.isHealthy("a:1"));
});

Deno.test("passive filter: plugs into the ring", () => {
  const hosts = ["origin1:15002", "origin2:15002", "origin3:15002"];
  const filter = new PassiveHealthFilter();
  const ring = new HashRing(hosts, { maxReplica: 1, isHealthy: filter.isHealthy });
  const digest = "686d22d695e2c21166a89498a3a3f198e8d4ad8b09190bd1d86e350a79597341";
  const [first, second] = ring.ordered(digest);
  for (let i = 0; i < 3; i++) filter.failed(first);
  assert.deepEqual(ring.locations(digest), [second]);
});

/** A fetch stand-in whose /health answers are scripted per host. */
function scriptedFetch(up: Map<string, boolean>, seen: string[]): typeof fetch {
  return (input) => {
    const url = new URL(String(input));
    seen.push(url.href);
    return Promise.resolve(
      up.get(url.host) ? new Response("OK") : new Response("down", { status: 503 }),
    );
  };
}

Deno.test("active checker: 3 fails mark unhealthy, 2 passes mark healthy", async () => {
  const up = new Map([["a:1", true], ["b:2", true]]);
  const seen: string[] = [];
  const changes: string[] = [];
  const checker = new ActiveHealthChecker({
    hosts: () => up.keys(),
    fetch: scriptedFetch(up, seen),
    onChange: (h, ok) => changes.push(`${h}=${ok}`),
  });
  await checker.check();
  assert.deepEqual(seen.sort(), ["http://a:1/health", "http://b:2/health"]);
  assert.ok(checker.isHealthy("a:1"));

  up.set("a:1", false);
  await checker.check();
  await checker.check();
  assert.ok(checker.isHealthy("a:1"));
  await checker.check();
  assert.ok(!checker.isHealthy("a:1"));
  assert.ok(checker.isHealthy("b:2"));

  up.set("a:1", true);
  await checker.check();
  assert.ok(!checker.isHealthy("a:1"));
  await checker.check();
  assert.ok(checker.isHealthy("a:1"));
  assert.deepEqual(changes, ["a:1=false", "a:1=true"]);
  assert.ok(checker.isHealthy("never-probed:1"));
});

Deno.test("active checker: a probe that hangs past the timeout counts as a failure", async () => {
  const hanging: typeof fetch = (_input, init) =>
    new Promise((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
    });
  const checker = new ActiveHealthChecker({
    hosts: ["slow:1"],
    fetch: hanging,
    timeoutMs: 10,
    fails: 1,
  });
  await checker.check();
  assert.ok(!checker.isHealthy("slow:1"));
});

Deno.test("active checker: start probes on an interval, stop halts it", async () => {
  const up = new Map([["a:1", false]]);
  const seen: string[] = [];
  const timers = new ManualTimers();
  const checker = new ActiveHealthChecker({
    hosts: ["a:1"],
    fetch: scriptedFetch(up, seen),
    intervalMs: 5,
    timers,
  });
  checker.start();
  assert.equal(seen.length, 1, "the first round starts at once");
  for (const round of [2, 3]) {
    // The next round is scheduled once the previous one has settled.
    await waitFor("the next round to be scheduled", () => timers.pending === 1);
    timers.advance(4);
    assert.equal(seen.length, round - 1, "no round before the interval");
    timers.advance(1);
    assert.equal(seen.length, round);
  }
  await waitFor("the third round to settle", () => timers.pending === 1);
  await checker.stop();
  assert.ok(!checker.isHealthy("a:1"));
  assert.equal(timers.pending, 0, "stop clears the next round");
  timers.advance(50);
  assert.equal(seen.length, 3);
});

Deno.test("active checker: probes a real /health endpoint", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/health"
        ? new Response("OK")
        : new Response(null, { status: 404 }),
  );
  const host = `127.0.0.1:${server.addr.port}`;
  const checker = new ActiveHealthChecker({ hosts: [host, "127.0.0.1:1"], fails: 1 });
  await checker.check();
  assert.ok(checker.isHealthy(host));
  assert.ok(!checker.isHealthy("127.0.0.1:1"));
  await server.shutdown();
});
