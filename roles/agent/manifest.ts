/**
 * Manifest content negotiation of the agent registry, following docker/distribution's manifest
 * handler (kraken-wire.md §1.2, §10.5):
 *
 * - The stored manifest's kind comes from its `schemaVersion` and `mediaType`: Docker schema 1,
 *   Docker schema 2, Docker manifest list, OCI manifest, OCI index; a schema-2 document without a
 *   `mediaType` is an OCI index when it has `manifests`, else an OCI manifest.
 * - The `Accept` headers (every header line, comma-separated, parameters ignored) say what the
 *   client supports. An OCI manifest or index the client does not accept is `MANIFEST_UNKNOWN`.
 * - Docker schema 2 and manifest lists are served as stored. Distribution would rewrite them to
 *   schema 1 when fetched by tag without a matching `Accept`; that conversion needs a signing key
 *   and every current client sends the Accept types, so it is not done (see docs/agent.md).
 *
 * @module
 */

/** Docker schema 1 (signed). */
export const MEDIA_TYPE_SCHEMA1_SIGNED =
  "application/vnd.docker.distribution.manifest.v1+prettyjws";
/** Docker schema 1 (unsigned). */
export const MEDIA_TYPE_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json";
/** Docker schema 2 image manifest. */
export const MEDIA_TYPE_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list. */
export const MEDIA_TYPE_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** OCI image manifest. */
export const MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** What kind of manifest a document is. */
export type ManifestKind = "schema1" | "schema2" | "list" | "oci" | "oci-index";

/** A stored manifest's kind and the Content-Type it is served with. */
export interface ManifestInfo {
  /** The kind. */
  kind: ManifestKind;
  /** Content-Type of the response. */
  mediaType: string;
}

/** A document that is not a manifest distribution would load. */
export class ManifestError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

/**
 * Classifies a stored manifest.
 * @throws {ManifestError} for invalid JSON, an unknown schema version or an unknown media type
 */
export function classifyManifest(bytes: Uint8Array): ManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ManifestError(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ManifestError("manifest is not a JSON object");
  }
  const m = doc as Record<string, unknown>;
  const mediaType = typeof m.mediaType === "string" ? m.mediaType : "";
  switch (m.schemaVersion) {
    case 1:
      return {
        kind: "schema1",
        mediaType: "signatures" in m ? MEDIA_TYPE_SCHEMA1_SIGNED : MEDIA_TYPE_SCHEMA1,
      };
    case 2:
      switch (mediaType) {
        case MEDIA_TYPE_SCHEMA2:
          return { kind: "schema2", mediaType };
        case MEDIA_TYPE_LIST:
          return { kind: "list", mediaType };
        case MEDIA_TYPE_OCI_MANIFEST:
          return { kind: "oci", mediaType };
        case MEDIA_TYPE_OCI_INDEX:
          return { kind: "oci-index", mediaType };
        case "":
          return Array.isArray(m.manifests)
            ? { kind: "oci-index", mediaType: MEDIA_TYPE_OCI_INDEX }
            : { kind: "oci", mediaType: MEDIA_TYPE_OCI_MANIFEST };
        default:
          throw new ManifestError(`unrecognized manifest content type ${mediaType}`);
      }
    default:
      throw new ManifestError(`unrecognized manifest schema version ${String(m.schemaVersion)}`);
  }
}

/**
 * The media types a request accepts: every `Accept` value split on commas, parameters and case
 * dropped (as Go's `mime.ParseMediaType` reads them); `q` values are ignored, as distribution does.
 */
export function acceptedMediaTypes(headers: Headers): Set<string> {
  const out = new Set<string>();
  for (const part of (headers.get("accept") ?? "").split(",")) {
    const type = part.split(";")[0].trim().toLowerCase();
    if (type !== "") out.add(type);
  }
  return out;
}

/**
 * Why a manifest of `kind` cannot be served to a client accepting `accepted`, or undefined when
 * it can.
 */
export function negotiationFailure(kind: ManifestKind, accepted: Set<string>): string | undefined {
  if (kind === "oci" && !accepted.has(MEDIA_TYPE_OCI_MANIFEST)) {
    return "OCI manifest found, but accept header does not support OCI manifests";
  }
  if (kind === "oci-index" && !accepted.has(MEDIA_TYPE_OCI_INDEX)) {
    return "OCI index found, but accept header does not support OCI indexes";
  }
  return undefined;
}

/**
 * Whether `If-None-Match` names `digest` (quoted or not), so the answer is 304. Several values,
 * in one header or repeated, are each compared.
 */
export function etagMatches(headers: Headers, digest: string): boolean {
  const value = headers.get("if-none-match");
  if (value === null) return false;
  return value.split(",").some((v) => {
    const t = v.trim();
    return t === digest || t === `"${digest}"`;
  });
}
