/**
 * The origin's blob server: upstream's HTTP API (kraken-wire.md §1.4) over the local blob store,
 * the hash ring, the write-back queue and the backends.
 *
 * Upload path (one trace per push): the public commit verifies the digest and links the blob into
 * the cache (`origin.cache_write`), marks it `persist`, queues the backend write-back with the
 * request's trace context (executed later as `backend.upload`), generates metainfo
 * (`origin.generate_metainfo`), then duplicates the blob to the other ring replicas
 * (`origin.replicate`, one per replica). Replication failures are logged, never fatal.
 *
 * Read path: a cache miss on download, prefetch or metainfo starts a backend fetch and answers
 * 202 until the blob is cached (see `refresh.ts`); the fetched blob is then pushed to the other
 * replicas with the internal transfer API.
 *
 * Namespaces and digests from URLs never name files: the store is addressed by the verified digest
 * alone and namespaces only select a backend, so `..%2F..%2Fetc` cannot leave the store root.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import {
  type BlobSource,
  OriginClient,
  type OriginClientOptions,
} from "../../cluster/blob_client.ts";
import type { HashRing } from "../../cluster/hashring.ts";
import { type Ctx, HttpError, Router } from "../../http/router.ts";
import { logServerErrors } from "../../http/middleware.ts";
import { digestParam } from "../../storage/digest_param.ts";
import type { Backend, BackendManager } from "../../storage/backend/backend.ts";
import {
  BlobExistsError,
  BlobNotFoundError,
  type BlobStore,
  ChunkLengthError,
  ChunkRangeError,
  UploadNotFoundError,
} from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { generateMetaInfo, type MetaInfo, type PieceLengthTable } from "../../storage/metainfo.ts";
import type { WriteBackManager } from "../../storage/writeback.ts";
import {
  metricsHandler,
  setAttributes,
  storeTraceContext,
  tracingMiddleware,
  withSpan,
} from "../../tracing/mod.ts";
import { BlobRefresher } from "./refresh.ts";
import { PERSIST_KEY } from "./writeback.ts";

/** Metadata key of a blob's serialized metainfo. */
export const METAINFO_KEY = "metainfo";

/** What the origin server runs on. */
export interface OriginServerOptions {
  /** The local blob cache. */
  store: BlobStore;
  /** Namespace → backend mapping. */
  backends: BackendManager;
  /** Backends `/readiness` must reach. */
  mustReady?: Backend[];
  /** The origin ring (health-filtered). */
  ring: HashRing;
  /** This origin's ring label. */
  self: string;
  /** The persisted write-back queue. */
  writeback: WriteBackManager;
  /** Piece lengths for metainfo. */
  pieceLengths: PieceLengthTable;
  /** Replica i's write-back delay is `stagger × (i + 1)`, ms. */
  duplicateWriteBackStaggerMs: number;
  /** The role's logger. */
  logger: Logger;
  /** Options of the clients used to replicate to other origins (fetch, chunk size). */
  client?: OriginClientOptions;
  /** Source of randomness for the replica order (default `Math.random`). */
  random?: () => number;
  /** The P2P identity (`GET /internal/peercontext`), JSON with a trailing newline. */
  peerContextJson?: () => string;
  /** Told when a blob leaves the cache, so the P2P seeder stops serving it. */
  onDelete?: (digest: Digest) => Promise<void>;
}

/** Which flavour of the upload protocol a route serves. */
type UploadKind = "public" | "internal" | "duplicate";

const EMPTY = new Uint8Array(0);

/** The origin's HTTP API; {@linkcode OriginServer.router} is what `Deno.serve` runs. */
export class OriginServer {
  /** The routes, behind the tracing middleware. */
  readonly router: Router;
  /** Backend fetches of cache misses. */
  readonly refresher: BlobRefresher;
  readonly #o: OriginServerOptions;
  readonly #random: () => number;
  // Stat target of /readiness: a fixed random name, so "not found" proves the backend answers.
  readonly #probeName = crypto.randomUUID().replaceAll("-", "");

  /** @param options see {@linkcode OriginServerOptions} */
  constructor(options: OriginServerOptions) {
    this.#o = options;
    this.#random = options.random ?? Math.random;
    this.refresher = new BlobRefresher({
      store: options.store,
      backends: options.backends,
      logger: options.logger,
      onFetched: (namespace, digest) => this.#afterFetch(namespace, digest),
    });
    this.router = this.#routes();
  }

  #routes(): Router {
    const r = new Router();
    r.use(tracingMiddleware());
    r.use(logServerErrors(this.#o.logger));
    r.get("/health", () => new Response("OK\n"));
    r.get("/metrics", metricsHandler);
    r.get("/readiness", () => this.#readiness());
    r.get("/blobs/{digest}/locations", (ctx) => {
      const digest = digestParam(ctx);
      const locations = this.#o.ring.locations(digest.hex);
      return new Response(null, { headers: { "Origin-Locations": locations.join(",") } });
    });

    const pub = "/namespace/{namespace}/blobs/{digest}";
    r.post(`${pub}/uploads`, (ctx) => this.#startUpload(ctx, "public"));
    r.patch(`${pub}/uploads/{uid}`, (ctx) => this.#patchUpload(ctx, "public"));
    r.put(`${pub}/uploads/{uid}`, (ctx) => this.#commitUpload(ctx, "public"));
    r.get(pub, (ctx) => this.#download(ctx));
    r.post(`${pub}/prefetch`, (ctx) => this.#prefetch(ctx));

    const internal = "/internal/blobs/{digest}";
    r.post(`${internal}/uploads`, (ctx) => this.#startUpload(ctx, "internal"));
    r.patch(`${internal}/uploads/{uid}`, (ctx) => this.#patchUpload(ctx, "internal"));
    r.put(`${internal}/uploads/{uid}`, (ctx) => this.#commitUpload(ctx, "internal"));
    r.delete(internal, (ctx) => this.#delete(ctx));
    r.get("/internal/peercontext", () => {
      const json = this.#o.peerContextJson?.();
      if (json === undefined) throw new HttpError(404, "this origin does not seed over P2P");
      return new Response(json, { headers: { "content-type": "application/json" } });
    });
    r.post(`${internal}/metainfo`, (ctx) => this.#regenerateMetaInfo(ctx));

    const stat = "/internal/namespace/{namespace}/blobs/{digest}";
    r.head(stat, (ctx) => this.#stat(ctx));
    r.get(`${stat}/metainfo`, (ctx) => this.#getMetaInfo(ctx));
    r.put(
      "/internal/duplicate/namespace/{namespace}/blobs/{digest}/uploads/{uid}",
      (ctx) => this.#commitUpload(ctx, "duplicate"),
    );
    return r;
  }

  // ---- health ---------------------------------------------------------------------------

  async #readiness(): Promise<Response> {
    for (const backend of this.#o.mustReady ?? []) {
      try {
        await backend.stat("", this.#probeName);
      } catch (error) {
        throw new HttpError(503, `not ready to serve traffic: ${(error as Error).message}`);
      }
    }
    return new Response("OK\n");
  }

  // ---- uploads --------------------------------------------------------------------------

  async #startUpload(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const namespace = ctx.params.namespace;
    setAttributes(uploadAttrs(namespace, digest));
    if (await this.#o.store.has(digest)) {
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    const uid = await this.#o.store.createUpload();
    setAttributes({ "upload.uid": uid });
    return new Response(null, { headers: { Location: uid } });
  }

  async #patchUpload(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const { namespace, uid } = ctx.params;
    const [start, end] = parseContentRange(ctx.req.headers.get("content-range"));
    setAttributes({
      ...uploadAttrs(namespace, digest),
      "upload.uid": uid,
      "upload.chunk_start": start,
      "upload.chunk_end": end,
      "upload.chunk_size": end - start,
    });
    if (await this.#o.store.has(digest)) {
      await ctx.req.body?.cancel();
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    try {
      await this.#o.store.writeChunk(uid, start, end, ctx.req.body ?? EMPTY);
    } catch (error) {
      if (error instanceof UploadNotFoundError) throw new HttpError(404);
      if (error instanceof ChunkRangeError) throw new HttpError(400, error.message);
      if (error instanceof ChunkLengthError) throw new HttpError(500, error.message);
      throw error;
    }
    return new Response(null);
  }

  async #commitUpload(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const { namespace, uid } = ctx.params;
    setAttributes({ ...uploadAttrs(namespace, digest), "upload.uid": uid });
    const delayMs = kind === "duplicate" ? await parseDelay(ctx.req) : 0;

    const size = await this.#o.store.statUpload(uid).then((s) => s.size, (error) => {
      if (error instanceof UploadNotFoundError) throw new HttpError(404);
      throw error;
    });
    const outcome = await withSpan("origin.cache_write", {
      namespace,
      digest: digest.toString(),
      size,
    }, async () => {
      try {
        await this.#o.store.commitUpload(uid, digest);
        return "committed";
      } catch (error) {
        // Both are protocol answers, not failures of the cache write.
        if (error instanceof BlobExistsError) return "exists";
        if (error instanceof UploadNotFoundError) return "unknown_upload";
        throw error;
      }
    });
    if (outcome === "unknown_upload") throw new HttpError(404);
    if (outcome === "exists") {
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    setAttributes({ "blob.size_bytes": size });
    if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, delayMs);
    await this.#generateMetaInfo(digest);
    if (kind === "public") await this.#replicate(namespace, digest);
    return new Response(null);
  }

  /** Marks the blob `persist` and queues its write-back with the active trace context. */
  async #ensureWriteBack(namespace: string, digest: Digest, delayMs: number): Promise<void> {
    await this.#o.store.setMetadata(digest, PERSIST_KEY, new TextEncoder().encode("true"));
    this.#o.writeback.add({
      namespace,
      name: digest.hex,
      delayMs,
      traceContext: storeTraceContext(),
    });
  }

  /** Duplicates a committed blob to every other ring replica, concurrently, in random order. */
  async #replicate(namespace: string, digest: Digest): Promise<void> {
    const replicas = this.#replicas(digest);
    if (replicas.length === 0) return;
    const started = performance.now();
    const stagger = this.#o.duplicateWriteBackStaggerMs;
    const source = await this.#source(digest);
    const errors = await Promise.all(replicas.map((host, i) =>
      withSpan("origin.replicate", {
        replica: host,
        namespace,
        digest: digest.toString(),
        delay_ms: stagger * (i + 1),
      }, () => this.#client(host).duplicateUpload(namespace, digest, source, stagger * (i + 1)))
        .then(() => undefined, (error: unknown) => {
          this.#o.logger.error("replication failed", {
            replica: host,
            digest: digest.toString(),
            error,
          });
          return `${host}: ${(error as Error).message}`;
        })
    ));
    const failed = errors.filter((e) => e !== undefined);
    setAttributes({
      "replication.duration_ms": Math.round(performance.now() - started),
      "replication.replicas": replicas.length,
    });
    if (failed.length > 0) setAttributes({ "replication.error": failed.join("; ") });
  }

  /** After a backend fetch: metainfo, then the blob goes to the other replicas (no write-back). */
  async #afterFetch(namespace: string, digest: Digest): Promise<void> {
    await this.#generateMetaInfo(digest);
    const source = await this.#source(digest);
    await Promise.all(
      this.#replicas(digest).map((host) =>
        withSpan("origin.replicate", {
          replica: host,
          namespace,
          digest: digest.toString(),
          mode: "transfer",
        }, () => this.#client(host).transferBlob(digest, source)).catch((error) => {
          this.#o.logger.error("replication after backend fetch failed", {
            replica: host,
            digest: digest.toString(),
            error,
          });
        })
      ),
    );
  }

  #replicas(digest: Digest): string[] {
    const others = this.#o.ring.locations(digest.hex).filter((h) => h !== this.#o.self);
    for (let i = others.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [others[i], others[j]] = [others[j], others[i]];
    }
    return others;
  }

  #client(addr: string): OriginClient {
    return new OriginClient(addr, this.#o.client);
  }

  /** The cached blob as a re-openable upload source. */
  async #source(digest: Digest): Promise<BlobSource> {
    const stat = await this.#o.store.stat(digest);
    if (!stat) throw new BlobNotFoundError(digest);
    return { size: stat.size, open: () => this.#o.store.open(digest).then((b) => b.stream) };
  }

  // ---- metainfo -------------------------------------------------------------------------

  #generateMetaInfo(digest: Digest, pieceLength?: number): Promise<MetaInfo> {
    return withSpan("origin.generate_metainfo", { digest: digest.toString() }, async (span) => {
      const blob = await this.#o.store.open(digest);
      const mi = await generateMetaInfo(digest, blob, pieceLength ?? this.#o.pieceLengths);
      span.setAttributes({ size: mi.length, piece_length: mi.pieceLength, pieces: mi.numPieces });
      await this.#o.store.setMetadata(
        digest,
        METAINFO_KEY,
        new TextEncoder().encode(mi.serialize()),
      );
      return mi;
    });
  }

  async #getMetaInfo(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    const stored = await this.#o.store.getMetadata(digest, METAINFO_KEY);
    if (stored) return new Response(stored as Uint8Array<ArrayBuffer>);
    // A blob cached without metainfo (a crash between commit and generation) gets it now.
    if (await this.#o.store.has(digest)) {
      try {
        return new Response((await this.#generateMetaInfo(digest)).serialize());
      } catch (error) {
        if (!(error instanceof BlobNotFoundError)) throw error;
      }
    }
    return await this.refresher.refresh(ctx.params.namespace, digest);
  }

  async #regenerateMetaInfo(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    const raw = ctx.url.searchParams.get("piece_length") ?? "";
    const pieceLength = /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
    if (pieceLength <= 0) {
      throw new HttpError(
        400,
        `piece_length must be a positive integer, got ${JSON.stringify(raw)}`,
      );
    }
    try {
      await this.#generateMetaInfo(digest, pieceLength);
    } catch (error) {
      if (error instanceof BlobNotFoundError) throw new HttpError(404);
      throw error;
    }
    return new Response(null);
  }

  // ---- reads ----------------------------------------------------------------------------

  async #download(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    setAttributes({ namespace: ctx.params.namespace, "blob.digest": digest.hex });
    try {
      const blob = await this.#o.store.open(digest);
      return new Response(blob.stream, {
        headers: {
          "Content-Length": String(blob.size),
          "Content-Type": "application/octet-stream",
        },
      });
    } catch (error) {
      if (!(error instanceof BlobNotFoundError)) throw error;
    }
    return await this.refresher.refresh(ctx.params.namespace, digest);
  }

  async #prefetch(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    if (await this.#o.store.has(digest)) return new Response(null);
    return await this.refresher.refresh(ctx.params.namespace, digest);
  }

  async #stat(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    const namespace = ctx.params.namespace;
    const local = parseGoBool(ctx.url.searchParams.get("local"), "local");
    const cached = await this.#o.store.stat(digest);
    if (cached) return sizeResponse(cached.size);
    if (local) throw new HttpError(404);
    let backend: Backend;
    try {
      backend = this.#o.backends.getClient(namespace);
    } catch (error) {
      throw new HttpError(500, (error as Error).message);
    }
    const info = await withSpan("backend.stat", {
      backend_type: backend.type,
      bucket: backend.bucket ?? "",
      namespace,
      digest: digest.toString(),
    }, async (span) => {
      const found = await backend.stat(namespace, digest.hex);
      span.setAttribute("exists", found !== null);
      return found;
    });
    if (!info) throw new HttpError(404);
    return sizeResponse(info.size);
  }

  async #delete(ctx: Ctx): Promise<Response> {
    const digest = digestParam(ctx);
    if (!await this.#o.store.delete(digest)) throw new HttpError(404);
    await this.#o.onDelete?.(digest);
    return new Response(null, { status: 202, headers: { "Content-Length": "0" } });
  }
}

function uploadAttrs(namespace: string | undefined, digest: Digest): Record<string, string> {
  return namespace === undefined
    ? { "blob.digest": digest.hex }
    : { namespace, "blob.digest": digest.hex };
}

/** `Content-Range: <start>-<end>`, end exclusive, no `bytes ` prefix (upstream's form). */
export function parseContentRange(header: string | null): [number, number] {
  if (header === null) throw new HttpError(400, "missing Content-Range header");
  const m = /^(\d{1,15})-(\d{1,15})$/.exec(header.trim());
  if (!m) {
    throw new HttpError(
      400,
      `malformed Content-Range ${JSON.stringify(header.slice(0, 64))}: expected <start>-<end>`,
    );
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new HttpError(400, `Content-Range end ${end} is before start ${start}`);
  return [start, end];
}

/** Go's `strconv.ParseBool`; absent is false. Upstream answers a bad value with 500. */
function parseGoBool(value: string | null, name: string): boolean {
  if (value === null) return false;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  throw new HttpError(500, `invalid ${name} argument ${JSON.stringify(value.slice(0, 32))}`);
}

/** The duplicate commit's body `{"Delay": <ns>}`, keys matched case-insensitively as Go does. */
async function parseDelay(req: Request): Promise<number> {
  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch (error) {
    throw new HttpError(500, `json decode: ${(error as Error).message}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(500, "json decode: duplicate commit body must be an object");
  }
  const entry = Object.entries(body).find(([k]) => k.toLowerCase() === "delay");
  const ns = entry?.[1] ?? 0;
  if (typeof ns !== "number" || !Number.isInteger(ns)) {
    throw new HttpError(
      500,
      `json decode: Delay must be integer nanoseconds, got ${JSON.stringify(ns)}`,
    );
  }
  return Math.max(0, ns / 1e6);
}

function sizeResponse(size: number): Response {
  return new Response(null, { headers: { "Content-Length": String(size) } });
}
