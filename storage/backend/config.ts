/**
 * Parses the `backends:` block of a role's YAML configuration into a
 * {@linkcode BackendManager}, in upstream Kraken's shape:
 *
 * ```yaml
 * backends:
 *   - namespace: "^library/.*"
 *     backend:
 *       testfs: { addr: "127.0.0.1:14000", root: blobs, name_path: identity }
 *   - namespace: ".*"
 *     backend:
 *       file: { root: /var/cache/kraken/backend, name_path: identity }
 * ```
 *
 * Each entry has exactly one backend type. Supported types are `testfs` (HTTP)
 * and `file` (a local directory; this project's embedded default, which
 * upstream does not have). Errors name the offending key, for example
 * `backends[1].backend.testfs.addr: ...`.
 *
 * @module
 */

import { type BackendEntry, type BackendFetch, BackendManager } from "./backend.ts";
import { FileBackend } from "./fs.ts";
import { isNamePathId, NAME_PATH_IDS, type NamePathId } from "./namepath.ts";
import { TestfsBackend } from "./testfs.ts";

/** A configuration value that is missing, mistyped or unsupported. */
export class BackendConfigError extends Error {
  /** Dotted path of the offending key, like `backends[0].namespace`. */
  readonly key: string;

  /**
   * @param key dotted path of the offending key
   * @param problem what is wrong with it
   */
  constructor(key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = "BackendConfigError";
    this.key = key;
  }
}

/** Options for {@linkcode parseBackendsConfig}. */
export interface BackendsConfigOptions {
  /** Key the block sits under, used in error messages (default `backends`). */
  key?: string;
  /** The fetch HTTP backends use; roles pass a traced one. */
  fetch?: BackendFetch;
  /** Directory relative `file` roots are resolved against (default: the working directory). */
  baseDir?: string;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Obj, key: string, allowed: string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new BackendConfigError(
        `${key}.${k}`,
        `unsupported key (expected ${allowed.join(", ")})`,
      );
    }
  }
}

function optionalString(obj: Obj, key: string, name: string): string | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new BackendConfigError(`${key}.${name}`, "must be a string");
  return v;
}

function requiredString(obj: Obj, key: string, name: string): string {
  const v = optionalString(obj, key, name);
  if (!v) throw new BackendConfigError(`${key}.${name}`, "required non-empty string");
  return v;
}

function namePathOf(obj: Obj, key: string): NamePathId {
  const v = optionalString(obj, key, "name_path") ?? "identity";
  if (!isNamePathId(v)) {
    throw new BackendConfigError(
      `${key}.name_path`,
      `unknown name path ${JSON.stringify(v)} (expected one of ${NAME_PATH_IDS.join(", ")})`,
    );
  }
  return v;
}

const BUILDERS: Record<
  string,
  (cfg: Obj, key: string, options: BackendsConfigOptions) => BackendEntry["backend"]
> = {
  testfs(cfg, key, options) {
    checkKeys(cfg, key, ["addr", "root", "name_path"]);
    const addr = requiredString(cfg, key, "addr");
    if (!/^[^\s/:]+:\d{1,5}$/.test(addr)) {
      throw new BackendConfigError(`${key}.addr`, `must be host:port, got ${JSON.stringify(addr)}`);
    }
    return new TestfsBackend({
      addr,
      root: optionalString(cfg, key, "root") ?? "",
      namePath: namePathOf(cfg, key),
      fetch: options.fetch,
    });
  },
  file(cfg, key, options) {
    checkKeys(cfg, key, ["root", "name_path"]);
    const root = requiredString(cfg, key, "root");
    const base = options.baseDir;
    return new FileBackend({
      root: base && !root.startsWith("/") ? `${base.replace(/\/+$/, "")}/${root}` : root,
      namePath: namePathOf(cfg, key),
    });
  },
};

/**
 * Validates a `backends:` value and builds its entries.
 *
 * @param raw the parsed YAML value under the `backends` key (`undefined`/`null` = none)
 * @param options see {@linkcode BackendsConfigOptions}
 * @throws {BackendConfigError} naming the first invalid key
 */
export function parseBackendsConfig(
  raw: unknown,
  options: BackendsConfigOptions = {},
): BackendEntry[] {
  const root = options.key ?? "backends";
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new BackendConfigError(root, "must be a list");
  return raw.map((entry, i) => {
    const key = `${root}[${i}]`;
    if (!isObject(entry)) throw new BackendConfigError(key, "must be a mapping");
    checkKeys(entry, key, ["namespace", "backend"]);
    const namespace = requiredString(entry, key, "namespace");
    try {
      new RegExp(namespace);
    } catch (err) {
      throw new BackendConfigError(`${key}.namespace`, `invalid regular expression: ${err}`);
    }
    const backend = entry.backend;
    if (!isObject(backend)) {
      throw new BackendConfigError(`${key}.backend`, "required mapping with one backend type");
    }
    const types = Object.keys(backend);
    if (types.length !== 1) {
      throw new BackendConfigError(
        `${key}.backend`,
        `must have exactly one backend type, got ${types.length}`,
      );
    }
    const type = types[0];
    const build = BUILDERS[type];
    if (!build) {
      throw new BackendConfigError(
        `${key}.backend.${type}`,
        `unsupported backend type (expected one of ${Object.keys(BUILDERS).join(", ")})`,
      );
    }
    const cfg = backend[type];
    const typeKey = `${key}.backend.${type}`;
    if (!isObject(cfg)) throw new BackendConfigError(typeKey, "must be a mapping");
    return { namespace, backend: build(cfg, typeKey, options) };
  });
}

/**
 * Builds a {@linkcode BackendManager} from a `backends:` value.
 *
 * @param raw the parsed YAML value under the `backends` key
 * @param options see {@linkcode BackendsConfigOptions}
 * @throws {BackendConfigError} naming the first invalid key
 */
export function backendManagerFromConfig(
  raw: unknown,
  options: BackendsConfigOptions = {},
): BackendManager {
  return new BackendManager(parseBackendsConfig(raw, options));
}
