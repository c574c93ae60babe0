/**
 * Configuration plumbing shared by every role: loading a YAML file, the {@linkcode ConfigError}
 * that names the offending key, and the `host:port` and port parsers. The keys themselves are
 * described with the schemas of `common/schema.ts`.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";

/** A configuration problem; `key` is the dotted path of the offending key. */
export class ConfigError extends Error {
  /** Dotted key path, e.g. `tracing.sampling.rules[1].rate`. */
  readonly key: string;

  /** Creates an error whose message starts with the key path. */
  constructor(key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = "ConfigError";
    this.key = key;
  }
}

/** A raw YAML mapping. */
export type RawMap = Record<string, unknown>;

/** True for a non-null, non-array object. */
export function isMap(v: unknown): v is RawMap {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Reads and parses a YAML config file; the result must be a mapping. A top-level
 * `extends: <file>` (upstream Kraken's spelling; relative to this file's directory) loads that file
 * first and lays this one over it: mappings merge key by key, anything else (lists included) is
 * replaced. Errors name `flag`, the option that gave the file (default `--config`).
 */
export async function loadYamlFile(path: string, flag = "--config"): Promise<RawMap> {
  return await loadExtending(path, [], flag);
}

async function loadExtending(path: string, chain: string[], flag: string): Promise<RawMap> {
  const doc = await loadOneYamlFile(path, flag);
  const base = doc.extends;
  if (base === undefined) return doc;
  if (typeof base !== "string" || base === "") {
    throw new ConfigError("extends", `must be a file name, in ${path}`);
  }
  const basePath = isAbsolute(base) ? base : join(dirname(path), base);
  if ([...chain, path].includes(basePath)) {
    throw new ConfigError("extends", `${path} extends itself through ${basePath}`);
  }
  const { extends: _, ...own } = doc;
  return mergeYaml(await loadExtending(basePath, [...chain, path], flag), own);
}

/** `over` laid over `base`: mappings merge key by key, other values replace. */
export function mergeYaml(base: RawMap, over: RawMap): RawMap {
  const out: RawMap = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const below = out[key];
    out[key] = isMap(below) && isMap(value) ? mergeYaml(below, value) : value;
  }
  return out;
}

async function loadOneYamlFile(path: string, flag: string): Promise<RawMap> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(flag, `file not found: ${path}`);
    }
    throw new ConfigError(flag, `cannot read ${path}: ${(error as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ConfigError(flag, `invalid YAML in ${path}: ${(error as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isMap(doc)) throw new ConfigError(flag, `${path} must hold a mapping at the top`);
  return doc;
}

/** Parses `host:port` (IPv6 in brackets), throwing a {@linkcode ConfigError} for `key`. */
export function parseHostPort(value: unknown, key: string): { hostname: string; port: number } {
  const m = typeof value !== "string" ? null : /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new ConfigError(key, `must be host:port, got ${JSON.stringify(value)}`);
  }
  return { hostname: m[1].replace(/^\[|\]$/g, ""), port };
}

/** A port number 0–65535 from YAML or a `--flag` string, throwing a {@linkcode ConfigError}. */
export function parsePort(value: unknown, key: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(key, `must be a port number 0-65535, got ${JSON.stringify(value)}`);
  }
  return n;
}
