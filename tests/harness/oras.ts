/**
 * Running the real oras CLI (an OCI 1.1 artifact client: attach, discover, pull), built from
 * `scripts/go-tools.tsv` and found with {@linkcode toolBinary}.
 *
 * ```ts
 * import { oras } from "./oras.ts";
 * const out = await oras(["discover", "--plain-http", "--format", "json", `${addr}/a:v1`], { home });
 * ```
 *
 * @module
 */

import { toolBinary } from "./tools.ts";

/** Options of {@linkcode oras}. */
export interface OrasOptions {
  /** Directory used as HOME and TMPDIR, so no credentials or cache outside the test are read. */
  home: string;
  /** Working directory (where `oras attach` finds its files and `oras pull` writes them). */
  cwd?: string;
}

/**
 * Runs `oras <args>` and returns its stdout.
 * @throws {Error} naming the command, with its output, when oras fails
 */
export async function oras(args: string[], options: OrasOptions): Promise<string> {
  const out = await new Deno.Command(toolBinary("oras"), {
    args,
    cwd: options.cwd,
    env: { HOME: options.home, TMPDIR: options.home, DOCKER_CONFIG: `${options.home}/.docker` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`oras ${args.join(" ")} failed (${out.code}):\n${stderr}${stdout}`);
  }
  return stdout;
}
