/**
 * The build-index's local tag cache: one small file per tag holding `sha256:<hex>` (no newline), as
 * upstream's tag store keeps on disk (kraken-wire.md §7.1).
 *
 * Tag names come from the network, so the file name is the tag run through `encodeFileName`
 * (every byte outside `[A-Za-z0-9_.-]` percent-encoded): no tag, however hostile, can name a path
 * outside the root. Writes go to a temporary file in the same directory that is flushed and renamed
 * over the old value, so a reader or a restart sees the old digest or the new one, never a torn file.
 *
 * ```ts
 * import { TagStore } from "./tag_store.ts";
 * const tags = await TagStore.open({ root: "/var/cache/kraken/build-index/tags" });
 * await tags.put("library/ubuntu:latest", digest);
 * (await tags.get("library/ubuntu:latest"))?.toString(); // "sha256:…"
 * ```
 *
 * @module
 */

import { removeTempFiles, writeFileAtomic } from "../../common/atomic_file.ts";
import { type Digest, parseDigest } from "../../storage/digest.ts";
import { encodeFileName, PathError, resolveInside } from "../../storage/paths.ts";

/** A tag string that cannot be stored (empty, control characters, `.`/`..` path segments, too long). */
export class InvalidTagError extends Error {
  /** @param message what is wrong with the tag */
  constructor(message: string) {
    super(message);
    this.name = "InvalidTagError";
  }
}

/**
 * Checks a `repo:tag` string from the network. Tags become backend paths (`docker_tag` layout), so
 * besides control characters, `/`-separated segments that are empty, `.` or `..` are refused here
 * rather than failing later in a write-back.
 * @throws {InvalidTagError} when the tag is unusable
 */
export function validateTag(tag: string): string {
  if (tag.length === 0) throw new InvalidTagError("tag is empty");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(tag)) {
    throw new InvalidTagError("tag contains control characters");
  }
  for (const segment of tag.split("/")) {
    if (segment === "" || segment === "." || segment === "..") {
      throw new InvalidTagError(
        `tag ${JSON.stringify(tag.slice(0, 200))} has an invalid path segment`,
      );
    }
  }
  try {
    encodeFileName(tag);
  } catch (error) {
    if (error instanceof PathError) throw new InvalidTagError(error.message);
    throw error;
  }
  return tag;
}

/** Options of {@linkcode TagStore.open}. */
export interface TagStoreOptions {
  /** Directory holding the tag files; created if missing. */
  root: string;
}

/** Local disk cache of tag → digest. */
export class TagStore {
  /** Absolute root directory. */
  readonly root: string;

  private constructor(root: string) {
    this.root = resolveInside(root);
  }

  /** Opens (creating if needed) a store and removes temporary files a crash left behind. */
  static async open(options: TagStoreOptions): Promise<TagStore> {
    const store = new TagStore(options.root);
    await Deno.mkdir(store.root, { recursive: true });
    // Encoded tag names never start with `.`, so they cannot clash with temporary files.
    await removeTempFiles(store.root);
    return store;
  }

  #path(tag: string): string {
    return resolveInside(this.root, encodeFileName(validateTag(tag)));
  }

  /**
   * The digest stored for `tag`, or null when there is none.
   * @throws {InvalidTagError} for an unusable tag
   */
  async get(tag: string): Promise<Digest | null> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path(tag));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    return parseDigest(text.trim());
  }

  /**
   * Points `tag` at `digest`, atomically (temporary file, fsync, rename).
   * @throws {InvalidTagError} for an unusable tag
   */
  async put(tag: string, digest: Digest): Promise<void> {
    await writeFileAtomic(this.#path(tag), digest.toString());
  }
}
