import assert from "node:assert/strict";
import { ConfigError, loadYamlFile, mergeYaml } from "./config.ts";

Deno.test("mergeYaml: mappings merge key by key, lists and scalars are replaced", () => {
  assert.deepEqual(
    mergeYaml(
      { a: { x: 1, y: { z: 2 } }, list: [1, 2], s: "base", only: true },
      { a: { y: { w: 3 } }, list: [3], s: "over" },
    ),
    { a: { x: 1, y: { z: 2, w: 3 } }, list: [3], s: "over", only: true },
  );
});

Deno.test("loadYamlFile: extends loads the base (relative to the file) and lays the file over it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-config-" });
  try {
    await Deno.mkdir(`${dir}/base`);
    await Deno.writeTextFile(
      `${dir}/base/root.yaml`,
      "zap: {level: info}\nmetainfogen: {piece_lengths: {0: 4MB}}\n",
    );
    await Deno.writeTextFile(
      `${dir}/base/base.yaml`,
      "extends: root.yaml\nnginx: {name: kraken-origin}\nhashring: {max_replica: 2}\n",
    );
    await Deno.writeTextFile(
      `${dir}/origin.yaml`,
      "extends: base/base.yaml\nhashring: {refresh_interval: 1s}\nmetainfogen: {piece_lengths: {0: 1MB}}\n",
    );
    assert.deepEqual(await loadYamlFile(`${dir}/origin.yaml`), {
      zap: { level: "info" },
      metainfogen: { piece_lengths: { 0: "1MB" } },
      nginx: { name: "kraken-origin" },
      hashring: { max_replica: 2, refresh_interval: "1s" },
    });

    await Deno.writeTextFile(`${dir}/loop.yaml`, "extends: loop2.yaml\n");
    await Deno.writeTextFile(`${dir}/loop2.yaml`, "extends: loop.yaml\n");
    await assert.rejects(
      () => loadYamlFile(`${dir}/loop.yaml`),
      (e: unknown) => e instanceof ConfigError && /extends itself/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/missing.yaml`, "extends: nope.yaml\n");
    await assert.rejects(
      () => loadYamlFile(`${dir}/missing.yaml`),
      (e: unknown) => e instanceof ConfigError && /file not found: .*nope\.yaml/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/bad.yaml`, "extends: [a]\n");
    await assert.rejects(
      () => loadYamlFile(`${dir}/bad.yaml`),
      (e: unknown) => e instanceof ConfigError && e.key === "extends",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
