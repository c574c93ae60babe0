/**
 * Configuration plumbing shared by every role: loading a YAML file, the {@linkcode ConfigError}
 * that names the offending key, and small validators for mappings of raw YAML values.
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import { parseDuration } from "./duration.ts";

export { parseDuration };

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

/** Reads and parses a YAML config file; the result must be a mapping. */
export async function loadYamlFile(path: string): Promise<RawMap> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError("--config", `file not found: ${path}`);
    }
    throw new ConfigError("--config", `cannot read ${path}: ${(error as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ConfigError("--config", `invalid YAML in ${path}: ${(error as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isMap(doc)) throw new ConfigError("--config", `${path} must hold a mapping at the top`);
  return doc;
}

/** Validates the keys of one mapping and reads typed values from it, naming keys in errors. */
export class Fields {
  readonly #obj: RawMap;
  /** Dotted path of this mapping. */
  readonly path: string;

  /** Wraps `raw` (undefined/null read as an empty mapping); throws if it is not a mapping. */
  constructor(raw: unknown, path: string, allowed?: readonly string[]) {
    if (raw === undefined || raw === null) raw = {};
    if (!isMap(raw)) throw new ConfigError(path, "must be a mapping");
    this.#obj = raw;
    this.path = path;
    if (allowed) {
      for (const key of Object.keys(raw)) {
        if (!allowed.includes(key)) {
          throw new ConfigError(this.key(key), `unknown key (allowed: ${allowed.join(", ")})`);
        }
      }
    }
  }

  /** The dotted path of a key in this mapping. */
  key(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  /** True when the key is present. */
  has(name: string): boolean {
    return this.#obj[name] !== undefined && this.#obj[name] !== null;
  }

  /** The raw value. */
  raw(name: string): unknown {
    return this.#obj[name];
  }

  /** A boolean. */
  bool(name: string, dflt: boolean): boolean {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") throw new ConfigError(this.key(name), "must be true or false");
    return v;
  }

  /** An integer not below `min`. */
  int(name: string, dflt: number, min = 0): number {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new ConfigError(this.key(name), `must be an integer >= ${min}`);
    }
    return v;
  }

  /** A number in `[min, max]`. */
  number(name: string, dflt: number, min = -Infinity, max = Infinity): number {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
      throw new ConfigError(this.key(name), `must be a number between ${min} and ${max}`);
    }
    return v;
  }

  /** A non-empty string. */
  string(name: string, dflt: string): string {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "string" || v === "") {
      throw new ConfigError(this.key(name), "must be a non-empty string");
    }
    return v;
  }

  /** A required non-empty string. */
  requiredString(name: string): string {
    if (!this.has(name)) throw new ConfigError(this.key(name), "is required");
    return this.string(name, "");
  }

  /** A list of non-empty strings. */
  stringList(name: string, dflt: string[]): string[] {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dflt;
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s === "")) {
      throw new ConfigError(this.key(name), "must be a list of non-empty strings");
    }
    return v as string[];
  }

  /**
   * A list of `host:port` addresses, each checked with {@linkcode parseHostPort}. With `required`,
   * a missing or empty list is refused; without it, it reads as empty.
   */
  hostList(name: string, required: boolean): string[] {
    const hosts = this.stringList(name, []);
    if (required && hosts.length === 0) {
      throw new ConfigError(this.key(name), "needs at least one host:port");
    }
    hosts.forEach((h, i) => parseHostPort(h, `${this.key(name)}[${i}]`));
    return hosts;
  }

  /** A duration (`500ms`, `5s`, `1m`, `1h`, or a number of milliseconds), in ms. */
  duration(name: string, dfltMs: number): number {
    const v = this.#obj[name];
    if (v === undefined || v === null) return dfltMs;
    try {
      return parseDuration(v as string | number);
    } catch (error) {
      throw new ConfigError(this.key(name), (error as Error).message);
    }
  }

  /** A duration greater than zero, in ms. */
  positiveDuration(name: string, dfltMs: number): number {
    const ms = this.duration(name, dfltMs);
    if (ms <= 0) throw new ConfigError(this.key(name), "must be a positive duration");
    return ms;
  }

  /** A nested mapping. */
  map(name: string, allowed?: readonly string[]): Fields {
    return new Fields(this.#obj[name], this.key(name), allowed);
  }
}

/** Parses `host:port` (IPv6 in brackets), throwing a {@linkcode ConfigError} for `key`. */
export function parseHostPort(value: string, key: string): { hostname: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
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

/**
 * Reads a role's `listen: {host, port}` with the `--host` and `--port` flags over it. Flags other
 * than those and `extraFlags` are refused, naming the flag.
 */
export function parseListen(
  top: Fields,
  flags: Record<string, string>,
  defaults: { host?: string; port: number },
  extraFlags: readonly string[] = [],
): { host: string; port: number } {
  const allowed = ["host", "port", ...extraFlags];
  for (const flag of Object.keys(flags)) {
    if (!allowed.includes(flag)) {
      throw new ConfigError(
        `--${flag}`,
        `unknown flag (allowed: ${allowed.map((f) => `--${f}`).join(", ")})`,
      );
    }
  }
  if (flags.host === "") throw new ConfigError("--host", "must not be empty");
  const listen = top.map("listen", ["host", "port"]);
  return {
    host: flags.host ?? listen.string("host", defaults.host ?? "127.0.0.1"),
    port: flags.port !== undefined
      ? parsePort(flags.port, "--port")
      : parsePort(listen.raw("port") ?? defaults.port, listen.key("port")),
  };
}
