/**
 * Prometheus's own checker for the flow tests: `promtool check metrics` on an exposition (either
 * content type), `promtool check rules` and `promtool test rules` on rule files. The binary comes
 * from `PROMTOOL_BIN`, else from the cache, where `scripts/setup.sh` extracts it from Debian's
 * `prometheus` package.
 *
 * ```ts
 * const result = await promtool(["check", "metrics"], await (await fetch(url)).text());
 * assert.equal(result.code, 0, result.output);
 * ```
 *
 * @module
 */

import { cacheRoot, toolBinary } from "./tools.ts";

/** Where `scripts/setup.sh` puts promtool. */
export function cachedPromtoolPath(): string {
  return `${cacheRoot()}/promtool-debian/promtool`;
}

/** What a promtool run printed and how it exited. */
export interface PromtoolResult {
  /** Exit code: 0 clean; `check metrics` exits 3 on lint problems, 1 on a parse error. */
  code: number;
  /** stdout and stderr together. */
  output: string;
}

/** Runs promtool with `args`, `stdin` (if given) as its standard input. */
export async function promtool(args: string[], stdin?: string): Promise<PromtoolResult> {
  const child = new Deno.Command(
    toolBinary("promtool", Deno.env.get("PROMTOOL_BIN") ? undefined : cachedPromtoolPath()),
    {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    },
  ).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, output: decode(stdout) + decode(stderr) };
}

/**
 * `text` (OpenMetrics) with every sample stamped at `timestampSeconds`, between its value and its
 * exemplar, as the grammar allows: promtool's OpenMetrics importer, the strict parser Prometheus
 * scrapes OpenMetrics with, takes only samples that carry a timestamp.
 */
export function stampOpenMetrics(text: string, timestampSeconds: number): string {
  return text.split("\n").map((line) => {
    if (line === "" || line.startsWith("#")) return line;
    let i = line.search(/[{ ]/);
    if (i >= 0 && line[i] === "{") {
      // Label values may hold braces (route templates): skip quoted strings.
      let quoted = false;
      for (i++; i < line.length; i++) {
        if (quoted && line[i] === "\\") i++;
        else if (line[i] === '"') quoted = !quoted;
        else if (!quoted && line[i] === "}") break;
      }
      i++;
    }
    const valueEnd = line.indexOf(" ", i + 1);
    return valueEnd < 0
      ? `${line} ${timestampSeconds}`
      : `${line.slice(0, valueEnd)} ${timestampSeconds}${line.slice(valueEnd)}`;
  }).join("\n");
}

/**
 * Parses an OpenMetrics exposition with Prometheus's OpenMetrics parser (through
 * `promtool tsdb create-blocks-from openmetrics`, into a scratch directory).
 */
export async function checkOpenMetrics(text: string): Promise<PromtoolResult> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-promtool-" });
  try {
    const input = `${dir}/metrics.om`;
    await Deno.writeTextFile(input, stampOpenMetrics(text, Math.floor(Date.now() / 1000)));
    return await promtool(["tsdb", "create-blocks-from", "openmetrics", input, `${dir}/blocks`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
