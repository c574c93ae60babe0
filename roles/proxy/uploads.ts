/**
 * The registry's blob upload sessions:
 *
 * | Method | Route | What happens |
 * |---|---|---|
 * | POST | `/v2/{name}/blobs/uploads/` | new session (202), cross-repo mount (201; 202 session when the cluster lacks the blob), or monolithic `?digest=` (201) |
 * | GET/PATCH/PUT/DELETE | `/v2/{name}/blobs/uploads/{uuid}` | status / chunk / final chunk + commit / abort |
 *
 * Tracing: one trace per blob upload session. `proxy.upload` starts at the POST (child of its
 * server span) and ends when the session commits, is aborted or expires; every request of the
 * session runs `proxy.start_upload`, `proxy.upload_chunk` or `proxy.commit_upload` (›
 * `origin.store_blob`) as a child of that stored span context, linked to the request's own server
 * span.
 *
 * @module
 */

import type { BlobSource } from "../../cluster/blob_client.ts";
import { concatBytes } from "../../common/bytes.ts";
import { requestBody, RequestBodyError } from "../../http/request_body.ts";
import type { Ctx, Handler } from "../../http/router.ts";
import { parseRegistryDigest, RegistryError } from "../../registry/errors.ts";
import {
  BlobExistsError,
  DigestMismatchError,
  UploadNotFoundError,
} from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import {
  ATTR,
  contextFromStored,
  linkToActive,
  recordError,
  runInSpan,
  SPAN,
  type Span,
  type SpanName,
  startSpan,
  storeTraceContext,
  withSpan,
} from "../../tracing/mod.ts";
import {
  blobCreated,
  blobSize,
  nameParam,
  PUSH_NAMESPACE,
  pushToOrigin,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";
import type { SessionOutcome, UploadSession } from "./upload_sessions.ts";

/** Bytes gathered from a streaming body before they are written to the staging file. */
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

function uploadLocation(name: string, uid: string): string {
  return `/v2/${name}/blobs/uploads/${uid}`;
}

/** The headers of an upload-session answer; `Range` is the inclusive span of bytes received. */
function uploadHeaders(name: string, uid: string, size: number): Record<string, string> {
  return {
    location: uploadLocation(name, uid),
    range: `0-${Math.max(size - 1, 0)}`,
    "docker-upload-uuid": uid,
    "content-length": "0",
  };
}

/** Parses an optional chunk `Content-Range` (`<start>-<end>`, inclusive; `bytes ` prefix allowed). */
function contentRange(header: string | null): { start: number; end: number } | null {
  if (header === null) return null;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m || Number(m[2]) < Number(m[1])) {
    throw new RegistryError(
      "BLOB_UPLOAD_INVALID",
      `invalid Content-Range ${JSON.stringify(header)}`,
    );
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}

/** A chunk whose body does not have the length its `Content-Range` announced. */
function chunkLengthInvalid(announced: number, actual: string): RegistryError {
  return new RegistryError(
    "BLOB_UPLOAD_INVALID",
    `Content-Range announced ${announced} bytes, ${actual}`,
  );
}

/** The digest of `?mount=`, or null when it is not one Kraken can hold. */
function mountDigest(value: string): Digest | null {
  try {
    return parseRegistryDigest(value);
  } catch (error) {
    if (error instanceof RegistryError) return null;
    throw error;
  }
}

function uploadUnknown(uid: string): RegistryError {
  return new RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {
    uuid: uid.slice(0, 100),
  });
}

/** Registers the upload-session routes. */
export function registerUploadRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  const { store, sessions } = deps;

  const cachedSource = (digest: Digest, size: number): BlobSource => ({
    size,
    open: async () => (await store.open(digest)).stream,
  });

  /** A span of one request of an upload session: child of `proxy.upload`, linked to this request. */
  const sessionSpan = <T>(
    session: UploadSession,
    name: SpanName,
    fn: (span: Span) => Promise<T>,
  ): Promise<T> => {
    const link = linkToActive();
    return withSpan(
      name,
      {
        [ATTR.namespace]: PUSH_NAMESPACE,
        [ATTR.repo]: session.name,
        [ATTR.uploadId]: session.uid,
      },
      fn,
      { parent: contextFromStored(session.trace), links: link ? [link] : undefined },
    );
  };

  const startSession = async (name: string): Promise<UploadSession> => {
    const upload = startSpan(SPAN.proxyUpload, {
      [ATTR.namespace]: PUSH_NAMESPACE,
      [ATTR.repo]: name,
    });
    try {
      const trace = runInSpan(upload, () => storeTraceContext());
      return await runInSpan(upload, () =>
        withSpan(
          SPAN.proxyStartUpload,
          { [ATTR.namespace]: PUSH_NAMESPACE, [ATTR.repo]: name },
          async (span) => {
            const uid = await store.createUpload();
            span.setAttribute(ATTR.uploadId, uid);
            upload.setAttribute(ATTR.uploadId, uid);
            return await sessions.add({ uid, name, trace, span: upload });
          },
        ));
    } catch (error) {
      runInSpan(upload, () => recordError(error));
      upload.end();
      throw error;
    }
  };

  /**
   * Appends the request body to the session's staged bytes, as `proxy.upload_chunk`. A chunk that
   * is refused (its length differs from its `Content-Range`, or the body ends early) leaves the
   * upload as it was: the bytes written so far are cut off again, so the client can retry it.
   */
  const receiveChunk = (session: UploadSession, req: Request): Promise<number> =>
    sessionSpan(session, SPAN.proxyUploadChunk, async (span) => {
      let start: number;
      try {
        start = (await store.statUpload(session.uid)).size;
      } catch (error) {
        if (error instanceof UploadNotFoundError) throw uploadUnknown(session.uid);
        throw error;
      }
      const range = contentRange(req.headers.get("content-range"));
      if (range && range.start !== start) {
        await req.body?.cancel();
        throw new RegistryError(
          "RANGE_INVALID",
          `chunk starts at ${range.start}, upload has ${start} bytes`,
          { expected_start: start },
        );
      }
      const announced = range ? range.end - range.start + 1 : null;
      const lengthHeader = req.headers.get("content-length");
      if (announced !== null && lengthHeader !== null && Number(lengthHeader) !== announced) {
        await req.body?.cancel();
        throw chunkLengthInvalid(announced, `Content-Length is ${lengthHeader}`);
      }
      let offset = start;
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const buf = concatBytes(pending);
        pending = [];
        pendingBytes = 0;
        await store.writeChunk(session.uid, offset, offset + buf.length, buf);
        offset += buf.length;
      };
      const body = requestBody(req);
      try {
        if (body) {
          for await (const chunk of body) {
            pending.push(chunk);
            pendingBytes += chunk.length;
            if (announced !== null && offset - start + pendingBytes > announced) {
              await body.cancel().catch(() => {});
              throw chunkLengthInvalid(announced, "the body is longer");
            }
            if (pendingBytes >= WRITE_BUFFER_BYTES) await flush();
          }
        }
        await flush();
        if (announced !== null && offset - start !== announced) {
          throw chunkLengthInvalid(announced, `the body had ${offset - start}`);
        }
      } catch (error) {
        if (error instanceof UploadNotFoundError) throw uploadUnknown(session.uid);
        // Nothing of a refused chunk stays behind.
        if (offset > start) await store.truncateUpload(session.uid, start);
        offset = start;
        if (error instanceof RequestBodyError) {
          throw new RegistryError("BLOB_UPLOAD_INVALID", error.message);
        }
        throw error;
      } finally {
        sessions.touch(session);
        span.setAttributes({
          [ATTR.rangeStart]: start,
          [ATTR.rangeEnd]: offset,
          [ATTR.chunkSize]: offset - start,
        });
      }
      return offset;
    });

  /** Verifies and caches the staged bytes, then uploads them to the origin cluster. */
  const commit = async (session: UploadSession, digest: Digest): Promise<void> => {
    // How the session ends; undefined keeps it (an I/O failure the client may retry).
    let outcome: SessionOutcome | undefined = "failed";
    try {
      await sessionSpan(session, SPAN.proxyCommitUpload, async (span) => {
        span.setAttribute(ATTR.digest, digest.toString());
        try {
          span.setAttribute(ATTR.totalSize, (await store.statUpload(session.uid)).size);
          await store.commitUpload(session.uid, digest);
        } catch (error) {
          if (error instanceof DigestMismatchError) {
            outcome = "digest_mismatch";
            throw new RegistryError("DIGEST_INVALID", error.message, {
              expected: error.expected.toString(),
              actual: error.actual.toString(),
            });
          }
          if (error instanceof UploadNotFoundError) throw uploadUnknown(session.uid);
          if (!(error instanceof BlobExistsError)) {
            outcome = undefined;
            throw error;
          }
          span.setAttribute(ATTR.cacheStatus, "exists");
        }
        const cached = await store.stat(digest);
        if (!cached) throw new RegistryError("UNKNOWN", `${digest} vanished from the cache`);
        await pushToOrigin(deps, digest, cachedSource(digest, cached.size));
        outcome = "committed";
      });
    } finally {
      if (outcome) await sessions.end(session, outcome);
    }
  };

  const findSession = async (ctx: Ctx, name: string): Promise<UploadSession> => {
    const session = await sessions.get(ctx.params.uuid, name);
    if (!session) {
      await ctx.req.body?.cancel();
      throw uploadUnknown(ctx.params.uuid);
    }
    return session;
  };

  const startUpload: Handler = async (ctx) => {
    const name = nameParam(ctx);
    const mount = ctx.url.searchParams.get("mount");
    if (mount !== null && ctx.url.searchParams.has("from")) {
      // Blobs are cluster-wide, so any repository mounts a blob the cluster has. A digest that
      // cannot be mounted (unknown, malformed, sha512) starts an upload session instead (202), as
      // the spec has registries fall back.
      const digest = mountDigest(mount);
      if (digest && await blobSize(deps, name, digest) !== null) {
        await ctx.req.body?.cancel();
        return blobCreated(name, digest);
      }
    }
    const rawDigest = ctx.url.searchParams.get("digest");
    const digest = rawDigest === null ? null : parseRegistryDigest(rawDigest);
    const session = await startSession(name);
    if (!digest) {
      return new Response(null, { status: 202, headers: uploadHeaders(name, session.uid, 0) });
    }
    try {
      await receiveChunk(session, ctx.req);
    } catch (error) {
      await store.abortUpload(session.uid).catch(() => {});
      await sessions.end(session, "failed");
      throw error;
    }
    await commit(session, digest);
    return blobCreated(name, digest);
  };
  on("POST", "/v2/{name+}/blobs/uploads/", startUpload);
  on("POST", "/v2/{name+}/blobs/uploads", startUpload);

  on("GET", "/v2/{name+}/blobs/uploads/{uuid}", async (ctx) => {
    const name = nameParam(ctx);
    const session = await findSession(ctx, name);
    let size: number;
    try {
      size = (await store.statUpload(session.uid)).size;
    } catch (error) {
      if (error instanceof UploadNotFoundError) throw uploadUnknown(session.uid);
      throw error;
    }
    return new Response(null, { status: 204, headers: uploadHeaders(name, session.uid, size) });
  });

  on("PATCH", "/v2/{name+}/blobs/uploads/{uuid}", async (ctx) => {
    const name = nameParam(ctx);
    const session = await findSession(ctx, name);
    const size = await receiveChunk(session, ctx.req);
    return new Response(null, { status: 202, headers: uploadHeaders(name, session.uid, size) });
  });

  on("PUT", "/v2/{name+}/blobs/uploads/{uuid}", async (ctx) => {
    const name = nameParam(ctx);
    const session = await findSession(ctx, name);
    let digest: Digest;
    try {
      digest = parseRegistryDigest(ctx.url.searchParams.get("digest"));
    } catch (error) {
      await ctx.req.body?.cancel();
      throw error;
    }
    if (ctx.req.body && ctx.req.headers.get("content-length") !== "0") {
      await receiveChunk(session, ctx.req);
    }
    await commit(session, digest);
    return blobCreated(name, digest);
  });

  on("DELETE", "/v2/{name+}/blobs/uploads/{uuid}", async (ctx) => {
    const name = nameParam(ctx);
    const session = await findSession(ctx, name);
    await store.abortUpload(session.uid).catch((error) => {
      if (!(error instanceof UploadNotFoundError)) throw error;
    });
    await sessions.end(session, "aborted");
    return new Response(null, { status: 204 });
  });
}
