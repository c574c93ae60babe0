/**
 * Docker/OCI manifest parsing: which blobs a manifest references.
 *
 * Build-index uses it to resolve a tag's dependencies (kraken-wire.md §7.2) and the proxy to validate
 * a pushed manifest. Four schema-2 media types are understood: Docker image manifest, Docker
 * manifest list, OCI image manifest and OCI image index. A manifest without `mediaType` (allowed by
 * OCI) takes the type its HTTP `Content-Type` names, and failing that is an OCI index when it has a
 * `manifests` field and an OCI image manifest otherwise, as upstream decides.
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

import { type Digest, DigestError, parseDigest } from "../../storage/digest.ts";

/** Docker image manifest, schema 2. */
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list. */
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** OCI image manifest. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** Every manifest media type understood here. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_MANIFEST,
  OCI_INDEX,
];

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
}

/** The media type part of a `Content-Type` value (parameters and case dropped). */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
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
  return { mediaType: (raw.mediaType as string | undefined) ?? "", digest, size };
}

function descriptors(raw: unknown, where: string): Descriptor[] {
  if (!Array.isArray(raw)) throw new ManifestError(`${where}: must be a list`);
  return raw.map((d, i) => descriptor(d, `${where}[${i}]`));
}

/**
 * Parses a schema-2 manifest and lists what it references.
 *
 * @param bytes the manifest as stored (its digest is the digest of these bytes)
 * @param contentType the HTTP `Content-Type` it came with, if any
 * @throws {ManifestError} for anything that is not a well-formed manifest of a supported type
 */
export function parseManifest(bytes: Uint8Array, contentType?: string | null): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ManifestError(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(doc)) throw new ManifestError("manifest must be a JSON object");
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
    if (MANIFEST_MEDIA_TYPES.includes(hinted) && hinted !== declared) {
      throw new ManifestError(`Content-Type ${hinted} does not match mediaType ${declared}`);
    }
    mediaType = declared;
  } else if (MANIFEST_MEDIA_TYPES.includes(hinted)) {
    mediaType = hinted;
  } else {
    mediaType = doc.manifests !== undefined ? OCI_INDEX : OCI_MANIFEST;
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw new ManifestError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  if (INDEX_TYPES.has(mediaType)) {
    const manifests = descriptors(doc.manifests, "manifests");
    return {
      mediaType,
      kind: "index",
      layers: [],
      manifests,
      references: manifests.map((d) => d.digest),
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
  };
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
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
