import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { withTempDir } from "../tests/harness/fs.ts";
import { waitFor } from "../tests/harness/wait.ts";
import { ManualTimers } from "../common/timers.ts";
import {
  openDatabase,
  type TaskTable,
  WriteBackManager,
  type WriteBackManagerOptions,
  type WriteBackTask,
} from "./writeback.ts";
import { externalTest } from "../tests/harness/external.ts";

const TRACE = {
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
  traceFlags: "01",
};

function withDb(fn: (dbPath: string) => Promise<void>): Promise<void> {
  return withTempDir((dir) => fn(`${dir}/sub/origin.db`), { prefix: "kraken-writeback-test-" });
}

/**
 * A manager on a wall clock the test moves (`clock.now`, from 2026-01-01 UTC) and on
 * {@linkcode ManualTimers}.
 */
function clockedManager(
  dbPath: string,
  options: Omit<WriteBackManagerOptions, "dbPath" | "now" | "timers">,
) {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const timers = new ManualTimers();
  const m = new WriteBackManager({ dbPath, now: () => clock.now, timers, ...options });
  return { m, timers, clock };
}

/** A manager whose executor succeeds and keeps every task it runs in `seen`, in order. */
function recordingManager(dbPath: string) {
  const seen: WriteBackTask[] = [];
  const m = new WriteBackManager({
    dbPath,
    executor: (t) => {
      seen.push(t);
      return Promise.resolve();
    },
  });
  return { m, seen };
}

/** One turn of the event loop: lets settled executor promises run their bookkeeping. */
const turn = () => new Promise((r) => setTimeout(r, 0));

/**
 * Waits for `promise` while moving `timers` to each timer it sets (the backoff of `executeNow`):
 * between turns of the event loop, time jumps to the next due timer.
 */
async function settleWith<T>(timers: ManualTimers, promise: Promise<T>): Promise<T> {
  let settled = false;
  // Handled at once, so a rejection is not reported as unhandled while time is being moved.
  const outcome = promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  ).finally(() => settled = true);
  for (let i = 0; i < 1000 && !settled; i++) {
    await turn();
    const due = timers.nextDue;
    if (!settled && due !== undefined) timers.advance(due - timers.now());
  }
  const result = await outcome;
  if ("error" in result) throw result.error;
  return result.value;
}

Deno.test("writeback: table matches the upstream schema", () =>
  withDb(async (dbPath) => {
    const m = new WriteBackManager({ dbPath, executor: () => Promise.resolve() });
    await m.stop();
    const db = new DatabaseSync(dbPath);
    const cols = db.prepare("PRAGMA table_info(writeback_task)").all()
      .map((c) => [c.name, String(c.type).toLowerCase(), c.notnull, c.dflt_value, c.pk]);
    assert.deepEqual(cols, [
      ["namespace", "text", 1, null, 1],
      ["name", "text", 1, null, 2],
      ["created_at", "timestamp", 0, "CURRENT_TIMESTAMP", 0],
      ["last_attempt", "timestamp", 1, null, 0],
      ["status", "text", 1, null, 0],
      ["failures", "integer", 1, null, 0],
      ["delay", "integer", 1, null, 0],
      ["trace_id", "text", 0, "''", 0],
      ["span_id", "text", 0, "''", 0],
      ["trace_flags", "text", 0, "''", 0],
    ]);
    assert.equal(db.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
    db.close();
  }));

const REPLICATION_TABLE: TaskTable = {
  name: "replicate_tag_task",
  keyColumns: ["tag", "destination"],
  payloadColumns: ["digest", "dependencies"],
};

Deno.test("writeback: another table in the same database keeps its own key and payload columns", () =>
  withDb(async (dbPath) => {
    const db = openDatabase(dbPath);
    const seen: WriteBackTask[] = [];
    const writeback = new WriteBackManager({ db, executor: () => Promise.resolve() });
    const tasks = new WriteBackManager({
      db,
      table: REPLICATION_TABLE,
      executor: (t) => {
        seen.push(t);
        return Promise.resolve();
      },
    });
    const cols = db.prepare("PRAGMA table_info(replicate_tag_task)").all()
      .map((c) => [c.name, c.pk]);
    assert.deepEqual(cols.slice(0, 4), [["tag", 1], ["destination", 2], ["digest", 0], [
      "dependencies",
      0,
    ]]);
    const payload = { digest: '"sha256:ab"', dependencies: '["sha256:ab"]' };
    assert.equal(tasks.add({ namespace: "r:t", name: "bi2:80", payload, delayMs: 1 }), true);
    assert.equal(tasks.add({ namespace: "r:t", name: "bi2:80", payload }), false);
    assert.equal(writeback.add({ namespace: "r:t", name: "bi2:80", delayMs: 1 }), true);
    assert.deepEqual(tasks.pending().map((r) => r.payload), [payload]);
    assert.deepEqual(writeback.pending().map((r) => r.payload), [{}]);

    // prune deletes what `keep` turns down, in this table only.
    assert.equal(tasks.add({ namespace: "r:t", name: "gone:80", payload }), true);
    assert.equal(tasks.prune((t) => t.name !== "gone:80"), 1);
    assert.deepEqual(tasks.pending().map((r) => r.name), ["bi2:80"]);
    assert.equal(writeback.pending().length, 1);

    tasks.start();
    await waitFor("the delayed task to run", () => seen.length === 1, { timeoutMs: 20_000 });
    assert.deepEqual(seen[0].payload, payload);
    assert.equal(seen[0].namespace, "r:t");
    await tasks.stop();
    await writeback.stop();
    db.close();
    assert.throws(
      () =>
        new WriteBackManager({
          dbPath,
          table: { name: "x; drop", keyColumns: ["a", "b"] },
          executor: () => Promise.resolve(),
        }),
      /bad SQL identifier/,
    );
  }));

Deno.test("writeback: a table from before the tracing migration gains its columns", () =>
  withDb(async (dbPath) => {
    const old = openDatabase(dbPath);
    old.exec(`CREATE TABLE writeback_task (
      namespace text NOT NULL, name text NOT NULL,
      created_at timestamp DEFAULT CURRENT_TIMESTAMP, last_attempt timestamp NOT NULL,
      status text NOT NULL, failures integer NOT NULL, delay integer NOT NULL,
      PRIMARY KEY(namespace, name))`);
    // A row written by Go's sqlite3 driver: nanosecond timestamps with a zone.
    old.exec(
      `INSERT INTO writeback_task (namespace, name, created_at, last_attempt, status, failures, delay)
      VALUES ('ns', 'go-row', '2026-08-14 10:00:00.123456789+00:00', '0001-01-01 00:00:00+00:00', 'failed', 2, 0)`,
    );
    old.close();
    const { m, seen } = recordingManager(dbPath);
    m.start();
    await waitFor("the upstream row to run", () => seen.length === 1);
    await m.stop();
    assert.equal(seen[0].createdAt, Date.UTC(2026, 7, 14, 10, 0, 0, 123));
    assert.equal(seen[0].failures, 2);
    assert.equal(seen[0].traceId, "");
  }));

Deno.test("writeback: add executes the task and deletes the row", () =>
  withDb(async (dbPath) => {
    const { m, seen } = recordingManager(dbPath);
    m.start();
    assert.equal(m.add({ namespace: "library/ubuntu", name: "abc", traceContext: TRACE }), true);
    await waitFor("execution", () => seen.length === 1 && m.pending().length === 0);
    assert.equal(seen[0].namespace, "library/ubuntu");
    assert.equal(seen[0].name, "abc");
    assert.equal(seen[0].delayMs, 0);
    assert.equal(seen[0].failures, 0);
    assert.deepEqual([seen[0].traceId, seen[0].spanId, seen[0].traceFlags], [
      TRACE.traceId,
      TRACE.spanId,
      "01",
    ]);
    await m.stop();
    assert.throws(() => m.add({ namespace: "a", name: "b" }), /stopped/);
  }));

Deno.test("writeback: duplicate insert is a no-op", () =>
  withDb(async (dbPath) => {
    const m = new WriteBackManager({ dbPath, executor: () => Promise.resolve() });
    assert.equal(m.add({ namespace: "ns", name: "d", delayMs: 60_000 }), true);
    assert.equal(m.add({ namespace: "ns", name: "d", delayMs: 0, traceContext: TRACE }), false);
    assert.equal(m.add({ namespace: "other", name: "d" }), true);
    const rows = m.pending();
    assert.equal(rows.length, 2);
    const first = rows.find((r) => r.namespace === "ns")!;
    assert.equal(first.delayMs, 60_000);
    assert.equal(first.status, "failed");
    assert.equal(first.traceId, "");
    await m.stop();
  }));

Deno.test("writeback: a delayed task waits until created_at + delay", () =>
  withDb(async (dbPath) => {
    const seen: string[] = [];
    const { m, timers, clock } = clockedManager(dbPath, {
      pollIntervalMs: 5,
      executor: (t) => {
        seen.push(t.name);
        return Promise.resolve();
      },
    });
    m.start();
    m.add({ namespace: "ns", name: "later", delayMs: 30 * 60_000 });
    const [row] = m.pending();
    assert.equal(row.status, "failed");
    assert.equal(row.delayMs, 30 * 60_000);
    assert.equal(row.lastAttempt, new Date("0001-01-01T00:00:00Z").getTime()); // Go's zero time
    // Each advance fires the poller once, which runs a ready task at once (synchronously).
    timers.advance(5);
    assert.deepEqual(seen, [], "not ready right after creation");
    clock.now += 30 * 60_000 - 1;
    timers.advance(5);
    assert.deepEqual(seen, [], "not ready 1 ms before created_at + delay");
    clock.now += 1;
    timers.advance(5);
    assert.deepEqual(seen, ["later"], "run by the poll at created_at + delay");
    await waitFor("row removal", () => m.pending().length === 0);
    await m.stop();
    assert.equal(timers.pending, 0, "stop() clears the poller");
  }));

Deno.test("writeback: a failure is recorded and retried after retryInterval", () =>
  withDb(async (dbPath) => {
    let calls = 0;
    const errors: unknown[] = [];
    const { m, timers, clock } = clockedManager(dbPath, {
      pollIntervalMs: 5,
      retryIntervalMs: 30_000,
      // Upstream's exact timing; the jitter only ever lengthens the wait (tested below).
      retryJitter: 0,
      onError: (err) => errors.push(err),
      executor: () => {
        calls++;
        return calls === 1 ? Promise.reject(new Error("backend down")) : Promise.resolve();
      },
    });
    m.start();
    m.add({ namespace: "ns", name: "d", traceContext: TRACE });
    await waitFor("the failure to be recorded", () => m.pending()[0]?.failures === 1);
    const [row] = m.pending();
    assert.equal(row.status, "failed");
    assert.equal(row.lastAttempt, clock.now);
    assert.equal(row.traceId, TRACE.traceId);
    assert.match(String(errors[0]), /backend down/);

    timers.advance(5);
    assert.equal(calls, 1, "no retry right after the failure");
    clock.now += 30_000;
    timers.advance(5);
    assert.equal(calls, 1, "no retry at exactly retryInterval");
    clock.now += 1;
    timers.advance(5);
    assert.equal(calls, 2, "retried by the poll after retryInterval");
    await waitFor("the retry to succeed", () => m.pending().length === 0);
    await m.stop();
  }));

Deno.test("writeback: rows survive a restart and keep their trace context", () =>
  withDb(async (dbPath) => {
    // First process: accepts the task but is stopped before executing it.
    const first = new WriteBackManager({
      dbPath,
      executor: () => Promise.reject(new Error("must not run")),
    });
    first.add({ namespace: "library/ubuntu", name: "d1", traceContext: TRACE });
    assert.equal(first.pending()[0].status, "pending");
    await first.stop();

    const { m: second, seen } = recordingManager(dbPath);
    second.start();
    await waitFor("recovered task", () => seen.length === 1 && second.pending().length === 0);
    assert.deepEqual([seen[0].namespace, seen[0].name], ["library/ubuntu", "d1"]);
    assert.deepEqual([seen[0].traceId, seen[0].spanId, seen[0].traceFlags], [
      TRACE.traceId,
      TRACE.spanId,
      TRACE.traceFlags,
    ]);
    await second.stop();
  }));

Deno.test("writeback: pending rows of a killed process become failed and run on start", () =>
  withDb(async (dbPath) => {
    // Simulate rows a killed process had queued: status pending, never attempted.
    const dead = new WriteBackManager({ dbPath, executor: () => Promise.resolve() });
    dead.add({ namespace: "ns", name: "a" });
    dead.add({ namespace: "ns", name: "b", traceContext: { ...TRACE, traceFlags: 1 } });
    await dead.stop();

    let release!: () => void;
    const gate = new Promise<void>((r) => release = r);
    const started: string[] = [];
    const m = new WriteBackManager({
      dbPath,
      pollIntervalMs: 60_000,
      executor: async (t) => {
        started.push(`${t.name}:${t.traceFlags}`);
        await gate;
      },
    });
    m.start();
    // Both run at once from the startup poll while their rows are stored pending again.
    await waitFor("startup retries", () => started.length === 2);
    assert.deepEqual(started.sort(), ["a:", "b:01"]);
    assert.deepEqual(m.pending().map((r) => r.status), ["pending", "pending"]);
    release();
    await waitFor("completion", () => m.pending().length === 0);
    await m.stop();
  }));

Deno.test("writeback: at most `workers` tasks run at once and stop waits for them", () =>
  withDb(async (dbPath) => {
    let running = 0, peak = 0, done = 0;
    // Each task runs until the test releases it.
    const releases: (() => void)[] = [];
    const m = new WriteBackManager({
      dbPath,
      workers: 2,
      executor: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => releases.push(r));
        running--;
        done++;
      },
    });
    m.start();
    for (let i = 0; i < 5; i++) m.add({ namespace: "ns", name: `d${i}` });
    assert.equal(running, 2, "two of five started");
    releases.shift()!();
    await waitFor("first completion and the next start", () => done === 1 && running === 2);
    let doneAtStop = -1;
    const stopped = m.stop().then(() => doneAtStop = done);
    await turn(); // stop() is now waiting for the two running tasks
    for (const release of releases.splice(0)) release();
    await stopped;
    assert.equal(peak, 2);
    assert.equal(doneAtStop, 3, "stop returned before its running tasks finished");
    assert.equal(running, 0, "stop returned while a task was running");
    // Tasks still queued at stop stay in the database for the next start.
    const reopened = new WriteBackManager({ dbPath, executor: () => Promise.resolve() });
    assert.equal(reopened.pending().length, 5 - done);
    await reopened.stop();
  }));

Deno.test("writeback: executeNow retries with backoff and gives up after maxAttempts", () =>
  withDb(async (dbPath) => {
    const attempts: number[] = [];
    let failUntil = 2;
    const timers = new ManualTimers();
    const m = new WriteBackManager({
      dbPath,
      timers,
      random: () => 0.5, // no jitter
      maxAttempts: 3,
      backoff: { initialMs: 10, multiplier: 2, maxMs: 15 },
      onError: () => {},
      executor: (t) => {
        attempts.push(timers.now());
        assert.equal(t.traceId, TRACE.traceId);
        return attempts.length <= failUntil
          ? Promise.reject(new Error(`fail ${attempts.length}`))
          : Promise.resolve();
      },
    });
    await settleWith(
      timers,
      m.executeNow({ namespace: "tag", name: "repo:tag", traceContext: TRACE }),
    );
    assert.equal(attempts.length, 3);
    assert.equal(attempts[1] - attempts[0], 10, "first backoff 10 ms");
    assert.equal(attempts[2] - attempts[1], 15, "second backoff capped at 15 ms");
    assert.deepEqual(m.pending(), [], "executeNow does not persist");

    attempts.length = 0;
    failUntil = Infinity;
    await assert.rejects(
      settleWith(timers, m.executeNow({ namespace: "tag", name: "x:y", traceContext: TRACE })),
      /fail 3/,
    );
    assert.equal(attempts.length, 3);
    assert.deepEqual(attempts.map((t) => t - attempts[0]), [0, 10, 25]);
    await m.stop();
  }));

Deno.test("writeback: invalid trace contexts are stored empty; bad options are rejected", () =>
  withDb(async (dbPath) => {
    const m = new WriteBackManager({ dbPath, executor: () => Promise.resolve() });
    m.add({ namespace: "ns", name: "zero", traceContext: { ...TRACE, traceId: "0".repeat(32) } });
    m.add({
      namespace: "ns",
      name: "upper",
      traceContext: { ...TRACE, spanId: "00F067AA0BA902B7" },
    });
    assert.deepEqual(m.pending().map((r) => r.traceId + r.spanId + r.traceFlags), ["", ""]);
    assert.throws(() => m.add({ namespace: "ns", name: "neg", delayMs: -1 }), RangeError);
    await m.stop();
    assert.throws(() => new WriteBackManager({ executor: () => Promise.resolve() }), /exactly one/);
    assert.throws(
      () => new WriteBackManager({ dbPath, workers: -1, executor: () => Promise.resolve() }),
      RangeError,
    );
  }));

externalTest(
  "writeback: a task accepted by a process killed with SIGKILL runs after restart",
  () =>
    withDb(async (dbPath) => {
      const moduleUrl = new URL("./writeback.ts", import.meta.url).href;
      const script = `
      import { WriteBackManager } from ${JSON.stringify(moduleUrl)};
      const m = new WriteBackManager({ dbPath: ${JSON.stringify(dbPath)},
        executor: () => new Promise(() => {}) });
      m.start();
      m.add({ namespace: "TODO", name: "crash", traceContext: ${JSON.stringify(TRACE)} });
      console.log("added");
      setInterval(() => {}, 1000);
    `;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["eval", "--ext=ts", script],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("added")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel();
      assert.match(out, /added/);

      const { m, seen } = recordingManager(dbPath);
      assert.equal(m.pending()[0]?.status, "pending", "the killed process left the row queued");
      m.start();
      await waitFor("recovered task", () => seen.length === 1 && m.pending().length === 0);
      assert.deepEqual([seen[0].name, seen[0].traceId, seen[0].spanId], [
        "crash",
        TRACE.traceId,
        TRACE.spanId,
      ]);
      await m.stop();
    }),
);

Deno.test("writeback: retries of a failing task back off exponentially with jitter, capped", () =>
  withDb(async (dbPath) => {
    const attempts: number[] = [];
    const { m, timers, clock } = clockedManager(dbPath, {
      pollIntervalMs: 100,
      retryIntervalMs: 1000,
      maxRetryIntervalMs: 8000,
      retryJitter: 0.2,
      executor: () => {
        attempts.push(clock.now);
        return Promise.reject(new Error("backend down"));
      },
      onError: () => {},
    });
    m.start();
    m.add({ namespace: "ns", name: "big-blob" });
    // Two simulated minutes in poll steps; each failure's bookkeeping settles before the next poll.
    for (let t = 0; t < 120_000; t += 100) {
      await turn();
      clock.now += 100;
      timers.advance(100);
    }
    await m.stop();
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    // 1 s, 2 s, 4 s, then the 8 s cap, each up to 20 % longer, rounded up to the next poll.
    const expected = [1000, 2000, 4000, 8000, 8000, 8000];
    for (let i = 0; i < expected.length; i++) {
      assert.ok(
        gaps[i] > expected[i] && gaps[i] <= expected[i] * 1.2 + 100,
        `gap ${i}: ${gaps[i]} ms, expected about ${expected[i]}: ${gaps.join(", ")}`,
      );
    }
    assert.ok(gaps.every((g) => g <= 8000 * 1.2 + 100), gaps.join(", "));
    // With a fixed 1 s retry it would have been about 110 attempts.
    assert.ok(attempts.length < 20, `${attempts.length} attempts`);
  }));

Deno.test("writeback: retry jitter spreads tasks that failed together and is fixed per failure", () =>
  withDb(async (dbPath) => {
    const m = new WriteBackManager({
      dbPath,
      executor: () => Promise.resolve(),
      retryIntervalMs: 100,
      maxRetryIntervalMs: 800,
      retryJitter: 0.2,
    });
    const waits = ["a", "b", "c", "d"].map((name) =>
      m.retryWaitMs({ namespace: "ns", name, failures: 3 })
    );
    assert.ok(new Set(waits).size > 1, waits.join(", "));
    assert.ok(waits.every((w) => w >= 400 && w < 480), waits.join(", "));
    assert.equal(m.retryWaitMs({ namespace: "ns", name: "a", failures: 3 }), waits[0]);
    assert.ok(m.retryWaitMs({ namespace: "ns", name: "a", failures: 30 }) <= 960);
    await m.stop();
  }));

Deno.test("writeback: a retry cap below the retry interval is refused", () => {
  assert.throws(
    () =>
      new WriteBackManager({
        dbPath: ":memory:",
        executor: () => Promise.resolve(),
        retryIntervalMs: 1000,
        maxRetryIntervalMs: 500,
      }),
    /maxRetryIntervalMs 500 is below retryIntervalMs 1000/,
  );
});
