/**
 * Client of the build-index tag server (upstream `build-index/tagclient`), used by the proxy to
 * publish tags and by agents to resolve them.
 *
 * - {@linkcode TagClient} talks to one build-index host: the neighbour duplication calls need that.
 * - {@linkcode TagClusterClient} spreads calls over a cluster the way upstream does: it tries up to
 *   three randomly chosen hosts and moves on to the next one only after a network error (an HTTP
 *   answer, even a 5xx, is the cluster's answer).
 *
 * Tags (`repo:tag`) are path-escaped like Go's `url.PathEscape` (`/` becomes `%2F`), digests go into
 * paths as `sha256:<hex>`. Client spans are named after the route template, and `put` runs inside a
 * `build_index.put_tag` span so a push trace shows the tag write as one step.
 *
 * ```ts
 * import { TagClusterClient } from "./tag_client.ts";
 * const tags = new TagClusterClient({ hosts: ["build-index:15004"] });
 * await tags.put("library/ubuntu:latest", digest, { replicate: true });
 * (await tags.get("library/ubuntu:latest"))?.toString(); // "sha256:…"
 * ```
 *
 * @module
 */

import { type Digest, parseDigest } from "../storage/digest.ts";
import { pathEscape } from "./escape.ts";
import { currentHosts, type HostSource } from "./hostlist.ts";
import { ATTR, SPAN, tracedFetch, type TracedFetchOptions, withSpan } from "../tracing/mod.ts";
import { expand, type Route } from "../wire/route.ts";
import {
  DUPLICATE_TAG_PUT,
  DUPLICATE_TAG_REPLICATE,
  encodeDuplicatePut,
  encodeDuplicateReplicate,
  LIST,
  LIST_ALL,
  type ListResponse,
  ORIGIN_ADDRESS,
  parseListResponse,
  REPOSITORY_TAGS,
  TAG_GET,
  TAG_HEAD,
  TAG_PUT,
  TAG_REPLICATE,
} from "../wire/tags.ts";

export type { ListResponse } from "../wire/tags.ts";

/** Pagination of a list call. */
export interface ListOptions {
  /** Page size; pagination starts when `limit` or `offset` is given. */
  limit?: number;
  /** Continuation token from the previous page's `Links.next`. */
  offset?: string;
}

/** Options of {@linkcode TagClient.put}. */
export interface PutOptions {
  /** Ask the build-index to replicate the tag to remote clusters (`?replicate=true`). */
  replicate?: boolean;
}

/** The fetch the clients use: {@linkcode tracedFetch}'s signature (tests pass a stand-in). */
export type TagFetch = (url: string, init: TracedFetchOptions) => Promise<Response>;

/** Options shared by {@linkcode TagClient} and {@linkcode TagClusterClient}. */
export interface TagClientOptions {
  /** Request function (default {@linkcode tracedFetch}). */
  fetch?: TagFetch;
  /** Per-call timeouts in ms; defaults are upstream's (put 30 s, get/has 10 s, list 60 s, …). */
  timeouts?: Partial<TagClientTimeouts>;
  /** `https` for TLS clusters (default `http`). */
  scheme?: "http" | "https";
}

/** Per-call timeouts in milliseconds. */
export interface TagClientTimeouts {
  /** PUT tag (default 30 s). */
  put: number;
  /** GET/HEAD tag (default 10 s). */
  get: number;
  /** List calls (default 60 s). */
  list: number;
  /** Internal duplicate put (default 10 s). */
  duplicate: number;
  /** GET /origin (default 5 s). */
  origin: number;
  /** POST /remotes/tags/{tag} (default 15 s). */
  replicate: number;
}

const DEFAULT_TIMEOUTS: TagClientTimeouts = {
  put: 30_000,
  get: 10_000,
  list: 60_000,
  duplicate: 10_000,
  origin: 5_000,
  replicate: 15_000,
};

/** Retry policy of upstream's duplicate calls: 250 ms apart, 3 attempts in all. */
const RETRY_DELAY_MS = 250;
const RETRY_ATTEMPTS = 3;
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

/** A build-index answered with an unexpected status. */
export class TagClientError extends Error {
  /** HTTP status received. */
  readonly status: number;
  /** The start of the response body (upstream's error message). */
  readonly body: string;

  /**
   * @param method request method
   * @param url request URL
   * @param status status received
   * @param body response body text (upstream puts the error message there)
   */
  constructor(method: string, url: string, status: number, body: string) {
    super(`${method} ${url}: ${status}${body ? `: ${body.slice(0, 500)}` : ""}`);
    this.name = "TagClientError";
    this.status = status;
    this.body = body.slice(0, 500);
  }
}

/**
 * The build-index's 4xx answer (status and message) when it refused a request: the caller's
 * client sent something wrong, so a role passes the 4xx on instead of answering 500. Null for any
 * other error.
 */
export function tagRefusal(error: unknown): { status: number; message: string } | null {
  if (!(error instanceof TagClientError) || error.status < 400 || error.status >= 500) return null;
  return { status: error.status, message: `build-index: ${error.body || error.status}` };
}

/** A request could not reach the host (connection refused, reset, timed out). */
export class TagNetworkError extends Error {
  /**
   * @param message what failed
   * @param cause the underlying error
   */
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "TagNetworkError";
  }
}

interface CallOptions {
  route: Route;
  /** The expanded route, query included. */
  path: string;
  timeoutMs: number;
  body?: string;
  headers?: Record<string, string>;
  expectedStatus?: number[];
}

interface CallResult {
  status: number;
  text: string;
}

/** A client of one build-index host. */
export class TagClient {
  /** The host, `host:port`. */
  readonly addr: string;
  readonly #base: string;
  readonly #fetch: TagFetch;
  readonly #timeouts: TagClientTimeouts;

  /**
   * @param addr `host:port` of the build-index
   * @param options see {@linkcode TagClientOptions}
   */
  constructor(addr: string, options: TagClientOptions = {}) {
    if (!/^[^\s/]+:\d{1,5}$/.test(addr)) {
      throw new TypeError(`build-index address must be host:port, got ${JSON.stringify(addr)}`);
    }
    this.addr = addr;
    this.#base = `${options.scheme ?? "http"}://${addr}`;
    this.#fetch = options.fetch ?? tracedFetch;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  }

  /**
   * Sends one request and reads the whole (small) answer inside the timeout.
   * @throws {TagNetworkError} when the host cannot be reached or the timeout fires
   */
  async #call(options: CallOptions): Promise<CallResult> {
    const url = `${this.#base}${options.path}`;
    const { method, template } = options.route;
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error(`timed out after ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    try {
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method,
          body: options.body,
          headers: options.headers,
          signal: abort.signal,
          route: template,
          expectedStatus: options.expectedStatus,
        });
      } catch (error) {
        throw new TagNetworkError(`${method} ${url}: ${(error as Error).message}`, error);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        throw new TagNetworkError(`${method} ${url}: reading body: ${error}`, error);
      }
      return { status: response.status, text };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like {@linkcode TagClient.#call}, retrying network errors and 429/502/503/504 (upstream policy). */
  async #callWithRetry(options: CallOptions): Promise<CallResult> {
    for (let attempt = 1;; attempt++) {
      try {
        const result = await this.#call(options);
        if (!RETRYABLE_STATUS.has(result.status) || attempt >= RETRY_ATTEMPTS) return result;
      } catch (error) {
        if (!(error instanceof TagNetworkError) || attempt >= RETRY_ATTEMPTS) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
    }
  }

  #fail(method: string, path: string, result: CallResult): never {
    throw new TagClientError(method, `${this.#base}${path}`, result.status, result.text);
  }

  /**
   * `PUT /tags/{tag}/digest/{digest}[?replicate=true]`: points `tag` at `digest`. The build-index
   * checks that the manifest and everything it references exist in the origin cluster first.
   * @throws {TagClientError} on any answer but 200
   */
  async put(tag: string, digest: Digest, options: PutOptions = {}): Promise<void> {
    const replicate = options.replicate ?? false;
    await withSpan(
      SPAN.buildIndexPutTag,
      {
        [ATTR.tag]: tag,
        [ATTR.digest]: digest.toString(),
        [ATTR.replicate]: replicate,
        [ATTR.serverAddress]: this.addr,
      },
      async () => {
        const path = expand(TAG_PUT, { tag: pathEscape(tag), digest: digest.toString() }) +
          (replicate ? "?replicate=true" : "");
        const result = await this.#call({
          route: TAG_PUT,
          path,
          timeoutMs: this.#timeouts.put,
        });
        if (result.status !== 200) this.#fail("PUT", path, result);
      },
    );
  }

  /**
   * `GET /tags/{tag}`: the digest a tag points at, or null when the build-index does not know it.
   * @throws {TagClientError} on statuses other than 200 and 404
   */
  async get(tag: string): Promise<Digest | null> {
    const path = expand(TAG_GET, { tag: pathEscape(tag) });
    const result = await this.#call({
      route: TAG_GET,
      path,
      timeoutMs: this.#timeouts.get,
      expectedStatus: [404],
    });
    if (result.status === 404) return null;
    if (result.status !== 200) this.#fail("GET", path, result);
    try {
      return parseDigest(result.text.trim());
    } catch (error) {
      throw new TagClientError("GET", `${this.#base}${path}`, 200, `bad digest: ${error}`);
    }
  }

  /**
   * `HEAD /tags/{tag}`: whether the tag is in the build-index's storage backend.
   * @throws {TagClientError} on statuses other than 200 and 404
   */
  async has(tag: string): Promise<boolean> {
    const path = expand(TAG_HEAD, { tag: pathEscape(tag) });
    const result = await this.#call({
      route: TAG_HEAD,
      path,
      timeoutMs: this.#timeouts.get,
      expectedStatus: [404],
    });
    if (result.status === 404) return false;
    if (result.status !== 200) this.#fail("HEAD", path, result);
    return true;
  }

  /**
   * `GET /list/{prefix+}`: backend names (`repo:tag`) under `prefix`, one page.
   * @throws {TagClientError} on any answer but 200
   */
  list(prefix: string, options: ListOptions = {}): Promise<ListResponse> {
    // The prefix is the rest of the path, so its slashes stay; other bytes are escaped.
    const escaped = prefix.split("/").map(pathEscape).join("/");
    if (escaped === "") return this.#list(LIST_ALL, expand(LIST_ALL, {}), options);
    return this.#list(LIST, expand(LIST, { prefix: escaped }), options);
  }

  /**
   * `GET /repositories/{repo+}/tags` (deprecated upstream): the tags of one repository, without the
   * `repo:` part.
   * @throws {TagClientError} on any answer but 200
   */
  listRepository(repo: string, options: ListOptions = {}): Promise<ListResponse> {
    return this.#list(
      REPOSITORY_TAGS,
      expand(REPOSITORY_TAGS, { repo: pathEscape(repo) }),
      options,
    );
  }

  async #list(route: Route, path: string, options: ListOptions): Promise<ListResponse> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.offset !== undefined) query.set("offset", options.offset);
    const full = query.size > 0 ? `${path}?${query}` : path;
    const result = await this.#call({ route, path: full, timeoutMs: this.#timeouts.list });
    if (result.status !== 200) this.#fail("GET", full, result);
    try {
      return parseListResponse(result.text);
    } catch (error) {
      throw new TagClientError("GET", `${this.#base}${full}`, 200, (error as Error).message);
    }
  }

  /**
   * `GET /origin`: the address of the origin cluster behind this build-index.
   * @throws {TagClientError} on any answer but 200
   */
  async origin(): Promise<string> {
    const path = expand(ORIGIN_ADDRESS, {});
    const result = await this.#call({
      route: ORIGIN_ADDRESS,
      path,
      timeoutMs: this.#timeouts.origin,
    });
    if (result.status !== 200) this.#fail("GET", path, result);
    return result.text.trim();
  }

  /**
   * `PUT /internal/duplicate/tags/{tag}/digest/{digest}` with `{"delay": <ns>}`: stores the tag on a
   * neighbour without dependency checks; its write-back waits `delayMs`. Retried like upstream.
   * @throws {TagClientError} on any answer but 200
   */
  async duplicatePut(tag: string, digest: Digest, delayMs: number): Promise<void> {
    const path = expand(DUPLICATE_TAG_PUT, { tag: pathEscape(tag), digest: digest.toString() });
    const result = await this.#callWithRetry({
      route: DUPLICATE_TAG_PUT,
      path,
      timeoutMs: this.#timeouts.duplicate,
      body: encodeDuplicatePut(delayMs),
      headers: { "content-type": "application/json" },
    });
    if (result.status !== 200) this.#fail("PUT", path, result);
  }

  /**
   * `POST /remotes/tags/{tag}`: (re)schedules the replication of a stored tag to every remote
   * cluster whose regex matches it.
   * @throws {TagClientError} on any answer but 200 (404: the tag is unknown)
   */
  async replicate(tag: string): Promise<void> {
    const path = expand(TAG_REPLICATE, { tag: pathEscape(tag) });
    const result = await this.#call({
      route: TAG_REPLICATE,
      path,
      timeoutMs: this.#timeouts.replicate,
    });
    if (result.status !== 200) this.#fail("POST", path, result);
  }

  /**
   * `POST /internal/duplicate/remotes/tags/{tag}/digest/{digest}`: has a neighbour schedule the
   * same replication tasks, runnable after `delayMs`. Retried like upstream.
   * @throws {TagClientError} on any answer but 200
   */
  async duplicateReplicate(
    tag: string,
    digest: Digest,
    dependencies: readonly Digest[],
    delayMs: number,
  ): Promise<void> {
    const path = expand(DUPLICATE_TAG_REPLICATE, {
      tag: pathEscape(tag),
      digest: digest.toString(),
    });
    const result = await this.#callWithRetry({
      route: DUPLICATE_TAG_REPLICATE,
      path,
      timeoutMs: this.#timeouts.duplicate,
      body: encodeDuplicateReplicate({
        dependencies: dependencies.map((d) => d.toString()),
        delayMs,
      }),
      headers: { "content-type": "application/json" },
    });
    if (result.status !== 200) this.#fail("POST", path, result);
  }
}

/** Options of {@linkcode TagClusterClient}. */
export interface TagClusterClientOptions extends TagClientOptions {
  /** Build-index hosts, `host:port`, fixed or a live list. */
  hosts: HostSource;
  /** Random source for host sampling (default `Math.random`). */
  random?: () => number;
}

/** How many hosts one cluster call tries at most (upstream samples 3). */
const CLUSTER_ATTEMPTS = 3;

/** A client of a build-index cluster: each call goes to a random host, failing over on network errors. */
export class TagClusterClient {
  readonly #hosts: HostSource;
  readonly #options: TagClientOptions;
  #clientHosts: readonly string[] = [];
  #clients: TagClient[] = [];
  readonly #random: () => number;

  /** @param options see {@linkcode TagClusterClientOptions} */
  constructor(options: TagClusterClientOptions) {
    const { hosts, random, ...clientOptions } = options;
    if (!hosts || currentHosts(hosts).length === 0) {
      throw new TypeError("build-index cluster needs at least one host");
    }
    this.#hosts = hosts;
    this.#options = clientOptions;
    this.#random = random ?? Math.random;
    this.#current(); // validates every address up front
  }

  /** One client per current host, rebuilt when a live list's members change. */
  #current(): TagClient[] {
    const hosts = currentHosts(this.#hosts);
    if (hosts !== this.#clientHosts) {
      this.#clients = hosts.map((h) => new TagClient(h, this.#options));
      this.#clientHosts = hosts;
    }
    return this.#clients;
  }

  /** Runs `fn` on up to three random hosts until one answers (moving on only after a network error). */
  async #each<T>(fn: (client: TagClient) => Promise<T>): Promise<T> {
    const pool = [...this.#current()];
    let lastError: unknown;
    for (let i = 0; i < CLUSTER_ATTEMPTS && pool.length > 0; i++) {
      const [client] = pool.splice(Math.floor(this.#random() * pool.length), 1);
      try {
        return await fn(client);
      } catch (error) {
        if (!(error instanceof TagNetworkError)) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  /** See {@linkcode TagClient.put}. */
  put(tag: string, digest: Digest, options: PutOptions = {}): Promise<void> {
    return this.#each((c) => c.put(tag, digest, options));
  }

  /** See {@linkcode TagClient.get}. */
  get(tag: string): Promise<Digest | null> {
    return this.#each((c) => c.get(tag));
  }

  /** See {@linkcode TagClient.has}. */
  has(tag: string): Promise<boolean> {
    return this.#each((c) => c.has(tag));
  }

  /** See {@linkcode TagClient.list}. */
  list(prefix: string, options: ListOptions = {}): Promise<ListResponse> {
    return this.#each((c) => c.list(prefix, options));
  }

  /** See {@linkcode TagClient.listRepository}. */
  listRepository(repo: string, options: ListOptions = {}): Promise<ListResponse> {
    return this.#each((c) => c.listRepository(repo, options));
  }

  /** See {@linkcode TagClient.origin}. */
  origin(): Promise<string> {
    return this.#each((c) => c.origin());
  }
}
