/**
 * `kraken trace`: reads traces from Jaeger's query API and prints them in the terminal.
 *
 *     kraken trace <trace-id> [--json] [--jaeger URL]
 *     kraken trace --service kraken-agent [--operation agent.download_blob] [--since 1h]
 *                  [--slowest 10] [--errors] [--limit 500] [--json] [--jaeger URL]
 *
 * With a trace id it prints the trace's waterfall (`waterfall.ts`), or with `--json` the trace as
 * Jaeger returns it. With `--service` it searches the traces of that service (and operation) that
 * started within `--since`, and lists the slowest `--slowest` of them (default 10): trace id,
 * duration of the operation's span (of the whole trace without `--operation`), span count, start
 * time and the blob digest the trace is about. `--errors` keeps only traces with a failed span.
 * Jaeger's address: `--jaeger`, else `KRAKEN_JAEGER_QUERY`, else `http://127.0.0.1:16686`.
 *
 * Exit codes ({@linkcode EXIT}): 0 printed; 1 not found (no such trace, or no trace matched);
 * 2 bad usage; 3 Jaeger unreachable or answering with an error.
 *
 * @module
 */

import { parseDuration } from "../common/duration.ts";
import { ATTR } from "../tracing/names.ts";
import {
  type JaegerTrace,
  type SpanNode,
  type TraceTree,
  traceTreeFromJaeger,
} from "./trace_tree.ts";
import { formatDuration, renderWaterfall } from "./waterfall.ts";

/** Exit codes of `kraken trace`. */
export const EXIT = Object.freeze({ ok: 0, notFound: 1, usage: 2, jaeger: 3 });

/** Jaeger's query address when neither `--jaeger` nor `KRAKEN_JAEGER_QUERY` is given. */
export const DEFAULT_JAEGER_QUERY = "http://127.0.0.1:16686";

/** Usage text of `kraken trace`. */
export const TRACE_USAGE = `Usage:
  kraken trace <trace-id> [--json] [--jaeger URL]
  kraken trace --service <name> [--operation <span>] [--since 1h] [--slowest 10] [--errors]
               [--limit 500] [--json] [--jaeger URL]

Prints a trace from Jaeger as a waterfall (critical path marked *, failed spans in red, the P2P
summary of scheduler.download on its own line), or lists the slowest traces of a service.
Jaeger's query API: --jaeger, else KRAKEN_JAEGER_QUERY, else ${DEFAULT_JAEGER_QUERY}.
--color / --no-color override the default (colour on a terminal unless NO_COLOR is set).

Exit codes: 0 printed, 1 not found, 2 bad usage, 3 Jaeger unreachable or failing.`;

/** Parsed `kraken trace` arguments. */
export interface TraceArgs {
  /** The trace to print. */
  traceId?: string;
  /** Search: service name. */
  service?: string;
  /** Search: span name. */
  operation?: string;
  /** Search window, ms (default 1 h). */
  sinceMs: number;
  /** How many of the slowest to list (default 10). */
  slowest: number;
  /** How many traces to ask Jaeger for (default 500). */
  limit: number;
  /** Only traces with a failed span. */
  errors: boolean;
  /** Raw JSON instead of text. */
  json: boolean;
  /** Colour: undefined means "on a terminal, unless NO_COLOR". */
  color?: boolean;
  /** Jaeger's query base URL. */
  jaeger?: string;
}

/** A bad command line (exit 2). */
export class UsageError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Jaeger could not be asked, or answered with an error (exit 3). */
export class JaegerError extends Error {
  /** @param message what happened */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "JaegerError";
  }
}

const VALUE_FLAGS = new Set(["service", "operation", "since", "slowest", "limit", "jaeger"]);

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer`);
  return n;
}

/** Parses `kraken trace`'s arguments (after the word `trace`). */
export function parseTraceArgs(args: readonly string[]): TraceArgs {
  const out: TraceArgs = {
    sinceMs: 3_600_000,
    slowest: 10,
    limit: 500,
    errors: false,
    json: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) {
      if (out.traceId !== undefined) throw new UsageError(`unexpected argument ${arg}`);
      if (!/^[0-9a-fA-F]{1,32}$/.test(arg)) {
        throw new UsageError(`not a trace id: ${arg} (up to 32 hex digits)`);
      }
      out.traceId = arg.toLowerCase().padStart(32, "0");
      continue;
    }
    const eq = arg.indexOf("=");
    const key = arg.slice(2, eq < 0 ? undefined : eq);
    if (key === "json" || key === "errors" || key === "color" || key === "no-color") {
      if (eq >= 0) throw new UsageError(`--${key} takes no value`);
      if (key === "json") out.json = true;
      else if (key === "errors") out.errors = true;
      else out.color = key === "color";
      continue;
    }
    if (!VALUE_FLAGS.has(key)) throw new UsageError(`unknown flag --${key}`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) value = args[++i];
    else throw new UsageError(`--${key} needs a value`);
    if (key === "service") out.service = value;
    else if (key === "operation") out.operation = value;
    else if (key === "jaeger") out.jaeger = value;
    else if (key === "slowest") out.slowest = positive(key, value);
    else if (key === "limit") out.limit = positive(key, value);
    else {
      try {
        out.sinceMs = parseDuration(value);
      } catch {
        throw new UsageError(`--since must be a duration such as 30m or 2h, got ${value}`);
      }
      if (!(out.sinceMs > 0)) throw new UsageError("--since must be positive");
    }
  }
  if (out.traceId === undefined && out.service === undefined) {
    throw new UsageError("give a trace id, or --service to list traces");
  }
  if (out.traceId !== undefined && out.service !== undefined) {
    throw new UsageError("give either a trace id or --service, not both");
  }
  return out;
}

/** One line of the slowest-traces list. */
export interface TraceSummary {
  /** Hex trace id. */
  traceId: string;
  /** Duration of the matched operation's span (the trace's without `--operation`), µs. */
  durationUs: number;
  /** Start of that span, µs since the epoch. */
  startUs: number;
  /** Spans in the trace. */
  spans: number;
  /** The `digest` attribute of the matched span, or of the first span that has one. */
  digest?: string;
  /** Whether a span failed. */
  error: boolean;
}

/** The line of `tree` for the list; undefined when it has no span named `operation`. */
export function summarize(tree: TraceTree, operation?: string): TraceSummary | undefined {
  const spans = tree.spans;
  if (spans.length === 0) return undefined;
  let durationUs: number;
  let startUs: number;
  let matched: SpanNode | undefined;
  if (operation !== undefined) {
    matched = spans.filter((s) => s.name === operation)
      .sort((a, b) => b.durationUs - a.durationUs)[0];
    if (!matched) return undefined;
    durationUs = matched.durationUs;
    startUs = matched.startUs;
  } else {
    startUs = Math.min(...spans.map((s) => s.startUs));
    durationUs = Math.max(...spans.map((s) => s.startUs + s.durationUs)) - startUs;
  }
  const withDigest = (s: SpanNode | undefined) =>
    typeof s?.attributes[ATTR.digest] === "string"
      ? s.attributes[ATTR.digest] as string
      : undefined;
  return {
    traceId: tree.traceId,
    durationUs,
    startUs,
    spans: spans.length,
    digest: withDigest(matched) ?? spans.map(withDigest).find((d) => d !== undefined),
    error: spans.some((s) => s.status === "error"),
  };
}

/** The list as text: a header and one line per trace. */
export function formatSummaries(rows: readonly TraceSummary[]): string {
  const lines = [
    `${"TRACE ID".padEnd(32)}  ${"DURATION".padStart(10)}  SPANS  ${
      "STARTED (UTC)".padEnd(23)
    }  DIGEST`,
  ];
  for (const r of rows) {
    const started = new Date(r.startUs / 1000).toISOString().replace("T", " ").replace("Z", "");
    lines.push(
      `${r.traceId}  ${formatDuration(r.durationUs).padStart(10)}  ${
        String(r.spans).padStart(5)
      }  ` +
        `${started}  ${r.digest ?? "-"}${r.error ? "  ERROR" : ""}`,
    );
  }
  return lines.join("\n");
}

async function getJson(base: string, path: string): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(`${base.replace(/\/$/, "")}${path}`, {
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new JaegerError(`cannot reach Jaeger at ${base}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    throw new JaegerError(
      `Jaeger at ${base} answered ${response.status} with something that is not JSON: ` +
        text.slice(0, 200),
    );
  }
}

/** Where `kraken trace` writes (tests collect it). */
export interface TraceOutput {
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
}

const consoleOutput: TraceOutput = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

/** Runs `kraken trace` with `args` (after the word `trace`); resolves to the exit code. */
export async function runTrace(
  args: readonly string[],
  output: TraceOutput = consoleOutput,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<number> {
  let parsed: TraceArgs;
  try {
    if (args.includes("--help") || args.includes("-h")) {
      output.out(TRACE_USAGE);
      return EXIT.ok;
    }
    parsed = parseTraceArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    output.err(`kraken trace: ${error.message}\n\n${TRACE_USAGE}`);
    return EXIT.usage;
  }
  const base = parsed.jaeger ?? env("KRAKEN_JAEGER_QUERY") ?? DEFAULT_JAEGER_QUERY;
  const color = parsed.color ??
    (env("NO_COLOR") === undefined && Deno.stdout.isTerminal());
  try {
    return parsed.traceId !== undefined
      ? await showTrace(base, parsed.traceId, parsed, color, output)
      : await listTraces(base, parsed, output);
  } catch (error) {
    if (!(error instanceof JaegerError)) throw error;
    output.err(`kraken trace: ${error.message}`);
    return EXIT.jaeger;
  }
}

async function showTrace(
  base: string,
  traceId: string,
  args: TraceArgs,
  color: boolean,
  output: TraceOutput,
): Promise<number> {
  const { status, body } = await getJson(base, `/api/traces/${traceId}`);
  const data = (body as { data?: JaegerTrace[] | null }).data ?? [];
  if (status === 404 || (status === 200 && data.length === 0)) {
    output.err(`kraken trace: trace ${traceId} not found in Jaeger at ${base}`);
    return EXIT.notFound;
  }
  if (status !== 200) {
    throw new JaegerError(`Jaeger answered ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  if (args.json) {
    output.out(JSON.stringify(data[0], null, 2));
    return EXIT.ok;
  }
  output.out(renderWaterfall(traceTreeFromJaeger(data[0]), { color }));
  return EXIT.ok;
}

async function listTraces(base: string, args: TraceArgs, output: TraceOutput): Promise<number> {
  const endUs = Date.now() * 1000;
  const query = new URLSearchParams({
    service: args.service!,
    limit: String(args.limit),
    start: String(endUs - args.sinceMs * 1000),
    end: String(endUs),
  });
  if (args.operation !== undefined) query.set("operation", args.operation);
  const { status, body } = await getJson(base, `/api/traces?${query}`);
  if (status !== 200) {
    throw new JaegerError(`Jaeger answered ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  const traces = (body as { data?: JaegerTrace[] | null }).data ?? [];
  const rows = traces.map((t) => summarize(traceTreeFromJaeger(t), args.operation))
    .filter((r): r is TraceSummary => r !== undefined && (!args.errors || r.error))
    .sort((a, b) => b.durationUs - a.durationUs)
    .slice(0, args.slowest);
  if (args.json) {
    output.out(JSON.stringify(rows, null, 2));
  } else if (rows.length > 0) {
    output.out(formatSummaries(rows));
  }
  if (rows.length === 0) {
    output.err(
      `kraken trace: no ${args.errors ? "failed " : ""}traces of ${args.service}` +
        (args.operation ? ` with ${args.operation}` : "") +
        ` in the last ${args.sinceMs / 60_000} min`,
    );
    return EXIT.notFound;
  }
  return EXIT.ok;
}
