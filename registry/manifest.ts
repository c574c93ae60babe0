/**
 * Docker/OCI manifests as the Docker Registry HTTP API v2 handles them: the media types, reading a
 * manifest body, and two ways of looking at one.
 *
 * - {@linkcode parseManifest} is the strict schema-2 parser build-index uses to resolve a tag's
 *   dependencies (kraken-wire.md §7.2) and the proxy to validate a pushed manifest: it checks every
 *   descriptor and lists the digests the manifest references. Four media types are understood:
 *   Docker image manifest, Docker manifest list, OCI image manifest and OCI image index. A manifest
 *   without `mediaType` (allowed by OCI) takes the type its HTTP `Content-Type` names, and failing
 *   that is an OCI index when it has a `manifests` field and an OCI image manifest otherwise, as
 *   upstream decides.
 * - {@linkcode classifyManifest} is the agent registry's lenient look at a stored manifest, following
 *   docker/distribution's manifest handler (kraken-wire.md §1.2, §10.5): it also knows Docker
 *   schema 1 and only decides the kind and the `Content-Type` the manifest is served with.
 *
 * Content negotiation of the agent registry: the `Accept` headers (every header line,
 * comma-separated, parameters ignored) say what the client supports
 * ({@linkcode acceptedMediaTypes}); an OCI manifest or index the client does not accept is
 * `MANIFEST_UNKNOWN` ({@linkcode negotiationFailure}). Docker schema 2 and manifest lists are served
 * as stored. Distribution would rewrite them to schema 1 when fetched by tag without a matching
 * `Accept`; that conversion needs a signing key and every current client sends the Accept types, so
 * it is not done (see docs/agent.md).
 *
 * ```ts
 * import { parseManifest } from "./manifest.ts";
 * const m = parseManifest(bytes);
 * m.mediaType; // "application/vnd.oci.image.manifest.v1+json"
 * m.references.map(String); // config and layer digests
 * ```
 *
 * @module
 */

import { concatBytes } from "../common/bytes.ts";
import { type Digest, DigestError, parseDigest } from "../storage/digest.ts";

/** Docker schema 1, signed. */
export const DOCKER_MANIFEST_SCHEMA1_SIGNED =
  "application/vnd.docker.distribution.manifest.v1+prettyjws";
/** Docker schema 1, unsigned. */
export const DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json";
/** Docker image manifest, schema 2. */
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list. */
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** OCI image manifest. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** What kind of manifest a document is, in {@linkcode classifyManifest}'s terms. */
export type ManifestKind = "schema1" | "schema2" | "list" | "oci" | "oci-index";

/** The schema-2 media types and their kinds; a Map, so `constructor` and the like are no kind. */
const SCHEMA2_KINDS: ReadonlyMap<string, ManifestKind> = new Map([
  [DOCKER_MANIFEST, "schema2"],
  [DOCKER_MANIFEST_LIST, "list"],
  [OCI_MANIFEST, "oci"],
  [OCI_INDEX, "oci-index"],
]);

/** Every schema-2 manifest media type understood here. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [...SCHEMA2_KINDS.keys()];

/**
 * Layer media types whose content may not be redistributed (OCI's deprecated non-distributable
 * layers and Docker's foreign layers): clients fetch them from the descriptor's `urls`.
 */
export const NON_DISTRIBUTABLE_MEDIA_TYPES: ReadonlySet<string> = new Set([
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.foreign.diff.tar",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
]);

/** Whether a layer is non-distributable and says where to fetch it (so Kraken need not hold it). */
export function isForeignLayer(layer: Descriptor): boolean {
  return NON_DISTRIBUTABLE_MEDIA_TYPES.has(layer.mediaType) && (layer.urls?.length ?? 0) > 0;
}

/**
 * The references a cluster must hold for the manifest to be usable: every reference except
 * foreign layers ({@linkcode isForeignLayer}), which clients fetch from their `urls`.
 */
export function storedReferences(manifest: ParsedManifest): Digest[] {
  const foreign = new Set(manifest.layers.filter(isForeignLayer).map((l) => l.digest.hex));
  return manifest.references.filter((d, i) =>
    // The config (first of an image's references) is never foreign, even with a layer's digest.
    (manifest.kind === "image" && i === 0) || !foreign.has(d.hex)
  );
}

/** Largest manifest accepted or downloaded (docker/distribution's limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const INDEX_TYPES = new Set([DOCKER_MANIFEST_LIST, OCI_INDEX]);

/** A manifest that cannot be used: bad JSON, wrong schema, unknown type or a bad descriptor. */
export class ManifestError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

/** A content descriptor inside a manifest. */
export interface Descriptor {
  /** Media type of the referenced content (may be empty in Docker lists). */
  mediaType: string;
  /** Digest of the referenced content. */
  digest: Digest;
  /** Size in bytes. */
  size: number;
  /** Where non-distributable content can be fetched instead (OCI `urls`). */
  urls?: string[];
}

/** What a parsed manifest references. */
export interface ParsedManifest {
  /** The manifest's media type. */
  mediaType: string;
  /** `image` (config + layers) or `index` (sub-manifests). */
  kind: "image" | "index";
  /** The image config (image manifests only). */
  config?: Descriptor;
  /** Layers (image manifests; empty for indexes). */
  layers: Descriptor[];
  /** Sub-manifests (indexes; empty for image manifests). */
  manifests: Descriptor[];
  /** Every referenced digest in manifest order: config then layers, or the sub-manifests. */
  references: Digest[];
  /** The manifest this one refers to (OCI 1.1 `subject`); not among the references. */
  subject?: Descriptor;
  /** The top-level `artifactType`, when it is a non-empty string. */
  artifactType?: string;
  /** The top-level `annotations` object, as written. */
  annotations?: Record<string, unknown>;
}

/** A stored manifest's kind and the Content-Type it is served with. */
export interface ManifestInfo {
  /** The kind. */
  kind: ManifestKind;
  /** Content-Type of the response. */
  mediaType: string;
}

/**
 * The media type part of a `Content-Type` or `Accept` value: parameters dropped, lowercase (as Go's
 * `mime.ParseMediaType` reads it).
 */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The manifest's top-level JSON object. `strictUtf8` refuses invalid UTF-8; without it invalid
 * sequences decode to U+FFFD, as Go's JSON decoder reads them.
 */
function decodeManifest(bytes: Uint8Array, strictUtf8: boolean): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: strictUtf8 }).decode(bytes));
  } catch (error) {
    throw new ManifestError(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(doc)) throw new ManifestError("manifest must be a JSON object");
  return doc;
}

function descriptor(raw: unknown, where: string): Descriptor {
  if (!isObject(raw)) throw new ManifestError(`${where}: descriptor must be an object`);
  if (raw.mediaType !== undefined && typeof raw.mediaType !== "string") {
    throw new ManifestError(`${where}.mediaType: must be a string`);
  }
  if (typeof raw.digest !== "string") throw new ManifestError(`${where}.digest: missing`);
  let digest: Digest;
  try {
    digest = parseDigest(raw.digest);
  } catch (error) {
    if (error instanceof DigestError) throw new ManifestError(`${where}.digest: ${error.message}`);
    throw error;
  }
  const size = raw.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestError(`${where}.size: must be a non-negative integer`);
  }
  const out: Descriptor = { mediaType: (raw.mediaType as string | undefined) ?? "", digest, size };
  if (raw.urls !== undefined) {
    if (!Array.isArray(raw.urls) || !raw.urls.every((u) => typeof u === "string")) {
      throw new ManifestError(`${where}.urls: must be a list of strings`);
    }
    out.urls = raw.urls;
  }
  return out;
}

function descriptors(raw: unknown, where: string): Descriptor[] {
  if (!Array.isArray(raw)) throw new ManifestError(`${where}: must be a list`);
  return raw.map((d, i) => descriptor(d, `${where}[${i}]`));
}

/**
 * Parses a schema-2 manifest and lists what it references.
 *
 * @param bytes the manifest as stored (its digest is the digest of these bytes); must be UTF-8
 * @param contentType the HTTP `Content-Type` it came with, if any
 * @throws {ManifestError} for anything that is not a well-formed manifest of a supported type
 */
export function parseManifest(bytes: Uint8Array, contentType?: string | null): ParsedManifest {
  const doc = decodeManifest(bytes, true);
  if (doc.schemaVersion !== 2) {
    throw new ManifestError(
      `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)} (only 2 is supported)`,
    );
  }
  if (doc.mediaType !== undefined && typeof doc.mediaType !== "string") {
    throw new ManifestError("mediaType must be a string");
  }
  const declared = doc.mediaType as string | undefined;
  const hinted = mediaTypeOf(contentType);
  let mediaType: string;
  if (declared) {
    if (SCHEMA2_KINDS.has(hinted) && hinted !== declared) {
      throw new ManifestError(`Content-Type ${hinted} does not match mediaType ${declared}`);
    }
    mediaType = declared;
  } else if (SCHEMA2_KINDS.has(hinted)) {
    mediaType = hinted;
  } else {
    // Any `manifests` field makes an index (upstream's rule), so a malformed list is reported as such.
    mediaType = doc.manifests !== undefined ? OCI_INDEX : OCI_MANIFEST;
  }
  if (!SCHEMA2_KINDS.has(mediaType)) {
    throw new ManifestError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  const extras: Pick<ParsedManifest, "subject" | "artifactType" | "annotations"> = {};
  if (doc.subject !== undefined) extras.subject = descriptor(doc.subject, "subject");
  if (typeof doc.artifactType === "string" && doc.artifactType !== "") {
    extras.artifactType = doc.artifactType;
  }
  if (isObject(doc.annotations)) extras.annotations = doc.annotations;
  if (INDEX_TYPES.has(mediaType)) {
    const manifests = descriptors(doc.manifests, "manifests");
    return {
      mediaType,
      kind: "index",
      layers: [],
      manifests,
      references: manifests.map((d) => d.digest),
      ...extras,
    };
  }
  const config = descriptor(doc.config, "config");
  const layers = descriptors(doc.layers, "layers");
  return {
    mediaType,
    kind: "image",
    config,
    layers,
    manifests: [],
    references: [config.digest, ...layers.map((d) => d.digest)],
    ...extras,
  };
}

/**
 * Classifies a stored manifest by its `schemaVersion` and `mediaType`, as distribution's manifest
 * handler does: schema 1 (signed when it has `signatures`), or one of the schema-2 types; a schema-2
 * document without a `mediaType` is an OCI index when `manifests` is a list, else an OCI manifest.
 * Descriptors are not checked: the bytes are served as stored.
 *
 * @throws {ManifestError} for invalid JSON, an unknown schema version or an unknown media type
 */
export function classifyManifest(bytes: Uint8Array): ManifestInfo {
  const m = decodeManifest(bytes, false);
  const mediaType = typeof m.mediaType === "string" ? m.mediaType : "";
  switch (m.schemaVersion) {
    case 1:
      return {
        kind: "schema1",
        mediaType: "signatures" in m ? DOCKER_MANIFEST_SCHEMA1_SIGNED : DOCKER_MANIFEST_SCHEMA1,
      };
    case 2: {
      if (mediaType === "") {
        return Array.isArray(m.manifests)
          ? { kind: "oci-index", mediaType: OCI_INDEX }
          : { kind: "oci", mediaType: OCI_MANIFEST };
      }
      const kind = SCHEMA2_KINDS.get(mediaType);
      if (kind === undefined) {
        throw new ManifestError(`unrecognized manifest content type ${mediaType}`);
      }
      return { kind, mediaType };
    }
    default:
      throw new ManifestError(`unrecognized manifest schema version ${String(m.schemaVersion)}`);
  }
}

/**
 * The media types a request accepts: every `Accept` value split on commas, parameters and case
 * dropped; `q` values are ignored, as distribution does.
 */
export function acceptedMediaTypes(headers: Headers): Set<string> {
  const out = new Set<string>();
  for (const part of (headers.get("accept") ?? "").split(",")) {
    const type = mediaTypeOf(part);
    if (type !== "") out.add(type);
  }
  return out;
}

/**
 * Why a manifest of `kind` cannot be served to a client accepting `accepted`, or undefined when
 * it can.
 */
export function negotiationFailure(kind: ManifestKind, accepted: Set<string>): string | undefined {
  if (kind === "oci" && !accepted.has(OCI_MANIFEST)) {
    return "OCI manifest found, but accept header does not support OCI manifests";
  }
  if (kind === "oci-index" && !accepted.has(OCI_INDEX)) {
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

/**
 * Reads a manifest body into memory, refusing more than `limit` bytes (the stream is cancelled).
 * @throws {ManifestError} when the body is too large
 */
export async function readManifestBytes(
  stream: ReadableStream<Uint8Array>,
  limit = MAX_MANIFEST_BYTES,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > limit) throw new ManifestError(`manifest exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return concatBytes(chunks);
}
