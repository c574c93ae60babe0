/**
 * The agent server (kraken-wire.md §1.1): health, readiness, tag lookup, the blob API that
 * downloads over P2P, and blob deletion. It is an edge listener: its server spans treat a
 * client's sampling decision as untrusted.
 *
 * | Route | Answer |
 * |---|---|
 * | `GET /health` | 200 `OK` while the scheduler runs, else 500 |
 * | `GET /metrics` | tracing self-metrics, Prometheus text |
 * | `GET /readiness` | 200 `OK`, or 503 `agent not ready: <errors>` (scheduler, build-index, tracker) |
 * | `GET /tags/{tag}` | 200 `sha256:<hex>`, 404, or 500 `get tag: …` |
 * | `GET /namespace/{namespace}/blobs/{digest}` | 200 with the blob; 404 (empty) for an unknown blob; 400 bad digest; 500 `download torrent: …` |
 * | `DELETE /blobs/{digest}` | 200 after the blob left memory and disk, or 500 |
 *
 * `{digest}` is `sha256:<hex>` or bare hex on the blob routes.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { HashRing } from "../../cluster/hashring.ts";
import { HttpError, Router } from "../../http/router.ts";
import { logServerErrors } from "../../http/middleware.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { TorrentNotFoundError } from "../../p2p/scheduler.ts";
import type { Digest } from "../../storage/digest.ts";
import { setAttributes, tracedFetch, type TracingRuntime, withSpan } from "../../tracing/mod.ts";
import type { AgentBlobs } from "./blobs.ts";

/** What resolves `repo:tag` to a manifest digest (a build-index cluster client). */
export interface TagResolver {
  /** The digest, or null when the tag is unknown. */
  get(tag: string): Promise<Digest | null>;
}

/** What the agent server runs on. */
export interface AgentServerDeps {
  /** Cache-or-P2P blob access. */
  blobs: AgentBlobs;
  /** The scheduler: health probe and removal. */
  scheduler: { probe(): Promise<void>; remove(digest: Digest): Promise<void> };
  /** Tag lookups. */
  tags: TagResolver;
  /** Build-index hosts, for readiness. */
  buildIndexHosts: readonly string[];
  /** Tracker hosts, for readiness. */
  trackerHosts: readonly string[];
  /** The role's logger. */
  logger: Logger;
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
  /** Readiness probe timeout, ms. Default 5000. */
  readinessTimeoutMs?: number;
  /** Fetch for readiness probes (default traced fetch). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Random source for picking a build-index (default `Math.random`). */
  random?: () => number;
}

// The digest whose tracker ring location answers for readiness (any fixed digest will do).
const READINESS_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * Resolves `repo:tag` in span `agent.resolve_tag` (attributes `tag`, and `digest` when found).
 * @throws whatever the resolver throws
 */
export function resolveTag(tags: TagResolver, tag: string): Promise<Digest | null> {
  return withSpan("agent.resolve_tag", { tag }, async (span) => {
    const digest = await tags.get(tag);
    span.setAttribute("found", digest !== null);
    if (digest) span.setAttribute("digest", digest.toString());
    return digest;
  });
}

/** Builds the agent server's router. */
export function createAgentRouter(deps: AgentServerDeps): Router {
  const timeoutMs = deps.readinessTimeoutMs ?? 5000;
  const probeFetch = deps.fetch ??
    ((url: string, init: RequestInit) => tracedFetch(url, { ...init, route: "/readiness" }));
  const random = deps.random ?? Math.random;
  const trackerRing = new HashRing([...deps.trackerHosts]);

  const probe = async (what: string, addr: string): Promise<void> => {
    let res: Response;
    try {
      res = await probeFetch(`http://${addr}/readiness`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new Error(`${what} ${addr}: ${(error as Error).message}`);
    }
    const text = await res.text().catch(() => "");
    if (res.status !== 200) throw new Error(`${what} ${addr}: ${res.status} ${text}`.trim());
  };

  const r = new Router();
  r.use(deps.tracing.serverMiddleware({ edge: true }));
  r.use(logServerErrors(deps.logger));

  r.get("/health", async () => {
    try {
      await deps.scheduler.probe();
    } catch (error) {
      throw new HttpError(500, `scheduler: ${(error as Error).message}`);
    }
    return new Response("OK");
  });

  r.get("/metrics", deps.tracing.metricsHandler);

  r.get("/readiness", async () => {
    const buildIndex = deps.buildIndexHosts[Math.floor(random() * deps.buildIndexHosts.length)];
    const tracker = trackerRing.locations(READINESS_DIGEST)[0];
    const results = await Promise.allSettled([
      deps.scheduler.probe().catch((e) => {
        throw new Error(`scheduler: ${e.message}`);
      }),
      probe("build-index", buildIndex),
      tracker === undefined
        ? Promise.reject(new Error("tracker: no healthy tracker"))
        : probe("tracker", tracker),
    ]);
    const errors = results
      .filter((x): x is PromiseRejectedResult => x.status === "rejected")
      .map((x) => (x.reason as Error).message);
    if (errors.length > 0) throw new HttpError(503, `agent not ready: ${errors.join("\n")}`);
    return new Response("OK");
  });

  r.get("/tags/{tag}", async (ctx) => {
    let digest: Digest | null;
    try {
      digest = await resolveTag(deps.tags, ctx.params.tag);
    } catch (error) {
      throw new HttpError(500, `get tag: ${(error as Error).message}`);
    }
    if (digest === null) throw new HttpError(404);
    return new Response(digest.toString());
  });

  r.get("/namespace/{namespace}/blobs/{digest}", async (ctx) => {
    const digest = digestParam(ctx, { loose: true });
    const namespace = ctx.params.namespace;
    setAttributes({ namespace, digest: digest.toString() });
    try {
      return await deps.blobs.serve(namespace, digest, { head: ctx.req.method === "HEAD" });
    } catch (error) {
      if (error instanceof TorrentNotFoundError) throw new HttpError(404);
      throw new HttpError(500, `download torrent: ${(error as Error).message}`);
    }
  });

  r.delete("/blobs/{digest}", async (ctx) => {
    const digest = digestParam(ctx, { loose: true });
    try {
      await deps.scheduler.remove(digest);
    } catch (error) {
      throw new HttpError(500, `delete blob: ${(error as Error).message}`);
    }
    return new Response(null);
  });

  return r;
}
