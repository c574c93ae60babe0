/**
 * The proxy's side of the OCI 1.1 referrers API (`registry/referrers.ts`): the route
 * `GET /v2/{name}/referrers/{digest}`, and what a manifest PUT with a `subject` does — check that
 * the subject is not another repository's manifest, then record the referrer in build-index.
 *
 * A subject belongs to the repository when the cluster does not have it yet (the spec lets a
 * referrer be pushed before its subject), or when it is reachable from the repository: a tag of it
 * points at the subject, an index such a tag points at lists it, or it already refers to or is
 * referred to by a manifest of the repository. Only manifests pushed by digest alone are not
 * reachable, so a subject that is such a manifest counts as another repository's (docs/oci.md).
 *
 * @module
 */

import { parseManifest } from "../../registry/manifest.ts";
import { RegistryError } from "../../registry/errors.ts";
import { isRegistryTag, splitTagName, tagListPrefix } from "../../registry/listing.ts";
import {
  parseReferrerRecord,
  referrerRecordTag,
  referrersResponse,
} from "../../registry/referrers.ts";
import type { Digest } from "../../storage/digest.ts";
import {
  blobSize,
  loadManifest,
  nameParam,
  putTag,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";

/** Tags of a repository looked at when checking a subject; beyond them a subject is accepted. */
const MAX_TAGS_CHECKED = 1000;

/** How many tags are resolved at once during the check. */
const RESOLVE_CONCURRENCY = 8;

/** Registers `GET /v2/{name}/referrers/{digest}`. */
export function registerReferrerRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  on("GET", "/v2/{name+}/referrers/{digest}", (ctx) => {
    const name = nameParam(ctx);
    return referrersResponse(name, ctx.params.digest, ctx.url, {
      list: async (prefix) => (await deps.tags.list(prefix)).result,
      load: (digest) => loadManifest(deps, name, digest),
    });
  });
}

/** The digests `tags` point at, at most {@linkcode RESOLVE_CONCURRENCY} lookups at a time. */
async function resolveAll(deps: RegistryDeps, tags: string[]): Promise<Digest[]> {
  const out: Digest[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < tags.length; i = next++) {
      const digest = await deps.tags.get(tags[i]);
      if (digest) out.push(digest);
    }
  };
  await Promise.all(Array.from({ length: Math.min(RESOLVE_CONCURRENCY, tags.length) }, worker));
  return out;
}

/**
 * Refuses (400 `MANIFEST_INVALID`) a `subject` that is a manifest of another repository.
 * @throws {RegistryError} `MANIFEST_INVALID`
 */
export async function checkSubject(deps: RegistryDeps, name: string, subject: Digest) {
  if (await blobSize(deps, name, subject) === null) return;
  const names = (await deps.tags.list(tagListPrefix(name))).result;
  const inRepo = names.map(splitTagName).filter((t) => t.repo === name);
  for (const record of names.map(parseReferrerRecord)) {
    if (record?.repo !== name) continue;
    if (record.subject.equals(subject) || record.referrer.equals(subject)) return;
  }
  const tags = inRepo.filter((t) => isRegistryTag(t.tag)).map((t) => `${name}:${t.tag}`);
  if (tags.length > MAX_TAGS_CHECKED) return;
  const tagged = await resolveAll(deps, tags);
  if (tagged.some((d) => d.equals(subject))) return;
  const seen = new Set<string>();
  for (const digest of tagged) {
    if (seen.has(digest.hex)) continue;
    seen.add(digest.hex);
    const bytes = await loadManifest(deps, name, digest);
    if (!bytes) continue;
    try {
      if (parseManifest(bytes).manifests.some((d) => d.digest.equals(subject))) return;
    } catch {
      // A tagged manifest that does not parse lists nothing.
    }
  }
  throw new RegistryError(
    "MANIFEST_INVALID",
    `subject ${subject} is not a manifest of repository ${name}: it exists in the cluster but ` +
      `no tag of ${name} reaches it`,
    { subject: subject.toString(), name },
  );
}

/** Records in build-index that `referrer` (a manifest of `name`) refers to `subject`. */
export function recordReferrer(
  deps: RegistryDeps,
  name: string,
  subject: Digest,
  referrer: Digest,
): Promise<void> {
  return putTag(deps, `${name}:${referrerRecordTag(subject, referrer)}`, referrer);
}
