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
 * namespace is not part of the path, as upstream. The wire has no ranges and no
 * pagination, so a ranged download skips bytes on the client and a paginated
 * listing pages through the full answer (continuation token: the last name of the page).
 *
 * Requests go through `transport.ts`: an idle timeout, not a total one (a large
 * object moving slowly but steadily never times out, a stalled server fails
 * within one idle timeout), counted in {@linkcode TestfsBackend.stats}. testfs
 * sends each request once by default, as upstream's client; the write-back queue
 * retries the task.
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
import {
  type Backend,
  type BackendFetch,
  type BackendStats,
  type BlobInfo,
  cutRange,
  discardUploadBody,
  type DownloadOptions,
  isUploadSource,
  type ListOptions,
  type ListResult,
  paginate,
  readinessProbeName,
  type UploadBody,
} from "./backend.ts";
import { createNamePath, type NamePath, type NamePathId } from "./namepath.ts";
import type { ClientTlsConfig } from "../../http/tls_config.ts";
import { BackendTransport, type RetryOptions } from "./transport.ts";
import { expand, type Route } from "../../wire/route.ts";
import { TESTFS_DOWNLOAD, TESTFS_LIST, TESTFS_STAT, TESTFS_UPLOAD } from "../../wire/testfs.ts";

export { BackendTimeoutError, DEFAULT_IDLE_TIMEOUT_MS } from "./transport.ts";

/** Options for {@linkcode TestfsBackend}. */
export interface TestfsBackendOptions {
  /** Server address, `host:port`. */
  addr: string;
  /** Directory under the server root that holds this backend's objects (default `""`). */
  root?: string;
  /** Name-path strategy (default `identity`). */
  namePath?: NamePathId;
  /** The fetch to use; roles pass a traced one (default `plainFetch`). */
  fetch?: BackendFetch;
  /**
   * Idle timeout in milliseconds (default `DEFAULT_IDLE_TIMEOUT_MS`):
   * how long a request may go without progress. Time a download's caller
   * spends between reads does not count.
   */
  idleTimeoutMs?: number;
  /** Retry policy of each request (default: one attempt). */
  retry?: RetryOptions;
  /** TLS to the server (its CA, name, a client certificate): requests are `https` with it. */
  tls?: ClientTlsConfig;
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
  readonly #transport: BackendTransport;
  readonly #probeName = readinessProbeName();

  /** Retries, idle timeouts and failures of this backend's requests. */
  get stats(): BackendStats {
    return this.#transport.stats;
  }

  /** Requests that failed by the idle timeout so far. */
  get idleTimeouts(): number {
    return this.stats.idleTimeouts;
  }

  /** @param options see {@linkcode TestfsBackendOptions} */
  constructor(options: TestfsBackendOptions) {
    if (!/^[^\s/:]+:\d{1,5}$/.test(options.addr ?? "")) {
      throw new TypeError(`testfs: addr must be host:port, got ${JSON.stringify(options.addr)}`);
    }
    const root = options.root ?? "";
    this.#namePath = createNamePath(options.namePath ?? "identity", root);
    this.#base = `${options.tls ? "https" : "http"}://${options.addr}`;
    this.bucket = root ? `${options.addr}/${root}` : options.addr;
    this.#transport = new BackendTransport({
      type: "testfs",
      fetch: options.fetch,
      idleTimeoutMs: options.idleTimeoutMs,
      retry: { attempts: 1, ...options.retry },
      tls: options.tls,
    });
  }

  /** Sends one request of `route` for `path`; absent objects (404) are answers, not failures. */
  #request(
    route: Route,
    path: string,
    body: UploadBody | null = null,
  ): Promise<Response> {
    return this.#transport.request({
      method: route.method,
      url: `${this.#base}${expand(route, { path: escapePath(path) })}`,
      route: route.template,
      body: body !== null && isUploadSource(body) ? () => body.open() : body,
      expectedStatus: [404],
    });
  }

  /** `HEAD /files/<path>`; the size comes from the `Size` header. */
  async stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    const res = await this.#request(TESTFS_STAT, this.#namePath.blobPath(name));
    await res.body?.cancel();
    if (res.status === 404) return null;
    const raw = res.headers.get("Size") ?? "";
    if (res.status !== 200 || !/^\d+$/.test(raw)) {
      throw new HttpStatusError(
        "HEAD",
        this.bucket,
        res.status,
        `Size header ${JSON.stringify(raw)}`,
      );
    }
    return { size: Number(raw) };
  }

  /** `POST /files/<path>` with the object as the body. */
  async upload(_namespace: string, name: string, body: UploadBody): Promise<void> {
    let path: string;
    try {
      path = this.#namePath.blobPath(name);
    } catch (err) {
      await discardUploadBody(body, err);
      throw err;
    }
    const res = await this.#request(TESTFS_UPLOAD, path, body);
    await res.body?.cancel();
    if (res.status !== 200) throw new HttpStatusError("POST", this.bucket, res.status, "");
  }

  /** `GET /files/<path>`; the body is returned unread (a range is cut on the client). */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    const res = await this.#request(TESTFS_DOWNLOAD, this.#namePath.blobPath(name));
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new HttpStatusError("GET", this.bucket, res.status, "");
    }
    return cutRange(res.body ?? new Blob().stream(), options);
  }

  /**
   * `GET /list/<basePath>/<prefix>` and maps the listed paths back to names.
   * A `null` answer (how upstream's server encodes an empty list) lists as empty.
   */
  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const dir = [this.#namePath.basePath, prefix.replace(/^\/+|\/+$/g, "")]
      .filter((p) => p !== "").join("/");
    const res = await this.#request(TESTFS_LIST, dir);
    const text = await res.text();
    if (res.status !== 200) throw new HttpStatusError("GET", this.bucket, res.status, text);
    const paths: unknown = JSON.parse(text);
    if (paths !== null && (!Array.isArray(paths) || !paths.every((p) => typeof p === "string"))) {
      throw new Error(`testfs ${this.bucket}: list: expected a JSON array of strings`);
    }
    // Paths outside the name layout (say, a registry's `_layers` links in a
    // shared bucket) are skipped rather than failing the whole listing.
    const names = (paths ?? []).map((p: string) => this.#namePath.nameFromBlobPath(p))
      .filter((n: string | null): n is string => n !== null);
    return paginate(names.sort(), options);
  }

  /** Ready when the server answers a stat (of a name that does not exist). */
  async ready(): Promise<void> {
    await this.stat("", this.#probeName);
  }
}
