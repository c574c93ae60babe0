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

import { rateLimited } from "../../common/log.ts";
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

/** How {@linkcode SubjectCheck.check} decided, the `result` label of its counter. */
type SubjectCheckResult = "absent" | "reachable" | "refused" | "skipped_tag_limit";

/** Interval of the log line for subjects accepted unchecked. */
const SKIP_LOG_INTERVAL_MS = 60_000;

/**
 * The check that a `subject` is no manifest of another repository, counted in
 * `kraken_proxy_subject_checks_total{result}`; a repository with more than
 * {@linkcode MAX_TAGS_CHECKED} tags is not searched (`skipped_tag_limit`, with a rate-limited
 * warning).
 */
export class SubjectCheck {
  readonly #deps: RegistryDeps;
  readonly #warnSkipped: (msg: string, fields?: Record<string, unknown>) => void;

  /** @param deps the registry's clients, logger and metrics */
  constructor(deps: RegistryDeps) {
    this.#deps = deps;
    this.#warnSkipped = rateLimited(
      SKIP_LOG_INTERVAL_MS,
      (msg, fields) => deps.logger.warn(msg, fields),
    );
  }

  /**
   * Refuses (400 `MANIFEST_INVALID`) a `subject` that is a manifest of another repository.
   * @throws {RegistryError} `MANIFEST_INVALID`
   */
  async check(name: string, subject: Digest): Promise<void> {
    const result = await this.#decide(name, subject);
    this.#deps.metrics.counter(
      "kraken_proxy_subject_checks_total",
      "Manifest pushes with a subject, by how the subject's repository was decided.",
      { result },
    ).inc();
    if (result === "skipped_tag_limit") {
      this.#warnSkipped("subject accepted unchecked: repository has too many tags to search", {
        name,
        limit: MAX_TAGS_CHECKED,
      });
    }
    if (result === "refused") {
      throw new RegistryError(
        "MANIFEST_INVALID",
        `subject ${subject} is not a manifest of repository ${name}: it exists in the cluster but ` +
          `no tag of ${name} reaches it`,
        { subject: subject.toString(), name },
      );
    }
  }

  async #decide(name: string, subject: Digest): Promise<SubjectCheckResult> {
    const deps = this.#deps;
    if (await blobSize(deps, name, subject) === null) return "absent";
    const names = (await deps.tags.list(tagListPrefix(name))).result;
    for (const record of names.map(parseReferrerRecord)) {
      if (record?.repo !== name) continue;
      if (record.subject.equals(subject) || record.referrer.equals(subject)) return "reachable";
    }
    const tags = names.map(splitTagName)
      .filter((t) => t.repo === name && isRegistryTag(t.tag))
      .map((t) => `${name}:${t.tag}`);
    if (tags.length > MAX_TAGS_CHECKED) return "skipped_tag_limit";
    const tagged = await resolveAll(deps, tags);
    if (tagged.some((d) => d.equals(subject))) return "reachable";
    const seen = new Set<string>();
    for (const digest of tagged) {
      if (seen.has(digest.hex)) continue;
      seen.add(digest.hex);
      const bytes = await loadManifest(deps, name, digest);
      if (!bytes) continue;
      try {
        if (parseManifest(bytes).manifests.some((d) => d.digest.equals(subject))) {
          return "reachable";
        }
      } catch {
        // A tagged manifest that does not parse lists nothing.
      }
    }
    return "refused";
  }
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
