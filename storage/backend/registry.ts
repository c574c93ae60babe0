/**
 * Read-through from an existing Docker Registry v2 (upstream's `registry_blob` and `registry_tag`
 * backends), so Kraken can front Harbor, a cloud registry or the reference registry:
 *
 * | Backend | stat | download |
 * |---|---|---|
 * | `registry_blob` (origins; namespace = repository, name = digest hex) | `HEAD /v2/<ns>/blobs/sha256:<hex>`, then `HEAD /v2/<ns>/manifests/sha256:<hex>` when the registry does not serve the manifest as a blob | `GET` of the same, bytes |
 * | `registry_tag` (build-index; name = `repo:tag`) | `HEAD /v2/<repo>/manifests/<tag>` | `GET` of the same; the content is the **manifest's digest** `sha256:<hex>`, as a tag's value |
 *
 * Manifest requests send `Accept` with the four schema-2 media types (kraken-wire.md §6.6). A
 * downloaded tag manifest must be one of them (schema 2) before its digest is taken. Sizes come
 * from `Content-Length`. Uploads and listing are refused: the registry is written by its own
 * clients. Authentication (basic, bearer-token challenge) is `registry_auth.ts`'s.
 *
 * The registry is reached over HTTPS unless `security.tls.client.disabled` is set (upstream's
 * default); `security.enableHTTPFallback` retries over plain HTTP when HTTPS fails to connect.
 *
 * ```ts
 * import { RegistryTagBackend } from "./registry.ts";
 * const tags = new RegistryTagBackend({ address: "127.0.0.1:5000", security: { tls: { disabled: true } } });
 * await tags.stat("", "library/ubuntu:22.04"); // { size } or null
 * ```
 *
 * @module
 */

import { type ClientTlsConfig, clientTlsSchema } from "../../http/tls_config.ts";
import { bool, duration, type Infer, object, string } from "../../common/schema.ts";
import { MANIFEST_MEDIA_TYPES, parseManifest, readManifestBytes } from "../../registry/manifest.ts";
import { digestOfBytes } from "../digest.ts";
import { expand, type Route } from "../../wire/route.ts";
import {
  REGISTRY_BLOB_GET,
  REGISTRY_BLOB_STAT,
  REGISTRY_MANIFEST_GET,
  REGISTRY_MANIFEST_STAT,
  REGISTRY_TOKEN,
} from "../../wire/registry.ts";
import {
  type Backend,
  type BackendFetch,
  type BackendStats,
  type BlobInfo,
  cutRange,
  discardUploadBody,
  type DownloadOptions,
  type ListResult,
  plainFetch,
  readinessProbeName,
  ReadOnlyBackendError,
  type UploadBody,
} from "./backend.ts";
import { RegistryAuthenticator } from "./registry_auth.ts";
import { BackendRequestError, BackendTransport, type RetryOptions } from "./transport.ts";

/** Default `timeout`: upstream's. */
export const DEFAULT_REGISTRY_TIMEOUT_MS = 60_000;

/** The `registry_blob` / `registry_tag` config block (upstream's `registrybackend.Config` keys). */
export const registryBackendSchema = object({
  address: string().check((v) =>
    /^[^\s/]+$/.test(v) ? undefined : `must be host[:port], got ${JSON.stringify(v)}`
  ).describe("`host[:port]` of the registry."),
  timeout: duration({ positive: true }).optional("`60s`").describe(
    "A request fails after making no progress (no answer, no body bytes) for this long.",
  ),
  security: object({
    tls: clientTlsSchema.describe(
      "Upstream's `security.tls` (its `httputil.TLSConfig`): `client.disabled: true` is plain " +
        "HTTP; otherwise HTTPS, verified against the system roots plus `cas`, with `name` and " +
        "a client certificate (`client.cert`/`key`/`passphrase`) when set.",
    ),
    basic: object({
      username: string().optional().describe("User name (basic auth and token requests)."),
      password: string().optional().describe("Password. Never logged or traced."),
      identitytoken: string().optional().describe(
        "OAuth2 refresh token for the token service, instead of the password.",
      ),
    }, { rename: { identitytoken: "identityToken" } }).optional("anonymous").describe(
      "Credentials, for a `Basic` challenge or the token request of a `Bearer` one.",
    ),
    enableHTTPFallback: bool().default(false).describe(
      "Retry over plain HTTP when an HTTPS request cannot connect.",
    ),
  }),
}, { rename: { timeout: "timeoutMs" } });

/** A validated `registry_blob` / `registry_tag` block. */
export type RegistryBackendConfig = Infer<typeof registryBackendSchema>;

/** Options of the registry backends: the config block plus the fetch to use. */
export interface RegistryBackendOptions {
  /** `host[:port]` of the registry. */
  address: string;
  /** Idle timeout in ms (default {@linkcode DEFAULT_REGISTRY_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** TLS, credentials and fallback (see {@linkcode registryBackendSchema}). */
  security?: {
    tls?: { disabled?: boolean; client?: ClientTlsConfig };
    basic?: { username?: string; password?: string; identityToken?: string };
    enableHTTPFallback?: boolean;
  };
  /** The fetch to use; roles pass a traced one (default {@linkcode plainFetch}). */
  fetch?: BackendFetch;
  /** Retry policy of the requests (default: `transport.ts`'s). */
  retry?: RetryOptions;
}

/** Repository names as the distribution spec defines them; anything else never reaches a URL. */
const REPOSITORY =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HEX = /^[0-9a-f]{64}$/;

function checkRepository(repo: string): string {
  if (!REPOSITORY.test(repo)) {
    throw new TypeError(`not a registry repository name: ${JSON.stringify(repo)}`);
  }
  return repo;
}

function checkHex(name: string): string {
  if (!HEX.test(name)) throw new TypeError(`not a sha256 hex digest: ${JSON.stringify(name)}`);
  return name;
}

/** Splits `repo:tag` (exactly one colon, as upstream). */
export function splitTagName(name: string): { repo: string; tag: string } {
  const parts = name.split(":");
  if (parts.length !== 2 || !TAG.test(parts[1])) {
    throw new TypeError(`invalid tag name ${JSON.stringify(name)}: must be repo:tag`);
  }
  return { repo: checkRepository(parts[0]), tag: parts[1] };
}

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(",");

/** A request to send: its route, parameters and headers. */
interface RegistryCall {
  route: Route;
  repo: string;
  reference: string;
  accept?: string;
}

/** The HTTP side shared by both registry backends: URLs, TLS, auth retries, errors. */
class RegistryClient {
  readonly address: string;
  readonly #auth: RegistryAuthenticator;
  readonly #scheme: "http" | "https";
  readonly #fallback: boolean;
  readonly #transport: BackendTransport;

  constructor(type: string, options: RegistryBackendOptions) {
    if (!/^[^\s/]+$/.test(options.address ?? "")) {
      throw new TypeError(`registry: address must be host[:port], got ${options.address}`);
    }
    this.address = options.address;
    const fetch = options.fetch ?? plainFetch;
    const security = options.security ?? {};
    const disabled = security.tls?.disabled === true;
    this.#scheme = disabled ? "http" : "https";
    this.#fallback = !disabled && security.enableHTTPFallback === true;
    const basic = security.basic ?? {};
    this.#transport = new BackendTransport({
      type,
      fetch,
      idleTimeoutMs: options.timeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS,
      retry: options.retry,
      secrets: () =>
        [basic.password, basic.identityToken, ...this.#auth.secrets()].filter((s): s is string =>
          s !== undefined
        ),
      tls: disabled ? undefined : security.tls?.client,
      tlsKey: "security.tls",
    });
    // Token requests go the registry requests' way: one TLS agent, idle timeout, retries.
    this.#auth = new RegistryAuthenticator({
      send: (token) =>
        this.#transport.request({
          method: token.method,
          url: token.url,
          route: REGISTRY_TOKEN.template,
          headers: token.headers,
          body: token.body ?? null,
        }),
      credentials: security.basic,
    });
  }

  /** Retries, idle timeouts and failures of the requests. */
  get stats(): BackendStats {
    return this.#transport.stats;
  }

  /** Token requests so far. */
  get tokenRequests(): number {
    return this.#auth.tokenRequests;
  }

  #url(scheme: string, call: RegistryCall): string {
    const path = expand(call.route, {
      name: call.repo,
      ...(call.route === REGISTRY_BLOB_GET || call.route === REGISTRY_BLOB_STAT
        ? { digest: call.reference }
        : { reference: call.reference }),
    });
    return `${scheme}://${this.address}${path}`;
  }

  #request(
    scheme: string,
    call: RegistryCall,
    authorization: string | undefined,
    retry: boolean,
  ): Promise<Response> {
    const headers = new Headers();
    if (call.accept) headers.set("accept", call.accept);
    if (authorization) headers.set("authorization", authorization);
    return this.#transport.request({
      method: call.route.method,
      url: this.#url(scheme, call),
      route: call.route.template,
      headers,
      // Absent objects and auth challenges are answers, not failures.
      expectedStatus: [401, 404],
      retry,
    });
  }

  async #sendWithFallback(call: RegistryCall, authorization?: string): Promise<Response> {
    if (!this.#fallback) return await this.#request(this.#scheme, call, authorization, true);
    try {
      // With a fallback, HTTPS gets one try: a registry without TLS refuses every handshake.
      return await this.#request(this.#scheme, call, authorization, false);
    } catch (error) {
      if (error instanceof BackendRequestError) throw error;
      return await this.#request("http", call, authorization, true);
    }
  }

  /**
   * Sends `call`, answering one auth challenge. Returns the 200 or 404 response; anything else
   * is an {@linkcode HttpStatusError} carrying the registry's message.
   */
  async request(call: RegistryCall): Promise<Response> {
    let res = await this.#sendWithFallback(call, this.#auth.cached(call.repo));
    if (res.status === 401) {
      const authorization = await this.#auth.answer(call.repo, res);
      res = await this.#sendWithFallback(call, authorization);
    }
    if (res.status === 200 || res.status === 404) return res;
    // Still 401 after answering the challenge: the credentials are refused.
    const text = await res.text().catch(() => "");
    throw new BackendRequestError(call.route.method, this.#url(this.#scheme, call), res.status, {
      message: this.#transport.redact(new Error(text)).message,
      retryable: false,
    });
  }

  /** HEAD `call`: the size from `Content-Length`, or `null` on 404. */
  async stat(call: RegistryCall): Promise<BlobInfo | null> {
    const res = await this.request(call);
    await res.body?.cancel();
    if (res.status === 404) return null;
    const raw = res.headers.get("content-length") ?? "";
    if (!/^\d+$/.test(raw)) {
      throw new Error(
        `${call.route.method} ${this.#url(this.#scheme, call)}: invalid Content-Length ${
          JSON.stringify(raw)
        }`,
      );
    }
    return { size: Number(raw) };
  }
}

/** `registry_blob`: blobs (and manifests by digest) of the repository named by the namespace. */
export class RegistryBlobBackend implements Backend {
  /** Always `registry_blob`. */
  readonly type = "registry_blob";
  /** The registry address, for span attributes. */
  readonly bucket: string;
  readonly #client: RegistryClient;

  /** @param options see {@linkcode RegistryBackendOptions} */
  constructor(options: RegistryBackendOptions) {
    this.#client = new RegistryClient(this.type, options);
    this.bucket = this.#client.address;
  }

  /** Retries, idle timeouts and failures of the requests. */
  get stats(): BackendStats {
    return this.#client.stats;
  }

  /** Token requests made so far. */
  get tokenRequests(): number {
    return this.#client.tokenRequests;
  }

  #calls(namespace: string, name: string, method: "HEAD" | "GET"): RegistryCall[] {
    const repo = checkRepository(namespace);
    const reference = `sha256:${checkHex(name)}`;
    return [
      { route: method === "HEAD" ? REGISTRY_BLOB_STAT : REGISTRY_BLOB_GET, repo, reference },
      {
        route: method === "HEAD" ? REGISTRY_MANIFEST_STAT : REGISTRY_MANIFEST_GET,
        repo,
        reference,
        accept: MANIFEST_ACCEPT,
      },
    ];
  }

  /** HEAD the blob, then the manifest of that digest (registries keep manifests apart). */
  async stat(namespace: string, name: string): Promise<BlobInfo | null> {
    for (const call of this.#calls(namespace, name, "HEAD")) {
      const info = await this.#client.stat(call);
      if (info !== null) return info;
    }
    return null;
  }

  /** GET the blob, then the manifest of that digest; the body is returned unread. */
  async download(
    namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    for (const call of this.#calls(namespace, name, "GET")) {
      const res = await this.#client.request(call);
      if (res.status === 404) {
        await res.body?.cancel();
        continue;
      }
      return cutRange(res.body ?? new Blob().stream(), options);
    }
    return null;
  }

  /** Ready when the registry answers (with its auth) a stat of a digest it does not hold. */
  async ready(): Promise<void> {
    const hex = readinessProbeName().split(":")[1];
    await this.stat("kraken-readiness", hex.padEnd(64, "0"));
  }

  /** Refused: the registry is written by its own clients. */
  async upload(_namespace: string, _name: string, body: UploadBody): Promise<void> {
    await discardUploadBody(body);
    throw new ReadOnlyBackendError(this.type);
  }

  /** Refused: a registry has no blob listing. */
  list(_prefix: string): Promise<ListResult> {
    return Promise.reject(new Error(`${this.type} backend cannot list`));
  }
}

/** `registry_tag`: tags `repo:tag`, whose value is the digest of the manifest they point at. */
export class RegistryTagBackend implements Backend {
  /** Always `registry_tag`. */
  readonly type = "registry_tag";
  /** The registry address, for span attributes. */
  readonly bucket: string;
  readonly #client: RegistryClient;

  /** @param options see {@linkcode RegistryBackendOptions} */
  constructor(options: RegistryBackendOptions) {
    this.#client = new RegistryClient(this.type, options);
    this.bucket = this.#client.address;
  }

  /** Retries, idle timeouts and failures of the requests. */
  get stats(): BackendStats {
    return this.#client.stats;
  }

  /** Token requests made so far. */
  get tokenRequests(): number {
    return this.#client.tokenRequests;
  }

  #call(name: string, method: "HEAD" | "GET"): RegistryCall {
    const { repo, tag } = splitTagName(name);
    return {
      route: method === "HEAD" ? REGISTRY_MANIFEST_STAT : REGISTRY_MANIFEST_GET,
      repo,
      reference: tag,
      accept: MANIFEST_ACCEPT,
    };
  }

  /** HEAD the tag's manifest; the size is the manifest's. */
  stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    return this.#client.stat(this.#call(name, "HEAD"));
  }

  /** Ready when the registry answers (with its auth) a stat of a tag it does not hold. */
  async ready(): Promise<void> {
    await this.stat("", readinessProbeName().replace(":", "/probe:"));
  }

  /** GET the tag's manifest, check it is schema 2, and return its digest `sha256:<hex>`. */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    const res = await this.#client.request(this.#call(name, "GET"));
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    const bytes = await readManifestBytes(res.body ?? new Blob().stream());
    parseManifest(bytes, res.headers.get("content-type"));
    const digest = await digestOfBytes(bytes);
    return cutRange(new Blob([new TextEncoder().encode(digest.toString())]).stream(), options);
  }

  /** Refused: tags are pushed to the registry itself. */
  async upload(_namespace: string, _name: string, body: UploadBody): Promise<void> {
    await discardUploadBody(body);
    throw new ReadOnlyBackendError(this.type);
  }

  /** Refused, as upstream: list tags on the registry itself. */
  list(_prefix: string): Promise<ListResult> {
    return Promise.reject(new Error(`${this.type} backend cannot list`));
  }
}
