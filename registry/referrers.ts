/**
 * The OCI 1.1 referrers API of both registries: how a manifest's `subject` is recorded in
 * build-index, and the `GET /v2/<name>/referrers/<digest>` answer built from those records.
 *
 * A referrer record is an ordinary build-index tag of the pushing repository,
 * `<name>:_oci/referrers/sha256-<subject hex>/sha256-<referrer hex>` → the referrer's digest. It
 * travels over the unchanged tag API (so Go build-indexes store and replicate it too), lives with
 * the tags in the tag backend (`docker_tag` layout:
 * `<name>/_manifests/tags/_oci/referrers/sha256-<s>/sha256-<r>/current/link`), and one listing of
 * `<name>/_manifests/tags/_oci/referrers/sha256-<s>` finds every referrer of a subject. The tag part
 * contains `/`, which no registry tag can, so it never collides with a pushed tag and tag lists
 * leave it out (`registry/listing.ts`). Build-index checks the referrer's own blobs as for any tag
 * (the subject is not a dependency: the spec lets it be pushed later).
 *
 * The answer is an OCI image index whose descriptors come from the referrer manifests themselves
 * (loaded like any manifest: from the proxy's cache or origin, over P2P on an agent): media type,
 * size, digest, `artifactType` (the manifest's, else an image manifest's config media type) and the
 * manifest's `annotations`. `?artifactType=` filters them and the answer then carries
 * `OCI-Filters-Applied: artifactType`.
 *
 * ```ts
 * import { referrerRecordTag } from "./referrers.ts";
 * referrerRecordTag(subject, referrer); // "_oci/referrers/sha256-…/sha256-…"
 * ```
 *
 * @module
 */

import { type Digest, parseDigest } from "../storage/digest.ts";
import { isSha512Digest, parseRegistryDigest, RegistryError } from "./errors.ts";
import { tagListPrefix } from "./listing.ts";
import { ManifestError, OCI_INDEX, parseManifest } from "./manifest.ts";

/** The tag-part prefix of every referrer record. */
export const REFERRER_RECORD_PREFIX = "_oci/referrers";

/** One entry of a referrers index. */
export interface ReferrerDescriptor {
  /** The referrer's media type. */
  mediaType: string;
  /** The referrer manifest's digest. */
  digest: string;
  /** Its size in bytes. */
  size: number;
  /** The artifact type (absent for an index without one). */
  artifactType?: string;
  /** The referrer's annotations. */
  annotations?: Record<string, unknown>;
}

/** A referrer record read back from its build-index name. */
export interface ReferrerRecord {
  /** The repository. */
  repo: string;
  /** The manifest referred to. */
  subject: Digest;
  /** The referring manifest. */
  referrer: Digest;
}

const segment = (d: Digest) => `sha256-${d.hex}`;

/** The tag part of the record saying `referrer` refers to `subject`. */
export function referrerRecordTag(subject: Digest, referrer: Digest): string {
  return `${REFERRER_RECORD_PREFIX}/${segment(subject)}/${segment(referrer)}`;
}

/** The build-index listing prefix of the records of `subject` in repository `name`. */
export function referrersListPrefix(name: string, subject: Digest): string {
  return `${tagListPrefix(name)}/${REFERRER_RECORD_PREFIX}/${segment(subject)}`;
}

/** The record a build-index name `repo:tag` holds, or null when it is none. */
export function parseReferrerRecord(name: string): ReferrerRecord | null {
  const at = name.lastIndexOf(":");
  const tag = name.slice(at + 1);
  const m = /^_oci\/referrers\/sha256-([0-9a-f]{64})\/sha256-([0-9a-f]{64})$/.exec(tag);
  if (at <= 0 || !m) return null;
  return {
    repo: name.slice(0, at),
    subject: parseDigest(`sha256:${m[1]}`),
    referrer: parseDigest(`sha256:${m[2]}`),
  };
}

/**
 * The referrers-index entry of a referrer manifest, or null when the bytes are no manifest with a
 * `subject` (a record pointing elsewhere is skipped rather than failing the whole answer).
 */
export function referrerDescriptor(bytes: Uint8Array, digest: Digest): ReferrerDescriptor | null {
  let manifest;
  try {
    manifest = parseManifest(bytes);
  } catch (error) {
    if (error instanceof ManifestError) return null;
    throw error;
  }
  if (!manifest.subject) return null;
  const out: ReferrerDescriptor = {
    mediaType: manifest.mediaType,
    digest: digest.toString(),
    size: bytes.length,
  };
  const artifactType = manifest.artifactType ??
    (manifest.kind === "image" ? manifest.config?.mediaType || undefined : undefined);
  if (artifactType) out.artifactType = artifactType;
  if (manifest.annotations) out.annotations = manifest.annotations;
  return out;
}

/** RFC 6838 `type/subtype` (restricted-name characters), as an artifact type must be. */
const MEDIA_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/**
 * The `artifactType` filter values of a referrers request (empty: no filter).
 * @throws {RegistryError} 400 `UNSUPPORTED` naming a value that is not a media type
 */
export function artifactTypeFilter(url: URL): string[] {
  const values = url.searchParams.getAll("artifactType");
  for (const v of values) {
    if (!MEDIA_TYPE.test(v)) {
      throw new RegistryError(
        "UNSUPPORTED",
        `invalid artifactType filter ${JSON.stringify(v.slice(0, 200))}: expected a media type ` +
          "type/subtype",
        { artifactType: v.slice(0, 200) },
        400,
      );
    }
  }
  return values;
}

/** What {@linkcode referrersResponse} reads through. */
export interface ReferrersSource {
  /** Build-index names under a prefix. */
  list(prefix: string): Promise<string[]>;
  /** A manifest's bytes, or null when it cannot be found. */
  load(digest: Digest): Promise<Uint8Array | null>;
}

/** How many referrer manifests are loaded at once. */
const LOAD_CONCURRENCY = 8;

/**
 * The answer to `GET /v2/<name>/referrers/<digest>`: 200 with an OCI index (empty when nothing
 * refers to the digest, including any sha512 digest, which Kraken never stores).
 * @throws {RegistryError} `DIGEST_INVALID` for a malformed digest, 400 for a malformed filter
 */
export async function referrersResponse(
  name: string,
  rawDigest: string,
  url: URL,
  source: ReferrersSource,
): Promise<Response> {
  const filter = artifactTypeFilter(url);
  let manifests: ReferrerDescriptor[] = [];
  if (!isSha512Digest(rawDigest)) {
    const subject = parseRegistryDigest(rawDigest);
    const records = (await source.list(referrersListPrefix(name, subject)))
      .map(parseReferrerRecord)
      .filter((r): r is ReferrerRecord => r?.repo === name && r.subject.equals(subject));
    const found: (ReferrerDescriptor | null)[] = new Array(records.length).fill(null);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < records.length; i = next++) {
        const bytes = await source.load(records[i].referrer);
        if (bytes) found[i] = referrerDescriptor(bytes, records[i].referrer);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, records.length) }, worker));
    manifests = found.filter((d): d is ReferrerDescriptor => d !== null);
  }
  const headers: Record<string, string> = { "content-type": OCI_INDEX };
  if (filter.length > 0) {
    manifests = manifests.filter((d) => d.artifactType && filter.includes(d.artifactType));
    headers["oci-filters-applied"] = "artifactType";
  }
  return new Response(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }), {
    headers,
  });
}
