/**
 * Warming a checkout's module cache before its processes are measured. A role process started from
 * a checkout whose modules Deno has not cached yet stays slower for its whole life: an agent from a
 * fresh `git archive` copy of main answered cached GETs 40–45 µs (8%) slower at p50, with 30–36 µs
 * more CPU per GET, than the same commit's agents beside it, and an agent started from that copy
 * afterwards was as fast as the others; after `deno cache main.ts` the first run was within 5–8 µs
 * (docs/performance.md, "2026-12-03"). So the same-run comparisons of `perf/p2p.ts --baseline` and
 * `perf/agent_get.ts`'s `@<dir>` variants warm every checkout first, and so does the report.
 *
 * @module
 */

/** Runs `deno cache main.ts` in `root` with the `deno` running this process. */
export async function warmModuleCache(root: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["cache", "main.ts"],
    cwd: root,
    env: { DENO_NO_PACKAGE_JSON: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`deno cache main.ts in ${root}: ${text.slice(-500)}`);
  }
}
