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
 * | `GET, HEAD /v2/<name>/manifests/sha256:<hex>` | the manifest, after content negotiation (`manifest.ts`) |
 * | `GET, HEAD /v2/<name>/blobs/sha256:<hex>` | the blob, `application/octet-stream` |
 * | anything else under `/v2/` (writes, tag lists, catalog) | 405 `UNSUPPORTED` |
 *
 * Manifest answers carry `Content-Type` (the manifest's media type), `Content-Length`,
 * `Docker-Content-Digest` and `Etag: "sha256:…"`; `If-None-Match` with the digest gives 304. Errors
 * are distribution's JSON (`{"errors":[{"code","message","detail"}]}`). Every answer carries
 * `Docker-Distribution-API-Version: registry/2.0`. Clients outside `allowedCidrs` get 403 `DENIED`,
 * as upstream's nginx allow list does.
 *
 * The listener is an edge listener: its server spans treat a client's sampling decision as
 * untrusted.
 *
 * @module
 */

import { type Ctx, HttpError, Router } from "../../http/router.ts";
import { TorrentNotFoundError } from "../../p2p/scheduler.ts";
import { type Digest, DigestError, parseDigest } from "../../storage/digest.ts";
import { type Logger, setAttributes, tracingMiddleware } from "../../tracing/mod.ts";
import { NetworkList } from "../../common/cidr.ts";
import { type AgentBlobs, streamResponse } from "./blobs.ts";
import {
  acceptedMediaTypes,
  classifyManifest,
  etagMatches,
  ManifestError,
  negotiationFailure,
} from "./manifest.ts";
import { resolveTag, type TagResolver } from "./server.ts";

/** Registry error codes the agent answers with, and their statuses (docker/distribution). */
const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  DENIED: 403,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  UNSUPPORTED: 405,
  UNKNOWN: 500,
} as const;

/** A registry error code. */
export type RegistryErrorCode = keyof typeof ERROR_STATUS;

/** A registry API error; the registry turns it into distribution's JSON error body. */
export class RegistryError extends Error {
  /** The code. */
  readonly code: RegistryErrorCode;
  /** Structured detail, or null. */
  readonly detail: unknown;

  /**
   * @param code error code (decides the status)
   * @param message human-readable message
   * @param detail structured detail
   */
  constructor(code: RegistryErrorCode, message: string, detail: unknown = null) {
    super(message);
    this.name = "RegistryError";
    this.code = code;
    this.detail = detail;
  }

  /** The HTTP status of the code. */
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/** What the registry runs on. */
export interface AgentRegistryDeps {
  /** Cache-or-P2P blob access. */
  blobs: AgentBlobs;
  /** Tag lookups (build-index). */
  tags: TagResolver;
  /** Clients allowed to pull, as CIDRs. */
  allowedCidrs: readonly string[];
  /** Largest manifest read into memory, bytes. */
  maxManifestBytes: number;
  /** The role's logger. */
  logger: Logger;
}

const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const API_VERSION = { "docker-distribution-api-version": "registry/2.0" };

/** Builds the registry's router. */
export function createAgentRegistry(deps: AgentRegistryDeps): Router {
  const allowed = NetworkList.parse([...deps.allowedCidrs]);
  const r = new Router();
  r.use(tracingMiddleware({ edge: true }));
  r.use(async (ctx, next) => {
    let res: Response;
    if (ctx.remote && !allowed.contains(ctx.remote.hostname)) {
      res = errorResponse(
        new RegistryError("DENIED", "requested access to the resource is denied"),
        ctx.req.method,
      );
    } else {
      res = await next();
      // Handler errors reach us as the router's plain-text answer; give them the registry's form.
      // The router's own 404 for paths outside the API stays as it is.
      const error = ctx.state.error;
      if (error !== undefined && !(error instanceof HttpError)) {
        res = errorResponse(error, ctx.req.method);
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
    const name = repoName(ctx);
    const reference = ctx.params.reference;
    let digest: Digest;
    if (reference.includes(":")) {
      digest = digestParam(reference);
    } else {
      if (!TAG.test(reference)) {
        throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { tag: reference });
      }
      const tag = `${name}:${reference}`;
      let found: Digest | null;
      try {
        found = await resolveTag(deps.tags, tag);
      } catch (error) {
        throw new RegistryError("UNKNOWN", "unknown error", (error as Error).message);
      }
      if (found === null) {
        throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { tag: reference });
      }
      digest = found;
    }
    setAttributes({ namespace: name, digest: digest.toString() });
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
    return streamResponse(bytes, { headers }, bytes.length);
  };

  const blob = async (ctx: Ctx): Promise<Response> => {
    const name = repoName(ctx);
    const digest = digestParam(ctx.params.digest);
    setAttributes({ namespace: name, digest: digest.toString() });
    const identity = { "docker-content-digest": digest.toString(), etag: `"${digest}"` };
    if (etagMatches(ctx.req.headers, digest.toString())) {
      return new Response(null, { status: 304, headers: identity });
    }
    try {
      return await deps.blobs.serve(name, digest, {
        head: ctx.req.method === "HEAD",
        headers: () => ({
          ...identity,
          "content-type": "application/octet-stream",
          "cache-control": "max-age=31536000",
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

  // The registry is read-only: writes under /v2/ are refused the way distribution does.
  r.on("*", "/v2/{rest+}", () => {
    throw new RegistryError("UNSUPPORTED", "The operation is unsupported.");
  });

  return r;
}

/** Distribution's JSON error response (no body for HEAD); anything unexpected is `UNKNOWN`. */
export function errorResponse(error: unknown, method: string): Response {
  const e = error instanceof RegistryError ? error : new RegistryError(
    "UNKNOWN",
    "unknown error",
    error instanceof Error ? error.message : String(error),
  );
  const body = JSON.stringify({ errors: [{ code: e.code, message: e.message, detail: e.detail }] });
  return new Response(method === "HEAD" ? null : body, {
    status: e.status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function repoName(ctx: Ctx): string {
  const name = ctx.params.name;
  if (
    name.length === 0 || name.length > 255 || !name.split("/").every((c) => NAME_COMPONENT.test(c))
  ) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", {
      name: name.slice(0, 300),
    });
  }
  return name;
}

function digestParam(value: string): Digest {
  try {
    return parseDigest(value);
  } catch (error) {
    if (error instanceof DigestError) {
      throw new RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content", {
        digest: value.slice(0, 200),
        reason: error.message,
      });
    }
    throw error;
  }
}
