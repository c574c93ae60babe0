/**
 * The `gcs` backend: Google Cloud Storage through its JSON API (`wire/gcs.ts`), or an emulator
 * such as fake-gcs-server at `endpoint`. Keys are upstream's `gcsbackend.Config` (`bucket`,
 * `root_directory`, `name_path`, `upload_part_size`, `list_max_keys`, `username` choosing the
 * credentials under the top-level `auth.gcs`) plus `endpoint` and `idle_timeout`.
 *
 * - **Object names** are upstream's: `path.Join(root_directory, <name path>)`, so a bucket is
 *   shared with Go Kraken (`root_directory: /` gives names starting with `/`).
 * - **stat**: the object's metadata (`size`). **download**: `alt=media`, streamed, with a `Range`
 *   for a part.
 * - **upload** of an {@linkcode UploadSource} (the blob store's file): a resumable upload in
 *   chunks of `upload_part_size` (a multiple of 256 KiB), each re-read from the source. When a
 *   chunk fails (connection dropped, 5xx, idle timeout), the stored offset is queried from the
 *   session URI (`Content-Range: bytes *\/<size>`) and the upload goes on from there, so what the
 *   server already holds is not sent again. A session the server no longer knows starts over. A
 *   finished object whose size is not the source's (an emulator that finishes a session when its
 *   offset is queried) is deleted and the upload starts over: nothing short is ever left under
 *   the name. Bytes and one-shot streams go in one `uploadType=media` request.
 * - **list**: pages of `list_max_keys` names (or the caller's `maxKeys`), `pageToken` as the
 *   continuation token.
 * - **ready**: the bucket's metadata; wrong credentials or a missing bucket fail it with GCS's
 *   message.
 *
 * Requests go through `transport.ts` (idle timeout, retries with backoff and jitter, secrets
 * redacted); the chunk PUTs are retried here instead, because a retry must first learn the offset.
 * Chunk PUTs go over `node:http(s)` (`http/node_fetch.ts`) so that each carries its
 * `Content-Length`, as GCS documents, while streaming from the source.
 * Client spans carry `gcp.client.service: storage` (OTel semconv defines no `gcp.gcs.*` span
 * attributes).
 *
 * ```ts
 * import { GcsBackend } from "./gcs.ts";
 * const gcs = new GcsBackend({ bucket: "blobs", rootDirectory: "/", endpoint: "http://127.0.0.1:4443" });
 * await gcs.stat("ns", "abc123"); // { size } or null
 * ```
 *
 * @module
 */

import type { ClientTlsConfig } from "../../http/tls_config.ts";
import { byteSize, duration, type Infer, int, object, oneOf, string } from "../../common/schema.ts";
import { nodeFetch } from "../../http/node_fetch.ts";
import { ATTR } from "../../tracing/names.ts";
import { expand, type Route } from "../../wire/route.ts";
import {
  GCS_BUCKET_GET,
  GCS_OBJECT_DELETE,
  GCS_OBJECT_GET,
  GCS_OBJECT_LIST,
  GCS_UPLOAD_CHUNK,
  GCS_UPLOAD_START,
} from "../../wire/gcs.ts";
import {
  type Backend,
  type BackendFetch,
  type BackendStats,
  type BlobInfo,
  collectPages,
  DEFAULT_LIST_MAX_KEYS,
  discardUploadBody,
  type DownloadOptions,
  isUploadSource,
  type ListOptions,
  type ListResult,
  type UploadBody,
  type UploadSource,
} from "./backend.ts";
import { GcsTokenSource, type ServiceAccountKey } from "./gcs_auth.ts";
import { createNamePath, NAME_PATH_IDS, type NamePath, type NamePathId } from "./namepath.ts";
import {
  BackendRequestError,
  BackendTransport,
  backoffMs,
  type ErrorDetail,
  isRetryableStatus,
  type RetryOptions,
} from "./transport.ts";

/** Google's JSON API endpoint. */
export const DEFAULT_GCS_ENDPOINT = "https://storage.googleapis.com";
/** Upstream's default `upload_part_size`: 64 MiB. */
export const DEFAULT_GCS_PART_SIZE = 64 * 1024 * 1024;
/** Resumable chunks are multiples of this (the JSON API's rule). */
export const GCS_CHUNK_ALIGNMENT = 256 * 1024;

/** The `gcs` config block. */
export const gcsBackendSchema = object({
  username: string().optional("anonymous").describe(
    "Selects the credentials `auth.gcs.<username>.gcs` (a service-account key or a token). " +
      "Without it, requests are unauthenticated (emulators).",
  ),
  bucket: string().check((v) =>
    /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(v) ? undefined : `not a bucket name: ${v}`
  ).describe("Bucket name."),
  root_directory: string().check((v) =>
    v.startsWith("/") ? undefined : `must be an absolute path, got ${JSON.stringify(v)}`
  ).describe("Absolute path every object name is under (`/`: the bucket's top)."),
  name_path: oneOf(NAME_PATH_IDS).default("identity").describe(
    "Layout of names under `root_directory`.",
  ),
  upload_part_size: byteSize({ positive: true }).check((v) =>
    v > 0 && v % GCS_CHUNK_ALIGNMENT === 0 ? undefined : "must be a positive multiple of 256KB"
  ).default("64MB").describe(
    "Chunk of a resumable upload: a failed chunk is resumed from the offset GCS stored.",
  ),
  list_max_keys: int({ min: 1 }).default(DEFAULT_LIST_MAX_KEYS).describe(
    "Names per page of a listing.",
  ),
  location: string().optional("—").describe(
    "Accepted for upstream configs; unused (the bucket must exist).",
  ),
  buffer_guard: byteSize().optional("—").describe(
    "Accepted for upstream configs; unused (downloads are streamed).",
  ),
  endpoint: string().check((v) => {
    try {
      const u = new URL(v);
      return u.protocol === "http:" || u.protocol === "https:"
        ? undefined
        : "must be an http or https URL";
    } catch {
      return `must be a URL, got ${JSON.stringify(v)}`;
    }
  }).default(DEFAULT_GCS_ENDPOINT).describe("JSON API base URL (an emulator's, in tests)."),
  idle_timeout: duration({ positive: true }).optional("`60s`").describe(
    "A request fails after making no progress for this long.",
  ),
}, {
  rename: {
    root_directory: "rootDirectory",
    name_path: "namePath",
    upload_part_size: "uploadPartSize",
    list_max_keys: "listMaxKeys",
    buffer_guard: "bufferGuard",
    idle_timeout: "idleTimeoutMs",
  },
});

/** A validated `gcs` block. */
export type GcsBackendConfig = Infer<typeof gcsBackendSchema>;

/** Options of {@linkcode GcsBackend}. */
export interface GcsBackendOptions {
  /** Bucket name. */
  bucket: string;
  /** Absolute root of the object names (default `/`). */
  rootDirectory?: string;
  /** Name-path strategy (default `identity`). */
  namePath?: NamePathId;
  /** Resumable chunk size, a multiple of 256 KiB (default 64 MiB). */
  uploadPartSize?: number;
  /** Names per listing page (default 250). */
  listMaxKeys?: number;
  /** JSON API base URL (default {@linkcode DEFAULT_GCS_ENDPOINT}). */
  endpoint?: string;
  /** A service-account key (token exchange). */
  key?: ServiceAccountKey;
  /** An explicit access token. */
  token?: string;
  /** The fetch to use; roles pass a traced one. */
  fetch?: BackendFetch;
  /** Idle timeout, ms (default 60 s). */
  idleTimeoutMs?: number;
  /** Retry policy of requests and of chunk resumes. */
  retry?: RetryOptions;
  /** TLS settings for an `https` endpoint (CA, name, client certificate). */
  tls?: ClientTlsConfig;
}

/** Go's `path.Join`: cleaned, slash-separated, rooted when the first part is. */
function goJoin(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  if (joined === "") return "";
  const rooted = joined.startsWith("/");
  const out: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const path = out.join("/");
  return rooted ? `/${path}` : path || ".";
}

/** GCS's JSON error `{error: {code, message, errors: [{reason}]}}` as a code and message. */
function describeGcsError(_status: number, body: string): ErrorDetail {
  try {
    const parsed = JSON.parse(body);
    const error = parsed?.error;
    if (error && typeof error === "object") {
      const reason = Array.isArray(error.errors) ? error.errors[0]?.reason : undefined;
      return {
        code: typeof reason === "string" ? reason : undefined,
        message: typeof error.message === "string" ? error.message : body,
      };
    }
  } catch {
    // not JSON
  }
  return { message: body };
}

/** The stored offset a 308 reports in `Range: bytes=0-<last>` (absent: nothing stored). */
export function storedOffset(res: Response): number {
  const m = /^bytes=0-(\d+)$/.exec(res.headers.get("range")?.trim() ?? "");
  return m ? Number(m[1]) + 1 : 0;
}

/** A resumable session that the server no longer knows (expired or cancelled). */
class SessionGoneError extends Error {}

/** Why a chunk attempt ended. */
type ChunkOutcome =
  | { kind: "stored"; offset: number }
  | { kind: "finished"; size: number }
  | { kind: "failed"; error: Error };

/** Counters of the resumable uploads, for tests and the docs' figures. */
export interface GcsUploadCounters {
  /** Sessions started. */
  sessions: number;
  /** Chunk PUTs sent. */
  chunks: number;
  /** Offset queries after a failed chunk. */
  queries: number;
  /** Chunks resumed from a queried offset. */
  resumes: number;
  /** Uploads started over (session gone, or a finished object of the wrong size). */
  restarts: number;
}

/** A {@linkcode Backend} on a GCS bucket; see the module doc. */
export class GcsBackend implements Backend {
  /** Always `gcs`. */
  readonly type = "gcs";
  /** The bucket name, for span attributes. */
  readonly bucket: string;
  /** Upload counters. */
  readonly uploads: GcsUploadCounters = {
    sessions: 0,
    chunks: 0,
    queries: 0,
    resumes: 0,
    restarts: 0,
  };
  readonly #root: string;
  readonly #namePath: NamePath;
  readonly #partSize: number;
  readonly #listMaxKeys: number;
  readonly #endpoint: string;
  readonly #auth: GcsTokenSource;
  readonly #transport: BackendTransport;
  readonly #retry: RetryOptions;

  /** @param options see {@linkcode GcsBackendOptions} */
  constructor(options: GcsBackendOptions) {
    if (!options.bucket) throw new TypeError("gcs: bucket is required");
    const root = options.rootDirectory ?? "/";
    if (!root.startsWith("/")) {
      throw new TypeError(`gcs: root_directory must be absolute, got ${JSON.stringify(root)}`);
    }
    this.bucket = options.bucket;
    this.#root = goJoin(root);
    // Paths relative to the root; `objectKey` joins them as Go does.
    this.#namePath = createNamePath(options.namePath ?? "identity", "");
    this.#partSize = options.uploadPartSize ?? DEFAULT_GCS_PART_SIZE;
    if (!(this.#partSize > 0) || this.#partSize % GCS_CHUNK_ALIGNMENT !== 0) {
      throw new RangeError(`gcs: upload_part_size must be a multiple of 256 KiB`);
    }
    this.#listMaxKeys = options.listMaxKeys ?? DEFAULT_LIST_MAX_KEYS;
    this.#endpoint = (options.endpoint ?? DEFAULT_GCS_ENDPOINT).replace(/\/+$/, "");
    if (options.tls && !this.#endpoint.startsWith("https:")) {
      throw new TypeError("gcs: tls is set, so the endpoint must be https (no plaintext)");
    }
    this.#auth = new GcsTokenSource({
      key: options.key,
      token: options.token,
      fetch: options.fetch,
    });
    this.#retry = options.retry ?? {};
    this.#transport = new BackendTransport({
      type: "gcs",
      fetch: options.fetch,
      idleTimeoutMs: options.idleTimeoutMs,
      retry: options.retry,
      secrets: () => this.#auth.secrets(),
      describeError: describeGcsError,
      tls: options.tls,
    });
  }

  /** Retries, idle timeouts and failures of this backend's requests. */
  get stats(): BackendStats {
    return this.#transport.stats;
  }

  /** Token exchanges of the service-account key so far. */
  get tokenExchanges(): number {
    return this.#auth.exchanges;
  }

  /**
   * The object name of `name` (the contract's object key, `kraken.backend.key` on spans):
   * upstream's `path.Join(root_directory, <name path>)`.
   */
  objectKey(name: string): string {
    return goJoin(this.#root, this.#namePath.blobPath(name));
  }

  #url(route: Route, params: Record<string, string>, query: Record<string, string> = {}): string {
    const path = expand(route, { bucket: encodeURIComponent(this.bucket), ...params });
    const qs = new URLSearchParams(query).toString();
    return `${this.#endpoint}${path}${qs ? `?${qs}` : ""}`;
  }

  /** Client-span attributes of every request (the object name is in `url.full` already). */
  #attributes(_object?: string): Record<string, string> {
    return { [ATTR.gcpClientService]: "storage", [ATTR.bucket]: this.bucket };
  }

  async #headers(extra: Record<string, string> = {}): Promise<Headers> {
    const headers = new Headers(extra);
    const authorization = await this.#auth.authorization();
    if (authorization) headers.set("authorization", authorization);
    return headers;
  }

  /** Metadata of `object`, or `null` on 404. */
  async #metadata(object: string): Promise<{ size: number } | null> {
    const res = await this.#transport.request({
      method: "GET",
      url: this.#url(GCS_OBJECT_GET, { object: encodeURIComponent(object) }, { fields: "size" }),
      route: GCS_OBJECT_GET.template,
      headers: () => this.#headers(),
      expectedStatus: [404],
      attributes: this.#attributes(object),
    });
    const text = await res.text();
    if (res.status === 404) return null;
    return { size: this.#sizeOf(text, object) };
  }

  #sizeOf(text: string, object: string): number {
    let size: unknown;
    try {
      size = JSON.parse(text).size;
    } catch {
      // reported below
    }
    const n = typeof size === "string" && /^\d+$/.test(size) ? Number(size) : size;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`gcs ${this.bucket}: no size in the metadata of ${object}`);
    }
    return n;
  }

  /** The object's size, or `null` when it does not exist. */
  stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    return this.#metadata(this.objectKey(name));
  }

  /** Streams the object (`alt=media`), or the part `options` names (a `Range` request). */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    const object = this.objectKey(name);
    const start = options.offset ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new RangeError(`invalid range offset=${options.offset}`);
    }
    if (
      options.length !== undefined && !(Number.isSafeInteger(options.length) && options.length >= 0)
    ) {
      throw new RangeError(`invalid range length=${options.length}`);
    }
    if (options.length === 0) {
      // An empty range: only whether the object exists (and is long enough) matters.
      const info = await this.#metadata(object);
      if (info === null) return null;
      if (start > info.size) {
        throw new RangeError(`offset ${start} is past the end (${info.size} bytes)`);
      }
      return new Blob().stream();
    }
    const ranged = start > 0 || options.length !== undefined;
    const range = ranged
      ? `bytes=${start}-${options.length === undefined ? "" : start + options.length - 1}`
      : undefined;
    const res = await this.#transport.request({
      method: "GET",
      url: this.#url(GCS_OBJECT_GET, { object: encodeURIComponent(object) }, { alt: "media" }),
      route: GCS_OBJECT_GET.template,
      headers: () => this.#headers(range ? { range } : {}),
      expectedStatus: [404, 416],
      attributes: this.#attributes(object),
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (res.status === 416) {
      await res.body?.cancel();
      throw new RangeError(`range ${range} is outside ${object}`);
    }
    if (ranged && res.status !== 206) {
      await res.body?.cancel();
      throw new Error(`gcs ${this.bucket}: ranged download of ${object} answered ${res.status}`);
    }
    return res.body ?? new Blob().stream();
  }

  /** Stores `body` under `name`; see the module doc for how. */
  async upload(_namespace: string, name: string, body: UploadBody): Promise<void> {
    let object: string;
    try {
      object = this.objectKey(name);
    } catch (error) {
      await discardUploadBody(body, error);
      throw error;
    }
    if (isUploadSource(body)) return await this.#resumableUpload(object, body);
    const res = await this.#transport.request({
      method: "POST",
      url: this.#url(GCS_UPLOAD_START, {}, { uploadType: "media", name: object }),
      route: GCS_UPLOAD_START.template,
      headers: () => this.#headers({ "content-type": "application/octet-stream" }),
      body,
      attributes: this.#attributes(object),
    });
    const text = await res.text();
    if (body instanceof Uint8Array && this.#sizeOf(text, object) !== body.length) {
      throw new Error(`gcs ${this.bucket}: ${object} stored with the wrong size`);
    }
  }

  async #startSession(object: string, size: number): Promise<string> {
    this.uploads.sessions++;
    const res = await this.#transport.request({
      method: "POST",
      url: this.#url(GCS_UPLOAD_START, {}, { uploadType: "resumable", name: object }),
      route: GCS_UPLOAD_START.template,
      headers: () =>
        this.#headers({
          "content-type": "application/json; charset=UTF-8",
          "x-upload-content-type": "application/octet-stream",
          "x-upload-content-length": String(size),
        }),
      body: new TextEncoder().encode(JSON.stringify({ name: object })),
      attributes: this.#attributes(object),
    });
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (!location) {
      throw new Error(`gcs ${this.bucket}: resumable upload of ${object} got no session URI`);
    }
    return new URL(location, this.#endpoint).toString();
  }

  /**
   * One PUT to the session: a chunk `[start, end)` of `source`, or (without `source`) the query of
   * the stored offset. Not retried here: the caller decides from the outcome.
   */
  async #put(
    session: string,
    object: string,
    size: number,
    chunk?: { source: UploadSource; start: number; end: number },
  ): Promise<ChunkOutcome> {
    const contentRange = chunk
      ? `bytes ${chunk.start}-${chunk.end - 1}/${size}`
      : `bytes */${size}`;
    try {
      const res = await this.#transport.request({
        method: "PUT",
        url: session,
        route: GCS_UPLOAD_CHUNK.template,
        headers: () =>
          this.#headers({
            "content-range": contentRange,
            "content-length": String(chunk ? chunk.end - chunk.start : 0),
          }),
        body: chunk ? () => chunk.source.open(chunk.start, chunk.end) : null,
        // GCS documents a Content-Length on chunk PUTs; Deno's fetch sends stream bodies chunked.
        transport: nodeFetch,
        // 308 is the "stored so far" answer; 404/410 say the session is gone.
        expectedStatus: [308, 404, 410],
        attributes: this.#attributes(object),
        retry: false,
      });
      const text = await res.text();
      if (res.status === 308) return { kind: "stored", offset: storedOffset(res) };
      if (res.status === 404 || res.status === 410) {
        return { kind: "failed", error: new SessionGoneError(`session gone (${res.status})`) };
      }
      return { kind: "finished", size: this.#sizeOf(text, object) };
    } catch (error) {
      return { kind: "failed", error: error as Error };
    }
  }

  /** Whether a failed chunk or query is worth another try (the session may still be there). */
  #transient(error: Error): boolean {
    if (error instanceof SessionGoneError) return false;
    if (error instanceof BackendRequestError) return isRetryableStatus(error.status, error.code);
    return true; // network errors and idle timeouts
  }

  async #deleteObject(object: string): Promise<void> {
    await this.#transport.request({
      method: "DELETE",
      url: this.#url(GCS_OBJECT_DELETE, { object: encodeURIComponent(object) }),
      route: GCS_OBJECT_DELETE.template,
      headers: () => this.#headers(),
      expectedStatus: [404],
      attributes: this.#attributes(object),
    }).then((res) => res.body?.cancel());
  }

  async #resumableUpload(object: string, source: UploadSource): Promise<void> {
    const size = source.size;
    const attempts = this.#retry.attempts ?? 5;
    let restarts = 0;
    let session = await this.#startSession(object, size);
    let offset = 0;
    let failures = 0;
    for (;;) {
      const end = Math.min(size, offset + this.#partSize);
      let outcome: ChunkOutcome;
      if (size === 0) {
        outcome = await this.#put(session, object, size);
      } else {
        this.uploads.chunks++;
        outcome = await this.#put(session, object, size, { source, start: offset, end });
      }
      if (outcome.kind === "failed" && this.#transient(outcome.error)) {
        // Learn what the server kept before sending anything again.
        for (;;) {
          failures++;
          if (failures >= attempts) throw outcome.error;
          await new Promise((r) => setTimeout(r, backoffMs(failures, this.#retry)));
          this.uploads.queries++;
          const queried = await this.#put(session, object, size);
          if (queried.kind === "failed" && this.#transient(queried.error)) continue;
          if (queried.kind === "stored") this.uploads.resumes++;
          outcome = queried;
          break;
        }
      }
      if (outcome.kind === "stored") {
        if (outcome.offset > size || outcome.offset < 0) {
          throw new Error(`gcs ${this.bucket}: server reports ${outcome.offset} of ${size} bytes`);
        }
        // A successful chunk resets the failure budget: a long upload may survive many cuts.
        if (outcome.offset >= end) failures = 0;
        offset = outcome.offset;
        continue;
      }
      if (outcome.kind === "finished" && outcome.size === size) return;
      // The session is gone, or finished short: nothing partial may stay under the name.
      if (outcome.kind === "failed" && !(outcome.error instanceof SessionGoneError)) {
        throw outcome.error;
      }
      if (outcome.kind === "finished") await this.#deleteObject(object);
      if (++restarts > 2) {
        throw new Error(
          `gcs ${this.bucket}: upload of ${object} restarted ${
            restarts - 1
          } times without finishing`,
        );
      }
      this.uploads.restarts++;
      // Counted and logged as a retry of the upload (kraken_backend_retries_total).
      this.stats.record({
        kind: "retry",
        type: this.type,
        method: GCS_UPLOAD_START.method,
        route: GCS_UPLOAD_START.template,
        attempt: restarts,
        timeout: false,
        error: new Error(
          outcome.kind === "finished"
            ? `resumable upload finished with ${outcome.size} of ${size} bytes; starting over`
            : "resumable upload session gone; starting over",
        ),
      });
      session = await this.#startSession(object, size);
      offset = 0;
    }
  }

  /**
   * Names under `prefix`: every page of `list_max_keys` without `maxKeys`, else pages until that
   * many (`collectPages`), `pageToken` as the continuation token.
   */
  list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const base = goJoin(this.#root, this.#namePath.basePath);
    const full = goJoin(base, prefix);
    // Keep a trailing slash of the caller's prefix; path.Join would drop it.
    const objectPrefix = prefix.endsWith("/") && !full.endsWith("/") ? `${full}/` : full;
    return collectPages(options, this.#listMaxKeys, async (token, limit) => {
      const query: Record<string, string> = {
        prefix: objectPrefix,
        maxResults: String(limit),
        fields: "items(name),nextPageToken",
      };
      if (token) query.pageToken = token;
      const res = await this.#transport.request({
        method: "GET",
        url: this.#url(GCS_OBJECT_LIST, {}, query),
        route: GCS_OBJECT_LIST.template,
        headers: () => this.#headers(),
        attributes: this.#attributes(),
      });
      const page = JSON.parse(await res.text()) as {
        items?: { name?: unknown }[];
        nextPageToken?: unknown;
      };
      const names: string[] = [];
      for (const item of page.items ?? []) {
        if (typeof item.name !== "string") continue;
        const rel = this.#relative(item.name);
        const name = rel === null ? null : this.#namePath.nameFromBlobPath(rel);
        if (name !== null) names.push(name);
      }
      return { names, token: typeof page.nextPageToken === "string" ? page.nextPageToken : "" };
    });
  }

  /** `object` relative to the root, or `null` when it is not under it. */
  #relative(object: string): string | null {
    if (this.#root === "/") return object.startsWith("/") ? object.slice(1) : null;
    return object.startsWith(`${this.#root}/`) ? object.slice(this.#root.length + 1) : null;
  }

  /** Ready when the bucket's metadata can be read with the credentials. */
  async ready(): Promise<void> {
    const res = await this.#transport.request({
      method: "GET",
      url: this.#url(GCS_BUCKET_GET, {}, { fields: "name" }),
      route: GCS_BUCKET_GET.template,
      headers: () => this.#headers(),
      attributes: this.#attributes(),
    });
    await res.body?.cancel();
  }
}
