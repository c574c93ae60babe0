/**
 * Structured logging: JSON lines with level, time, message and role. A `contextFields` hook adds
 * fields of the current request context to every line; `tracing/` supplies the one that stamps
 * `trace_id`/`span_id`, so every log line of a traced request can be found from its trace and the
 * other way round (ERD G6), without this module knowing about tracing.
 *
 * Errors logged as field values keep their name, message and stack (and their `cause`).
 *
 * @module
 */

/** Log levels in increasing severity. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger. */
export interface Logger {
  /** Debug detail. */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Normal operation. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Something unexpected that the process survives. */
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** A failure. */
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines also carry `fields`. */
  with(fields: Record<string, unknown>): Logger;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Role name written on every line. */
  role: string;
  /** Lowest level written. Default `info` (`main.ts` passes the validated `KRAKEN_LOG_LEVEL`). */
  level?: LogLevel;
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
  /**
   * Fields of the current context, read for every line written (tracing's `traceLogFields` gives
   * the active `trace_id` and `span_id`). Default: none.
   */
  contextFields?: () => Record<string, unknown> | undefined;
}

const encoder = new TextEncoder();

function defaultWrite(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** An error as a JSON-friendly object (name, message, stack, cause); other values unchanged. */
export function errorFields(value: unknown, depth = 0): unknown {
  if (!(value instanceof Error)) return value;
  const out: Record<string, unknown> = { name: value.name, message: value.message };
  if (value.stack) out.stack = value.stack;
  // A bounded chain: causes can be cyclic.
  if (value.cause !== undefined && depth < 4) out.cause = errorFields(value.cause, depth + 1);
  return out;
}

/** Creates a JSON-lines logger. */
export function createLogger(options: LoggerOptions): Logger {
  const min = SEVERITY[options.level ?? "info"];
  const write = options.write ?? defaultWrite;
  const contextFields = options.contextFields;
  const make = (bound: Record<string, unknown>): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
      if (SEVERITY[level] < min) return;
      const line: Record<string, unknown> = {
        level,
        time: new Date().toISOString(),
        msg,
        role: options.role,
      };
      const context = contextFields?.();
      if (context) Object.assign(line, context);
      for (const [k, v] of Object.entries(bound)) line[k] = errorFields(v);
      if (fields) { for (const [k, v] of Object.entries(fields)) line[k] = errorFields(v); }
      write(JSON.stringify(line));
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      with: (fields) => make({ ...bound, ...fields }),
    };
  };
  return make({});
}

/**
 * Wraps a log call so it runs at most once per `intervalMs`; suppressed calls are counted and the
 * count is reported with the next line (for exporter errors, which must not flood the log).
 */
export function rateLimited(
  intervalMs: number,
  log: (msg: string, fields: Record<string, unknown>) => void,
  now: () => number = Date.now,
): (msg: string, fields?: Record<string, unknown>) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (msg, fields = {}) => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed++;
      return;
    }
    last = t;
    log(msg, suppressed > 0 ? { ...fields, suppressed } : fields);
    suppressed = 0;
  };
}
