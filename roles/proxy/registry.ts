/**
 * The proxy's Docker Registry HTTP API v2: the write API a `docker push` (or skopeo) uses, plus the
 * reads a pushing client makes (kraken-wire.md §1.6).
 *
 * | Method | Route | What happens |
 * |---|---|---|
 * | GET | `/v2/` | 200 `{}` |
 * | HEAD/GET | `/v2/{name}/blobs/{digest}` | local cache, else origin cluster (namespace = repo; any origin error is a 404) |
 * | POST | `/v2/{name}/blobs/uploads/` | new session (202), cross-repo mount (201), or monolithic `?digest=` (201) |
 * | GET/PATCH/PUT/DELETE | `/v2/{name}/blobs/uploads/{uuid}` | status / chunk / final chunk + commit / abort |
 * | PUT | `/v2/{name}/manifests/{reference}` | validate, check blobs, store as blob, tag in build-index |
 * | HEAD/GET | `/v2/{name}/manifests/{reference}` | by tag (build-index) or digest |
 * | GET | `/v2/{name}/tags/list`, `/v2/_catalog` | from build-index listings |
 *
 * Committed blobs and manifests are uploaded to the origin cluster with the namespace literally
 * `TODO` ({@linkcode PUSH_NAMESPACE}), as upstream's proxy does; origins and their backend regexes
 * must accept it. A tag becomes build-index `PUT /tags/<name:tag>/digest/<d>?replicate=true`.
 *
 * Tracing: one trace per blob upload session. `proxy.upload` starts at the POST (child of its
 * server span) and ends when the session commits, is aborted or expires; every request of the
 * session runs `proxy.start_upload`, `proxy.upload_chunk` or `proxy.commit_upload` (›
 * `origin.store_blob`) as a child of that stored span context, linked to the request's own server
 * span. A manifest PUT is `proxy.put_manifest` › `origin.store_blob`, `build_index.put_tag`.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { type BlobSource, bytesSource, isNotFound } from "../../cluster/blob_client.ts";
import type { ListResponse, PutOptions } from "../../cluster/tag_client.ts";
import { concatBytes } from "../../common/bytes.ts";
import { type Ctx, type Handler, Router } from "../../http/router.ts";
import {
  parseReference,
  parseRegistryDigest,
  RegistryError,
  registryErrorResponse,
  validateRepoName,
} from "../../registry/errors.ts";
import { ManifestError, parseManifest, readManifestBytes } from "../../registry/manifest.ts";
import {
  BlobExistsError,
  type BlobStore,
  DigestMismatchError,
  UploadNotFoundError,
} from "../../storage/blob_store.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import {
  contextFromStored,
  linkToActive,
  recordError,
  runInSpan,
  setAttributes,
  type Span,
  startSpan,
  storeTraceContext,
  tracingMiddleware,
  withSpan,
} from "../../tracing/mod.ts";
import type { SessionOutcome, UploadSession, UploadSessions } from "./upload_sessions.ts";

/** The origin namespace every push uploads to (upstream's registry driver hard-codes it). */
export const PUSH_NAMESPACE = "TODO";

/** The origin-cluster calls the proxy makes (an `OriginClusterClient` fits). */
export interface ProxyOrigin {
  /** Size of a blob, or null when absent. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null>;
  /** The blob's bytes. */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>>;
  /** Uploads a blob (traced as `origin.store_blob`). */
  uploadBlob(namespace: string, digest: Digest, source: BlobSource): Promise<void>;
}

/** The build-index calls the proxy makes (a `TagClusterClient` fits). */
export interface ProxyTags {
  /** Points a tag at a manifest digest. */
  put(tag: string, digest: Digest, options?: PutOptions): Promise<void>;
  /** The digest of a tag, or null. */
  get(tag: string): Promise<Digest | null>;
  /** Backend names under a prefix. */
  list(prefix: string): Promise<ListResponse>;
}

/** Options of {@linkcode createRegistryRouter}. */
export interface RegistryOptions {
  /** Staged uploads and cached blobs. */
  store: BlobStore;
  /** Upload session bookkeeping. */
  sessions: UploadSessions;
  /** The origin cluster. */
  origin: ProxyOrigin;
  /** The build-index cluster. */
  tags: ProxyTags;
  /** Logger. */
  logger: Logger;
}

/** Bytes gathered from a streaming body before they are written to the staging file. */
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Wraps a handler so thrown errors become registry JSON errors (5xx are also recorded on the span). */
function registry(logger: Logger, handler: Handler): Handler {
  return async (ctx) => {
    try {
      return await handler(ctx);
    } catch (error) {
      const response = registryErrorResponse(error, ctx.req.method);
      if (response.status >= 500) {
        ctx.state.error = error;
        logger.error("registry request failed", { route: ctx.route, error });
      }
      return response;
    }
  };
}

function nameParam(ctx: Ctx): string {
  return validateRepoName(ctx.params.name);
}

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

function blobCreated(name: string, digest: Digest): Response {
  return new Response(null, {
    status: 201,
    headers: {
      location: `/v2/${name}/blobs/${digest}`,
      "docker-content-digest": digest.toString(),
      "content-length": "0",
    },
  });
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

/** Creates the `/v2/` router with the tracing middleware (edge listener). */
export function createRegistryRouter(options: RegistryOptions): Router {
  const { store, sessions, origin, tags, logger } = options;
  const router = new Router().use(tracingMiddleware({ edge: true }));
  router.use(async (_ctx, next) => {
    const response = await next();
    response.headers.set("docker-distribution-api-version", "registry/2.0");
    return response;
  });
  const on = (method: string, route: string, handler: Handler) =>
    router.on(method, route, registry(logger, handler));

  /** Local cache first, then the origin cluster; any origin failure counts as absent. */
  const blobSize = async (name: string, digest: Digest): Promise<number | null> => {
    const local = await store.stat(digest);
    if (local) return local.size;
    try {
      return (await origin.stat(name, digest))?.size ?? null;
    } catch (error) {
      logger.warn("origin stat failed; treating blob as absent", {
        digest: digest.toString(),
        error,
      });
      return null;
    }
  };

  const cachedSource = (digest: Digest, size: number): BlobSource => ({
    size,
    open: async () => (await store.open(digest)).stream,
  });

  /** Uploads a cached blob to the origin; on failure it leaves the cache so a retry re-uploads. */
  const pushToOrigin = async (digest: Digest, source: BlobSource) => {
    try {
      await origin.uploadBlob(PUSH_NAMESPACE, digest, source);
    } catch (error) {
      await store.delete(digest).catch(() => {});
      throw new RegistryError(
        "UNKNOWN",
        `upload of ${digest} to the origin cluster failed: ${(error as Error).message}`,
        undefined,
        500,
      );
    }
  };

  /** A span of one request of an upload session: child of `proxy.upload`, linked to this request. */
  const sessionSpan = <T>(
    session: UploadSession,
    name: string,
    fn: (span: Span) => Promise<T>,
  ): Promise<T> => {
    const link = linkToActive();
    return withSpan(
      name,
      { namespace: PUSH_NAMESPACE, repo: session.name, upload_id: session.uid },
      fn,
      { parent: contextFromStored(session.trace), links: link ? [link] : undefined },
    );
  };

  const startSession = async (name: string): Promise<UploadSession> => {
    const upload = startSpan("proxy.upload", { namespace: PUSH_NAMESPACE, repo: name });
    try {
      const trace = runInSpan(upload, () => storeTraceContext());
      return await runInSpan(upload, () =>
        withSpan(
          "proxy.start_upload",
          { namespace: PUSH_NAMESPACE, repo: name },
          async (span) => {
            const uid = await store.createUpload();
            span.setAttribute("upload_id", uid);
            upload.setAttribute("upload_id", uid);
            return await sessions.add({ uid, name, trace, span: upload });
          },
        ));
    } catch (error) {
      runInSpan(upload, () => recordError(error));
      upload.end();
      throw error;
    }
  };

  /** Appends the request body to the session's staged bytes, as `proxy.upload_chunk`. */
  const receiveChunk = (session: UploadSession, req: Request): Promise<number> =>
    sessionSpan(session, "proxy.upload_chunk", async (span) => {
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
      try {
        if (req.body) {
          for await (const chunk of req.body) {
            pending.push(chunk);
            pendingBytes += chunk.length;
            if (pendingBytes >= WRITE_BUFFER_BYTES) await flush();
          }
        }
        await flush();
      } catch (error) {
        if (error instanceof UploadNotFoundError) throw uploadUnknown(session.uid);
        throw error;
      } finally {
        sessions.touch(session);
        span.setAttributes({ range_start: start, range_end: offset, chunk_size: offset - start });
      }
      if (range && range.end - range.start + 1 !== offset - start) {
        throw new RegistryError(
          "BLOB_UPLOAD_INVALID",
          `Content-Range announced ${range.end - range.start + 1} bytes, body had ${
            offset - start
          }`,
        );
      }
      return offset;
    });

  /** Verifies and caches the staged bytes, then uploads them to the origin cluster. */
  const commit = async (session: UploadSession, digest: Digest): Promise<void> => {
    // How the session ends; undefined keeps it (an I/O failure the client may retry).
    let outcome: SessionOutcome | undefined = "failed";
    try {
      await sessionSpan(session, "proxy.commit_upload", async (span) => {
        span.setAttribute("digest", digest.toString());
        try {
          span.setAttribute("total_size", (await store.statUpload(session.uid)).size);
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
          span.setAttribute("cache.status", "exists");
        }
        const cached = await store.stat(digest);
        if (!cached) throw new RegistryError("UNKNOWN", `${digest} vanished from the cache`);
        await pushToOrigin(digest, cachedSource(digest, cached.size));
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

  on(
    "GET",
    "/v2/",
    () => new Response("{}", { headers: { "content-type": "application/json; charset=utf-8" } }),
  );

  on("GET", "/v2/_catalog", async (ctx) => {
    const { n, last } = pageParams(ctx.url);
    const names = (await tags.list("")).result;
    const repos = [...new Set(names.map((t) => t.slice(0, t.lastIndexOf(":"))))].sort();
    const { page, next } = paginate(repos, n, last);
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
    if (next) headers.link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
    return new Response(JSON.stringify({ repositories: page }), { headers });
  });

  on("GET", "/v2/{name+}/tags/list", async (ctx) => {
    const name = nameParam(ctx);
    const { n, last } = pageParams(ctx.url);
    const listed = (await tags.list(`${name}/_manifests/tags`)).result;
    const all = listed
      .filter((t) => t.slice(0, t.lastIndexOf(":")) === name)
      .map((t) => t.slice(t.lastIndexOf(":") + 1))
      .sort();
    if (all.length === 0) {
      throw new RegistryError("NAME_UNKNOWN", "repository name not known to registry", { name });
    }
    const { page, next } = paginate(all, n, last);
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
    if (next) {
      headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
    }
    return new Response(JSON.stringify({ name, tags: page }), { headers });
  });

  const getManifest = async (ctx: Ctx) => {
    const name = nameParam(ctx);
    const ref = parseReference(ctx.params.reference);
    let digest = ref.digest;
    if (!digest) {
      const found = await tags.get(`${name}:${ref.tag}`);
      if (!found) throw manifestUnknown(name, ctx.params.reference);
      digest = found;
    }
    const bytes = await loadManifest(name, digest);
    if (!bytes) throw manifestUnknown(name, ctx.params.reference);
    let mediaType: string;
    try {
      mediaType = parseManifest(bytes).mediaType;
    } catch {
      mediaType = "application/octet-stream";
    }
    return new Response(ctx.req.method === "HEAD" ? null : bytes as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": mediaType,
        "content-length": String(bytes.length),
        "docker-content-digest": digest.toString(),
        etag: `"${digest}"`,
      },
    });
  };

  /** Manifest bytes from the cache, else from the origin cluster (verified, then cached). */
  const loadManifest = async (name: string, digest: Digest): Promise<Uint8Array | null> => {
    const local = await store.open(digest).catch(() => null);
    if (local) return await readManifestBytes(local.stream);
    let bytes: Uint8Array;
    try {
      bytes = await readManifestBytes(await origin.downloadBlob(name, digest));
    } catch (error) {
      if (isNotFound(error)) return null;
      throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
    }
    const actual = await digestOfBytes(bytes);
    if (!actual.equals(digest)) {
      throw new RegistryError("UNKNOWN", `origin returned ${actual} for manifest ${digest}`);
    }
    await store.putBlob(digest, bytes);
    return bytes;
  };

  on("GET", "/v2/{name+}/manifests/{reference}", getManifest);

  on("PUT", "/v2/{name+}/manifests/{reference}", async (ctx) => {
    const name = nameParam(ctx);
    const ref = parseReference(ctx.params.reference);
    const digest = await withSpan(
      "proxy.put_manifest",
      { repo: name, reference: ctx.params.reference, namespace: PUSH_NAMESPACE },
      async () => {
        let bytes: Uint8Array;
        let manifest;
        try {
          bytes = await readManifestBytes(ctx.req.body ?? new Blob().stream());
          manifest = parseManifest(bytes, ctx.req.headers.get("content-type"));
        } catch (error) {
          if (error instanceof ManifestError) {
            throw new RegistryError("MANIFEST_INVALID", error.message);
          }
          throw error;
        }
        const digest = await digestOfBytes(bytes);
        setAttributes({
          digest: digest.toString(),
          media_type: manifest.mediaType,
          "manifest.references": manifest.references.length,
        });
        if (ref.digest && !ref.digest.equals(digest)) {
          throw new RegistryError(
            "DIGEST_INVALID",
            `manifest digest is ${digest}, not ${ref.digest}`,
            {
              expected: ref.digest.toString(),
              actual: digest.toString(),
            },
          );
        }
        const sizes = await Promise.all(manifest.references.map((d) => blobSize(name, d)));
        const missing = manifest.references.filter((_, i) => sizes[i] === null);
        if (missing.length > 0) {
          throw new RegistryError(
            "MANIFEST_BLOB_UNKNOWN",
            `blob unknown to registry: ${missing.length} referenced blob(s) missing`,
            { digest: missing[0].toString(), missing: missing.map(String) },
          );
        }
        await store.putBlob(digest, bytes);
        await pushToOrigin(digest, bytesSource(bytes));
        if (ref.tag) {
          try {
            await tags.put(`${name}:${ref.tag}`, digest, { replicate: true });
          } catch (error) {
            throw new RegistryError(
              "UNKNOWN",
              `tagging ${name}:${ref.tag} in build-index failed: ${(error as Error).message}`,
            );
          }
        }
        return digest;
      },
    );
    return new Response(null, {
      status: 201,
      headers: {
        location: `/v2/${name}/manifests/${digest}`,
        "docker-content-digest": digest.toString(),
        "content-length": "0",
      },
    });
  });

  on("DELETE", "/v2/{name+}/manifests/{reference}", () => {
    throw new RegistryError("UNSUPPORTED", "manifest deletion is not supported");
  });

  const startUpload: Handler = async (ctx) => {
    const name = nameParam(ctx);
    const mount = ctx.url.searchParams.get("mount");
    if (mount !== null && ctx.url.searchParams.has("from")) {
      const digest = parseRegistryDigest(mount);
      if (await blobSize(name, digest) !== null) {
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

  on("GET", "/v2/{name+}/blobs/{digest}", async (ctx) => {
    const name = nameParam(ctx);
    const digest = parseRegistryDigest(ctx.params.digest);
    const head = ctx.req.method === "HEAD";
    const headers = {
      "content-type": "application/octet-stream",
      "docker-content-digest": digest.toString(),
      etag: `"${digest}"`,
    };
    if (head) {
      const size = await blobSize(name, digest);
      if (size === null) throw blobUnknown(digest);
      return new Response(null, { headers: { ...headers, "content-length": String(size) } });
    }
    const local = await store.open(digest).catch(() => null);
    if (local) {
      return new Response(local.stream, {
        headers: { ...headers, "content-length": String(local.size) },
      });
    }
    try {
      return new Response(await origin.downloadBlob(name, digest), { headers });
    } catch (error) {
      if (isNotFound(error)) throw blobUnknown(digest);
      throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
    }
  });

  on("DELETE", "/v2/{name+}/blobs/{digest}", () => {
    throw new RegistryError("UNSUPPORTED", "blob deletion is not supported");
  });

  return router;
}

function uploadUnknown(uid: string): RegistryError {
  return new RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {
    uuid: uid.slice(0, 100),
  });
}

function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {
    digest: digest.toString(),
  });
}

function manifestUnknown(name: string, reference: string): RegistryError {
  return new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { name, reference });
}

/** `n` and `last` of the listing endpoints. */
function pageParams(url: URL): { n: number; last: string } {
  const rawN = url.searchParams.get("n");
  if (rawN !== null && !/^[1-9]\d*$/.test(rawN)) {
    throw new RegistryError(
      "UNSUPPORTED",
      `invalid page size n=${JSON.stringify(rawN)}`,
      undefined,
      400,
    );
  }
  return { n: rawN === null ? 0 : Number(rawN), last: url.searchParams.get("last") ?? "" };
}

/** One page of sorted `items` after `last`; `n = 0` means everything. */
function paginate(items: string[], n: number, last: string): { page: string[]; next?: string } {
  const rest = last === "" ? items : items.filter((i) => i > last);
  if (n === 0 || rest.length <= n) return { page: rest };
  const page = rest.slice(0, n);
  return { page, next: page[page.length - 1] };
}
