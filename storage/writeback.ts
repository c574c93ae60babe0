/**
 * Persisted write-back queue (upstream `lib/persistedretry` + `writeback`).
 *
 * Every accepted upload is recorded as a row in the SQLite table
 * `writeback_task` before it is acknowledged, so a crash or `kill -9` never
 * loses the obligation to copy the blob to the storage backend. Rows are
 * keyed by `(namespace, name)`; adding a task that already exists is a no-op.
 *
 * Lifecycle of a row (kraken-wire §6.3):
 * - A task is ready when `now - created_at >= delay`. Ready tasks are stored
 *   `pending` and queued at once; others are stored `failed` with a zero
 *   `last_attempt` and picked up by polling once ready.
 * - Success deletes the row. Failure sets `failures + 1`, `last_attempt = now`,
 *   `status = failed`.
 * - Every `pollIntervalMs`, failed rows that are ready and whose last attempt
 *   is older than their retry wait are queued again. The wait backs off:
 *   `retryIntervalMs × 2^(failures − 1)`, capped at `maxRetryIntervalMs`, then
 *   lengthened by up to `retryJitter` of itself (fixed per task and failure
 *   count, so polls agree and tasks that failed together spread out; never
 *   below `retryIntervalMs`). A blob that keeps failing is not re-sent in full
 *   every `retryIntervalMs`.
 * - On `start()` every `pending` row (queued when the previous process died)
 *   becomes `failed` and is retried straight away.
 *
 * The row also keeps the W3C trace context of the request that created it
 * (`trace_id`, `span_id`, `trace_flags`), so the executor can parent its work
 * on the original trace even after a restart. This module knows nothing about
 * tracing: it stores and hands back the strings.
 *
 * The same machinery runs other persisted tasks in their own table ({@linkcode TaskTable}): the
 * build-index's tag replication uses upstream's `replicate_tag_task` (key `tag`, `destination`;
 * payload `digest`, `dependencies`) in the database of its write-back queue.
 *
 * ```ts
 * import { WriteBackManager } from "./writeback.ts";
 * const manager = new WriteBackManager({
 *   dbPath: "/var/cache/kraken/origin.db",
 *   executor: async (task) => { await uploadToBackend(task.namespace, task.name); },
 * });
 * manager.start();
 * manager.add({ namespace: "library/ubuntu", name: digestHex, delayMs: 0 });
 * await manager.stop();
 * ```
 *
 * @module
 */

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { sleep, systemTimers, type Timers } from "../common/timers.ts";

/** Options for {@linkcode openDatabase}. */
export interface OpenDatabaseOptions {
  /** How long a statement waits for a lock held by another connection (default 5 s). */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed, with its parent directory) a SQLite database in
 * WAL mode with a busy timeout, the settings every persisted table here wants.
 *
 * @param path database file path
 * @param options see {@linkcode OpenDatabaseOptions}
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): DatabaseSync {
  mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    // WAL keeps committed rows across a process kill and lets readers run
    // alongside the writer.
    db.exec("PRAGMA journal_mode = WAL");
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** A W3C trace context in the form the table stores it. */
export interface TraceContext {
  /** 32 lowercase hex characters. */
  traceId: string;
  /** 16 lowercase hex characters. */
  spanId: string;
  /** Trace flags as 2 hex characters (`"01"` = sampled), or as a number (OTel's form). */
  traceFlags: string | number;
}

/**
 * The table a {@linkcode WriteBackManager} keeps its tasks in. The two key columns hold a task's
 * `namespace` and `name` and form the primary key; payload columns are text handed back in
 * {@linkcode WriteBackTask.payload}. Names are SQL identifiers (lower case and `_`).
 */
export interface TaskTable {
  /** Table name. */
  name: string;
  /** Columns of `namespace` and `name`. */
  keyColumns: readonly [string, string];
  /** Further text columns a task carries. */
  payloadColumns?: readonly string[];
}

/** Upstream's write-back table: `(namespace, name)`, no payload. */
export const WRITEBACK_TABLE: TaskTable = {
  name: "writeback_task",
  keyColumns: ["namespace", "name"],
};

/** A task as handed to the executor. */
export interface WriteBackTask {
  /** Namespace the object was uploaded under (selects the backend). */
  namespace: string;
  /** Object name: a digest hex on origins, the tag on build-index. */
  name: string;
  /** When the task was created, epoch milliseconds. */
  createdAt: number;
  /** Minimum age before the task may run, milliseconds. */
  delayMs: number;
  /** Failed executions so far. */
  failures: number;
  /** Stored trace id, `""` when the creator had no valid span. */
  traceId: string;
  /** Stored span id, `""` when absent. */
  spanId: string;
  /** Stored trace flags (2 hex characters), `""` when absent. */
  traceFlags: string;
  /** The table's payload columns (empty for the write-back table). */
  payload: Record<string, string>;
}

/** A stored row: a task plus its scheduling state. */
export interface WriteBackRow extends WriteBackTask {
  /** `pending` (queued) or `failed` (waiting for a retry or for its delay). */
  status: "pending" | "failed";
  /** Last failed attempt, epoch milliseconds; Go's zero time when never attempted. */
  lastAttempt: number;
}

/** Runs one task; a rejection counts as a failure. */
export type WriteBackExecutor = (task: WriteBackTask) => Promise<void>;

/** Exponential backoff for {@linkcode WriteBackManager.executeNow}. */
export interface BackoffOptions {
  /** First wait (default 500 ms). */
  initialMs?: number;
  /** Growth factor (default 2). */
  multiplier?: number;
  /** Cap on a single wait (default 30 s). */
  maxMs?: number;
  /** Randomisation factor: each wait is scaled by 1 ± this (default 0.05). */
  jitter?: number;
}

/** Options for {@linkcode WriteBackManager}. Give exactly one of `dbPath` and `db`. */
export interface WriteBackManagerOptions {
  /** Database file; opened with {@linkcode openDatabase} and closed by `stop()`. */
  dbPath?: string;
  /** An already open database shared with other tables; left open by `stop()`. */
  db?: DatabaseSync;
  /** Where the tasks are kept (default {@linkcode WRITEBACK_TABLE}). */
  table?: TaskTable;
  /** Performs a task. */
  executor: WriteBackExecutor;
  /** Wait after a task's first failure; doubled after each further one (default 30 s). */
  retryIntervalMs?: number;
  /** Cap on the wait between attempts of a failed task (default 5 min). */
  maxRetryIntervalMs?: number;
  /** Randomisation of retry waits: each is lengthened by up to this share of itself (default 0.2). */
  retryJitter?: number;
  /** How often failed tasks are scanned for retries (default 15 s). */
  pollIntervalMs?: number;
  /** Tasks executed concurrently (default 4). */
  workers?: number;
  /** Attempts made by `executeNow` (default 3). */
  maxAttempts?: number;
  /** Backoff between `executeNow` attempts. */
  backoff?: BackoffOptions;
  /** Wall clock in epoch milliseconds, stored in the rows (default `Date.now`). */
  now?: () => number;
  /** Timers of the retry poller and of `executeNow`'s backoff (default {@linkcode systemTimers}). */
  timers?: Timers;
  /** Source of randomness for jitter (default `Math.random`). */
  random?: () => number;
  /**
   * Told about every failed execution (with the task) and every bookkeeping
   * failure such as a database error (without one). Default: `console.error`.
   */
  onError?: (error: unknown, task?: WriteBackTask) => void;
}

/** Input of {@linkcode WriteBackManager.add}. */
export interface AddWriteBackInput {
  /** Namespace the object was uploaded under. */
  namespace: string;
  /** Object name. */
  name: string;
  /** Minimum age before the task may run (default 0). */
  delayMs?: number;
  /** Context of the span creating the task; stored only when valid. */
  traceContext?: TraceContext;
  /** Values of the table's payload columns (missing ones are stored as `""`). */
  payload?: Record<string, string>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

function checkTable(table: TaskTable): TaskTable {
  const names = [table.name, ...table.keyColumns, ...(table.payloadColumns ?? [])];
  for (const name of names) {
    if (!IDENTIFIER.test(name)) throw new TypeError(`task table: bad SQL identifier ${name}`);
  }
  return table;
}

/** The table's DDL: upstream's write-back columns, with the key and payload columns of `table`. */
function schemaOf(table: TaskTable): string {
  const [ns, name] = table.keyColumns;
  const payload = (table.payloadColumns ?? []).map((c) => `  ${c} text NOT NULL DEFAULT '',\n`);
  return `
CREATE TABLE IF NOT EXISTS ${table.name} (
  ${ns} text NOT NULL,
  ${name} text NOT NULL,
${payload.join("")}  created_at   timestamp DEFAULT CURRENT_TIMESTAMP,
  last_attempt timestamp NOT NULL,
  status       text NOT NULL,
  failures     integer NOT NULL,
  delay        integer NOT NULL,
  trace_id     text DEFAULT '',
  span_id      text DEFAULT '',
  trace_flags  text DEFAULT '',
  PRIMARY KEY(${ns}, ${name})
)`;
}

const TRACE_COLUMNS = ["trace_id", "span_id", "trace_flags"];

/** Go's zero `time.Time`, which upstream stores as the last attempt of a never-tried task. */
const ZERO_TIME = -62135596800000; // 0001-01-01T00:00:00Z

/** Formats epoch ms the way SQLite's CURRENT_TIMESTAMP does, plus milliseconds (UTC). */
function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

const TIMESTAMP_RE =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):?(\d{2}))?$/;

/**
 * Parses the timestamp spellings found in the table: ours, SQLite's
 * CURRENT_TIMESTAMP, and Go's sqlite3 driver's (nanoseconds and a zone offset).
 */
function parseTimestamp(value: unknown): number {
  const m = typeof value === "string" ? TIMESTAMP_RE.exec(value.trim()) : null;
  if (!m) throw new Error(`task table: unparsable timestamp ${JSON.stringify(value)}`);
  const ms = Number((m[7] ?? "0").slice(0, 3).padEnd(3, "0"));
  const d = new Date(0);
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), ms);
  const offsetMin = m[8] ? (m[8] === "-" ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10])) : 0;
  return d.getTime() - offsetMin * 60_000;
}

/** Returns the three trace columns for a context, or empty strings when it is not valid. */
function traceColumns(ctx: TraceContext | undefined): [string, string, string] {
  if (!ctx) return ["", "", ""];
  const flags = typeof ctx.traceFlags === "number"
    ? (ctx.traceFlags & 0xff).toString(16).padStart(2, "0")
    : ctx.traceFlags;
  const valid = /^[0-9a-f]{32}$/.test(ctx.traceId) && !/^0+$/.test(ctx.traceId) &&
    /^[0-9a-f]{16}$/.test(ctx.spanId) && !/^0+$/.test(ctx.spanId) &&
    /^[0-9a-f]{2}$/.test(flags);
  return valid ? [ctx.traceId, ctx.spanId, flags] : ["", "", ""];
}

type Row = Record<string, unknown>;

function toRow(r: Row, table: TaskTable): WriteBackRow {
  const payload: Record<string, string> = {};
  for (const column of table.payloadColumns ?? []) payload[column] = String(r[column] ?? "");
  return {
    namespace: String(r[table.keyColumns[0]]),
    name: String(r[table.keyColumns[1]]),
    createdAt: parseTimestamp(r.created_at),
    lastAttempt: parseTimestamp(r.last_attempt),
    status: r.status === "pending" ? "pending" : "failed",
    failures: Number(r.failures),
    delayMs: Number(r.delay) / 1e6,
    traceId: String(r.trace_id ?? ""),
    spanId: String(r.span_id ?? ""),
    traceFlags: String(r.trace_flags ?? ""),
    payload,
  };
}

function toTask(row: WriteBackRow): WriteBackTask {
  const { status: _status, lastAttempt: _lastAttempt, ...task } = row;
  return task;
}

const keyOf = (namespace: string, name: string) => JSON.stringify([namespace, name]);

/**
 * Shortest time between two log lines of the roles' failed write-backs: a backend outage fails
 * every queued task at each retry, so the roles log them rate-limited, with a count.
 */
export const FAILURE_LOG_INTERVAL_MS = 10_000;

/** Default cap on the wait between attempts of a failed task. */
export const DEFAULT_MAX_RETRY_INTERVAL_MS = 5 * 60_000;

/** A number in [0, 1) fixed by `text` (FNV-1a), so a task's jitter is the same at every poll. */
function unitHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}

/** What {@linkcode WriteBackManager.stats} reports. */
export interface WriteBackStats {
  /** Tasks stored (pending or failed), i.e. not written back yet. */
  rows: number;
  /** Creation time of the oldest stored task, epoch ms, or undefined with none. */
  oldestCreatedAt: number | undefined;
  /** Tasks executing now. */
  running: number;
  /** Tasks added since start (`add` calls that inserted a row). */
  added: number;
  /** Executions that succeeded (the row was deleted). */
  succeeded: number;
  /** Executions that failed (the row waits for a retry). */
  failed: number;
}

/** Queues, executes and retries write-back tasks persisted in SQLite. */
export class WriteBackManager {
  readonly #db: DatabaseSync;
  readonly #ownsDb: boolean;
  readonly #table: TaskTable;
  /** `<namespace column> = ? AND <name column> = ?`. */
  readonly #whereKey: string;
  readonly #executor: WriteBackExecutor;
  readonly #retryIntervalMs: number;
  readonly #maxRetryIntervalMs: number;
  readonly #retryJitter: number;
  readonly #pollIntervalMs: number;
  readonly #workers: number;
  readonly #maxAttempts: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #now: () => number;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #onError: (error: unknown, task?: WriteBackTask) => void;

  readonly #queue: [string, string][] = [];
  // Keys that are queued or running, so a task never runs twice at once.
  readonly #active = new Set<string>();
  readonly #running = new Set<Promise<void>>();
  #poller: number | undefined;
  #state: "idle" | "started" | "stopped" = "idle";
  #added = 0;
  #succeeded = 0;
  #failed = 0;

  /** @param options see {@linkcode WriteBackManagerOptions} */
  constructor(options: WriteBackManagerOptions) {
    if ((options.dbPath === undefined) === (options.db === undefined)) {
      throw new TypeError("write-back manager: give exactly one of dbPath and db");
    }
    const nonNegative = (name: string, v: number) => {
      if (!Number.isFinite(v) || v < 0) {
        throw new RangeError(`write-back manager: invalid ${name} ${v}`);
      }
      return v;
    };
    this.#retryIntervalMs = nonNegative("retryIntervalMs", options.retryIntervalMs ?? 30_000);
    this.#maxRetryIntervalMs = nonNegative(
      "maxRetryIntervalMs",
      options.maxRetryIntervalMs ?? Math.max(DEFAULT_MAX_RETRY_INTERVAL_MS, this.#retryIntervalMs),
    );
    if (this.#maxRetryIntervalMs < this.#retryIntervalMs) {
      throw new RangeError(
        `write-back manager: maxRetryIntervalMs ${this.#maxRetryIntervalMs} is below retryIntervalMs ${this.#retryIntervalMs}`,
      );
    }
    this.#retryJitter = nonNegative("retryJitter", options.retryJitter ?? 0.2);
    if (this.#retryJitter >= 1) {
      throw new RangeError(
        `write-back manager: retryJitter must be below 1, got ${this.#retryJitter}`,
      );
    }
    this.#pollIntervalMs = nonNegative("pollIntervalMs", options.pollIntervalMs ?? 15_000);
    this.#workers = Math.max(1, nonNegative("workers", options.workers ?? 4));
    this.#maxAttempts = Math.max(1, nonNegative("maxAttempts", options.maxAttempts ?? 3));
    this.#backoff = {
      initialMs: options.backoff?.initialMs ?? 500,
      multiplier: options.backoff?.multiplier ?? 2,
      maxMs: options.backoff?.maxMs ?? 30_000,
      jitter: options.backoff?.jitter ?? 0.05,
    };
    this.#executor = options.executor;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? systemTimers;
    this.#random = options.random ?? Math.random;
    this.#onError = options.onError ??
      ((error, task) =>
        console.error(
          task ? `write-back ${task.namespace}/${task.name} failed:` : "write-back:",
          error,
        ));
    this.#table = checkTable(options.table ?? WRITEBACK_TABLE);
    this.#whereKey = `${this.#table.keyColumns[0]} = ? AND ${this.#table.keyColumns[1]} = ?`;
    this.#ownsDb = options.db === undefined;
    this.#db = options.db ?? openDatabase(options.dbPath!);
    try {
      this.#migrate();
    } catch (err) {
      if (this.#ownsDb) this.#db.close();
      throw err;
    }
  }

  /** Creates the table, adding the tracing columns to a table made before they existed. */
  #migrate(): void {
    const table = this.#table.name;
    this.#db.exec(schemaOf(this.#table));
    const columns = new Set(
      this.#db.prepare(`PRAGMA table_info(${table})`).all().map((c) => String(c.name)),
    );
    for (const column of TRACE_COLUMNS) {
      if (!columns.has(column)) {
        this.#db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} text DEFAULT ''`);
      }
    }
  }

  /**
   * Persists a task and, when it is ready and the manager is started, queues it.
   * Tasks added before `start()` run once it is called.
   *
   * @param input the task
   * @returns `true` if a row was inserted, `false` if the task already existed
   * @throws {Error} after `stop()`
   */
  add(input: AddWriteBackInput): boolean {
    if (this.#state === "stopped") throw new Error("write-back manager is stopped");
    const delayMs = input.delayMs ?? 0;
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new RangeError(`write-back delay must be a non-negative number, got ${delayMs}`);
    }
    const now = this.#now();
    const ready = delayMs === 0; // created now, so only an undelayed task is ready
    const [traceId, spanId, traceFlags] = traceColumns(input.traceContext);
    const payloadColumns = this.#table.payloadColumns ?? [];
    const columns = [...this.#table.keyColumns, ...payloadColumns];
    const { changes } = this.#db.prepare(
      `INSERT OR IGNORE INTO ${this.#table.name}
         (${columns.join(", ")}, created_at, last_attempt, status, failures, delay,
          trace_id, span_id, trace_flags)
       VALUES (${columns.map(() => "?").join(", ")}, ?, ?, ?, 0, ?, ?, ?, ?)`,
    ).run(
      input.namespace,
      input.name,
      ...payloadColumns.map((c) => input.payload?.[c] ?? ""),
      formatTimestamp(now),
      formatTimestamp(ZERO_TIME),
      ready ? "pending" : "failed",
      Math.round(delayMs * 1e6),
      traceId,
      spanId,
      traceFlags,
    );
    if (changes === 0) return false;
    this.#added++;
    if (ready) this.#enqueue(input.namespace, input.name);
    return true;
  }

  /** Marks rows left `pending` by a previous process as failed and begins executing. */
  start(): void {
    if (this.#state !== "idle") throw new Error(`write-back manager already ${this.#state}`);
    this.#state = "started";
    // Those rows were queued in memory when the previous process died; they
    // never failed, so their attempt time is left alone and they retry now.
    this.#db.exec(`UPDATE ${this.#table.name} SET status = 'failed' WHERE status = 'pending'`);
    this.#poll();
    this.#poller = this.#timers.setInterval(() => this.#poll(), this.#pollIntervalMs);
  }

  /**
   * Stops polling, drops the in-memory queue (rows stay in the database and
   * run after the next `start()`), waits for running tasks and closes the
   * database if the manager opened it.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    if (this.#poller !== undefined) this.#timers.clearInterval(this.#poller);
    this.#poller = undefined;
    this.#queue.length = 0;
    while (this.#running.size > 0) await Promise.all([...this.#running]);
    if (this.#ownsDb) this.#db.close();
  }

  /** The queue's depth, age and outcomes (metrics); one small query. */
  stats(): WriteBackStats {
    let rows = 0;
    let oldestCreatedAt: number | undefined;
    if (this.#state !== "stopped" || !this.#ownsDb) {
      const r = this.#db.prepare(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM writeback_task",
      )
        .get() as Row | undefined;
      rows = Number(r?.n ?? 0);
      if (rows > 0 && r?.oldest != null) oldestCreatedAt = parseTimestamp(r.oldest);
    }
    return {
      rows,
      oldestCreatedAt,
      running: this.#running.size,
      added: this.#added,
      succeeded: this.#succeeded,
      failed: this.#failed,
    };
  }

  /** All stored rows, oldest first (for tests and metrics). */
  pending(): WriteBackRow[] {
    const [ns, name] = this.#table.keyColumns;
    return this.#db.prepare(`SELECT * FROM ${this.#table.name} ORDER BY created_at, ${ns}, ${name}`)
      .all().map((r) => toRow(r, this.#table));
  }

  /**
   * Deletes the stored tasks `keep` turns down, except those queued or running (upstream drops
   * replication tasks whose destination left the config this way at start-up).
   * @returns how many rows were deleted
   */
  prune(keep: (task: WriteBackTask) => boolean): number {
    let deleted = 0;
    const remove = this.#db.prepare(`DELETE FROM ${this.#table.name} WHERE ${this.#whereKey}`);
    for (const row of this.pending()) {
      if (this.#active.has(keyOf(row.namespace, row.name)) || keep(toTask(row))) continue;
      deleted += Number(remove.run(row.namespace, row.name).changes);
    }
    return deleted;
  }

  /**
   * Runs a task immediately without persisting it (upstream `SyncExec`, used
   * for write-through), retrying up to `maxAttempts` times with exponential
   * backoff and ±jitter.
   *
   * @param input the task; `delayMs` is ignored
   * @throws the last executor error when every attempt failed
   */
  async executeNow(input: AddWriteBackInput): Promise<void> {
    const [traceId, spanId, traceFlags] = traceColumns(input.traceContext);
    const task: WriteBackTask = {
      namespace: input.namespace,
      name: input.name,
      createdAt: this.#now(),
      delayMs: 0,
      failures: 0,
      traceId,
      spanId,
      traceFlags,
      payload: { ...input.payload },
    };
    let wait = this.#backoff.initialMs;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#executor({ ...task });
      } catch (err) {
        task.failures++;
        this.#onError(err, { ...task });
        if (attempt >= this.#maxAttempts) throw err;
      }
      const jitter = 1 + this.#backoff.jitter * (2 * this.#random() - 1);
      await sleep(this.#timers, Math.min(wait, this.#backoff.maxMs) * jitter);
      wait *= this.#backoff.multiplier;
    }
  }

  /**
   * How long after its last failed attempt `row` is retried: the backed-off, capped, jittered wait
   * (see the module doc).
   */
  retryWaitMs(row: Pick<WriteBackRow, "namespace" | "name" | "failures">): number {
    const doublings = Math.min(Math.max(row.failures - 1, 0), 40);
    const base = Math.min(this.#retryIntervalMs * 2 ** doublings, this.#maxRetryIntervalMs);
    const u = unitHash(`${row.namespace}\0${row.name}\0${row.failures}`);
    return base * (1 + this.#retryJitter * u);
  }

  /** Re-queues failed tasks that are ready and whose last attempt is old enough. */
  #poll(): void {
    if (this.#state !== "started") return;
    try {
      this.#pollOnce();
    } catch (err) {
      this.#onError(new Error(`polling failed tasks: ${err}`, { cause: err }));
    }
  }

  #pollOnce(): void {
    const now = this.#now();
    const rows = this.#db.prepare(
      `SELECT * FROM ${this.#table.name} WHERE status = 'failed' ORDER BY created_at`,
    ).all().map((r) => toRow(r, this.#table));
    const mark = this.#db.prepare(
      `UPDATE ${this.#table.name} SET status = 'pending' WHERE ${this.#whereKey}`,
    );
    for (const row of rows) {
      if (this.#active.has(keyOf(row.namespace, row.name))) continue;
      if (now - row.createdAt < row.delayMs) continue; // not ready yet
      if (now - row.lastAttempt <= this.retryWaitMs(row)) continue;
      mark.run(row.namespace, row.name);
      this.#enqueue(row.namespace, row.name);
    }
  }

  #enqueue(namespace: string, name: string): void {
    if (this.#state !== "started") return;
    const key = keyOf(namespace, name);
    if (this.#active.has(key)) return;
    this.#active.add(key);
    this.#queue.push([namespace, name]);
    this.#pump();
  }

  #pump(): void {
    while (this.#state === "started" && this.#running.size < this.#workers && this.#queue.length) {
      const [namespace, name] = this.#queue.shift()!;
      const run = this.#execute(namespace, name).catch((err) => {
        this.#onError(
          new Error(`bookkeeping for ${namespace}/${name} failed: ${err}`, { cause: err }),
        );
      }).finally(() => {
        this.#running.delete(run);
        this.#active.delete(keyOf(namespace, name));
        this.#pump();
      });
      this.#running.add(run);
    }
  }

  async #execute(namespace: string, name: string): Promise<void> {
    const raw = this.#db.prepare(`SELECT * FROM ${this.#table.name} WHERE ${this.#whereKey}`)
      .get(namespace, name);
    if (!raw) return; // Removed meanwhile; nothing to do.
    const task = toTask(toRow(raw, this.#table));
    try {
      await this.#executor({ ...task });
    } catch (err) {
      this.#failed++;
      this.#onError(err, task);
      this.#db.prepare(
        `UPDATE ${this.#table.name}
           SET failures = failures + 1, last_attempt = ?, status = 'failed'
         WHERE ${this.#whereKey}`,
      ).run(formatTimestamp(this.#now()), namespace, name);
      return;
    }
    this.#db.prepare(`DELETE FROM ${this.#table.name} WHERE ${this.#whereKey}`)
      .run(namespace, name);
    this.#succeeded++;
  }
}
