import assert from "node:assert/strict";
import { closeQuietly } from "./close.ts";

Deno.test("closeQuietly closes once and ignores a second close", async () => {
  const path = await Deno.makeTempFile();
  try {
    const file = await Deno.open(path, { read: true });
    closeQuietly(file);
    assert.throws(() => file.close(), Deno.errors.BadResource, "the first call closed it");
    closeQuietly(file);
  } finally {
    await Deno.remove(path);
  }
});
