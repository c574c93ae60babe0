import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { externalTest } from "../tests/harness/external.ts";
import { warmModuleCache } from "./module_cache.ts";

externalTest(
  "warmModuleCache: caches this checkout; a directory without main.ts is an error",
  async () => {
    await warmModuleCache(fileURLToPath(new URL("../", import.meta.url)));
    const empty = await Deno.makeTempDir();
    try {
      await assert.rejects(warmModuleCache(empty), /deno cache main\.ts in .+: .+/s);
    } finally {
      await Deno.remove(empty, { recursive: true });
    }
  },
);
