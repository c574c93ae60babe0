/**
 * HTTP client for a testfs storage server (upstream `lib/backend/testfs`),
 * wire-compatible with upstream's server and with `testfs_server.ts`:
 *
 * | Operation | Request | Answer |
 * |---|---|---|
 * | stat | `HEAD /files/<path>` | 200 + `Size` header, or 404 |
 * | download | `GET /files/<path>` | bytes, or 404 |
 * | upload | `POST /files/<path>` | 200 |
 * | list | `GET /list/<basePath>/<prefix>` | JSON array of paths relative to the server root |
 *
 * `<path>` comes from the configured name-path strategy under `root`. The
 * namespace is not part of the path, as upstream.
 *
 * Requests have an idle timeout, not a total one: a request fails with
 * {@linkcode BackendTimeoutError} once it made no progress for `idleTimeoutMs`
 * (no request-body bytes taken by the connection, no answer, no response-body
 * bytes while the caller waits for some), so a large object moving slowly but
 * steadily never times out and a stalled server fails within one idle timeout.
 * {@linkcode TestfsBackend.idleTimeouts} counts them (roles report it as
 * `kraken_backend_idle_timeouts_total{backend="testfs"}`).
 *
 * ```ts
 * import { TestfsBackend } from "./testfs.ts";
 * const backend = new TestfsBackend({ addr: "127.0.0.1:14000", root: "blobs" });
 * await backend.stat("ns", "abc123"); // { size } or null
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../../http/status_error.ts";
import type { MetricsRegistry } from "../../tracing/mod.ts";
import type { Backend, BackendFetch, BlobInfo } from "./backend.ts";
import { createNamePath, type NamePath, type NamePathId } from "./namepath.ts";
import { expand, type Route } from "../../wire/route.ts";
import { TESTFS_DOWNLOAD, TESTFS_LIST, TESTFS_STAT, TESTFS_UPLOAD } from "../../wire/testfs.ts";

/** Options for {@linkcode TestfsBackend}. */
export interface TestfsBackendOptions {
  /** Server address, `host:port`. */
  addr: string;
  /** Directory under the server root that holds this backend's objects (default `""`). */
  root?: string;
  /** Name-path strategy (default `identity`). */
  namePath?: NamePathId;
  /** The fetch to use; roles pass a traced one (default `globalThis.fetch`). */
  fetch?: BackendFetch;
  /**
   * Idle timeout in milliseconds (default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}):
   * how long a request may go without progress. Time a download's caller
   * spends between reads does not count.
   */
  idleTimeoutMs?: number;
}

/** Default idle timeout: upstream's HTTP client timeout, applied to progress instead of the total. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Bytes per chunk when an in-memory body is sent, so its progress can be seen. */
const BODY_CHUNK_BYTES = 64 * 1024;

/** A request that made no progress for the idle timeout. */
export class BackendTimeoutError extends Error {
  /** The idle timeout that elapsed, ms. */
  readonly idleTimeoutMs: number;

  /**
   * @param method request method
   * @param url request URL
   * @param idleTimeoutMs the idle timeout that elapsed
   */
  constructor(method: string, url: string, idleTimeoutMs: number) {
    super(`${method} ${url}: no progress for ${idleTimeoutMs} ms (idle timeout)`);
    this.name = "BackendTimeoutError";
    this.idleTimeoutMs = idleTimeoutMs;
  }
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
 * timer aborted fails with the timeout (`signal`'s reason).
 */
function watchedResponseBody(
  body: ReadableStream<Uint8Array>,
  idle: IdleTimer,
  signal: AbortSignal,
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

/** Percent-encodes each path segment, keeping `/` and the `:` testfs maps to `/`. */
function escapePath(path: string): string {
  return path.split("/").map((s) => encodeURIComponent(s).replaceAll("%3A", ":")).join("/");
}

/** A {@linkcode Backend} talking to a testfs server over HTTP. */
export class TestfsBackend implements Backend {
  /** Always `testfs`. */
  readonly type = "testfs";
  /** `<addr>/<root>`, for span attributes. */
  readonly bucket: string;
  readonly #base: string;
  readonly #namePath: NamePath;
  readonly #fetch: BackendFetch;
  readonly #idleTimeoutMs: number;
  #idleTimeouts = 0;

  /** Requests that failed by the idle timeout so far. */
  get idleTimeouts(): number {
    return this.#idleTimeouts;
  }

  /** @param options see {@linkcode TestfsBackendOptions} */
  constructor(options: TestfsBackendOptions) {
    if (!/^[^\s/:]+:\d{1,5}$/.test(options.addr ?? "")) {
      throw new TypeError(`testfs: addr must be host:port, got ${JSON.stringify(options.addr)}`);
    }
    const root = options.root ?? "";
    this.#namePath = createNamePath(options.namePath ?? "identity", root);
    this.#base = `http://${options.addr}`;
    this.bucket = root ? `${options.addr}/${root}` : options.addr;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (!(this.#idleTimeoutMs > 0)) {
      throw new RangeError(`testfs: idleTimeoutMs must be positive, got ${this.#idleTimeoutMs}`);
    }
  }

  /**
   * Sends one request with the idle timer armed until `handle` returns.
   * `handle` must consume or cancel the body unless it hands it to the caller,
   * wrapped with the `watch` it is given.
   */
  async #request<T>(
    route: Route,
    path: string,
    body: ReadableStream<Uint8Array> | Uint8Array | null,
    handle: (
      res: Response,
      url: string,
      watch: (body: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
    ) => Promise<T>,
  ): Promise<T> {
    const { method } = route;
    const url = `${this.#base}${expand(route, { path: escapePath(path) })}`;
    const controller = new AbortController();
    const idle = new IdleTimer(this.#idleTimeoutMs, () => {
      this.#idleTimeouts++;
      controller.abort(new BackendTimeoutError(method, url, this.#idleTimeoutMs));
    });
    const watch = (b: ReadableStream<Uint8Array>) =>
      watchedResponseBody(b, idle, controller.signal);
    idle.touch();
    try {
      const res = await this.#fetch(url, {
        method,
        body: body === null ? null : watchedBody(body, idle),
        signal: controller.signal,
        route: route.template,
        // Absent objects are answers, not failures.
        expectedStatus: [404],
      });
      idle.touch();
      return await handle(res, url, watch);
    } catch (error) {
      // An aborted fetch rejects with its own error; the timeout is the reason worth reporting.
      if (controller.signal.aborted && controller.signal.reason instanceof BackendTimeoutError) {
        throw controller.signal.reason;
      }
      throw error;
    } finally {
      idle.disarm();
    }
  }

  /** `HEAD /files/<path>`; the size comes from the `Size` header. */
  stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    const path = this.#namePath.blobPath(name);
    return this.#request(TESTFS_STAT, path, null, async (res, url) => {
      await res.body?.cancel();
      if (res.status === 404) return null;
      if (res.status !== 200) throw new HttpStatusError("HEAD", url, res.status, "");
      const raw = res.headers.get("Size") ?? "";
      if (!/^\d+$/.test(raw)) {
        throw new Error(`HEAD ${url}: invalid Size header ${JSON.stringify(raw)}`);
      }
      return { size: Number(raw) };
    });
  }

  /** `POST /files/<path>` with the object as the body. */
  async upload(
    _namespace: string,
    name: string,
    body: ReadableStream<Uint8Array> | Uint8Array,
  ): Promise<void> {
    let path: string;
    try {
      path = this.#namePath.blobPath(name);
    } catch (err) {
      if (body instanceof ReadableStream) await body.cancel(err);
      throw err;
    }
    await this.#request(TESTFS_UPLOAD, path, body, async (res, url) => {
      const text = await res.text();
      if (res.status !== 200) throw new HttpStatusError("POST", url, res.status, text);
    });
  }

  /** `GET /files/<path>`; the body is returned unread. */
  download(_namespace: string, name: string): Promise<ReadableStream<Uint8Array> | null> {
    const path = this.#namePath.blobPath(name);
    return this.#request(TESTFS_DOWNLOAD, path, null, async (res, url, watch) => {
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (res.status !== 200) throw new HttpStatusError("GET", url, res.status, await res.text());
      return res.body ? watch(res.body) : new Blob().stream();
    });
  }

  /**
   * `GET /list/<basePath>/<prefix>` and maps the listed paths back to names.
   * A `null` answer (how upstream's server encodes an empty list) lists as empty.
   */
  list(prefix: string): Promise<string[]> {
    const dir = [this.#namePath.basePath, prefix.replace(/^\/+|\/+$/g, "")]
      .filter((p) => p !== "").join("/");
    return this.#request(TESTFS_LIST, dir, null, async (res, url) => {
      const text = await res.text();
      if (res.status !== 200) throw new HttpStatusError("GET", url, res.status, text);
      const paths: unknown = JSON.parse(text);
      if (paths === null) return [];
      if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string")) {
        throw new Error(`GET ${url}: expected a JSON array of strings`);
      }
      // Paths outside the name layout (say, a registry's `_layers` links in a
      // shared bucket) are skipped rather than failing the whole listing.
      return paths.map((p) => this.#namePath.nameFromBlobPath(p))
        .filter((n): n is string => n !== null);
    });
  }
}

/**
 * Reports the idle timeouts of every testfs backend among `backends` as
 * `kraken_backend_idle_timeouts_total{backend="testfs"}` on a role's metrics.
 */
export function reportIdleTimeouts(backends: Iterable<Backend>, metrics: MetricsRegistry): void {
  const testfs = [...backends].filter((b): b is TestfsBackend => b instanceof TestfsBackend);
  metrics.observedCounter(
    "kraken_backend_idle_timeouts_total",
    "Backend requests that failed after making no progress for the idle timeout.",
    () => testfs.reduce((sum, b) => sum + b.idleTimeouts, 0),
    { backend: "testfs" },
  );
}
