/**
 * The storage-backend contract and the namespace → backend mapping.
 *
 * A backend is where origins write blobs back to and build-index persists
 * tags (upstream `lib/backend`). Which backend serves a namespace is decided by
 * an ordered list of regular expressions: the first one that matches anywhere
 * in the namespace wins (Go's `regexp.MatchString` is unanchored), and the
 * special namespace `__noop__` always gets a backend that stores nothing.
 *
 * ```ts
 * import { BackendManager } from "./backend.ts";
 * const manager = new BackendManager([{ namespace: "^library/", backend: myBackend }]);
 * const backend = manager.getClient("library/ubuntu"); // myBackend
 * ```
 *
 * @module
 */

import { sliceStream } from "../../common/bytes.ts";

/** What a backend knows about a stored object. */
export interface BlobInfo {
  /** Size in bytes. */
  size: number;
}

/**
 * An upload body that can be read again from any offset, with its size known up front (the blob
 * store's file). Object stores need it: a retried or resumed upload re-reads only the part it
 * sends, and a multipart upload reads each part on its own.
 */
export interface UploadSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Opens the bytes `[start, end)` afresh (defaults: the whole source). Each call is independent;
   * the caller reads the stream to its end or cancels it.
   */
  open(start?: number, end?: number): Promise<ReadableStream<Uint8Array>>;
}

/** What an upload did, for the `backend.upload` span (backends that know it). */
export interface UploadResult {
  /** Object key written. */
  key?: string;
  /** Parts of the object (1 for a single `PUT`). */
  parts?: number;
  /** Parts sent by this attempt. */
  partsSent?: number;
  /** Parts found stored by an earlier attempt and not sent again. */
  partsResumed?: number;
}

/** What {@linkcode Backend.upload} accepts: a one-shot stream, bytes, or a re-openable source. */
export type UploadBody = ReadableStream<Uint8Array> | Uint8Array | UploadSource;

/** Whether `body` is an {@linkcode UploadSource}. */
export function isUploadSource(body: UploadBody): body is UploadSource {
  return !(body instanceof ReadableStream) && !(body instanceof Uint8Array);
}

/** An {@linkcode UploadSource} over bytes in memory (tags, tests). */
export function bytesSource(bytes: Uint8Array): UploadSource {
  return {
    size: bytes.length,
    open: (start = 0, end = bytes.length) => {
      const part = bytes.subarray(start, end);
      return Promise.resolve(
        new ReadableStream({
          start(controller) {
            if (part.length > 0) controller.enqueue(part);
            controller.close();
          },
        }),
      );
    },
  };
}

/** Releases an upload body the backend will not read (a stream is cancelled). */
export async function discardUploadBody(body: UploadBody, reason?: unknown): Promise<void> {
  if (body instanceof ReadableStream) await body.cancel(reason).catch(() => {});
}

/** Which bytes of an object {@linkcode Backend.download} returns. */
export interface DownloadOptions {
  /** First byte (default 0). */
  offset?: number;
  /** Bytes at most from `offset` (default: to the end). */
  length?: number;
}

/** Pagination of {@linkcode Backend.list} (upstream `ListOption`s). */
export interface ListOptions {
  /**
   * Names per page. Absent: one answer with every name. Present: at most this many names and a
   * token for the next page.
   */
  maxKeys?: number;
  /** Token of the page to read, from a previous answer (`""` or absent: the first page). */
  continuationToken?: string;
}

/** One answer of {@linkcode Backend.list}. */
export interface ListResult {
  /** Names, in the backend's order (sorted for `file` and `testfs`). */
  names: string[];
  /** Token of the next page, `""` when this was the last. Opaque to the caller. */
  continuationToken: string;
}

/**
 * A random object name that fits every name-path layout (`repo:tag` form, longer than 2), for
 * readiness probes: "not found" on it proves the backend answers.
 */
export function readinessProbeName(): string {
  return `kraken-readiness:${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Upstream's page size of a paginated listing. */
export const DEFAULT_LIST_MAX_KEYS = 250;

/**
 * Checks download options against an object of `size` bytes.
 *
 * @returns the range as `[start, end)`
 * @throws {RangeError} when the range is not inside the object
 */
export function resolveRange(options: DownloadOptions, size: number): [number, number] {
  const start = options.offset ?? 0;
  const end = options.length === undefined ? size : start + options.length;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid range offset=${options.offset} length=${options.length}`);
  }
  if (start > size || end > size) {
    throw new RangeError(`range ${start}-${end} is outside the object (${size} bytes)`);
  }
  return [start, end];
}

/**
 * `body`, or the range of it `options` ask for, cut on the client (for backends whose wire has no
 * ranges: testfs, http, registries). A range past the end ends the stream early.
 */
export function cutRange(
  body: ReadableStream<Uint8Array>,
  options: DownloadOptions,
): ReadableStream<Uint8Array> {
  if (options.offset === undefined && options.length === undefined) return body;
  return sliceStream(body, options.offset ?? 0, options.length ?? Infinity);
}

/** One page of a store's listing, as {@linkcode collectPages} asks for it. */
export interface StorePage {
  /** Names on the page (keys outside the name layout already left out). */
  names: string[];
  /** The store's token of the next page; `""` after the last. */
  token: string;
}

/**
 * `list` over a store that pages (S3's `ListObjectsV2`, GCS's object listing): without
 * `options.maxKeys` every page of `pageSize` is read; with it, pages are read (each asking for
 * what is still missing) until that many names are found or the listing ends, and the store's
 * token of the next page is the continuation token.
 * @throws {RangeError} when `maxKeys` is below 1
 */
export async function collectPages(
  options: ListOptions,
  pageSize: number,
  page: (token: string, limit: number) => Promise<StorePage>,
): Promise<ListResult> {
  const max = options.maxKeys;
  if (max !== undefined && !(max >= 1)) {
    throw new RangeError(`maxKeys must be at least 1, got ${max}`);
  }
  const names: string[] = [];
  let token = options.continuationToken ?? "";
  for (;;) {
    const next = await page(token, max === undefined ? pageSize : max - names.length);
    names.push(...next.names);
    token = next.token;
    if (token === "") return { names, continuationToken: "" };
    if (max !== undefined && names.length >= max) return { names, continuationToken: token };
  }
}

/**
 * One page of `names` (sorted) under `options`, for backends that list everything at once: the
 * token is the last name of the page, so a page starts after it.
 */
export function paginate(names: readonly string[], options: ListOptions = {}): ListResult {
  if (options.maxKeys !== undefined && !(options.maxKeys >= 1)) {
    throw new RangeError(`maxKeys must be at least 1, got ${options.maxKeys}`);
  }
  const after = options.continuationToken ?? "";
  const rest = after === "" ? names : names.filter((n) => n > after);
  if (options.maxKeys === undefined || rest.length <= options.maxKeys) {
    return { names: [...rest], continuationToken: "" };
  }
  const page = rest.slice(0, options.maxKeys);
  return { names: page, continuationToken: page[page.length - 1] };
}

/** A blob/tag storage backend (upstream `backend.Client`). */
export interface Backend {
  /** Backend kind, for span attributes such as `backend_type` (`file`, `testfs`, `s3`, `noop`). */
  readonly type: string;
  /** Where the backend stores data (bucket, root directory or server address), if meaningful. */
  readonly bucket?: string;
  /** Request counters (retries, idle timeouts, rejections) of a network backend. */
  readonly stats?: BackendStats;
  /**
   * Looks an object up.
   *
   * @returns its info, or `null` when it does not exist
   */
  stat(namespace: string, name: string): Promise<BlobInfo | null>;
  /**
   * Stores `body` as the object `name`, replacing any previous content. A backend that can resume
   * (S3 multipart) does so when `body` is an {@linkcode UploadSource}; a stream is sent once.
   */
  upload(namespace: string, name: string, body: UploadBody): Promise<UploadResult | void>;
  /** The object key (path in the store) of `name`, for span attributes, when it has one. */
  objectKey?(name: string): string;
  /**
   * Opens an object, or a range of it, for reading.
   *
   * @returns the content, or `null` when it does not exist
   * @throws {RangeError} when `options` ask for bytes outside the object
   */
  download(
    namespace: string,
    name: string,
    options?: DownloadOptions,
  ): Promise<ReadableStream<Uint8Array> | null>;
  /** Lists the names stored under `prefix` (a path prefix in the backend's name layout). */
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  /**
   * Resolves when the backend can serve requests (credentials accepted, bucket present), else
   * rejects with the reason. Probes `must_ready` backends at start-up and on `/readiness`.
   */
  ready(): Promise<void>;
  /** When and how far {@linkcode Backend.sweepUploads} runs (a backend with resumable uploads). */
  readonly uploadSweep?: UploadSweepPolicy;
  /**
   * Aborts unfinished uploads (S3 multipart) that nothing will resume: started at least
   * `uploadSweep.minAgeMs` ago, of a name `keep` turns down, at most `uploadSweep.max` of them.
   */
  sweepUploads?(keep: (name: string) => boolean): Promise<UploadSweepResult>;
}

/** How often, and how far, a backend's abandoned uploads are swept. */
export interface UploadSweepPolicy {
  /** Between sweeps, ms (the first runs at start-up); 0: never. */
  intervalMs: number;
  /** Only uploads started at least this long ago are aborted, ms. */
  minAgeMs: number;
  /** Most uploads one sweep aborts. */
  max: number;
}

/** What one {@linkcode Backend.sweepUploads} did. */
export interface UploadSweepResult {
  /** Unfinished uploads found in the backend's layout. */
  found: number;
  /** Uploads aborted. */
  aborted: number;
  /** Uploads left: too young, or of a name still to be written back. */
  kept: number;
  /** Whether `max` stopped the sweep before it looked at every upload. */
  limited: boolean;
}

/**
 * Counters of a network backend's requests, read by the roles' metrics, and the listeners the
 * roles attach to log them. Filled by the request layer in `transport.ts`.
 */
export class BackendStats {
  /** Attempts that were retried (5xx, 429/`SlowDown`, network error, idle timeout). */
  retries = 0;
  /** Attempts that failed by the idle timeout. */
  idleTimeouts = 0;
  /** Requests that failed for good (a 4xx that is not retried, or retries exhausted). */
  failures = 0;
  readonly #listeners = new Set<(event: BackendEvent) => void>();

  /** Calls `listener` for every retry and failure; returns a function that detaches it. */
  listen(listener: (event: BackendEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counts `event` and tells the listeners. */
  record(event: BackendEvent): void {
    if (event.kind === "retry") this.retries++;
    else this.failures++;
    if (event.timeout) this.idleTimeouts++;
    for (const listener of this.#listeners) listener(event);
  }
}

/** A retried or failed backend request, as {@linkcode BackendStats} reports it. */
export interface BackendEvent {
  /** `retry`: another attempt follows; `failure`: the request failed for good. */
  kind: "retry" | "failure";
  /** Backend type (`s3`, `testfs`, …). */
  type: string;
  /** Request method. */
  method: string;
  /** Route template of the request (never the path, which holds object keys). */
  route: string;
  /** Attempt that failed, from 1. */
  attempt: number;
  /** Whether the attempt failed by the idle timeout. */
  timeout: boolean;
  /** HTTP status, when the server answered. */
  status?: number;
  /** The error, its message free of credentials. */
  error: Error;
}

/**
 * The object key of `name` in `backend`, for span attributes: `undefined` when the backend has no
 * keys or the name does not fit its layout (the operation itself then reports that).
 */
export function objectKeyOf(backend: Backend, name: string): string | undefined {
  try {
    return backend.objectKey?.(name);
  } catch {
    return undefined;
  }
}

/** The namespace that always maps to {@linkcode noopBackend}. */
export const NOOP_NAMESPACE = "__noop__";

/** Thrown when no configured backend matches a namespace. */
export class NoBackendError extends Error {
  /** The namespace that matched nothing. */
  readonly namespace: string;

  /** @param namespace the namespace that matched nothing */
  constructor(namespace: string) {
    super(`no matches for namespace ${namespace}`);
    this.name = "NoBackendError";
    this.namespace = namespace;
  }
}

/** Thrown by the writes of a read-only backend (`registry_blob`, `registry_tag`, `http`). */
export class ReadOnlyBackendError extends Error {
  /** The backend type. */
  readonly type: string;

  /** @param type the backend type */
  constructor(type: string) {
    super(`${type} backend is read-only: uploads are refused`);
    this.name = "ReadOnlyBackendError";
    this.type = type;
  }
}

/** A backend that accepts uploads and stores nothing: stats and downloads find nothing. */
export const noopBackend: Backend = {
  type: "noop",
  stat: () => Promise.resolve(null),
  async upload(_namespace, _name, body) {
    // Drain the stream so a producer piping into it is not left hanging.
    if (body instanceof ReadableStream) await body.pipeTo(new WritableStream());
  },
  download: () => Promise.resolve(null),
  list: () => Promise.resolve({ names: [], continuationToken: "" }),
  ready: () => Promise.resolve(),
};

/** Per-request options an HTTP backend passes to its {@linkcode BackendFetch}. */
export interface BackendRequestInit extends RequestInit {
  /** Route template of the request (`/files/{path+}`): the client span's name, never the path. */
  route: string;
  /** Statuses that are expected answers rather than failures (404 on a stat or download). */
  expectedStatus: number[];
  /** Extra client-span attributes (OTel semconv of the store, e.g. `aws.s3.bucket`). */
  attributes?: Record<string, string | number | boolean>;
  /**
   * The function that performs the request, when `globalThis.fetch` will not do (it sends a
   * streamed body chunked, and S3 wants a `Content-Length`): see `http/node_fetch.ts`.
   */
  transport?: (url: string, init: RequestInit) => Promise<Response>;
}

/**
 * The fetch HTTP backends call. {@linkcode plainFetch} fits; roles pass tracing's `tracedFetch`,
 * which names its client span after `route` and adds `attributes`.
 */
export type BackendFetch = (url: string, init: BackendRequestInit) => Promise<Response>;

/** The untraced {@linkcode BackendFetch}: `init.transport`, else `globalThis.fetch`. */
export const plainFetch: BackendFetch = (url, init) => {
  const { route: _route, expectedStatus: _expected, attributes: _attrs, transport, ...rest } = init;
  return (transport ?? globalThis.fetch)(url, rest);
};

/** One row of the namespace mapping. */
export interface BackendEntry {
  /** Regular expression matched anywhere in the namespace (use `^...$` to anchor). */
  namespace: string | RegExp;
  /** Backend serving the namespaces that match. */
  backend: Backend;
}

/** Resolves a namespace to its backend: first matching entry wins. */
export class BackendManager {
  readonly #entries: { pattern: RegExp; backend: Backend }[];

  /**
   * @param entries ordered mapping rows
   * @throws {SyntaxError} when a namespace pattern is not a valid regular expression
   */
  constructor(entries: Iterable<BackendEntry>) {
    this.#entries = [...entries].map((e) => ({
      // A global or sticky flag would make `test` stateful across calls.
      pattern: typeof e.namespace === "string"
        ? new RegExp(e.namespace)
        : new RegExp(e.namespace.source, e.namespace.flags.replace(/[gy]/g, "")),
      backend: e.backend,
    }));
  }

  /** The configured backends, in mapping order. */
  get backends(): Backend[] {
    return this.#entries.map((e) => e.backend);
  }

  /**
   * Returns the backend for `namespace`.
   *
   * @param namespace the namespace of a blob or tag
   * @throws {NoBackendError} when no entry matches
   */
  getClient(namespace: string): Backend {
    const backend = this.find(namespace);
    if (backend === undefined) throw new NoBackendError(namespace);
    return backend;
  }

  /** The backend for `namespace`, or `undefined` when no entry matches (write-back drops those). */
  find(namespace: string): Backend | undefined {
    if (namespace === NOOP_NAMESPACE) return noopBackend;
    return this.#entries.find((e) => e.pattern.test(namespace))?.backend;
  }
}
