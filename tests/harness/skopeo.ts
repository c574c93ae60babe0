/**
 * Running the real skopeo CLI (the registry client the push and pull tests use, as docker would).
 *
 * ```ts
 * import { skopeo } from "./skopeo.ts";
 * await skopeo(["copy", "--dest-tls-verify=false", `oci:${dir}:latest`, `docker://${addr}/a:v1`]);
 * ```
 *
 * @module
 */

/** Options of {@linkcode skopeo}. */
export interface SkopeoOptions {
  /**
   * Directory used as HOME, XDG_RUNTIME_DIR and TMPDIR, so skopeo's blob-info cache and auth
   * lookups stay inside the test (default: the inherited environment).
   */
  home?: string;
}

/** Whether a skopeo binary can be run here. */
export function hasSkopeo(): boolean {
  try {
    return new Deno.Command("skopeo", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Runs `skopeo --insecure-policy <args>` and returns its stdout.
 * @throws {Error} naming the command, with its output, when skopeo fails
 */
export async function skopeo(args: string[], options: SkopeoOptions = {}): Promise<string> {
  const { home } = options;
  const out = await new Deno.Command("skopeo", {
    args: ["--insecure-policy", ...args],
    env: home ? { HOME: home, XDG_RUNTIME_DIR: home, TMPDIR: home } : undefined,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`skopeo ${args.join(" ")} failed (${out.code}):\n${stderr}${stdout}`);
  }
  return stdout;
}
