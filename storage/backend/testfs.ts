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
 * ```ts
 * import { TestfsBackend } from "./testfs.ts";
 * const backend = new TestfsBackend({ addr: "127.0.0.1:14000", root: "blobs" });
 * await backend.stat("ns", "abc123"); // { size } or null
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../../http/status_error.ts";
import type { Backend, BackendFetch, BlobInfo } from "./backend.ts";
import { createNamePath, type NamePath, type NamePathId } from "./namepath.ts";

/** Route templates of a testfs server, the names of the client's request spans. */
export const TESTFS_ROUTES = {
  /** Stat, download and upload of one object. */
  files: "/files/{path+}",
  /** Listing under a directory. */
  list: "/list/{path+}",
} as const;

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
   * Per-request timeout in milliseconds (default 60 s, as upstream's HTTP
   * client). It covers the whole exchange except reading a download's body,
   * which the caller consumes at its own pace.
   */
  timeoutMs?: number;
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
  readonly #timeoutMs: number;

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
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  /**
   * Sends one request with the timeout armed until `handle` returns.
   * `handle` must consume or cancel the body unless it hands it to the caller.
   */
  async #request<T>(
    method: string,
    route: keyof typeof TESTFS_ROUTES,
    path: string,
    body: BodyInit | null,
    handle: (res: Response, url: string) => Promise<T>,
  ): Promise<T> {
    const url = `${this.#base}/${escapePath(path)}`;
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`${method} ${url}: timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    try {
      const res = await this.#fetch(url, {
        method,
        body,
        signal: controller.signal,
        route: TESTFS_ROUTES[route],
        // Absent objects are answers, not failures.
        expectedStatus: [404],
      });
      return await handle(res, url);
    } finally {
      clearTimeout(timer);
    }
  }

  /** `HEAD /files/<path>`; the size comes from the `Size` header. */
  stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    const path = `files/${this.#namePath.blobPath(name)}`;
    return this.#request("HEAD", "files", path, null, async (res, url) => {
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
      path = `files/${this.#namePath.blobPath(name)}`;
    } catch (err) {
      if (body instanceof ReadableStream) await body.cancel(err);
      throw err;
    }
    await this.#request("POST", "files", path, body as BodyInit, async (res, url) => {
      const text = await res.text();
      if (res.status !== 200) throw new HttpStatusError("POST", url, res.status, text);
    });
  }

  /** `GET /files/<path>`; the body is returned unread. */
  download(_namespace: string, name: string): Promise<ReadableStream<Uint8Array> | null> {
    const path = `files/${this.#namePath.blobPath(name)}`;
    return this.#request("GET", "files", path, null, async (res, url) => {
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (res.status !== 200) throw new HttpStatusError("GET", url, res.status, await res.text());
      return res.body ?? new Blob().stream();
    });
  }

  /**
   * `GET /list/<basePath>/<prefix>` and maps the listed paths back to names.
   * A `null` answer (how upstream's server encodes an empty list) lists as empty.
   */
  list(prefix: string): Promise<string[]> {
    const dir = [this.#namePath.basePath, prefix.replace(/^\/+|\/+$/g, "")]
      .filter((p) => p !== "").join("/");
    return this.#request("GET", "list", `list/${dir}`, null, async (res, url) => {
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
