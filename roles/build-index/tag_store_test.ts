import assert from "node:assert/strict";
import { digestOfBytes } from "../../storage/digest.ts";
import { InvalidTagError, TagStore, validateTag } from "./tag_store.ts";

Deno.test("tag store: put, overwrite and get; temp files of a crash are removed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/tags`);
    await Deno.writeTextFile(`${dir}/tags/.tmp-leftover`, "half");
    const store = await TagStore.open({ root: `${dir}/tags` });
    const a = await digestOfBytes(new TextEncoder().encode("a"));
    const b = await digestOfBytes(new TextEncoder().encode("b"));
    assert.equal(await store.get("library/x:1"), null);
    await store.put("library/x:1", a);
    await store.put("library/x:1", b);
    assert.equal((await store.get("library/x:1"))?.toString(), b.toString());
    const names = [];
    for await (const e of Deno.readDir(`${dir}/tags`)) names.push(e.name);
    assert.deepEqual(names, ["library%2Fx%3A1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tag store: hostile tags are refused before touching the disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await TagStore.open({ root: `${dir}/tags` });
    const d = await digestOfBytes(new TextEncoder().encode("a"));
    for (
      const tag of [
        "",
        "../x:1",
        "a/../../b:1",
        "a//b:1",
        "/abs:1",
        "a\0b:1",
        "a\nb",
        "x".repeat(300),
      ]
    ) {
      await assert.rejects(store.put(tag, d), InvalidTagError, JSON.stringify(tag));
      assert.throws(() => validateTag(tag), InvalidTagError);
    }
    assert.equal(validateTag("library/ubuntu:18.04"), "library/ubuntu:18.04");
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["tags"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
