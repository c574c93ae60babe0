/**
 * The build-index HTTP server (kraken-wire.md §1.5): routes, request parsing and upstream's answers,
 * over {@linkcode BuildIndexService}.
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | GET | `/health` | 200 `OK\n` |
 * | GET | `/readiness` | backends, then the origin cluster: 200 `OK\n` or 503 |
 * | PUT | `/tags/{tag}/digest/{digest}[?replicate=]` | put tag; 500 with upstream's messages |
 * | HEAD | `/tags/{tag}` | backend only: 200 / 404 |
 * | GET | `/tags/{tag}` | disk, then backend: 200 `sha256:<hex>` / 404 |
 * | GET | `/list/{prefix+}` | ListResponse JSON, optional `limit`/`offset` pagination |
 * | GET | `/repositories/{repo+}/tags` | ListResponse of bare tags |
 * | GET | `/origin` | the origin cluster's address |
 * | PUT | `/internal/duplicate/tags/{tag}/digest/{digest}` | `{"delay": ns}`: store from a neighbour |
 *
 * Every request gets a server span from the tracing middleware.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { parseHostPort } from "../../common/config.ts";
import { type Ctx, HttpError, Router } from "../../http/router.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { BackendManager } from "../../storage/backend/backend.ts";
import { WriteBackManager } from "../../storage/writeback.ts";
import { metricsHandler, tracedFetch, tracingMiddleware } from "../../tracing/mod.ts";
import type { TagClientOptions } from "../../cluster/tag_client.ts";
import type { BuildIndexConfig } from "./config.ts";
import {
  BuildIndexService,
  createTagWriteBackExecutor,
  type OriginBlobs,
  PutTagError,
} from "./service.ts";
import { InvalidTagError, TagStore, validateTag } from "./tag_store.ts";

/** Page size when pagination is asked for without a `limit` (upstream's default). */
const DEFAULT_PAGE_SIZE = 250;

/** Go's `strconv.ParseBool` spellings. */
const GO_TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const GO_FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

function tagParam(ctx: Ctx): string {
  try {
    return validateTag(ctx.params.tag);
  } catch (error) {
    if (error instanceof InvalidTagError) throw new HttpError(400, error.message);
    throw error;
  }
}

function ok(): Response {
  return new Response("OK\n");
}

/** Reads `limit`/`offset` like upstream: unknown or repeated keys and `limit=0` are 400. */
function pagination(url: URL): { paginated: boolean; limit: number; offset: string } {
  const seen = new Set<string>();
  for (const key of url.searchParams.keys()) {
    if (key !== "limit" && key !== "offset") throw new HttpError(400, `invalid query key ${key}`);
    if (seen.has(key)) throw new HttpError(400, `query key ${key} repeated`);
    seen.add(key);
  }
  const rawLimit = url.searchParams.get("limit");
  let limit = DEFAULT_PAGE_SIZE;
  if (rawLimit !== null) {
    if (!/^\d+$/.test(rawLimit) || Number(rawLimit) === 0) {
      throw new HttpError(400, `invalid limit ${JSON.stringify(rawLimit)}`);
    }
    limit = Number(rawLimit);
  }
  return { paginated: seen.size > 0, limit, offset: url.searchParams.get("offset") ?? "" };
}

/**
 * Builds a ListResponse. Pages are cut from the sorted names; the continuation token is the last
 * name of the page, so a page boundary survives tags added in between.
 */
function listResponse(ctx: Ctx, names: string[], map: (n: string) => string = (n) => n): Response {
  const { paginated, limit, offset } = pagination(ctx.url);
  let page = names;
  let next = "";
  if (paginated) {
    const start = offset === "" ? 0 : names.findIndex((n) => n > offset);
    page = start < 0 ? [] : names.slice(start, start + limit);
    if (start >= 0 && start + limit < names.length) {
      const query = new URLSearchParams();
      if (ctx.url.searchParams.has("limit")) query.set("limit", String(limit));
      query.set("offset", page[page.length - 1]);
      next = `${ctx.url.pathname}?${query}`;
    }
  }
  const result = page.map(map);
  const body = {
    Links: { next, self: ctx.url.pathname + ctx.url.search },
    size: result.length,
    result,
  };
  return new Response(JSON.stringify(body) + "\n", {
    headers: { "content-type": "application/json" },
  });
}

/** Options of {@linkcode createBuildIndexRouter}. */
export interface BuildIndexRouterOptions {
  /** The behaviour behind the routes. */
  service: BuildIndexService;
  /** Origin hosts asked for readiness. */
  originHosts: string[];
}

/** The build-index routes with the tracing middleware. */
export function createBuildIndexRouter(options: BuildIndexRouterOptions): Router {
  const { service, originHosts } = options;
  const router = new Router().use(tracingMiddleware());

  router.get("/health", ok);
  router.get("/metrics", metricsHandler);

  router.get("/readiness", async () => {
    for (const backend of service.backends.backends) {
      // A name of the `repo:tag` form, so every name-path layout accepts it; absent is fine.
      const probe = `kraken-readiness:${crypto.randomUUID()}`;
      try {
        await backend.stat(probe, probe);
      } catch (error) {
        throw new HttpError(
          503,
          `not ready to serve traffic: backend: ${(error as Error).message}`,
        );
      }
    }
    const reasons: string[] = [];
    for (const host of originHosts) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new Error("timed out after 5000 ms")), 5000);
      try {
        const res = await tracedFetch(`http://${host}/readiness`, {
          route: "/readiness",
          signal: abort.signal,
        });
        await res.body?.cancel();
        if (res.status === 200) return ok();
        reasons.push(`${host}: ${res.status}`);
      } catch (error) {
        reasons.push(`${host}: ${(error as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    throw new HttpError(503, `not ready to serve traffic: origin cluster: ${reasons.join("; ")}`);
  });

  router.put("/tags/{tag}/digest/{digest}", async (ctx) => {
    const tag = tagParam(ctx);
    const digest = digestParam(ctx);
    const raw = ctx.url.searchParams.get("replicate");
    if (raw !== null && !GO_TRUE.has(raw) && !GO_FALSE.has(raw)) {
      throw new HttpError(500, `invalid replicate value ${JSON.stringify(raw)}`);
    }
    try {
      await service.putTag(tag, digest, raw !== null && GO_TRUE.has(raw));
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });

  router.head("/tags/{tag}", async (ctx) => {
    const found = await service.hasTag(tagParam(ctx));
    if (!found) throw new HttpError(404);
    return new Response(null, { status: 200 });
  });

  router.get("/tags/{tag}", async (ctx) => {
    const digest = await service.getTag(tagParam(ctx));
    if (!digest) throw new HttpError(404);
    return new Response(digest.toString());
  });

  const list = async (ctx: Ctx, prefix: string) => listResponse(ctx, await service.list(prefix));
  router.get("/list/", (ctx) => list(ctx, ""));
  router.get("/list/{prefix+}", (ctx) => list(ctx, ctx.params.prefix));

  router.get("/repositories/{repo+}/tags", async (ctx) => {
    const repo = ctx.params.repo;
    const names = await service.list(`${repo}/_manifests/tags`, repo);
    return listResponse(ctx, names, (n) => n.slice(n.lastIndexOf(":") + 1));
  });

  router.get("/origin", () => new Response(service.originAddress()));

  router.put("/internal/duplicate/tags/{tag}/digest/{digest}", async (ctx) => {
    const tag = tagParam(ctx);
    const digest = digestParam(ctx);
    let delayNs: unknown;
    try {
      delayNs = (await ctx.req.json())?.delay ?? 0;
    } catch (error) {
      throw new HttpError(500, `json decode: ${(error as Error).message}`);
    }
    if (typeof delayNs !== "number" || !Number.isFinite(delayNs) || delayNs < 0) {
      throw new HttpError(500, `json decode: delay must be a non-negative number of nanoseconds`);
    }
    try {
      await service.duplicatePut(tag, digest, delayNs / 1e6);
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });

  return router;
}

/** Dependencies {@linkcode startBuildIndexServer} does not build itself. */
export interface BuildIndexDeps {
  /** The origin cluster client. */
  origin: OriginBlobs;
  /** Logger. */
  logger: Logger;
  /** Backend mapping (default: built from `config.backends`). */
  backends?: BackendManager;
  /** Options of the neighbour clients (tests inject a fetch). */
  tagClientOptions?: TagClientOptions;
}

/** A running build-index. */
export interface BuildIndexServer {
  /** The listen port actually bound. */
  readonly port: number;
  /** The behaviour behind the routes (tests inspect it). */
  readonly service: BuildIndexService;
  /** The write-back queue. */
  readonly writeback: WriteBackManager;
  /** Stops serving, then stops the write-back queue (queued rows stay persisted). */
  stop(): Promise<void>;
}

/** Addresses by which this host may appear in `cluster.hosts`. */
function localNames(): Set<string> {
  const names = new Set(["localhost", "127.0.0.1", "::1", "0.0.0.0"]);
  try {
    names.add(Deno.hostname());
    for (const nic of Deno.networkInterfaces()) names.add(nic.address);
  } catch {
    // Without --allow-sys only the loopback names can identify this host.
  }
  return names;
}

/**
 * The cluster hosts other than this one: `self` if configured, otherwise every entry naming a local
 * address with the listen port.
 */
export function neighbourHosts(hosts: string[], port: number, self?: string): string[] {
  if (self) return hosts.filter((h) => h !== self);
  const local = localNames();
  return hosts.filter((h) => {
    const { hostname, port: p } = parseHostPort(h, "cluster.hosts");
    return !(p === port && local.has(hostname));
  });
}

/** Opens the tag store and write-back queue and starts serving. */
export async function startBuildIndexServer(
  config: BuildIndexConfig,
  deps: BuildIndexDeps,
): Promise<BuildIndexServer> {
  const { logger } = deps;
  const backends = deps.backends ?? new BackendManager(config.backends);
  const tags = await TagStore.open({ root: `${config.storageRoot}/tags` });
  const writeback = new WriteBackManager({
    dbPath: config.writeback.db,
    executor: createTagWriteBackExecutor({ tags, backends, logger }),
    retryIntervalMs: config.writeback.retryIntervalMs,
    pollIntervalMs: config.writeback.pollIntervalMs,
    workers: config.writeback.workers,
    onError: (error, task) =>
      logger.warn("tag write-back failed", { tag: task?.name, failures: task?.failures, error }),
  });
  writeback.start();
  const service = new BuildIndexService({
    config,
    tags,
    writeback,
    backends,
    origin: deps.origin,
    logger,
    tagClientOptions: deps.tagClientOptions,
  });
  const router = createBuildIndexRouter({ service, originHosts: config.origin.hosts });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: config.listen.host, port: config.listen.port, onListen: () => {} },
      router.handler(),
    );
  } catch (error) {
    await writeback.stop();
    throw error;
  }
  const port = server.addr.port;
  service.setNeighbours(neighbourHosts(config.cluster.hosts, port, config.cluster.self));
  logger.info("build-index listening", {
    host: config.listen.host,
    port,
    neighbours: service.neighbours,
    write_through: config.tagStore.writeThrough,
  });
  let stopped = false;
  return {
    port,
    service,
    writeback,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
      await writeback.stop();
    },
  };
}
