/**
 * Finds the Go programs that `scripts/setup.sh` builds and caches (Jaeger, and the other servers
 * listed in `scripts/go-tools.tsv`). The list file is the one place their versions are written.
 *
 * ```ts
 * import { toolBinary } from "./tools.ts";
 * const jaeger = toolBinary("jaeger"); // $HOME/.cache/kraken/jaeger-v1.76.0/jaeger
 * ```
 *
 * @module
 */

/** One row of `scripts/go-tools.tsv`. */
export interface GoTool {
  /** Binary name. */
  name: string;
  /** Go module path. */
  module: string;
  /** Module version. */
  version: string;
  /** Package built, relative to the module root. */
  package: string;
}

const TOOLS_FILE = new URL("../../scripts/go-tools.tsv", import.meta.url);

/** Parses `scripts/go-tools.tsv` (comment lines start with `#`). */
export function readGoTools(text: string = Deno.readTextFileSync(TOOLS_FILE)): GoTool[] {
  return text.split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [name, module, version, pkg] = line.split(/\s+/);
      if (!name || !module || !version || !pkg) {
        throw new Error(`scripts/go-tools.tsv: malformed line ${JSON.stringify(line)}`);
      }
      return { name, module, version, package: pkg };
    });
}

/** The row of tool `name`. */
export function goTool(name: string): GoTool {
  const tool = readGoTools().find((t) => t.name === name);
  if (!tool) throw new Error(`scripts/go-tools.tsv lists no tool named ${name}`);
  return tool;
}

/** `JAEGER_BIN` for `jaeger`, `FAKE_GCS_SERVER_BIN` for `fake-gcs-server`. */
export function toolOverrideVariable(name: string): string {
  return `${name.toUpperCase().replaceAll("-", "_")}_BIN`;
}

/** The cache `scripts/setup.sh` fills: `KRAKEN_CACHE`, else `$HOME/.cache/kraken`. */
export function cacheRoot(): string {
  return Deno.env.get("KRAKEN_CACHE") ?? `${Deno.env.get("HOME") ?? "."}/.cache/kraken`;
}

/** Where `scripts/install-go-tool.sh` caches tool `name`. */
export function cachedToolPath(name: string): string {
  const { version } = goTool(name);
  return `${cacheRoot()}/${name}-${version}/${name}`;
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Returns a runnable binary of tool `name`: `path` if given, else `<NAME>_BIN` if set, else
 * {@linkcode cachedToolPath}.
 *
 * @throws Error telling how to install it when that file is not an executable
 */
export function toolBinary(name: string, path?: string): string {
  const variable = toolOverrideVariable(name);
  const fromEnv = Deno.env.get(variable);
  const source = path ? "" : fromEnv ? ` (from ${variable})` : "";
  const binary = path || fromEnv || cachedToolPath(name);
  if (!isExecutableFile(binary)) {
    throw new Error(
      `${name} binary not found at ${binary}${source}. Run scripts/setup.sh to build and cache it ` +
        `(needs Go and the Go module proxy), or set ${variable} to an existing binary.`,
    );
  }
  return binary;
}
