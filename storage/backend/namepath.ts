/**
 * Name-path strategies: how a backend turns an object name into a storage
 * path, and a listed path back into a name (upstream `lib/backend/namepath`,
 * config key `name_path`).
 *
 * - `identity`: `<root>/<name>`
 * - `sharded_docker_blob`: `<root>/docker/registry/v2/blobs/sha256/<hex[0:2]>/<hex>/data`
 * - `docker_tag`: `repo:tag` →
 *   `<root>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link`
 *
 * The last two give the on-disk layout of a Docker registry, so a backend
 * bucket can be shared with one.
 *
 * ```ts
 * import { createNamePath } from "./namepath.ts";
 * createNamePath("docker_tag", "tags").blobPath("library/ubuntu:latest");
 * // "tags/docker/registry/v2/repositories/library/ubuntu/_manifests/tags/latest/current/link"
 * ```
 *
 * @module
 */

/** Identifiers of the supported name-path strategies. */
export const NAME_PATH_IDS = ["identity", "sharded_docker_blob", "docker_tag"] as const;

/** A name-path strategy identifier. */
export type NamePathId = typeof NAME_PATH_IDS[number];

/** A name-path strategy bound to a root. */
export interface NamePath {
  /** The strategy identifier. */
  readonly id: NamePathId;
  /** The directory every path of this strategy lives under (`""` for the bare root). */
  readonly basePath: string;
  /**
   * Maps a name to its storage path.
   *
   * @throws {TypeError} when the name does not fit the strategy
   */
  blobPath(name: string): string;
  /**
   * Maps a storage path back to its name.
   *
   * @returns the name, or `null` when the path does not belong to this layout
   */
  nameFromBlobPath(path: string): string | null;
}

/** Joins path parts with `/`, skipping empty ones (an empty root adds nothing). */
function join(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** Returns the part of `path` under `base`, or `null` when it is not under it. */
function under(base: string, path: string): string | null {
  if (base === "") return path;
  return path.startsWith(base + "/") ? path.slice(base.length + 1) : null;
}

/**
 * Reports whether `id` names a supported strategy.
 *
 * @param id candidate identifier
 */
export function isNamePathId(id: unknown): id is NamePathId {
  return (NAME_PATH_IDS as readonly unknown[]).includes(id);
}

/**
 * Creates a name-path strategy under `root`.
 *
 * @param id strategy identifier
 * @param root directory prefix of every path (trailing slashes are ignored)
 * @throws {TypeError} for an unknown identifier
 */
export function createNamePath(id: string, root = ""): NamePath {
  const base = root.replace(/\/+$/, "");
  switch (id) {
    case "identity":
      return {
        id,
        basePath: base,
        blobPath(name) {
          if (name === "") throw new TypeError("name must be non-empty");
          return join(base, name);
        },
        nameFromBlobPath(path) {
          const name = under(base, path);
          return name === "" ? null : name;
        },
      };
    case "sharded_docker_blob": {
      const blobs = join(base, "docker/registry/v2/blobs");
      return {
        id,
        basePath: blobs,
        blobPath(name) {
          if (name.length <= 2) {
            throw new TypeError(`name is too short, must be > 2 characters: ${name}`);
          }
          return join(blobs, "sha256", name.slice(0, 2), name, "data");
        },
        nameFromBlobPath(path) {
          const rest = under(join(blobs, "sha256"), path);
          const parts = rest?.split("/");
          if (parts?.length !== 3 || parts[0].length !== 2 || parts[2] !== "data") return null;
          return parts[1] === "" ? null : parts[1];
        },
      };
    }
    case "docker_tag": {
      const repos = join(base, "docker/registry/v2/repositories");
      const marker = "/_manifests/tags/";
      const suffix = "/current/link";
      return {
        id,
        basePath: repos,
        blobPath(name) {
          const tokens = name.split(":");
          if (tokens.length !== 2) {
            throw new TypeError(`name must be in format 'repo:tag': ${name}`);
          }
          const [repo, tag] = tokens;
          if (repo === "") throw new TypeError(`repo must be non-empty: ${name}`);
          if (tag === "") throw new TypeError(`tag must be non-empty: ${name}`);
          return join(repos, repo, "_manifests/tags", tag, "current/link");
        },
        nameFromBlobPath(path) {
          const rest = under(repos, path);
          if (rest === null || !rest.endsWith(suffix)) return null;
          const inner = rest.slice(0, -suffix.length);
          // The repository may itself contain slashes; the tag starts after the
          // last marker, as with upstream's greedy match.
          const at = inner.lastIndexOf(marker);
          if (at <= 0 || at + marker.length >= inner.length) return null;
          return `${inner.slice(0, at)}:${inner.slice(at + marker.length)}`;
        },
      };
    }
    default:
      throw new TypeError(
        `unknown name_path ${JSON.stringify(id)} (expected one of ${NAME_PATH_IDS.join(", ")})`,
      );
  }
}
