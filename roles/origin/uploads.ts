/**
 * The origin's upload protocol (kraken-wire.md §1.4) in its three flavours:
 *
 * | Flavour | Routes (POST start, PATCH chunk, PUT commit) | After the commit |
 * |---|---|---|
 * | public | `/namespace/{namespace}/blobs/{digest}/uploads[/{uid}]` | write-back, metainfo, duplicate to replicas |
 * | internal | `/internal/blobs/{digest}/uploads[/{uid}]` | metainfo only |
 * | duplicate | `PUT /internal/duplicate/namespace/{namespace}/blobs/{digest}/uploads/{uid}` | delayed write-back, metainfo |
 *
 * The public commit verifies the digest and links the blob into the cache (`origin.cache_write`),
 * marks it `persist`, queues the backend write-back with the request's trace context (executed
 * later as `backend.upload`), generates metainfo (`origin.generate_metainfo`), then duplicates the
 * blob to the other ring replicas (`origin.replicate`). A blob already cached is a 409 (after
 * making sure its write-back is queued). A start while `max_upload_sessions` are open is a 429
 * (see `upload_cleanup.ts`, which also expires abandoned sessions).
 *
 * @module
 */

import { requestBody, RequestBodyError } from "../../http/request_body.ts";
import { type Ctx, HttpError, type Router } from "../../http/router.ts";
import {
  BlobExistsError,
  ChunkLengthError,
  ChunkRangeError,
  DigestMismatchError,
  UploadNotFoundError,
} from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { digestParam } from "../../storage/digest_param.ts";
import type { WriteBackManager } from "../../storage/writeback.ts";
import { ATTR, setAttributes, SPAN, storeTraceContext, withSpan } from "../../tracing/mod.ts";
import { type MetaInfoDeps, storeMetaInfo } from "./metainfo.ts";
import type { Replicator } from "./replication.ts";
import { type OriginUploadSessions, UploadLimitError } from "./upload_cleanup.ts";
import { PERSIST_KEY } from "./writeback.ts";
import type { OriginMetrics, UploadKind } from "./metrics.ts";
import {
  DUPLICATE_COMMIT,
  DuplicateCommitError,
  INTERNAL_UPLOAD_COMMIT,
  INTERNAL_UPLOAD_PATCH,
  INTERNAL_UPLOAD_START,
  parseDuplicateCommit,
  UPLOAD_COMMIT,
  UPLOAD_PATCH,
  UPLOAD_START,
} from "../../wire/blob.ts";

/** What the upload routes run on. */
export interface UploadDeps extends MetaInfoDeps {
  /** The persisted write-back queue. */
  writeback: WriteBackManager;
  /** Duplicates public commits to the other replicas. */
  replicator: Replicator;
  /** Starts sessions within `max_upload_sessions`. */
  uploadSessions: OriginUploadSessions;
  /** Where commits are counted (default: counted nowhere). */
  metrics?: OriginMetrics;
}

const EMPTY = new Uint8Array(0);

function uploadAttrs(namespace: string | undefined, digest: Digest): Record<string, string> {
  return namespace === undefined
    ? { [ATTR.digest]: digest.toString() }
    : { [ATTR.namespace]: namespace, [ATTR.digest]: digest.toString() };
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

/**
 * The duplicate commit's delay (`{"Delay": <ns>}`, see `wire/blob.ts`). A body that is not that
 * is the sender's error: 400 (upstream answers 500).
 */
async function parseDelay(req: Request): Promise<number> {
  try {
    return parseDuplicateCommit(JSON.parse(await req.text()));
  } catch (error) {
    if (error instanceof DuplicateCommitError) throw new HttpError(400, error.message);
    throw new HttpError(400, `json decode: ${(error as Error).message}`);
  }
}

/** The upload handlers of every flavour. */
class UploadHandlers {
  readonly #d: UploadDeps;

  constructor(deps: UploadDeps) {
    this.#d = deps;
  }

  async start(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const namespace = ctx.params.namespace;
    setAttributes(uploadAttrs(namespace, digest));
    if (await this.#d.store.has(digest)) {
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    let uid: string;
    try {
      uid = await this.#d.uploadSessions.create();
    } catch (error) {
      if (!(error instanceof UploadLimitError)) throw error;
      throw new HttpError(
        429,
        `too many open upload sessions (max_upload_sessions ${error.limit}); retry later`,
      );
    }
    setAttributes({ [ATTR.uploadId]: uid });
    return new Response(null, { headers: { Location: uid } });
  }

  async patch(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const { namespace, uid } = ctx.params;
    const [start, end] = parseContentRange(ctx.req.headers.get("content-range"));
    setAttributes({
      ...uploadAttrs(namespace, digest),
      [ATTR.uploadId]: uid,
      [ATTR.rangeStart]: start,
      [ATTR.rangeEnd]: end,
      [ATTR.chunkSize]: end - start,
    });
    if (await this.#d.store.has(digest)) {
      await ctx.req.body?.cancel();
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    try {
      await this.#d.store.writeChunk(uid, start, end, requestBody(ctx.req) ?? EMPTY);
    } catch (error) {
      if (error instanceof UploadNotFoundError) throw new HttpError(404);
      // A body that does not match its range, or ends early, is the client's error (upstream: 500).
      if (
        error instanceof ChunkRangeError || error instanceof ChunkLengthError ||
        error instanceof RequestBodyError
      ) {
        throw new HttpError(400, error.message);
      }
      throw error;
    }
    return new Response(null);
  }

  async commit(ctx: Ctx, kind: UploadKind): Promise<Response> {
    const digest = digestParam(ctx);
    const { namespace, uid } = ctx.params;
    setAttributes({ ...uploadAttrs(namespace, digest), [ATTR.uploadId]: uid });
    const delayMs = kind === "duplicate" ? await parseDelay(ctx.req) : 0;

    const size = await this.#d.store.statUpload(uid).then((s) => s.size, (error) => {
      if (error instanceof UploadNotFoundError) throw new HttpError(404);
      throw error;
    });
    const outcome = await withSpan(SPAN.originCacheWrite, {
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      [ATTR.size]: size,
    }, async () => {
      try {
        await this.#d.store.commitUpload(uid, digest);
        return "committed";
      } catch (error) {
        // Both are protocol answers, not failures of the cache write.
        if (error instanceof BlobExistsError) return "exists";
        if (error instanceof UploadNotFoundError) return "unknown_upload";
        if (error instanceof DigestMismatchError) return error;
        throw error;
      }
    });
    if (outcome === "unknown_upload") throw new HttpError(404);
    const metrics = this.#d.metrics;
    // The client sent bytes that are not the blob it named (upstream: 500); the session is gone.
    if (outcome instanceof DigestMismatchError) {
      metrics?.upload(kind, "digest_mismatch", size);
      throw new HttpError(400, outcome.message);
    }
    metrics?.upload(kind, outcome, size);
    if (outcome === "exists") {
      if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, 0);
      throw new HttpError(409);
    }
    setAttributes({ [ATTR.size]: size });
    if (kind !== "internal") await this.#ensureWriteBack(namespace, digest, delayMs);
    await storeMetaInfo(this.#d, digest);
    if (kind === "public") await this.#d.replicator.duplicate(namespace, digest);
    return new Response(null);
  }

  /** Marks the blob `persist` and queues its write-back with the active trace context. */
  async #ensureWriteBack(namespace: string, digest: Digest, delayMs: number): Promise<void> {
    await this.#d.store.setMetadata(digest, PERSIST_KEY, new TextEncoder().encode("true"));
    this.#d.writeback.add({
      namespace,
      name: digest.hex,
      delayMs,
      traceContext: storeTraceContext(),
    });
  }
}

/** Registers the public, internal and duplicate upload routes. */
export function registerUploadRoutes(router: Router, deps: UploadDeps): void {
  const h = new UploadHandlers(deps);
  router.route(UPLOAD_START, (ctx) => h.start(ctx, "public"));
  router.route(UPLOAD_PATCH, (ctx) => h.patch(ctx, "public"));
  router.route(UPLOAD_COMMIT, (ctx) => h.commit(ctx, "public"));
  router.route(INTERNAL_UPLOAD_START, (ctx) => h.start(ctx, "internal"));
  router.route(INTERNAL_UPLOAD_PATCH, (ctx) => h.patch(ctx, "internal"));
  router.route(INTERNAL_UPLOAD_COMMIT, (ctx) => h.commit(ctx, "internal"));
  router.route(DUPLICATE_COMMIT, (ctx) => h.commit(ctx, "duplicate"));
}
