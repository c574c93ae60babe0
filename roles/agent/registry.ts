/**
 * The agent registry: the read half of the Docker Registry HTTP API v2 (kraken-wire.md §1.2), so
 * `docker pull` and `skopeo copy` work against an agent. The repository name is the Kraken
 * namespace; tags resolve through build-index, and every manifest and blob comes through the
 * agent's cache or a P2P download.
 *
 * | Route | Answer |
 * |---|---|
 * | `GET /v2/` | 200 `{}` |
 * | `GET, HEAD /v2/<name>/manifests/<tag>` | tag → digest (`agent.resolve_tag`), then as by digest |
 * | `GET, HEAD /v2/<name>/manifests/sha256:<hex>` | the manifest, after content negotiation (`registry/manifest.ts`) |
 * | `GET, HEAD /v2/<name>/blobs/sha256:<hex>` | the blob, `application/octet-stream`; `Range` → 206 / 416 |
 * | `GET /v2/<name>/referrers/<digest>` | OCI index of the referrers recorded in build-index, manifests over P2P (`registry/referrers.ts`) |
 * | `GET /v2/<name>/tags/list` | the repository's tags from build-index, `n`/`last` pages (`registry/listing.ts`) |
 * | anything else under `/v2/` (writes, catalog, deletes) | 405 `UNSUPPORTED` |
 *
 * A well-formed `sha512:` digest is an unknown manifest or blob (404): Kraken stores sha256 only.
 *
 * Manifest answers carry `Content-Type` (the manifest's media type), `Content-Length`,
 * `Docker-Content-Digest` and `Etag: "sha256:…"`; `If-None-Match` with the digest gives 304. Errors
 * are distribution's JSON (`registry/errors.ts`). Every answer carries
 * `Docker-Distribution-API-Version: registry/2.0`. Clients outside `allowedCidrs` get 403 `DENIED`,
 * as upstream's nginx allow list does.
 *
 * The listener is an edge listener: its server spans treat a client's sampling decision as
 * untrusted.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { NetworkList } from "../../common/cidr.ts";
import { type Ctx, HttpError, Router } from "../../http/router.ts";
import { TorrentNotFoundError } from "../../p2p/scheduler.ts";
import {
  type ManifestReference,
  parseLookupDigest,
  parseReference,
  RegistryError,
  registryErrorResponse,
  validateRepoName,
} from "../../registry/errors.ts";
import { tagListPrefix, tagListResponse } from "../../registry/listing.ts";
import { resolveRange } from "../../registry/range.ts";
import { referrersResponse } from "../../registry/referrers.ts";
import {
  acceptedMediaTypes,
  classifyManifest,
  etagMatches,
  ManifestError,
  negotiationFailure,
} from "../../registry/manifest.ts";
import type { Digest } from "../../storage/digest.ts";
import { ATTR, setAttributes, type TracingRuntime } from "../../tracing/mod.ts";
import { type AgentBlobs, streamResponse } from "./blobs.ts";
import { type ListResponse, tagRefusal } from "../../cluster/tag_client.ts";
import { resolveTag, type TagResolver } from "./tags.ts";

/** What the registry runs on. */
export interface AgentRegistryDeps {
  /** Cache-or-P2P blob access. */
  blobs: AgentBlobs;
  /** Tag lookups and listings (build-index). */
  tags: TagResolver & {
    /** Build-index names under a prefix. */
    list(prefix: string): Promise<ListResponse>;
  };
  /** Clients allowed to pull, as CIDRs. */
  allowedCidrs: readonly string[];
  /** Largest manifest read into memory, bytes. */
  maxManifestBytes: number;
  /** The role's logger. */
  logger: Logger;
  /** The tracing runtime: server middleware. */
  tracing: TracingRuntime;
}

const API_VERSION = { "docker-distribution-api-version": "registry/2.0" };

/** Builds the registry's router. */
export function createAgentRegistryRouter(deps: AgentRegistryDeps): Router {
  const allowed = NetworkList.parse([...deps.allowedCidrs]);
  const r = new Router();
  r.use(deps.tracing.serverMiddleware({ edge: true }));
  r.use(async (ctx, next) => {
    let res: Response;
    if (ctx.remote && !allowed.contains(ctx.remote.hostname)) {
      res = registryErrorResponse(
        new RegistryError("DENIED", "requested access to the resource is denied"),
        ctx.req.method,
      );
    } else {
      res = await next();
      // Handler errors reach us as the router's plain-text answer; give them the registry's form.
      // The router's own 404 for paths outside the API stays as it is.
      const error = ctx.state.error;
      if (error !== undefined && !(error instanceof HttpError)) {
        res = registryErrorResponse(error, ctx.req.method);
      }
    }
    if (res.status >= 500) {
      deps.logger.error("registry request failed", {
        method: ctx.req.method,
        route: ctx.route,
        status: res.status,
        error: ctx.state.error,
      });
    }
    for (const [k, v] of Object.entries(API_VERSION)) res.headers.set(k, v);
    return res;
  });

  r.get(
    "/v2/",
    () => new Response("{}", { headers: { "content-type": "application/json; charset=utf-8" } }),
  );

  const manifest = async (ctx: Ctx): Promise<Response> => {
    const name = validateRepoName(ctx.params.name);
    const reference = ctx.params.reference;
    let ref: ManifestReference;
    try {
      ref = parseReference(
        reference,
        (message) => new RegistryError("MANIFEST_UNKNOWN", message, { digest: reference }),
      );
    } catch (error) {
      // A read of a tag that cannot exist is simply an unknown manifest, as distribution answers.
      if (error instanceof RegistryError && error.code === "TAG_INVALID") {
        throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { tag: reference });
      }
      throw error;
    }
    let digest: Digest;
    if (ref.digest) {
      digest = ref.digest;
    } else {
      const tag = `${name}:${ref.tag}`;
      let found: Digest | null;
      try {
        found = await resolveTag(deps.tags, tag);
      } catch (error) {
        const refusal = tagRefusal(error);
        if (refusal) {
          throw new RegistryError(
            "TAG_INVALID",
            refusal.message,
            { tag: reference },
            refusal.status,
          );
        }
        throw new RegistryError("UNKNOWN", "unknown error", (error as Error).message);
      }
      if (found === null) {
        throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { tag: reference });
      }
      digest = found;
    }
    setAttributes({ [ATTR.namespace]: name, [ATTR.digest]: digest.toString() });
    const identity = { "docker-content-digest": digest.toString(), etag: `"${digest}"` };
    if (etagMatches(ctx.req.headers, digest.toString())) {
      return new Response(null, { status: 304, headers: identity });
    }
    let bytes: Uint8Array;
    try {
      bytes = await deps.blobs.read(name, digest, deps.maxManifestBytes);
    } catch (error) {
      if (error instanceof TorrentNotFoundError) {
        throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { digest: `${digest}` });
      }
      throw error;
    }
    let kind;
    try {
      kind = classifyManifest(bytes);
    } catch (error) {
      if (error instanceof ManifestError) {
        throw new RegistryError("UNKNOWN", "unknown error", error.message);
      }
      throw error;
    }
    const refused = negotiationFailure(kind.kind, acceptedMediaTypes(ctx.req.headers));
    if (refused) throw new RegistryError("MANIFEST_UNKNOWN", refused);
    const headers = {
      ...identity,
      "content-type": kind.mediaType,
      "content-length": String(bytes.length),
    };
    if (ctx.req.method === "HEAD") return new Response(null, { headers });
    return await streamResponse(ctx, bytes, { headers }, bytes.length);
  };

  const blob = async (ctx: Ctx): Promise<Response> => {
    const name = validateRepoName(ctx.params.name);
    const digest = parseLookupDigest(
      ctx.params.digest,
      (message) => new RegistryError("BLOB_UNKNOWN", message, { digest: ctx.params.digest }),
    );
    setAttributes({ [ATTR.namespace]: name, [ATTR.digest]: digest.toString() });
    const identity = { "docker-content-digest": digest.toString(), etag: `"${digest}"` };
    if (etagMatches(ctx.req.headers, digest.toString())) {
      return new Response(null, { status: 304, headers: identity });
    }
    const head = ctx.req.method === "HEAD";
    const rangeHeader = head ? null : ctx.req.headers.get("range");
    try {
      return await deps.blobs.serve(ctx, name, digest, {
        head,
        headers: () => ({
          ...identity,
          "content-type": "application/octet-stream",
          "cache-control": "max-age=31536000",
          "accept-ranges": "bytes",
        }),
        range: (size) =>
          resolveRange(rangeHeader, size, {
            ifRange: ctx.req.headers.get("if-range"),
            etag: identity.etag,
          }),
      });
    } catch (error) {
      if (error instanceof TorrentNotFoundError) {
        throw new RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {
          digest: `${digest}`,
        });
      }
      throw error;
    }
  };

  // HEAD routes are explicit: the catch-all below would otherwise take HEAD before GET's fallback.
  for (const method of ["GET", "HEAD"]) {
    r.on(method, "/v2/{name+}/manifests/{reference}", manifest);
    r.on(method, "/v2/{name+}/blobs/{digest}", blob);
  }

  r.get("/v2/{name+}/referrers/{digest}", (ctx) => {
    const name = validateRepoName(ctx.params.name);
    return referrersResponse(name, ctx.params.digest, ctx.url, {
      list: async (prefix) => (await deps.tags.list(prefix)).result,
      load: async (digest) => {
        try {
          return await deps.blobs.read(name, digest, deps.maxManifestBytes);
        } catch (error) {
          if (error instanceof TorrentNotFoundError) return null;
          throw error;
        }
      },
    });
  });

  r.get("/v2/{name+}/tags/list", async (ctx) => {
    const name = validateRepoName(ctx.params.name);
    return tagListResponse(name, (await deps.tags.list(tagListPrefix(name))).result, ctx.url);
  });

  // The registry is read-only: writes under /v2/ are refused the way distribution does.
  r.on("*", "/v2/{rest+}", () => {
    throw new RegistryError("UNSUPPORTED", "The operation is unsupported.");
  });

  return r;
}
