/**
 * Keeps `deno task test:unit` honest: it must deny starting processes and leave out only the flows,
 * every flow must be one, and every other test file that starts a process must say so through
 * `external.ts` (so `test:unit` skips those tests instead of failing on them).
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Calls that start a process, directly or through the harness. */
const STARTS_PROCESS =
  /\b(?:Deno\.Command|spawnDeno|spawnProcess|ProcessGroup|startRedis|startJaeger|startUploadCluster|startDownloadCluster|skopeo(?=\())\b/;

async function testFiles(dir = ROOT): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (["node_modules", ".git", "dist", ".data"].includes(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await testFiles(path));
    else if (entry.name.endsWith("_test.ts")) out.push(relative(ROOT, path));
  }
  return out.sort();
}

const isFlow = (file: string) => /^tests\/[^/]+_test\.ts$/.test(file);

Deno.test("test:unit denies processes and leaves out only the flows; test runs everything", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  assert.equal(
    tasks["test:unit"],
    "deno test --allow-all --deny-run --parallel '--ignore=tests/*_test.ts'",
  );
  assert.equal(tasks.test, "deno test --allow-all --parallel");
  const pkg = JSON.parse(await Deno.readTextFile(join(ROOT, "package.json")));
  assert.match(pkg.scripts["test:unit"], /deno task test:unit$/);
});

Deno.test("every test file in tests/ is a flow that starts processes", async () => {
  const flows = (await testFiles()).filter(isFlow);
  assert.ok(flows.length >= 4, `flows found: ${flows}`);
  for (const file of flows) {
    const text = await Deno.readTextFile(join(ROOT, file));
    assert.match(text, STARTS_PROCESS, `${file} starts no process: move it beside its module`);
  }
});

Deno.test("a test file outside the flows that starts a process marks it with externalTest", async () => {
  const offenders: string[] = [];
  const self = relative(ROOT, new URL(import.meta.url).pathname); // names the calls, starts none
  for (const file of (await testFiles()).filter((f) => !isFlow(f) && f !== self)) {
    const text = await Deno.readTextFile(join(ROOT, file));
    if (STARTS_PROCESS.test(text) && !/\bexternalTest\(/.test(text)) offenders.push(file);
  }
  assert.deepEqual(offenders, [], "use externalTest from tests/harness/external.ts");
});
