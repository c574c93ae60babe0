import assert from "node:assert/strict";
import { createLogger } from "../common/log.ts";
import { ManualTimers } from "../common/timers.ts";
import { MetricsRegistry } from "../tracing/mod.ts";
import { parseDigest } from "../storage/digest.ts";
import { AnnounceClient } from "./announce_client.ts";
import {
  currentHosts,
  dnsResolver,
  type HostListConfig,
  openHostList,
  openHostLists,
  type Resolver,
  staticHostList,
  systemResolver,
} from "./hostlist.ts";

const DNS: HostListConfig = {
  kind: "dns",
  hostname: "origins.test",
  port: 15002,
  record: "origins.test:15002",
  ttlMs: 5000,
};

/** A resolver whose answer the test sets; `null` makes it fail. */
function standIn(initial: string[] | null) {
  const state = { answer: initial, calls: 0 };
  const resolve: Resolver = (name) => {
    state.calls++;
    assert.equal(name, "origins.test");
    if (state.answer === null) return Promise.reject(new Error("SERVFAIL"));
    return Promise.resolve([...state.answer]);
  };
  return { state, resolve };
}

function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ role: "test", write: (l) => lines.push(JSON.parse(l)) });
  return { lines, logger };
}

/** Lets the refresh the timers started run to its end (the stand-in answers at once). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("static host list: the members as written, duplicates removed, nothing to refresh", async () => {
  const list = await openHostList({ kind: "static", hosts: ["b:1", "a:1", "b:1"] });
  assert.deepEqual(list.hosts, ["b:1", "a:1"]);
  assert.equal(list.record, undefined);
  assert.equal(list.source, "b:1,a:1,b:1");
  assert.deepEqual(currentHosts(list), ["b:1", "a:1"]);
  assert.deepEqual(currentHosts(["x:1"]), ["x:1"]);
  list.stop();
});

Deno.test("dns host list: addresses get the port, IPv6 in brackets, sorted", async () => {
  const { resolve } = standIn(["10.0.0.2", "10.0.0.1", "fd00::1", "10.0.0.1"]);
  const timers = new ManualTimers();
  const list = await openHostList(DNS, { resolve, timers });
  assert.deepEqual(list.hosts, ["10.0.0.1:15002", "10.0.0.2:15002", "[fd00::1]:15002"]);
  assert.equal(list.record, "origins.test:15002");
  list.stop();
  assert.equal(timers.pending, 0);
});

Deno.test("dns host list: re-resolved every ttl; a change makes a new array and calls onChange", async () => {
  const { state, resolve } = standIn(["10.0.0.1"]);
  const timers = new ManualTimers();
  const { lines, logger } = recordingLogger();
  const changes: (readonly string[])[] = [];
  const list = await openHostList(DNS, {
    resolve,
    timers,
    logger,
    onChange: (h) => changes.push(h),
  });
  const first = list.hosts;
  timers.advance(4999);
  await settle();
  assert.equal(state.calls, 1);
  timers.advance(1);
  await settle();
  assert.equal(state.calls, 2);
  assert.equal(list.hosts, first, "an unchanged answer keeps the same array");
  state.answer = ["10.0.0.3", "10.0.0.1"];
  timers.advance(5000);
  await settle();
  assert.deepEqual(list.hosts, ["10.0.0.1:15002", "10.0.0.3:15002"]);
  assert.notEqual(list.hosts, first);
  assert.deepEqual(changes, [list.hosts]);
  const changed = lines.find((l) => l.msg === "host list changed");
  assert.deepEqual(changed?.previous, ["10.0.0.1:15002"]);
  list.stop();
});

Deno.test("dns host list: failed re-resolutions keep the last members and are logged at a bounded rate", async () => {
  const { state, resolve } = standIn(["10.0.0.1"]);
  const timers = new ManualTimers();
  const { lines, logger } = recordingLogger();
  const metrics = new MetricsRegistry();
  const list = await openHostList(DNS, {
    resolve,
    timers,
    logger,
    failureLogIntervalMs: 60_000,
    metrics,
    name: "origins",
  });
  state.answer = null;
  for (let i = 0; i < 12; i++) {
    timers.advance(5000);
    await settle();
  }
  assert.equal(state.calls, 13);
  assert.deepEqual(list.hosts, ["10.0.0.1:15002"]);
  const failures = lines.filter((l) => String(l.msg).startsWith("host list resolution failed"));
  // t=5s logged; t=10s..60s suppressed (11); t=65s would be the next line.
  assert.equal(failures.length, 1);
  assert.equal(failures[0].record, "origins.test:15002");
  assert.equal(failures[0].error, "SERVFAIL");
  assert.deepEqual(failures[0].hosts, ["10.0.0.1:15002"]);
  timers.advance(5000);
  await settle();
  const again = lines.filter((l) => String(l.msg).startsWith("host list resolution failed"));
  assert.equal(again.length, 2);
  assert.equal(again[1].suppressed, 11);
  assert.match(
    metrics.render(),
    /^kraken_hostlist_resolution_failures_total\{hostlist="origins"\} 13$/m,
  );
  assert.match(metrics.render(), /^kraken_hostlist_members\{hostlist="origins"\} 1$/m);
  // An empty answer is a failure too: the members stay.
  state.answer = [];
  timers.advance(5000);
  await settle();
  assert.deepEqual(list.hosts, ["10.0.0.1:15002"]);
  list.stop();
});

Deno.test("dns host list: the first resolution must succeed and find an address", async () => {
  await assert.rejects(
    () => openHostList(DNS, { resolve: standIn(null).resolve, timers: new ManualTimers() }),
    /cannot resolve host list origins\.test:15002: SERVFAIL/,
  );
  const timers = new ManualTimers();
  await assert.rejects(
    () => openHostList(DNS, { resolve: standIn([]).resolve, timers }),
    /origins\.test:15002: the record has no addresses/,
  );
  assert.equal(timers.pending, 0, "a list that failed to open leaves no timer");
});

Deno.test("openHostLists: a failing list stops the ones already opened", async () => {
  const timers = new ManualTimers();
  const { resolve } = standIn(["10.0.0.1"]);
  const failing: Resolver = (name) =>
    name === "origins.test" ? resolve(name) : Promise.reject(new Error("NXDOMAIN"));
  await assert.rejects(
    () =>
      openHostLists({ origin: DNS, tracker: { ...DNS, hostname: "t.test", record: "t.test:1" } }, {
        resolve: failing,
        timers,
      }),
    /t\.test:1: NXDOMAIN/,
  );
  assert.equal(timers.pending, 0);
  const opened = await openHostLists({ origin: DNS, fixed: { kind: "static", hosts: ["a:1"] } }, {
    resolve,
    timers,
  });
  assert.deepEqual(opened.lists.fixed.hosts, ["a:1"]);
  assert.equal(timers.pending, 1);
  opened.stop();
  assert.equal(timers.pending, 0);
});

Deno.test("a client over a dns list follows its changes (announce ring re-formed)", async () => {
  const { state, resolve } = standIn(["127.0.0.1"]);
  const timers = new ManualTimers();
  const list = await openHostList({ ...DNS, port: 1 }, { resolve, timers });
  const asked: string[] = [];
  const client = new AnnounceClient({
    trackers: list,
    fetch: (url) => {
      asked.push(new URL(url).host);
      return Promise.reject(new TypeError("connection refused"));
    },
  });
  const digest = parseDigest(`sha256:${"ab".repeat(32)}`);
  await assert.rejects(() => client.getMetaInfo("ns", digest));
  assert.deepEqual(asked, ["127.0.0.1:1"]);
  state.answer = ["127.0.0.2"];
  timers.advance(5000);
  await settle();
  asked.length = 0;
  await assert.rejects(() => client.getMetaInfo("ns", digest));
  assert.deepEqual(asked, ["127.0.0.2:1"]);
  list.stop();
});

Deno.test("staticHostList and systemResolver: IP literals resolve to themselves, localhost via the hosts file", async () => {
  assert.deepEqual(staticHostList(["a:1"]).hosts, ["a:1"]);
  assert.deepEqual(await systemResolver("10.1.2.3"), ["10.1.2.3"]);
  assert.deepEqual(await systemResolver("::1"), ["::1"]);
  assert.deepEqual(await systemResolver("localhost"), ["127.0.0.1"]);
});

Deno.test("dnsResolver: A records, AAAA only for a name without A, other failures are failures", async () => {
  const records: Record<string, { A?: string[] | Error; AAAA?: string[] | Error }> = {
    dual: { A: ["10.0.0.1"], AAAA: ["fd00::1"] },
    v6: { A: new Deno.errors.NotFound("no A"), AAAA: ["fd00::2"] },
    flaky: { A: new Error("SERVFAIL"), AAAA: ["fd00::3"] },
    none: { A: new Deno.errors.NotFound("no A"), AAAA: new Deno.errors.NotFound("no AAAA") },
  };
  const resolve = dnsResolver((name, type) => {
    const answer = records[name][type] ?? [];
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  });
  assert.deepEqual(await resolve("dual"), ["10.0.0.1"]);
  assert.deepEqual(await resolve("v6"), ["fd00::2"]);
  await assert.rejects(() => resolve("flaky"), /SERVFAIL/);
  await assert.rejects(() => resolve("none"), /no A/);
});
