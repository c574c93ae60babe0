/**
 * Upstream's read-only `http` backend: blobs are fetched from a URL made by putting the name into
 * a template, `download_url: "http://cdn.example/blobs/%s"` (Go's `%s`; `%%` is a literal `%`).
 *
 * | Operation | Request | Answer |
 * |---|---|---|
 * | stat | `HEAD <url>` | 200 (size from `Content-Length`, 0 if absent), 404 → absent; 405/501 (no HEAD) → exists, size 0 |
 * | download | `GET <url>` | the bytes, or 404 → absent |
 * | upload, list | — | refused, as upstream |
 *
 * Upstream's stat always answers "exists, size 0" without a request; a HEAD gives the same for a
 * server without HEAD and a real answer otherwise, so a blob the server lacks is a 404 at once
 * rather than a failed download.
 *
 * ```ts
 * import { HttpBackend } from "./http.ts";
 * const backend = new HttpBackend({ downloadUrl: "http://127.0.0.1:8000/blobs/%s" });
 * await backend.stat("ns", "abc123"); // { size } or null
 * ```
 *
 * @module
 */

import { bool, duration, type Infer, int, number, object, string } from "../../common/schema.ts";
import {
  type Backend,
  type BackendFetch,
  type BackendStats,
  type BlobInfo,
  cutRange,
  discardUploadBody,
  type DownloadOptions,
  type ListResult,
  readinessProbeName,
  ReadOnlyBackendError,
  type UploadBody,
} from "./backend.ts";
import type { ClientTlsConfig } from "../../http/tls_config.ts";
import { BackendTransport } from "./transport.ts";

/** Default `download_timeout`: upstream's. */
export const DEFAULT_HTTP_DOWNLOAD_TIMEOUT_MS = 180_000;

/** Fills a Go-style `%s` template; `%%` is a literal `%`. */
export function fillUrlTemplate(template: string, name: string): string {
  return template.replace(/%%|%s/g, (m) => (m === "%%" ? "%" : name));
}

/** Why `template` is not a usable download URL template, or undefined when it is. */
export function urlTemplateProblem(template: string): string | undefined {
  const verbs = template.replace(/%%/g, "").match(/%./g) ?? [];
  if (verbs.length !== 1 || verbs[0] !== "%s") {
    return `must contain exactly one %s (the name), got ${JSON.stringify(template)}`;
  }
  let url: URL;
  try {
    url = new URL(fillUrlTemplate(template, "name"));
  } catch {
    return `is not a URL: ${JSON.stringify(template)}`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `must be an http or https URL, got ${JSON.stringify(template)}`;
  }
  return undefined;
}

/** The `http` config block (upstream's `httpbackend.Config` keys). */
export const httpBackendSchema = object({
  download_url: string().check(urlTemplateProblem).describe(
    "URL template of a blob, `%s` standing for the name (the digest hex on origins).",
  ),
  upload_url: string().optional("—").describe(
    "Accepted for upstream configs and unused: uploads are refused, as upstream.",
  ),
  download_timeout: duration({ positive: true }).optional("`180s`").describe(
    "A request fails after making no progress (no answer, no body bytes) for this long.",
  ),
  download_backoff: object({
    enabled: bool().default(false).describe(
      "Retry 5xx, 429 and network errors (upstream's default: no retries).",
    ),
    initial_interval: duration({ positive: true }).default("2s").describe("First wait."),
    randomization_factor: number({ min: 0, max: 1 }).default(0.05).describe(
      "Share of each wait that is random.",
    ),
    multiplier: number({ min: 1 }).default(2).describe("Growth of the wait per retry."),
    max_interval: duration({ positive: true }).default("30s").describe("Cap on one wait."),
    max_retries: int({ min: 0 }).default(5).describe("Retries after the first attempt."),
  }, {
    rename: {
      initial_interval: "initialMs",
      randomization_factor: "jitter",
      max_interval: "maxMs",
      max_retries: "maxRetries",
    },
  }).describe("Upstream's exponential backoff of downloads."),
}, {
  rename: {
    download_url: "downloadUrl",
    upload_url: "uploadUrl",
    download_timeout: "downloadTimeoutMs",
    download_backoff: "downloadBackoff",
  },
});

/** A validated `http` block. */
export type HttpBackendConfig = Infer<typeof httpBackendSchema>;

/** Options of {@linkcode HttpBackend}. */
export interface HttpBackendOptions {
  /** URL template with one `%s`. */
  downloadUrl: string;
  /** Ignored (uploads are refused). */
  uploadUrl?: string;
  /** Idle timeout in ms (default {@linkcode DEFAULT_HTTP_DOWNLOAD_TIMEOUT_MS}). */
  downloadTimeoutMs?: number;
  /** Upstream's `download_backoff` (default: disabled, one attempt). */
  downloadBackoff?: {
    enabled: boolean;
    initialMs: number;
    jitter: number;
    multiplier: number;
    maxMs: number;
    maxRetries: number;
  };
  /** The fetch to use; roles pass a traced one (default {@linkcode plainFetch}). */
  fetch?: BackendFetch;
  /** TLS settings for an `https` template (CA, name, client certificate). */
  tls?: ClientTlsConfig;
}

/** Span name and `url.template` of the backend's requests: the configured template itself. */
function routeOf(template: string): string {
  const url = new URL(fillUrlTemplate(template, "{name}"));
  return decodeURIComponent(url.pathname);
}

/** A {@linkcode Backend} reading blobs over plain HTTP GET. */
export class HttpBackend implements Backend {
  /** Always `http`. */
  readonly type = "http";
  /** The server's `host:port`, for span attributes. */
  readonly bucket: string;
  readonly #template: string;
  readonly #route: string;
  readonly #transport: BackendTransport;

  /** @param options see {@linkcode HttpBackendOptions} */
  constructor(options: HttpBackendOptions) {
    const problem = urlTemplateProblem(options.downloadUrl ?? "");
    if (problem) throw new TypeError(`http: download_url ${problem}`);
    this.#template = options.downloadUrl;
    this.#route = routeOf(options.downloadUrl);
    const sample = new URL(fillUrlTemplate(options.downloadUrl, "name"));
    if (options.tls && sample.protocol !== "https:") {
      throw new TypeError("http: tls is set, so download_url must be https (no plaintext)");
    }
    this.bucket = sample.host;
    const backoff = options.downloadBackoff;
    this.#transport = new BackendTransport({
      type: this.type,
      fetch: options.fetch,
      idleTimeoutMs: options.downloadTimeoutMs ?? DEFAULT_HTTP_DOWNLOAD_TIMEOUT_MS,
      retry: backoff?.enabled
        ? {
          attempts: backoff.maxRetries + 1,
          initialMs: backoff.initialMs,
          maxMs: backoff.maxMs,
          multiplier: backoff.multiplier,
          jitter: backoff.jitter,
        }
        : { attempts: 1 },
      tls: options.tls,
    });
  }

  /** Retries, idle timeouts and failures of the requests. */
  get stats(): BackendStats {
    return this.#transport.stats;
  }

  async #request(method: "HEAD" | "GET", name: string): Promise<Response> {
    if (name === "" || /[\s?#]/.test(name)) {
      throw new TypeError(`http backend: invalid name ${JSON.stringify(name)}`);
    }
    const res = await this.#transport.request({
      method,
      url: fillUrlTemplate(this.#template, name),
      route: this.#route,
      // 404 is an absent blob; 405/501 a server without HEAD, which stat reads as "exists".
      expectedStatus: method === "HEAD" ? [404, 405, 501] : [404],
    });
    return res;
  }

  /** `HEAD <url>`; see the module doc for the answers. */
  async stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    const res = await this.#request("HEAD", name);
    await res.body?.cancel();
    if (res.status === 404) return null;
    const raw = res.headers.get("content-length");
    return { size: res.status === 200 && raw !== null && /^\d+$/.test(raw) ? Number(raw) : 0 };
  }

  /** `GET <url>`; the body is returned unread (a range is cut on the client). */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    const res = await this.#request("GET", name);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    return cutRange(res.body ?? new Blob().stream(), options);
  }

  /** Ready when the server answers a `HEAD` of a name that does not exist. */
  async ready(): Promise<void> {
    await this.stat("", readinessProbeName().split(":")[1]);
  }

  /** Refused, as upstream. */
  async upload(_namespace: string, _name: string, body: UploadBody): Promise<void> {
    await discardUploadBody(body);
    throw new ReadOnlyBackendError(this.type);
  }

  /** Refused, as upstream. */
  list(_prefix: string): Promise<ListResult> {
    return Promise.reject(new Error(`${this.type} backend cannot list`));
  }
}
