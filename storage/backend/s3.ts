/**
 * The `s3` backend (upstream `lib/backend/s3backend`): any S3-compatible object store over its REST
 * API, signed with SigV4 (`sigv4.ts`), every request through `transport.ts` (idle timeout, retries
 * with backoff on 5xx/429/`SlowDown`/network errors, the store's own error code and message).
 *
 * | Operation | S3 calls |
 * |---|---|
 * | stat | `HeadObject` (404 → not found) |
 * | download | `GetObject`, with `Range: bytes=a-b` for a range; streamed |
 * | upload ≤ `upload_part_size` | `PutObject` |
 * | upload > `upload_part_size` | `ListMultipartUploads` of the key → `ListParts` of an unfinished upload (resume) or `CreateMultipartUpload`; `UploadPart` for each missing part (`upload_concurrency` at a time); `CompleteMultipartUpload` |
 * | list | `ListObjectsV2` with `prefix`, `max-keys`, `continuation-token` |
 * | ready | `HeadBucket` (a missing bucket or refused credentials fail) |
 * | sweepUploads | `ListMultipartUploads` under the layout; `AbortMultipartUpload` of the old ones no task resumes |
 *
 * **Resuming.** A multipart upload is keyed by the object key, and the key is derived from the name
 * (a content digest on origins), so the parts an earlier attempt (or an earlier process, killed)
 * stored hold the same bytes. A new attempt lists them and sends only the parts missing or of the
 * wrong size; other unfinished uploads of the key are aborted. A part is streamed from the blob store
 * file (`UploadSource`) with its `Content-Length` (node:http transport), so memory does not grow
 * with the part size. When the store refuses a part for good (a 4xx), or the source is gone, the
 * upload is aborted; when it fails on retryable errors it is left for the next attempt to resume.
 *
 * Object keys are `<root_directory>/<name path>` without the leading `/`, as upstream.
 *
 * ```ts
 * import { S3Backend } from "./s3.ts";
 * const s3 = new S3Backend({ region: "us-east-1", bucket: "blobs", endpoint: "http://127.0.0.1:9000",
 *   forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
 * await s3.stat("ns", "abc123");
 * ```
 *
 * @module
 */

import { parseByteSize } from "../../common/byte_size.ts";
import {
  bool,
  custom,
  duration,
  type Infer,
  int,
  object,
  oneOf,
  path,
  record,
  string,
} from "../../common/schema.ts";
import { nodeFetch } from "../../http/node_fetch.ts";
import type { ClientTlsConfig } from "../../http/tls_config.ts";
import { ATTR } from "../../tracing/names.ts";
import {
  type Backend,
  type BackendFetch,
  type BackendStats,
  type BlobInfo,
  bytesSource,
  collectPages,
  DEFAULT_LIST_MAX_KEYS,
  discardUploadBody,
  type DownloadOptions,
  isUploadSource,
  type ListOptions,
  type ListResult,
  resolveRange,
  type UploadBody,
  type UploadResult,
  type UploadSource,
  type UploadSweepPolicy,
  type UploadSweepResult,
} from "./backend.ts";
import { resolveAwsCredentials } from "./aws_credentials.ts";
import { createNamePath, NAME_PATH_IDS, type NamePath, type NamePathId } from "./namepath.ts";
import {
  type AwsCredentials,
  sha256Hex,
  signRequest,
  UNSIGNED_PAYLOAD,
  uriEncode,
} from "./sigv4.ts";
import {
  BackendRequestError,
  BackendTransport,
  type ErrorDetail,
  type RequestBody,
  type RetryOptions,
} from "./transport.ts";

/** Upstream's default part size of uploads and downloads (64 MiB). */
export const DEFAULT_PART_SIZE = 64 * 1024 * 1024;
/** Upstream's default number of parts in flight. */
export const DEFAULT_CONCURRENCY = 10;
/** The smallest part S3 accepts (but for the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** The most parts one multipart upload may have. */
export const MAX_PARTS = 10_000;

/** Options of {@linkcode S3Backend}. */
export interface S3BackendOptions {
  /** Region of the bucket (signing and the default endpoint). */
  region: string;
  /** Bucket name. */
  bucket: string;
  /**
   * Endpoint URL or host (default `s3.<region>.amazonaws.com`). Without a scheme, `https://` unless
   * `disableSsl`.
   */
  endpoint?: string;
  /** Plain HTTP to an endpoint given without a scheme. */
  disableSsl?: boolean;
  /** `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>/<key>`. */
  forcePathStyle?: boolean;
  /** Absolute directory of every key (default `/`). */
  rootDirectory?: string;
  /** Name-path strategy (default `identity`). */
  namePath?: NamePathId;
  /** Part size of multipart uploads, and the size above which they are used (default 64 MiB). */
  uploadPartSize?: number;
  /** Parts uploaded at once (default 10). */
  uploadConcurrency?: number;
  /** Keys per `ListObjectsV2` page when listing everything (default 250). */
  listMaxKeys?: number;
  /** Credentials, or a function giving them (re-read at each request). */
  credentials: AwsCredentials | (() => AwsCredentials);
  /** The fetch to use; roles pass a traced one (default `plainFetch`). */
  fetch?: BackendFetch;
  /** Idle timeout of each request, ms (default 60 s). */
  idleTimeoutMs?: number;
  /** Retry policy of each request. */
  retry?: RetryOptions;
  /** The sweep of abandoned multipart uploads (default hourly, a day old, 100 a sweep). */
  uploadSweep?: Partial<UploadSweepPolicy>;
  /** The clock of the sweep's age check, ms since the epoch (tests). */
  now?: () => number;
  /** TLS settings for an `https` endpoint (CA, name, client certificate). */
  tls?: ClientTlsConfig;
}

/** An unfinished multipart upload found in the bucket. */
interface PendingUpload {
  key: string;
  uploadId: string;
  initiated: string;
}

/** Upstream has no sweep; ours: hourly, uploads a day old, 100 a sweep. */
const DEFAULT_UPLOAD_SWEEP: UploadSweepPolicy = {
  intervalMs: 60 * 60_000,
  minAgeMs: 24 * 60 * 60_000,
  max: 100,
};

const XML_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

function xmlDecode(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return XML_ENTITIES[e];
  });
}

function xmlEncode(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => `&${Object.entries(XML_ENTITIES).find(([, v]) => v === c)![0]};`,
  );
}

/** Inner texts of every `<tag>…</tag>` in `xml` (no nesting of the same tag in S3's answers). */
function xmlAll(xml: string, tag: string): string[] {
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g");
  return [...xml.matchAll(re)].map((m) => m[1]);
}

function xmlOne(xml: string, tag: string): string | undefined {
  const v = xmlAll(xml, tag)[0];
  return v === undefined ? undefined : xmlDecode(v.trim());
}

/** Reads an S3 error answer (`<Error><Code/><Message/></Error>`; a HEAD has no body). */
export function describeS3Error(status: number, body: string): ErrorDetail {
  const code = xmlOne(body, "Code");
  const message = xmlOne(body, "Message");
  if (code !== undefined || message !== undefined) return { code, message: message ?? "" };
  const byStatus: Record<number, ErrorDetail> = {
    403: {
      code: "Forbidden",
      message: "access denied (check the credentials and the bucket policy)",
    },
    404: { code: "NotFound", message: "not found" },
    503: { code: "ServiceUnavailable", message: "service unavailable" },
  };
  return byStatus[status] ?? { message: body.slice(0, 500) };
}

/** A {@linkcode Backend} over an S3-compatible object store. */
export class S3Backend implements Backend {
  /** Always `s3`. */
  readonly type = "s3";
  /** The bucket name. */
  readonly bucket: string;
  readonly #region: string;
  readonly #base: URL;
  readonly #pathStyle: boolean;
  readonly #namePath: NamePath;
  readonly #partSize: number;
  readonly #concurrency: number;
  readonly #listMaxKeys: number;
  readonly #credentials: () => AwsCredentials;
  readonly #transport: BackendTransport;
  readonly #now: () => number;
  /** The sweep of abandoned multipart uploads (see {@linkcode S3Backend.sweepUploads}). */
  readonly uploadSweep: UploadSweepPolicy;

  /** Retries, idle timeouts and failures of this backend's requests. */
  get stats(): BackendStats {
    return this.#transport.stats;
  }

  /** @param options see {@linkcode S3BackendOptions} */
  constructor(options: S3BackendOptions) {
    if (!options.region) throw new TypeError("s3: region is required");
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket ?? "")) {
      throw new TypeError(`s3: invalid bucket name ${JSON.stringify(options.bucket)}`);
    }
    const root = options.rootDirectory ?? "/";
    if (!root.startsWith("/")) {
      throw new TypeError(
        `s3: root_directory must be an absolute path, got ${JSON.stringify(root)}`,
      );
    }
    this.bucket = options.bucket;
    this.#region = options.region;
    const endpoint = options.endpoint || `s3.${options.region}.amazonaws.com`;
    this.#base = new URL(
      /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)
        ? endpoint
        : `${options.disableSsl ? "http" : "https"}://${endpoint}`,
    );
    if (options.tls && this.#base.protocol !== "https:") {
      throw new TypeError("s3: tls is set, so the endpoint must be https (no plaintext)");
    }
    this.#pathStyle = options.forcePathStyle ?? false;
    // Keys have no leading `/` (upstream strips it), so neither has the layout's root.
    this.#namePath = createNamePath(options.namePath ?? "identity", root.replace(/^\/+/, ""));
    this.#partSize = options.uploadPartSize ?? DEFAULT_PART_SIZE;
    if (!(this.#partSize >= MIN_PART_SIZE)) {
      throw new RangeError(`s3: upload_part_size must be at least 5MB, got ${this.#partSize}`);
    }
    this.#concurrency = Math.max(1, options.uploadConcurrency ?? DEFAULT_CONCURRENCY);
    this.#listMaxKeys = Math.max(1, options.listMaxKeys ?? DEFAULT_LIST_MAX_KEYS);
    this.uploadSweep = { ...DEFAULT_UPLOAD_SWEEP, ...options.uploadSweep };
    this.#now = options.now ?? Date.now;
    const creds = options.credentials;
    this.#credentials = typeof creds === "function" ? creds : () => creds;
    this.#transport = new BackendTransport({
      type: "s3",
      fetch: options.fetch,
      idleTimeoutMs: options.idleTimeoutMs,
      retry: options.retry,
      describeError: describeS3Error,
      secrets: () => {
        const c = this.#credentials();
        return [c.secretAccessKey, c.sessionToken ?? ""];
      },
      tls: options.tls,
    });
  }

  /** The object key of `name`: the name path under the root directory, without the leading `/`. */
  objectKey(name: string): string {
    return this.#namePath.blobPath(name);
  }

  /** The URL of `key` (or of the bucket for `""`) with `query`. */
  #url(key: string, query: Record<string, string> = {}): URL {
    const path = key.split("/").map(uriEncode).join("/");
    const url = new URL(this.#base.href);
    const basePath = url.pathname.replace(/\/+$/, "");
    if (this.#pathStyle) {
      url.pathname = `${basePath}/${this.bucket}${key === "" ? "" : `/${path}`}`;
    } else {
      url.hostname = `${this.bucket}.${url.hostname}`;
      url.pathname = `${basePath}/${path}`;
    }
    const search = new URLSearchParams(query);
    url.search = search.toString().replaceAll("+", "%20");
    return url;
  }

  /**
   * One signed request. `rpcMethod` is the S3 operation (`PutObject`): the client span's name is
   * `METHOD /{bucket}/{key+}` and it carries the `aws.s3.*` and `rpc.*` attributes.
   */
  #request(
    rpcMethod: string,
    method: string,
    key: string,
    options: {
      query?: Record<string, string>;
      headers?: Record<string, string>;
      body?: RequestBody | null;
      size?: number;
      expectedStatus?: number[];
      retry?: boolean;
    } = {},
  ): Promise<Response> {
    const url = this.#url(key, options.query);
    const body = options.body ?? null;
    const headers: Record<string, string> = { ...options.headers };
    if (options.size !== undefined) headers["content-length"] = String(options.size);
    const sign = async () => {
      const payloadHash = body instanceof Uint8Array
        ? await sha256Hex(body)
        : body === null
        ? undefined
        : UNSIGNED_PAYLOAD;
      return signRequest({
        method,
        url,
        region: this.#region,
        credentials: this.#credentials(),
        headers,
        payloadHash,
      });
    };
    return this.#transport.request({
      method,
      url: url.href,
      route: key === "" ? "/{bucket}" : "/{bucket}/{key+}",
      headers: sign,
      body,
      expectedStatus: options.expectedStatus,
      retry: options.retry,
      transport: nodeFetch,
      attributes: {
        [ATTR.rpcSystem]: "aws-api",
        [ATTR.rpcService]: "S3",
        [ATTR.rpcMethod]: rpcMethod,
        [ATTR.awsS3Bucket]: this.bucket,
        ...(key === "" ? {} : { [ATTR.awsS3Key]: key }),
        ...(options.query?.partNumber
          ? { [ATTR.awsS3PartNumber]: Number(options.query.partNumber) }
          : {}),
        ...(options.query?.uploadId ? { [ATTR.awsS3UploadId]: options.query.uploadId } : {}),
      },
    });
  }

  /** `HeadObject`; the size is the `Content-Length`. */
  async stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    const res = await this.#request("HeadObject", "HEAD", this.objectKey(name), {
      expectedStatus: [404],
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    const raw = res.headers.get("content-length") ?? "";
    if (!/^\d+$/.test(raw)) {
      throw new Error(`s3 ${this.bucket}: HeadObject without a Content-Length`);
    }
    return { size: Number(raw) };
  }

  /** `GetObject`, with a `Range` header for a range; the body streams as it arrives. */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    const key = this.objectKey(name);
    const headers: Record<string, string> = {};
    const ranged = options.offset !== undefined || options.length !== undefined;
    if (ranged) {
      const info = await this.stat(_namespace, name);
      if (info === null) return null;
      const [start, end] = resolveRange(options, info.size);
      if (start === end) return new Blob().stream();
      headers["range"] = `bytes=${start}-${end - 1}`;
    }
    const res = await this.#request("GetObject", "GET", key, { headers, expectedStatus: [404] });
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    return res.body ?? new Blob().stream();
  }

  /**
   * `PutObject` for a body up to the part size, else a multipart upload that resumes an unfinished
   * one of the key (see the module doc).
   */
  async upload(_namespace: string, name: string, body: UploadBody): Promise<UploadResult> {
    let key: string;
    try {
      key = this.objectKey(name);
    } catch (error) {
      await discardUploadBody(body, error);
      throw error;
    }
    if (body instanceof ReadableStream) return await this.#uploadStream(key, body);
    const source = isUploadSource(body) ? body : bytesSource(body);
    if (source.size <= this.#partSize) {
      const res = await this.#request("PutObject", "PUT", key, {
        body: body instanceof Uint8Array ? body : () => source.open(),
        size: source.size,
      });
      await res.body?.cancel();
      return { key, parts: 1, partsSent: 1 };
    }
    return await this.#uploadMultipart(key, source);
  }

  /** A stream of unknown size: parts of the part size buffered one at a time (not resumable). */
  async #uploadStream(key: string, body: ReadableStream<Uint8Array>): Promise<UploadResult> {
    const reader = body.getReader();
    let carry: Uint8Array | null = null;
    const nextPart = async (): Promise<Uint8Array | null> => {
      const chunks: Uint8Array[] = carry ? [carry] : [];
      let size = carry?.length ?? 0;
      carry = null;
      while (size < this.#partSize) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        size += value.length;
      }
      if (size === 0) return null;
      const all = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      if (size > this.#partSize) {
        carry = all.slice(this.#partSize);
        return all.subarray(0, this.#partSize);
      }
      return all;
    };
    const first = await nextPart();
    const second = first !== null && first.length === this.#partSize ? await nextPart() : null;
    if (second === null) {
      const bytes = first ?? new Uint8Array();
      const res = await this.#request("PutObject", "PUT", key, { body: bytes, size: bytes.length });
      await res.body?.cancel();
      return { key, parts: 1, partsSent: 1 };
    }
    const uploadId = await this.#createUpload(key);
    const etags: string[] = [];
    try {
      let part: Uint8Array | null = first;
      let pending: Uint8Array | null = second;
      while (part !== null) {
        etags.push(await this.#uploadPart(key, uploadId, etags.length + 1, part, part.length));
        part = pending;
        pending = part === null ? null : await nextPart();
      }
      await this.#completeUpload(key, uploadId, etags);
    } catch (error) {
      await this.#abortUpload(key, uploadId).catch(() => {});
      await reader.cancel(error).catch(() => {});
      throw error;
    }
    return { key, parts: etags.length, partsSent: etags.length };
  }

  async #uploadMultipart(key: string, source: UploadSource): Promise<UploadResult> {
    const total = Math.ceil(source.size / this.#partSize);
    if (total > MAX_PARTS) {
      throw new RangeError(
        `s3: ${source.size} bytes need ${total} parts of ${this.#partSize}; at most ${MAX_PARTS} (raise upload_part_size)`,
      );
    }
    const partLength = (n: number) =>
      n < total ? this.#partSize : source.size - (total - 1) * this.#partSize;
    // Resume the newest unfinished upload of the key; abort the others.
    const pending = (await this.#listUploads(key)).filter((u) => u.key === key).sort((a, b) =>
      b.initiated.localeCompare(a.initiated)
    );
    for (const stale of pending.slice(1)) {
      await this.#abortUpload(key, stale.uploadId).catch(() => {});
    }
    let uploadId = pending[0]?.uploadId;
    const etags = new Map<number, string>();
    if (uploadId !== undefined) {
      for (const part of await this.#listParts(key, uploadId)) {
        if (part.number <= total && part.size === partLength(part.number)) {
          etags.set(part.number, part.etag);
        }
      }
    } else {
      uploadId = await this.#createUpload(key);
    }
    const id = uploadId;
    const missing = Array.from({ length: total }, (_, i) => i + 1).filter((n) => !etags.has(n));
    let sent = 0;
    try {
      let next = 0;
      const worker = async () => {
        while (next < missing.length) {
          const n = missing[next++];
          const start = (n - 1) * this.#partSize;
          const length = partLength(n);
          etags.set(
            n,
            await this.#uploadPart(key, id, n, () => source.open(start, start + length), length),
          );
          sent++;
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(this.#concurrency, missing.length) }, worker),
      );
      await this.#completeUpload(
        key,
        id,
        Array.from({ length: total }, (_, i) => etags.get(i + 1)!),
      );
    } catch (error) {
      // Refused for good (a 4xx) or no source any more: this upload cannot finish, so abort it.
      // Retryable failures leave it for the next attempt to resume.
      const permanent = (error instanceof BackendRequestError && !error.retryable) ||
        (error as Error)?.name === "BlobNotFoundError";
      if (permanent) await this.#abortUpload(key, id).catch(() => {});
      throw error;
    }
    return { key, parts: total, partsSent: sent, partsResumed: total - missing.length };
  }

  async #createUpload(key: string): Promise<string> {
    const res = await this.#request("CreateMultipartUpload", "POST", key, {
      query: { uploads: "" },
    });
    const id = xmlOne(await res.text(), "UploadId");
    if (!id) throw new Error(`s3 ${this.bucket}: CreateMultipartUpload answered no UploadId`);
    return id;
  }

  async #uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | (() => Promise<ReadableStream<Uint8Array>>),
    size: number,
  ): Promise<string> {
    const res = await this.#request("UploadPart", "PUT", key, {
      query: { partNumber: String(partNumber), uploadId },
      body,
      size,
    });
    await res.body?.cancel();
    const etag = res.headers.get("etag");
    if (!etag) throw new Error(`s3 ${this.bucket}: UploadPart ${partNumber} answered no ETag`);
    return etag;
  }

  async #completeUpload(key: string, uploadId: string, etags: string[]): Promise<void> {
    const xml = `<CompleteMultipartUpload>${
      etags.map((etag, i) =>
        `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEncode(etag)}</ETag></Part>`
      ).join("")
    }</CompleteMultipartUpload>`;
    const body = new TextEncoder().encode(xml);
    const res = await this.#request("CompleteMultipartUpload", "POST", key, {
      query: { uploadId },
      body,
      size: body.length,
      headers: { "content-type": "application/xml" },
    });
    // S3 may answer 200 with an error document once the parts are joined.
    const text = await res.text();
    const code = xmlOne(text, "Code");
    if (/<Error>/.test(text) && code) {
      const detail = describeS3Error(res.status, text);
      throw new BackendRequestError("POST", this.#url(key).href, 200, {
        ...detail,
        retryable: code === "InternalError" || code === "SlowDown",
      });
    }
  }

  async #abortUpload(key: string, uploadId: string): Promise<void> {
    const res = await this.#request("AbortMultipartUpload", "DELETE", key, {
      query: { uploadId },
      expectedStatus: [404],
    });
    await res.body?.cancel();
  }

  /** Unfinished multipart uploads of the keys starting with `prefix`, in key order. */
  async #listUploads(prefix: string): Promise<PendingUpload[]> {
    const found: PendingUpload[] = [];
    let keyMarker = "";
    let idMarker = "";
    while (true) {
      const query: Record<string, string> = { uploads: "", prefix };
      if (keyMarker) query["key-marker"] = keyMarker;
      if (idMarker) query["upload-id-marker"] = idMarker;
      const res = await this.#request("ListMultipartUploads", "GET", "", { query });
      const xml = await res.text();
      for (const upload of xmlAll(xml, "Upload")) {
        found.push({
          key: xmlOne(upload, "Key") ?? "",
          uploadId: xmlOne(upload, "UploadId") ?? "",
          initiated: xmlOne(upload, "Initiated") ?? "",
        });
      }
      if (xmlOne(xml, "IsTruncated") !== "true") break;
      keyMarker = xmlOne(xml, "NextKeyMarker") ?? "";
      idMarker = xmlOne(xml, "NextUploadIdMarker") ?? "";
      if (!keyMarker && !idMarker) break;
    }
    return found.filter((u) => u.uploadId !== "" && u.key !== "");
  }

  /**
   * Aborts the multipart uploads under the name layout that no write-back will resume: started at
   * least `uploadSweep.minAgeMs` ago (an upload in flight on another origin sharing the bucket is
   * younger), of a name `keep` turns down (no pending write-back task here), at most
   * `uploadSweep.max` of them. Keys outside the layout are not touched. A resumable upload that a
   * task still needs is left alone; one aborted by mistake (another origin's, older than the age)
   * is started over by its task, nothing is lost.
   */
  async sweepUploads(keep: (name: string) => boolean): Promise<UploadSweepResult> {
    const uploads = await this.#listUploads(this.#namePath.basePath);
    const result: UploadSweepResult = { found: 0, aborted: 0, kept: 0, limited: false };
    const cutoff = this.#now() - this.uploadSweep.minAgeMs;
    for (const upload of uploads) {
      const name = this.#namePath.nameFromBlobPath(upload.key);
      if (name === null) continue;
      result.found++;
      const initiated = Date.parse(upload.initiated);
      // An unreadable start time counts as young: only what is known to be old is aborted.
      if (!(initiated <= cutoff) || keep(name)) {
        result.kept++;
        continue;
      }
      if (result.aborted >= this.uploadSweep.max) {
        result.limited = true;
        result.kept++;
        continue;
      }
      await this.#abortUpload(upload.key, upload.uploadId);
      result.aborted++;
    }
    return result;
  }

  /** Parts already stored for an upload. */
  async #listParts(
    key: string,
    uploadId: string,
  ): Promise<{ number: number; size: number; etag: string }[]> {
    const parts: { number: number; size: number; etag: string }[] = [];
    let marker = "";
    while (true) {
      const query: Record<string, string> = { uploadId };
      if (marker) query["part-number-marker"] = marker;
      const res = await this.#request("ListParts", "GET", key, { query, expectedStatus: [404] });
      if (res.status === 404) {
        await res.body?.cancel();
        return [];
      }
      const xml = await res.text();
      for (const part of xmlAll(xml, "Part")) {
        parts.push({
          number: Number(xmlOne(part, "PartNumber")),
          size: Number(xmlOne(part, "Size")),
          etag: xmlOne(part, "ETag") ?? "",
        });
      }
      if (xmlOne(xml, "IsTruncated") !== "true") break;
      marker = xmlOne(xml, "NextPartNumberMarker") ?? "";
      if (!marker) break;
    }
    return parts.filter((p) => Number.isSafeInteger(p.number) && p.etag !== "");
  }

  /**
   * `ListObjectsV2` under the name layout's base path plus `prefix`; keys map back to names (keys
   * outside the layout are skipped). Without `maxKeys` every page is read.
   */
  list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const base = [this.#namePath.basePath, prefix.replace(/^\/+|\/+$/g, "")]
      .filter((p) => p !== "").join("/");
    return collectPages(options, this.#listMaxKeys, async (token, limit) => {
      const query: Record<string, string> = {
        "list-type": "2",
        prefix: base,
        "max-keys": String(limit),
      };
      if (token) query["continuation-token"] = token;
      const res = await this.#request("ListObjectsV2", "GET", "", { query });
      const xml = await res.text();
      const names: string[] = [];
      for (const entry of xmlAll(xml, "Contents")) {
        const key = xmlOne(entry, "Key");
        const name = key === undefined ? null : this.#namePath.nameFromBlobPath(key);
        if (name !== null) names.push(name);
      }
      const next = xmlOne(xml, "IsTruncated") === "true"
        ? xmlOne(xml, "NextContinuationToken") ?? ""
        : "";
      return { names, token: next };
    });
  }

  /** `HeadBucket`: fails when the bucket is missing or the credentials are refused. */
  async ready(): Promise<void> {
    try {
      const res = await this.#request("HeadBucket", "HEAD", "");
      await res.body?.cancel();
    } catch (error) {
      if (error instanceof BackendRequestError && error.status === 404) {
        throw new Error(`s3: bucket ${this.bucket} does not exist`, { cause: error });
      }
      throw error;
    }
  }
}

const byteSize = custom("size", (raw) => {
  if (typeof raw !== "number" && typeof raw !== "string") throw new TypeError("must be a size");
  return parseByteSize(raw);
});

/** The `backend.s3` block, upstream's keys (`lib/backend/s3backend.Config`) plus a few of ours. */
export const s3BackendSchema = object({
  username: string().optional().describe(
    "Selects the credentials: `auth.s3.<username>.s3` of the role config (upstream), else the " +
      "profile of that name in the credentials file.",
  ),
  region: string().describe("Region of the bucket (signing, and the default endpoint)."),
  bucket: string().describe("Bucket name."),
  endpoint: string().optional("`s3.<region>.amazonaws.com`").describe(
    "Endpoint URL or host of an S3-compatible store (`http://127.0.0.1:9000`).",
  ),
  disable_ssl: bool().default(false).describe("Plain HTTP to an endpoint given without a scheme."),
  force_path_style: bool().default(false).describe(
    "Path-style URLs (`<endpoint>/<bucket>/<key>`) instead of virtual-host ones " +
      "(`<bucket>.<endpoint>/<key>`); most self-hosted stores want it.",
  ),
  root_directory: string().default("/").check((v) =>
    v.startsWith("/") ? undefined : "must be an absolute path"
  ).describe("Directory of every key in the bucket (keys have no leading `/`)."),
  name_path: oneOf(NAME_PATH_IDS).default("identity").describe(
    "Layout of names under `root_directory` (`identity`, `sharded_docker_blob`, `docker_tag`).",
  ),
  upload_part_size: byteSize.default("64MB").check((v) =>
    v >= MIN_PART_SIZE ? undefined : "must be at least 5MB (S3's smallest part)"
  ).describe(
    "Part size of multipart uploads; a larger object is uploaded in parts (resumable), a " +
      "smaller one with one `PutObject`. Parts stream from the cache: memory does not grow with it.",
  ),
  upload_concurrency: int({ min: 1 }).default(10).describe(
    "Parts uploaded at once. A killed upload re-sends at most this many parts when it resumes.",
  ),
  download_part_size: byteSize.optional("`64MB`").describe(
    "Accepted for upstream configs; downloads stream in one request.",
  ),
  download_concurrency: int({ min: 1 }).optional("`10`").describe(
    "Accepted for upstream configs; downloads stream in one request.",
  ),
  buffer_guard: byteSize.optional("`10MB`").describe(
    "Accepted for upstream configs; downloads stream, nothing is buffered.",
  ),
  list_max_keys: int({ min: 1 }).default(DEFAULT_LIST_MAX_KEYS).describe(
    "Keys per `ListObjectsV2` page.",
  ),
  credentials_file: path().optional().describe(
    "AWS shared-credentials file (INI) to read the keys from (profile `username`, else " +
      "`AWS_PROFILE`, else `default`). Without it and without an `auth` block: " +
      "`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then " +
      "`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.",
  ),
  idle_timeout: duration({ positive: true }).optional("`60s`").describe(
    "A request fails after making no progress for this long (it is then retried).",
  ),
  multipart_sweep_interval: duration().default("1h").describe(
    "How often an origin aborts abandoned multipart uploads (of blobs it has no write-back " +
      "task for, e.g. dropped from the cache); the first sweep runs at start-up. `0s`: never.",
  ),
  multipart_sweep_min_age: duration().default("24h").describe(
    "Only multipart uploads started at least this long ago are swept (uploads in flight on " +
      "other origins sharing the bucket are younger).",
  ),
  multipart_sweep_max: int({ min: 1 }).default(100).describe(
    "Most multipart uploads one sweep aborts (the rest wait for the next sweep).",
  ),
}, {
  rename: {
    disable_ssl: "disableSsl",
    force_path_style: "forcePathStyle",
    root_directory: "rootDirectory",
    name_path: "namePath",
    upload_part_size: "uploadPartSize",
    upload_concurrency: "uploadConcurrency",
    download_part_size: "downloadPartSize",
    download_concurrency: "downloadConcurrency",
    buffer_guard: "bufferGuard",
    list_max_keys: "listMaxKeys",
    credentials_file: "credentialsFile",
    idle_timeout: "idleTimeoutMs",
    multipart_sweep_interval: "multipartSweepIntervalMs",
    multipart_sweep_min_age: "multipartSweepMinAgeMs",
    multipart_sweep_max: "multipartSweepMax",
  },
});

/** A validated `backend.s3` block. */
export type S3BackendConfig = Infer<typeof s3BackendSchema>;

/** The role config's `auth.s3` block, upstream's shape: username → `{s3: {aws_… keys}}`. */
export const s3AuthSchema = record(object({
  s3: object({
    aws_access_key_id: string().describe("Access key id."),
    aws_secret_access_key: string().describe("Secret access key. Never logged or traced."),
    aws_session_token: string().optional().describe("Session token of temporary credentials."),
    aws: string().optional().describe("Accepted for upstream configs (a label)."),
  }),
}));

/** A validated `auth.s3` block. */
export type S3AuthConfig = Infer<typeof s3AuthSchema>;

/** Builds an {@linkcode S3Backend} from its config block, resolving its credentials. */
export function s3BackendFromConfig(
  config: S3BackendConfig & { tls?: ClientTlsConfig },
  options: {
    fetch?: BackendFetch;
    auth?: S3AuthConfig;
    env?: (name: string) => string | undefined;
  } = {},
): S3Backend {
  const auth = Object.fromEntries(
    Object.entries(options.auth ?? {}).map(([user, { s3 }]) => [user, {
      accessKeyId: s3.aws_access_key_id,
      secretAccessKey: s3.aws_secret_access_key,
      sessionToken: s3.aws_session_token,
    }]),
  );
  const credentials = resolveAwsCredentials({
    username: config.username,
    auth,
    credentialsFile: config.credentialsFile,
    env: options.env,
  });
  return new S3Backend({
    ...config,
    credentials,
    fetch: options.fetch,
    uploadSweep: {
      intervalMs: config.multipartSweepIntervalMs,
      minAgeMs: config.multipartSweepMinAgeMs,
      max: config.multipartSweepMax,
    },
  });
}
