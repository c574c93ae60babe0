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

/** What a backend knows about a stored object. */
export interface BlobInfo {
  /** Size in bytes. */
  size: number;
}

/** A blob/tag storage backend (upstream `backend.Client`). */
export interface Backend {
  /** Backend kind, for span attributes such as `backend_type` (`file`, `testfs`, `noop`). */
  readonly type: string;
  /** Where the backend stores data (bucket, root directory or server address), if meaningful. */
  readonly bucket?: string;
  /**
   * Looks an object up.
   *
   * @returns its info, or `null` when it does not exist
   */
  stat(namespace: string, name: string): Promise<BlobInfo | null>;
  /** Stores `body` as the object `name`, replacing any previous content. */
  upload(
    namespace: string,
    name: string,
    body: ReadableStream<Uint8Array> | Uint8Array,
  ): Promise<void>;
  /**
   * Opens an object for reading.
   *
   * @returns the content, or `null` when it does not exist
   */
  download(namespace: string, name: string): Promise<ReadableStream<Uint8Array> | null>;
  /** Lists the names stored under `prefix` (a path prefix in the backend's name layout). */
  list(prefix: string): Promise<string[]>;
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
  list: () => Promise.resolve([]),
};

/** Per-request options an HTTP backend passes to its {@linkcode BackendFetch}. */
export interface BackendRequestInit extends RequestInit {
  /** Route template of the request (`/files/{path+}`): the client span's name, never the path. */
  route: string;
  /** Statuses that are expected answers rather than failures (404 on a stat or download). */
  expectedStatus: number[];
}

/**
 * The fetch HTTP backends call. `globalThis.fetch` fits (it ignores the extra options); roles pass
 * tracing's `tracedFetch`, which names its client span after `route`.
 */
export type BackendFetch = (url: string, init: BackendRequestInit) => Promise<Response>;

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
