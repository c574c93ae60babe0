/**
 * The request layer every HTTP storage backend shares (testfs, S3, GCS, registries, http): one
 * place for the idle timeout, the retry policy, error reporting and keeping credentials out of
 * what is reported.
 *
 * - **Idle timeout, not a total one.** An attempt fails with {@linkcode BackendTimeoutError} once it
 *   made no progress for `idleTimeoutMs`: no request-body bytes taken by the connection, no answer,
 *   no response-body bytes while the caller waits for some. A large object moving slowly but
 *   steadily never times out; a stalled server fails within one idle timeout. Time the caller of a
 *   download spends between reads does not count.
 * - **Retries** with exponential backoff and jitter on 5xx, 429, a throttling code in the body
 *   (`SlowDown`, …), network errors and idle timeouts. Another 4xx is not retried: it fails at once
 *   with {@linkcode BackendRequestError}, whose message carries the backend's own code and message.
 *   A body that is a one-shot stream is sent once (no retry after it was consumed); give a body
 *   factory to make an upload retryable.
 * - **Credentials never leave**: error messages and events pass through {@linkcode redactSecrets}
 *   with the backend's secrets, and URLs in messages carry no query string or user info.
 * - **TLS settings** (`tls`: CAs, a verification name, a client certificate) send every `https`
 *   request through `http/node_fetch.ts` with one `https.Agent`. The backend makes its URLs
 *   `https` when it has them. The files are read once, when the backend is built.
 *
 * Every retry and final failure is counted in the backend's {@linkcode BackendStats} and told to its
 * listeners, which the roles turn into metrics and rate-limited log lines (`observeBackends`).
 *
 * ```ts
 * import { BackendTransport } from "./transport.ts";
 * const transport = new BackendTransport({ type: "testfs" });
 * const res = await transport.request({ method: "GET", url, route: "/files/{path+}" });
 * ```
 *
 * @module
 */

import https from "node:https";
import { concatBytes } from "../../common/bytes.ts";
import { rateLimited } from "../../common/log.ts";
import { sleep, systemTimers, type Timers } from "../../common/timers.ts";
import { nodeFetch } from "../../http/node_fetch.ts";
import { HttpStatusError } from "../../http/status_error.ts";
import { tlsAgentOptions } from "../../http/tls_client.ts";
import type { ClientTlsConfig } from "../../http/tls_config.ts";
import type { MetricsRegistry } from "../../tracing/mod.ts";
import { type Backend, type BackendFetch, BackendStats, plainFetch } from "./backend.ts";

/** Default idle timeout: upstream's HTTP client timeout, applied to progress instead of the total. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Bytes per chunk when an in-memory body is sent, so its progress can be seen. */
const BODY_CHUNK_BYTES = 64 * 1024;

/** Most bytes of an error answer read for its message. */
const ERROR_BODY_LIMIT = 16 * 1024;

/** An attempt that made no progress for the idle timeout. */
export class BackendTimeoutError extends Error {
  /** The idle timeout that elapsed, ms. */
  readonly idleTimeoutMs: number;

  /**
   * @param method request method
   * @param url request URL (reported without its query string)
   * @param idleTimeoutMs the idle timeout that elapsed
   */
  constructor(method: string, url: string, idleTimeoutMs: number) {
    super(`${method} ${safeUrl(url)}: no progress for ${idleTimeoutMs} ms (idle timeout)`);
    this.name = "BackendTimeoutError";
    this.idleTimeoutMs = idleTimeoutMs;
  }
}

/** A backend answered with a status the request did not accept, after any retries. */
export class BackendRequestError extends HttpStatusError {
  /** The backend's error code from the body (`NoSuchBucket`, `SlowDown`), `""` when none. */
  readonly code: string;
  /** Whether the status or code is one that is retried (the retries ran out). */
  readonly retryable: boolean;

  /**
   * @param method request method
   * @param url request URL (reported without its query string)
   * @param status status received
   * @param detail the backend's code and message, credentials removed
   */
  constructor(
    method: string,
    url: string,
    status: number,
    detail: { code?: string; message: string; retryable: boolean },
  ) {
    const text = [detail.code, detail.message].filter((s) => s).join(": ");
    super(method, safeUrl(url), status, text);
    this.name = "BackendRequestError";
    this.code = detail.code ?? "";
    this.retryable = detail.retryable;
  }
}

/** `url` without user info or query string (which may hold signatures or tokens). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.replace(/\?.*$/, "");
  }
}

/** `text` with every occurrence of each non-empty secret replaced by `<redacted>`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.replaceAll(secret, "<redacted>");
  }
  return out;
}

/** An `Error` like `error` whose message is redacted (the same object when nothing changes). */
function redactError(error: Error, secrets: readonly string[]): Error {
  const message = redactSecrets(error.message, secrets);
  if (message === error.message) return error;
  const copy = new Error(message);
  copy.name = error.name;
  return copy;
}

/** Error codes in a body that mean "slow down / try again" whatever the status. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "TooManyRequests",
  "RequestTimeout",
  "InternalError",
  "ServiceUnavailable",
]);

/** Whether an answer with `status` (and the backend's `code`) is worth another attempt. */
export function isRetryableStatus(status: number, code = ""): boolean {
  return status >= 500 || status === 429 || RETRYABLE_CODES.has(code);
}

/** Retry policy of {@linkcode BackendTransport}. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** Wait before the first retry, ms (default 200). */
  initialMs?: number;
  /** Cap on one wait, ms (default 10 s). */
  maxMs?: number;
  /** Growth of the wait per retry (default 2). */
  multiplier?: number;
  /**
   * Share of each wait that is random (default 0.5): the wait is `base × (1 − jitter × r)` with
   * `r` uniform in [0, 1), so clients that failed together spread out.
   */
  jitter?: number;
}

const DEFAULT_RETRY: Required<RetryOptions> = {
  attempts: 5,
  initialMs: 200,
  maxMs: 10_000,
  multiplier: 2,
  jitter: 0.5,
};

/** The wait before retry number `retry` (1 = the first retry) under `options`. */
export function backoffMs(
  retry: number,
  options: RetryOptions = {},
  random: () => number = Math.random,
): number {
  const o = { ...DEFAULT_RETRY, ...options };
  const base = Math.min(o.maxMs, o.initialMs * o.multiplier ** Math.max(0, retry - 1));
  return base * (1 - o.jitter * random());
}

/** The backend's reading of an error answer. */
export interface ErrorDetail {
  /** Machine-readable code (`NoSuchKey`), when the body has one. */
  code?: string;
  /** Human-readable message. */
  message: string;
}

/** Options of {@linkcode BackendTransport}. */
export interface BackendTransportOptions {
  /** Backend type, for events and metrics (`s3`, `testfs`). */
  type: string;
  /** The fetch to use; roles pass a traced one (default {@linkcode plainFetch}). */
  fetch?: BackendFetch;
  /** Idle timeout, ms (default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}). */
  idleTimeoutMs?: number;
  /** Retry policy (defaults: see {@linkcode RetryOptions}). */
  retry?: RetryOptions;
  /** Where retries and failures are counted (default: a new one, see `stats`). */
  stats?: BackendStats;
  /** Strings never to report (secret keys, tokens); read at each use so rotation is seen. */
  secrets?: () => readonly string[];
  /** Reads an error answer's body into a code and a message (default: the text itself). */
  describeError?: (status: number, body: string) => ErrorDetail;
  /** Timers of the backoff waits (default {@linkcode systemTimers}). */
  timers?: Timers;
  /** Source of the jitter (default `Math.random`). */
  random?: () => number;
  /** TLS settings of the backend's server (see the module doc); unset: the system's defaults. */
  tls?: ClientTlsConfig;
  /** Dotted key of those settings, for errors about their files (default `tls`). */
  tlsKey?: string;
}

/** A request body: bytes, a one-shot stream, or a factory giving a fresh body per attempt. */
export type RequestBody =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | (() => Promise<ReadableStream<Uint8Array> | Uint8Array>);

/** One request of {@linkcode BackendTransport.request}. */
export interface BackendTransportRequest {
  /** HTTP method. */
  method: string;
  /** Full URL. */
  url: string;
  /** Route template: the client span's name (never the path, which holds object keys). */
  route: string;
  /** Headers, or a function giving them per attempt (a signature with a fresh date). */
  headers?: HeadersInit | (() => HeadersInit | Promise<HeadersInit>);
  /** Body, if any. */
  body?: RequestBody | null;
  /** Statuses that are answers, not failures (404 on a stat); returned without retry. */
  expectedStatus?: number[];
  /** Extra client-span attributes. */
  attributes?: Record<string, string | number | boolean>;
  /** Performs the request instead of `globalThis.fetch` (see `BackendRequestInit.transport`). */
  transport?: (url: string, init: RequestInit) => Promise<Response>;
  /** Whether to retry at all (default true; a one-shot stream body is never retried). */
  retry?: boolean;
}

/** Aborts a request when it is left armed for `ms` without a `touch`. */
class IdleTimer {
  readonly #ms: number;
  readonly #onIdle: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
  }

  /** (Re)starts the countdown: progress was made, or waiting for some begins. */
  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onIdle, this.#ms);
  }

  /** Stops the countdown: the caller, not the server, holds things up now. */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** The body as a stream that touches `idle` every time the connection takes a chunk. */
function watchedBody(
  body: ReadableStream<Uint8Array> | Uint8Array,
  idle: IdleTimer,
): ReadableStream<Uint8Array> {
  if (body instanceof Uint8Array) {
    let offset = 0;
    return new ReadableStream({
      pull(controller) {
        idle.touch();
        if (offset >= body.length) return controller.close();
        controller.enqueue(body.subarray(offset, offset + BODY_CHUNK_BYTES));
        offset += BODY_CHUNK_BYTES;
      },
    }, { highWaterMark: 0 });
  }
  const reader = body.getReader();
  return new ReadableStream({
    async pull(controller) {
      idle.touch();
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * `pending`, or a rejection with `signal`'s reason as soon as it aborts. Aborting a fetch does not
 * always fail a body read that is already waiting on the socket (seen under load: the read stayed
 * pending after the idle abort), so the timeout does not rely on it.
 */
function untilAborted<T>(pending: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([pending, aborted]).finally(() => {
    signal.removeEventListener("abort", onAbort);
  });
}

/**
 * A response body whose reads count against `idle` only while one is waiting; a read the idle
 * timer aborted fails with the timeout (`signal`'s reason), reported through `onTimeout`.
 */
function watchedResponseBody(
  body: ReadableStream<Uint8Array>,
  idle: IdleTimer,
  signal: AbortSignal,
  onTimeout: (error: BackendTimeoutError) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream({
    async pull(controller) {
      idle.touch();
      try {
        const { done, value } = await untilAborted(reader.read(), signal);
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        if (signal.reason instanceof BackendTimeoutError) {
          reader.cancel(signal.reason).catch(() => {});
          onTimeout(signal.reason);
          throw signal.reason;
        }
        throw error;
      } finally {
        idle.disarm();
      }
    },
    cancel(reason) {
      idle.disarm();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Reads at most {@linkcode ERROR_BODY_LIMIT} bytes of an error answer as text. */
async function readErrorBody(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < ERROR_BODY_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(concatBytes(chunks)).slice(0, ERROR_BODY_LIMIT).trim();
}

/** Sends backend requests with the idle timeout and retry policy of the module doc. */
export class BackendTransport {
  /** Retries and failures so far. */
  readonly stats: BackendStats;
  readonly #type: string;
  readonly #fetch: BackendFetch;
  readonly #idleTimeoutMs: number;
  readonly #retry: Required<RetryOptions>;
  readonly #secrets: () => readonly string[];
  readonly #describe: (status: number, body: string) => ErrorDetail;
  readonly #timers: Timers;
  readonly #random: () => number;
  /** Sends with the backend's TLS agent, when it has TLS settings. */
  readonly #tlsTransport: ((url: string, init: RequestInit) => Promise<Response>) | undefined;

  /**
   * @param options see {@linkcode BackendTransportOptions}
   * @throws {import("../../http/tls.ts").TlsFileError} when a file of `tls` is missing or bad
   */
  constructor(options: BackendTransportOptions) {
    this.#type = options.type;
    this.#fetch = options.fetch ?? plainFetch;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (!(this.#idleTimeoutMs > 0)) {
      throw new RangeError(
        `${options.type}: idle timeout must be positive, got ${this.#idleTimeoutMs}`,
      );
    }
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    if (!(this.#retry.attempts >= 1)) {
      throw new RangeError(`${options.type}: retry attempts must be at least 1`);
    }
    this.stats = options.stats ?? new BackendStats();
    this.#secrets = options.secrets ?? (() => []);
    this.#describe = options.describeError ?? ((_status, body) => ({ message: body }));
    this.#timers = options.timers ?? systemTimers;
    this.#random = options.random ?? Math.random;
    if (options.tls) {
      const agent = new https.Agent(tlsAgentOptions(options.tls, options.tlsKey));
      this.#tlsTransport = (url, init) => nodeFetch(url, init, { agent });
    }
  }

  /** `error` with the backend's secrets removed from its message. */
  redact(error: Error): Error {
    return redactError(error, this.#secrets());
  }

  /**
   * Sends `req`, retrying as the module doc says.
   *
   * @returns the answer (2xx/3xx or an expected status); its body is watched by the idle timer
   * @throws {BackendRequestError} for a status that is not accepted (after retries if retryable)
   * @throws {BackendTimeoutError} when the last attempt stalled
   */
  async request(req: BackendTransportRequest): Promise<Response> {
    const retryable = req.retry !== false && !(req.body instanceof ReadableStream);
    const attempts = retryable ? this.#retry.attempts : 1;
    for (let attempt = 1;; attempt++) {
      let outcome: { response: Response } | { error: Error; status?: number; again: boolean };
      try {
        outcome = await this.#attempt(req);
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error));
        outcome = { error: this.redact(err), again: true };
      }
      if ("response" in outcome) return outcome.response;
      const timeout = outcome.error instanceof BackendTimeoutError;
      const last = !outcome.again || attempt >= attempts;
      this.stats.record({
        kind: last ? "failure" : "retry",
        type: this.#type,
        method: req.method,
        route: req.route,
        attempt,
        timeout,
        status: outcome.status,
        error: outcome.error,
      });
      if (last) throw outcome.error;
      await sleep(this.#timers, backoffMs(attempt, this.#retry, this.#random));
    }
  }

  /** One attempt: a response to return, or an error and whether it is worth retrying. */
  async #attempt(
    req: BackendTransportRequest,
  ): Promise<{ response: Response } | { error: Error; status: number; again: boolean }> {
    const { method, url } = req;
    const controller = new AbortController();
    const idle = new IdleTimer(this.#idleTimeoutMs, () => {
      controller.abort(new BackendTimeoutError(method, url, this.#idleTimeoutMs));
    });
    const headers = typeof req.headers === "function" ? await req.headers() : req.headers;
    const raw = typeof req.body === "function" ? await req.body() : req.body ?? null;
    idle.touch();
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers,
        body: raw === null ? null : watchedBody(raw, idle),
        signal: controller.signal,
        route: req.route,
        expectedStatus: req.expectedStatus ?? [],
        attributes: req.attributes,
        transport: url.startsWith("https:") ? this.#tlsTransport ?? req.transport : req.transport,
      });
    } catch (error) {
      idle.disarm();
      // An aborted fetch rejects with its own error; the timeout is the reason worth reporting.
      if (controller.signal.aborted && controller.signal.reason instanceof BackendTimeoutError) {
        throw controller.signal.reason;
      }
      throw error;
    }
    idle.disarm();
    const accepted = res.status < 400 || (req.expectedStatus ?? []).includes(res.status);
    if (accepted) {
      if (!res.body) return { response: res };
      const body = watchedResponseBody(res.body, idle, controller.signal, (timeout) => {
        this.stats.record({
          kind: "failure",
          type: this.#type,
          method,
          route: req.route,
          attempt: 1,
          timeout: true,
          status: res.status,
          error: timeout,
        });
      });
      return {
        response: new Response(body, {
          status: res.status,
          statusText: res.statusText,
          headers: res.headers,
        }),
      };
    }
    idle.touch();
    let text: string;
    try {
      text = await untilAborted(readErrorBody(res), controller.signal);
    } finally {
      idle.disarm();
    }
    const detail = this.#describe(res.status, text);
    const secrets = this.#secrets();
    const again = isRetryableStatus(res.status, detail.code);
    return {
      error: new BackendRequestError(method, url, res.status, {
        code: detail.code ? redactSecrets(detail.code, secrets) : undefined,
        message: redactSecrets(detail.message, secrets),
        retryable: again,
      }),
      status: res.status,
      again,
    };
  }
}

/**
 * Reports the request counters of every backend among `backends` that has them on a role's
 * metrics (`kraken_backend_retries_total`, `kraken_backend_idle_timeouts_total`,
 * `kraken_backend_request_failures_total`, labelled by `backend` type) and logs their retries and
 * failures, rate-limited per backend type.
 */
export function observeBackends(
  backends: Iterable<Backend>,
  metrics: MetricsRegistry,
  log?: (msg: string, fields: Record<string, unknown>) => void,
  intervalMs = 10_000,
): void {
  const byType = new Map<string, BackendStats[]>();
  for (const backend of backends) {
    if (!backend.stats) continue;
    const list = byType.get(backend.type) ?? [];
    if (!list.includes(backend.stats)) list.push(backend.stats);
    byType.set(backend.type, list);
  }
  for (const [type, all] of byType) {
    const sum = (read: (s: BackendStats) => number) => () => all.reduce((n, s) => n + read(s), 0);
    metrics.observedCounter(
      "kraken_backend_retries_total",
      "Backend requests retried after a 5xx, 429/SlowDown, network error or idle timeout.",
      sum((s) => s.retries),
      { backend: type },
    );
    metrics.observedCounter(
      "kraken_backend_idle_timeouts_total",
      "Backend requests that failed after making no progress for the idle timeout.",
      sum((s) => s.idleTimeouts),
      { backend: type },
    );
    metrics.observedCounter(
      "kraken_backend_request_failures_total",
      "Backend requests that failed for good (a 4xx that is not retried, or retries exhausted).",
      sum((s) => s.failures),
      { backend: type },
    );
    if (log === undefined) continue;
    // Retries and failures are limited apart, so a storm of retries cannot hide a failure.
    const retried = rateLimited(intervalMs, log);
    const failed = rateLimited(intervalMs, log);
    for (const stats of all) {
      stats.listen((event) => {
        const fields = {
          backend: event.type,
          method: event.method,
          route: event.route,
          attempt: event.attempt,
          status: event.status,
          error: event.error.message,
        };
        if (event.kind === "retry") retried("backend request retried", fields);
        else failed("backend request failed", fields);
      });
    }
  }
}
