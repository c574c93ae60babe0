/**
 * What the build-index does, apart from HTTP: the put-tag algorithm (kraken-wire.md §7.2), tag
 * reads, neighbour duplication, listing, and the write-back of tags to the storage backend.
 *
 * Put tag, in order:
 * 1. resolve the dependencies with the first `tag_types` rule matching the tag (`docker`: download
 *    the manifest from the origin cluster with the tag as namespace and take everything it
 *    references plus the manifest itself, except foreign layers with `urls`; `default`: the digest
 *    alone);
 * 2. stat every dependency in the origin cluster (namespace = tag); a missing one fails the put
 *    with `cannot upload tag, missing dependency sha256:...`;
 * 3. store the tag on local disk and write it back (synchronously with `write_through`, otherwise
 *    through the persisted queue);
 * 4. duplicate it to every neighbour with a staggered write-back delay (failures are only logged);
 * 5. with `?replicate=true`, schedule its replication: one persisted task per remote whose regex
 *    matches the tag (run by `replication.ts`'s executor), and the same tasks on every neighbour
 *    with a staggered delay, as a fallback should this node die (failures are only logged).
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { AllOriginsUnavailableError, isNotFound } from "../../cluster/blob_client.ts";
import { TagClient, type TagClientOptions } from "../../cluster/tag_client.ts";
import { currentHosts, type HostSource } from "../../cluster/hostlist.ts";
import { staticHosts } from "../../cluster/hostlist_config.ts";
import {
  ManifestError,
  parseManifest,
  readManifestBytes,
  storedReferences,
} from "../../registry/manifest.ts";
import type { BackendManager } from "../../storage/backend/backend.ts";
import { type Digest, parseDigest } from "../../storage/digest.ts";
import type { WriteBackExecutor, WriteBackManager } from "../../storage/writeback.ts";
import { type Remotes, taskPayload } from "./replication.ts";
import {
  ATTR,
  contextFromStored,
  type Counter,
  MetricsRegistry,
  setAttributes,
  SPAN,
  storeTraceContext,
  withSpan,
} from "../../tracing/mod.ts";
import type { BuildIndexConfig, TagTypeRule } from "./config.ts";
import type { TagStore } from "./tag_store.ts";

/** The origin-cluster calls the build-index makes (an `OriginClusterClient` fits). */
export interface OriginBlobs {
  /** Size of a blob, or null when the cluster (and its backend) does not have it. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null>;
  /** The blob's bytes. */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>>;
  /** Sends a blob to the origin cluster at `remote` (polling while an origin answers 202). */
  replicateToRemote(namespace: string, digest: Digest, remote: string): Promise<void>;
}

/** A put-tag failure with the status and message upstream answers with. */
export class PutTagError extends Error {
  /** HTTP status: 400 for what the client tagged (upstream answers 500 there too), else 500. */
  readonly status: number;

  /**
   * @param message the response body
   * @param status HTTP status
   */
  constructor(message: string, status = 500) {
    super(message);
    this.name = "PutTagError";
    this.status = status;
  }
}

/** Options of {@linkcode BuildIndexService}. */
export interface BuildIndexServiceOptions {
  /** Validated configuration. */
  config: BuildIndexConfig;
  /** Local tag cache. */
  tags: TagStore;
  /** Persisted write-back queue whose executor is {@linkcode createTagWriteBackExecutor}. */
  writeback: WriteBackManager;
  /** Persisted replication queue (table `replicate_tag_task`). */
  replication: WriteBackManager;
  /** Which remote build-indexes a tag is replicated to. */
  remotes: Remotes;
  /** Namespace (tag) → storage backend. */
  backends: BackendManager;
  /** The local origin cluster. */
  origin: OriginBlobs;
  /** Its members, for `GET /origin` (default: `config.origin.hosts` when static). */
  originHosts?: HostSource;
  /** Logger. */
  logger: Logger;
  /** Options of the clients used for neighbour duplication. */
  tagClientOptions?: TagClientOptions;
  /**
   * Where tag puts and gets are counted: `kraken_buildindex_tag_puts_total{result="ok"|"failed"}`,
   * `kraken_buildindex_tag_gets_total{result="local"|"backend"|"not_found"}`. Default: nowhere.
   */
  metrics?: MetricsRegistry;
}

/** The build-index's behaviour behind its HTTP routes. */
export class BuildIndexService {
  readonly #config: BuildIndexConfig;
  readonly #tags: TagStore;
  readonly #writeback: WriteBackManager;
  readonly #replication: WriteBackManager;
  readonly #remotes: Remotes;
  readonly #backends: BackendManager;
  readonly #origin: OriginBlobs;
  readonly #originHosts: HostSource;
  readonly #logger: Logger;
  readonly #tagClientOptions: TagClientOptions;
  readonly #puts: (result: "ok" | "failed") => Counter;
  readonly #gets: (result: "local" | "backend" | "not_found") => Counter;
  #neighbourHosts: () => readonly string[] = () => [];
  readonly #neighbourClients = new Map<string, TagClient>();

  /** @param options see {@linkcode BuildIndexServiceOptions} */
  constructor(options: BuildIndexServiceOptions) {
    this.#config = options.config;
    this.#tags = options.tags;
    this.#writeback = options.writeback;
    this.#replication = options.replication;
    this.#remotes = options.remotes;
    this.#backends = options.backends;
    this.#origin = options.origin;
    this.#originHosts = options.originHosts ?? staticHosts(options.config.origin.hosts) ?? [];
    this.#logger = options.logger;
    this.#tagClientOptions = options.tagClientOptions ?? {};
    const metrics = options.metrics ?? new MetricsRegistry();
    this.#puts = (result) =>
      metrics.counter("kraken_buildindex_tag_puts_total", "Tag puts, by result.", { result });
    this.#gets = (result) =>
      metrics.counter("kraken_buildindex_tag_gets_total", "Tag reads, by where they were found.", {
        result,
      });
    for (const r of ["ok", "failed"] as const) this.#puts(r);
    for (const r of ["local", "backend", "not_found"] as const) this.#gets(r);
  }

  /** The backend mapping (readiness, listing). */
  get backends(): BackendManager {
    return this.#backends;
  }

  /**
   * Sets where the neighbours (cluster hosts other than this one) come from, once the listen port
   * is known; `hosts` is asked at each duplication, so a DNS cluster list's changes apply.
   */
  setNeighbours(hosts: () => readonly string[]): void {
    this.#neighbourHosts = hosts;
  }

  /** The neighbour addresses in use. */
  get neighbours(): string[] {
    return [...this.#neighbourHosts()];
  }

  #neighbours(): TagClient[] {
    const hosts = this.#neighbourHosts();
    for (const addr of this.#neighbourClients.keys()) {
      if (!hosts.includes(addr)) this.#neighbourClients.delete(addr);
    }
    return hosts.map((addr) => {
      let client = this.#neighbourClients.get(addr);
      if (!client) {
        client = new TagClient(addr, this.#tagClientOptions);
        this.#neighbourClients.set(addr, client);
      }
      return client;
    });
  }

  /**
   * The put-tag algorithm, traced as `build_index.put_tag` with `build_index.resolve_dependencies`
   * under it.
   * @throws {PutTagError} for a missing dependency or a failed resolution, stat or store
   */
  putTag(tag: string, digest: Digest, replicate: boolean): Promise<void> {
    return withSpan(SPAN.buildIndexPutTag, {
      [ATTR.tag]: tag,
      [ATTR.digest]: digest.toString(),
      [ATTR.replicate]: replicate,
    }, async () => {
      const deps = await withSpan(
        SPAN.buildIndexResolveDependencies,
        { [ATTR.tag]: tag, [ATTR.digest]: digest.toString() },
        () => this.#resolveDependencies(tag, digest),
      );
      setAttributes({ [ATTR.buildIndexDependencies]: deps.length });
      await this.#checkDependencies(tag, deps);
      await this.#store(tag, digest, 0);
      await this.#duplicateToNeighbours(tag, digest);
      if (replicate) await this.#scheduleReplication(tag, digest, deps);
      setAttributes({ [ATTR.buildIndexSuccess]: true });
    }).then(() => this.#puts("ok").inc(), (error) => {
      this.#puts("failed").inc();
      throw error;
    });
  }

  /**
   * `POST /remotes/tags/{tag}`: schedules the replication of a stored tag again.
   * @throws {PutTagError} 404 for an unknown tag; 500 when its dependencies cannot be resolved
   */
  async replicateTag(tag: string): Promise<void> {
    const digest = await this.getTag(tag);
    if (!digest) throw new PutTagError(`tag ${tag} not found`, 404);
    const deps = await withSpan(
      SPAN.buildIndexResolveDependencies,
      { [ATTR.tag]: tag, [ATTR.digest]: digest.toString() },
      () => this.#resolveDependencies(tag, digest),
    );
    await this.#scheduleReplication(tag, digest, deps);
  }

  /**
   * A neighbour's replication tasks for `tag`: one per remote matching it here, runnable after
   * `delayMs`.
   * @throws {PutTagError} when a task cannot be stored
   */
  duplicateReplicate(tag: string, digest: Digest, deps: Digest[], delayMs: number): void {
    this.#addReplicationTasks(tag, digest, deps, delayMs);
  }

  /**
   * Everything the destination of a replication needs for `digest`: what `tag_types` resolves
   * and, for an image index, each child manifest's config and layers (before the manifests).
   * Traced as `build_index.resolve_dependencies`.
   * @throws {PutTagError} when a manifest cannot be downloaded or parsed
   */
  replicationDependencies(tag: string, digest: Digest): Promise<Digest[]> {
    return withSpan(
      SPAN.buildIndexResolveDependencies,
      { [ATTR.tag]: tag, [ATTR.digest]: digest.toString() },
      async () => {
        const rule = this.#tagType(tag);
        setAttributes({ [ATTR.tagType]: rule.type });
        if (rule.type === "default") return [digest];
        const manifest = await this.#manifest(tag, digest);
        const children: Digest[] = [];
        for (const child of manifest.manifests) {
          children.push(...storedReferences(await this.#manifest(tag, child.digest)), child.digest);
        }
        const all = [...children, ...storedReferences(manifest), digest];
        const unique = [...new Map(all.map((d) => [d.toString(), d])).values()];
        setAttributes({ [ATTR.buildIndexDependencies]: unique.length });
        return unique;
      },
    );
  }

  /**
   * Stores a tag sent by a neighbour, without dependency checks; the write-back waits `delayMs`.
   * @throws {PutTagError} (`storage: ...`) when the tag cannot be stored
   */
  async duplicatePut(tag: string, digest: Digest, delayMs: number): Promise<void> {
    await this.#store(tag, digest, delayMs);
  }

  /** The tag's digest from the local disk, then the backend; backend errors count as not found. */
  async getTag(tag: string): Promise<Digest | null> {
    const local = await this.#tags.get(tag);
    if (local) {
      this.#gets("local").inc();
      return local;
    }
    const found = await this.#backendTag(tag);
    this.#gets(found ? "backend" : "not_found").inc();
    return found;
  }

  async #backendTag(tag: string): Promise<Digest | null> {
    try {
      const backend = this.#backends.getClient(tag);
      const body = await backend.download(tag, tag);
      if (!body) return null;
      const text = await new Response(body).text();
      return parseDigest(text.trim());
    } catch (error) {
      this.#logger.warn("tag lookup in backend failed", { tag, error });
      return null;
    }
  }

  /** Whether the backend has the tag (upstream's HEAD checks only the backend). */
  async hasTag(tag: string): Promise<boolean> {
    const backend = this.#backends.getClient(tag);
    return (await backend.stat(tag, tag)) !== null;
  }

  /** Backend names under `prefix`, sorted. Traced as `backend.list`. */
  list(prefix: string, namespace = prefix): Promise<string[]> {
    const backend = this.#backends.getClient(namespace);
    return withSpan(SPAN.backendList, {
      [ATTR.backendType]: backend.type,
      [ATTR.bucket]: backend.bucket ?? "",
      [ATTR.namespace]: namespace,
      [ATTR.backendPrefix]: prefix,
    }, async () => {
      const { names } = await backend.list(prefix);
      setAttributes({ [ATTR.backendNames]: names.length });
      return [...names].sort();
    });
  }

  /**
   * What `GET /origin` answers: `origin.dns`, else the DNS record of `origin.hosts`, else one
   * random origin host (upstream's stable address).
   */
  originAddress(): string {
    const { dns, hosts: config } = this.#config.origin;
    if (dns !== undefined) return dns;
    if (config.kind === "dns") return config.record;
    const hosts = currentHosts(this.#originHosts);
    return hosts[Math.floor(Math.random() * hosts.length)];
  }

  #tagType(tag: string): TagTypeRule {
    const rule = this.#config.tagTypes.find((r) => r.namespace.test(tag));
    if (!rule) throw new PutTagError(`resolve dependencies: no tag type matches ${tag}`);
    return rule;
  }

  async #resolveDependencies(tag: string, digest: Digest): Promise<Digest[]> {
    const rule = this.#tagType(tag);
    setAttributes({ [ATTR.tagType]: rule.type });
    if (rule.type === "default") return [digest];
    const manifest = await this.#manifest(tag, digest);
    setAttributes({ [ATTR.manifestMediaType]: manifest.mediaType });
    // Foreign layers (non-distributable, with `urls`) are fetched from elsewhere: no dependency.
    return [...storedReferences(manifest), digest];
  }

  async #manifest(tag: string, digest: Digest) {
    const bytes = await this.#downloadManifest(tag, digest);
    try {
      return parseManifest(bytes);
    } catch (error) {
      if (error instanceof ManifestError) {
        // The client tagged something that is not a manifest (upstream: 500).
        throw new PutTagError(
          `resolve dependencies: parse manifest ${digest}: ${error.message}`,
          400,
        );
      }
      throw error;
    }
  }

  /** Downloads the manifest, retrying not-found and unreachable origins with exponential backoff. */
  async #downloadManifest(tag: string, digest: Digest): Promise<Uint8Array> {
    const { attempts, backoffMs } = this.#config.manifestDownload;
    let wait = backoffMs;
    for (let attempt = 1;; attempt++) {
      try {
        const stream = await this.#origin.downloadBlob(tag, digest);
        return await readManifestBytes(stream);
      } catch (error) {
        const retryable = isNotFound(error) || error instanceof AllOriginsUnavailableError;
        if (!retryable || attempt >= attempts) {
          throw new PutTagError(
            `resolve dependencies: download manifest ${digest}: ${(error as Error).message}`,
          );
        }
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 30_000);
    }
  }

  async #checkDependencies(tag: string, deps: Digest[]): Promise<void> {
    const results = await Promise.all(deps.map(async (dep) => {
      try {
        return { dep, info: await this.#origin.stat(tag, dep) };
      } catch (error) {
        return { dep, error };
      }
    }));
    for (const r of results) {
      if ("error" in r) {
        throw new PutTagError(`check dependency ${r.dep}: ${(r.error as Error).message}`);
      }
      // The client tagged a manifest whose blobs were never uploaded (upstream: 500).
      if (r.info === null) {
        throw new PutTagError(`cannot upload tag, missing dependency ${r.dep}`, 400);
      }
    }
  }

  /** Local disk, then the backend: synchronously (write-through) or through the queue. */
  async #store(tag: string, digest: Digest, delayMs: number): Promise<void> {
    try {
      await this.#tags.put(tag, digest);
      const task = {
        namespace: tag,
        name: tag,
        delayMs,
        traceContext: storeTraceContext(),
      };
      if (this.#config.tagStore.writeThrough) await this.#writeback.executeNow(task);
      else this.#writeback.add(task);
    } catch (error) {
      throw new PutTagError(`storage: ${(error as Error).message}`);
    }
  }

  /**
   * Adds the replication tasks of `tag` here, then has every neighbour add its own, neighbour k
   * (random order, from 1) delayed by k × stagger; neighbour failures are logged.
   */
  async #scheduleReplication(tag: string, digest: Digest, deps: Digest[]): Promise<void> {
    this.#addReplicationTasks(tag, digest, deps, 0);
    const order = shuffle(this.#neighbours());
    const stagger = this.#config.cluster.duplicateReplicateStaggerMs;
    await Promise.all(order.map(async (client, i) => {
      try {
        await client.duplicateReplicate(tag, digest, deps, stagger * (i + 1));
      } catch (error) {
        this.#logger.warn("duplicate replicate to neighbour failed", {
          tag,
          neighbour: client.addr,
          error,
        });
      }
    }));
  }

  #addReplicationTasks(tag: string, digest: Digest, deps: Digest[], delayMs: number): void {
    const destinations = this.#remotes.match(tag);
    try {
      for (const destination of destinations) {
        this.#replication.add({
          namespace: tag,
          name: destination,
          delayMs,
          traceContext: storeTraceContext(),
          payload: taskPayload(digest, deps),
        });
      }
    } catch (error) {
      throw new PutTagError(`add replicate task: ${(error as Error).message}`);
    }
    if (destinations.length > 0) {
      this.#logger.info("tag replication scheduled", { tag, destinations, delay_ms: delayMs });
    }
  }

  /** Neighbour k (in random order, from 1) writes back after k × stagger; failures are logged. */
  async #duplicateToNeighbours(tag: string, digest: Digest): Promise<void> {
    const order = shuffle(this.#neighbours());
    const stagger = this.#config.cluster.duplicatePutStaggerMs;
    await Promise.all(order.map(async (client, i) => {
      try {
        await client.duplicatePut(tag, digest, stagger * (i + 1));
      } catch (error) {
        this.#logger.warn("duplicate put to neighbour failed", {
          tag,
          neighbour: client.addr,
          error,
        });
      }
    }));
  }
}

/** Options of {@linkcode createTagWriteBackExecutor}. */
export interface TagWriteBackOptions {
  /** Local tag cache (the source of truth for the value). */
  tags: TagStore;
  /** Namespace (tag) → backend. */
  backends: BackendManager;
  /** Logger for dropped tasks. */
  logger: Logger;
}

/**
 * The write-back executor of tags: copies the local value to the backend, as a `backend.upload`
 * span parented on the request that queued it. No backend for the tag or no local value → the task
 * is dropped. Unlike blobs, a tag can be re-pointed, so an existing backend object is compared
 * rather than taken as done.
 */
export function createTagWriteBackExecutor(options: TagWriteBackOptions): WriteBackExecutor {
  const { tags, backends, logger } = options;
  return async (task) => {
    const fields = { namespace: task.namespace, name: task.name };
    const backend = backends.find(task.namespace);
    if (backend === undefined) {
      logger.warn("tag write-back dropped: no backend for namespace", fields);
      return;
    }
    // The task carries the trace context of the request that queued it.
    const parent = contextFromStored(task);
    await withSpan(SPAN.backendUpload, {
      [ATTR.backendType]: backend.type,
      [ATTR.bucket]: backend.bucket ?? "",
      [ATTR.namespace]: task.namespace,
      [ATTR.tag]: task.name,
      [ATTR.writebackFailures]: task.failures,
    }, async (span) => {
      const started = performance.now();
      const value = await tags.get(task.name);
      if (!value) {
        span.setAttribute(ATTR.writebackResult, "not_in_cache");
        logger.warn("tag write-back dropped: tag no longer on disk", fields);
        return;
      }
      const existing = await backend.download(task.namespace, task.name);
      if (existing && (await new Response(existing).text()).trim() === value.toString()) {
        span.setAttribute(ATTR.writebackResult, "already_in_backend");
        return;
      }
      await backend.upload(task.namespace, task.name, new TextEncoder().encode(value.toString()));
      span.setAttributes({
        [ATTR.writebackResult]: "uploaded",
        [ATTR.durationMs]: Math.round(performance.now() - started),
      });
    }, { parent });
  };
}

function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
