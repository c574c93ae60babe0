/**
 * Docker Registry HTTP API v2 errors: the `{"errors":[{"code","message","detail"}]}` body with the
 * status each code carries, and the checks of repository names, tags, references and digests that
 * produce them. Both registries (the proxy's write API and the agent's read API) answer with these.
 *
 * ```ts
 * import { RegistryError, registryErrorResponse } from "./errors.ts";
 * const res = registryErrorResponse(new RegistryError("BLOB_UNKNOWN", "blob unknown", { digest }));
 * res.status; // 404
 * ```
 *
 * @module
 */

import { type Digest, DigestError, parseDigest } from "../storage/digest.ts";

/** Error codes of the registry API our registries answer with. */
export type RegistryErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DENIED"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "RANGE_INVALID"
  | "TAG_INVALID"
  | "UNSUPPORTED"
  | "UNAVAILABLE"
  | "UNKNOWN";

/** The HTTP status of each code, as docker/distribution sends it. */
export const ERROR_STATUS: Readonly<Record<RegistryErrorCode, number>> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DENIED: 403,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  RANGE_INVALID: 416,
  TAG_INVALID: 400,
  UNSUPPORTED: 405,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

/** A registry API error; the registry's router turns it into the JSON error body. */
export class RegistryError extends Error {
  /** The registry error code. */
  readonly code: RegistryErrorCode;
  /** HTTP status (the code's default unless given). */
  readonly status: number;
  /** Structured detail for the client (`null` in the body when absent). */
  readonly detail: unknown;
  /** Extra response headers (a 416's `Content-Range`). */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * @param code registry error code
   * @param message human-readable message
   * @param detail structured detail (e.g. `{ digest }`)
   * @param status HTTP status override
   * @param headers extra response headers
   */
  constructor(
    code: RegistryErrorCode,
    message: string,
    detail?: unknown,
    status?: number,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "RegistryError";
    this.code = code;
    this.detail = detail;
    this.status = status ?? ERROR_STATUS[code];
    this.headers = headers;
  }
}

/**
 * The response for a registry error (a HEAD request gets the status and headers without a body).
 * Any other thrown value is a 500 `UNKNOWN` with its message as the detail, as distribution sends
 * an unexpected error.
 */
export function registryErrorResponse(error: unknown, method = "GET"): Response {
  const e = error instanceof RegistryError ? error : new RegistryError(
    "UNKNOWN",
    "unknown error",
    error instanceof Error ? error.message : String(error),
  );
  const body = JSON.stringify({
    errors: [{ code: e.code, message: e.message, detail: e.detail ?? null }],
  });
  return new Response(method === "HEAD" ? null : body, {
    status: e.status,
    headers: { ...e.headers, "content-type": "application/json; charset=utf-8" },
  });
}

/** One repository path component (distribution's reference grammar). */
const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** Longest repository name distribution accepts. */
export const MAX_NAME_LENGTH = 255;
/** A tag (distribution's reference grammar). */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Checks a repository name: lowercase components of `[a-z0-9]` joined by `.`, `_`, `__` or dashes,
 * separated by `/`, at most 255 characters. `..`, empty components and uppercase are refused.
 * @throws {RegistryError} `NAME_INVALID`
 */
export function validateRepoName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", {
      name: name.slice(0, 300),
      reason: `length must be 1..${MAX_NAME_LENGTH}`,
    });
  }
  if (!name.split("/").every((c) => NAME_COMPONENT.test(c))) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", { name });
  }
  return name;
}

/**
 * Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
 * @throws {RegistryError} `TAG_INVALID`
 */
export function validateTagName(tag: string): string {
  if (!TAG.test(tag)) {
    throw new RegistryError("TAG_INVALID", "invalid tag", { tag: tag.slice(0, 200) });
  }
  return tag;
}

/**
 * Parses a digest from a URL or query (sha256 only; a sha512 digest is refused with a message
 * saying so).
 * @throws {RegistryError} `DIGEST_INVALID`
 */
export function parseRegistryDigest(value: string | null): Digest {
  if (value === null || value === "") {
    throw new RegistryError("DIGEST_INVALID", "digest parameter is required");
  }
  if (SHA512_DIGEST.test(value)) {
    throw new RegistryError(
      "DIGEST_INVALID",
      "sha512 digests are not supported: Kraken names content by sha256 (use sha256)",
      { digest: value },
    );
  }
  try {
    return parseDigest(value);
  } catch (error) {
    if (!(error instanceof DigestError)) throw error;
    throw new RegistryError("DIGEST_INVALID", error.message, { digest: value.slice(0, 200) });
  }
}

/** A well-formed sha512 digest (OCI's other registered algorithm), which Kraken does not store. */
const SHA512_DIGEST = /^sha512:[0-9a-f]{128}$/;

/**
 * Parses the digest of a lookup (a blob or manifest GET/HEAD, a mount): like
 * {@linkcode parseRegistryDigest}, except that a well-formed `sha512:` digest names content Kraken
 * cannot hold (blobs are named by sha256 on every wire shared with Go Kraken), so it is an unknown
 * blob or manifest, `notFound(message)`, rather than a 400.
 * @throws {RegistryError} `DIGEST_INVALID`, or what `notFound` returns
 */
export function parseLookupDigest(
  value: string,
  notFound: (message: string) => RegistryError,
): Digest {
  if (SHA512_DIGEST.test(value)) {
    throw notFound(
      `${value.slice(0, 16)}…: sha512 content is not stored (Kraken keeps sha256 only)`,
    );
  }
  return parseRegistryDigest(value);
}

/** Whether `value` is a well-formed sha512 digest (refused where content would be stored). */
export function isSha512Digest(value: string | null): boolean {
  return value !== null && SHA512_DIGEST.test(value);
}

/** A manifest reference: a tag or a digest. */
export type ManifestReference = { tag: string; digest?: undefined } | {
  digest: Digest;
  tag?: undefined;
};

/**
 * Parses `{reference}` of a manifest route: a digest when it contains `:`, a tag otherwise. With
 * `notFound` (a read), a sha512 digest is that error (see {@linkcode parseLookupDigest}).
 * @throws {RegistryError} `DIGEST_INVALID` or `TAG_INVALID`
 */
export function parseReference(
  reference: string,
  notFound?: (message: string) => RegistryError,
): ManifestReference {
  if (reference.includes(":")) {
    return {
      digest: notFound ? parseLookupDigest(reference, notFound) : parseRegistryDigest(reference),
    };
  }
  return { tag: validateTagName(reference) };
}
