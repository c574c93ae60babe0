import assert from "node:assert/strict";
import { bytesSource } from "./backend.ts";
import { checkRelativePath, FileBackend, InvalidPathError, TEMP_DIR } from "./fs.ts";
import { withTempDir } from "../../tests/harness/fs.ts";

const enc = new TextEncoder();
const HEX = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

const withDir = (fn: (dir: string) => Promise<void>) =>
  withTempDir(fn, { prefix: "kraken-fs-test-" });

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  assert.ok(stream);
  return await new Response(stream).text();
}

Deno.test("checkRelativePath: rejects escapes and malformed paths", () => {
  assert.equal(checkRelativePath("a/b/c"), "a/b/c");
  assert.equal(checkRelativePath("", true), "");
  for (
    const bad of [
      "",
      "/etc/passwd",
      "../x",
      "a/../../x",
      "a/./b",
      "a//b",
      "a/",
      "a\0b",
      "..",
      `${TEMP_DIR}/x`,
    ]
  ) {
    assert.throws(() => checkRelativePath(bad), InvalidPathError, JSON.stringify(bad));
  }
});

Deno.test("FileBackend: upload, stat, download, overwrite", () =>
  withDir(async (dir) => {
    const backend = new FileBackend({ root: dir });
    assert.equal(backend.type, "file");
    assert.equal(await backend.stat("ns", HEX), null);
    assert.equal(await backend.download("ns", HEX), null);

    await backend.upload("ns", HEX, enc.encode("hello"));
    assert.deepEqual(await backend.stat("ns", HEX), { size: 5 });
    assert.equal(await readAll(await backend.download("ns", HEX)), "hello");
    assert.equal(await Deno.readTextFile(`${dir}/${HEX}`), "hello");

    await backend.upload("ns", HEX, new Blob(["bye", " now"]).stream());
    assert.equal(await readAll(await backend.download("other-ns", HEX)), "bye now");
    // No temporary files are left behind.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/${TEMP_DIR}`)), []);
  }));

Deno.test("FileBackend: a failing body stream leaves neither the object nor a temp file", () =>
  withDir(async (dir) => {
    const backend = new FileBackend({ root: dir });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("partial"));
        c.error(new Error("client went away"));
      },
    });
    await assert.rejects(backend.upload("ns", HEX, body), /client went away/);
    assert.equal(await backend.stat("ns", HEX), null);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/${TEMP_DIR}`)), []);
  }));

Deno.test("FileBackend: hostile names never touch the disk outside root", () =>
  withDir(async (dir) => {
    const backend = new FileBackend({ root: `${dir}/root` });
    for (const name of ["../escape", "/etc/passwd", "a/../../escape", "x\0y", `${TEMP_DIR}/z`]) {
      await assert.rejects(backend.upload("ns", name, enc.encode("x")), InvalidPathError, name);
      await assert.rejects(backend.stat("ns", name), InvalidPathError, name);
      await assert.rejects(backend.download("ns", name), InvalidPathError, name);
    }
    await assert.rejects(backend.list("../"), InvalidPathError);
    const stream = new Blob(["x"]).stream();
    await assert.rejects(backend.upload("ns", "../s", stream), InvalidPathError);
    // The rejected upload cancelled the body instead of leaving it open.
    assert.equal((await stream.getReader().read()).done, true);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  }));

Deno.test("FileBackend: directories are not objects", () =>
  withDir(async (dir) => {
    const backend = new FileBackend({ root: dir });
    await backend.upload("ns", "a/b", enc.encode("x"));
    assert.equal(await backend.stat("ns", "a"), null);
    assert.equal(await backend.download("ns", "a"), null);
    assert.equal(await backend.stat("ns", "a/b/c"), null);
  }));

Deno.test("FileBackend: list walks the layout and maps paths back to names", () =>
  withDir(async (dir) => {
    const tags = new FileBackend({ root: dir, namePath: "docker_tag" });
    const digest = enc.encode(`sha256:${HEX}`);
    for (const t of ["library/ubuntu:latest", "library/ubuntu:22.04", "library/alpine:3", "x:1"]) {
      await tags.upload(t, t, digest);
    }
    await Deno.writeTextFile(
      `${dir}/docker/registry/v2/repositories/library/ubuntu/stray-file`,
      "not a tag",
    );
    assert.deepEqual((await tags.list("library/ubuntu")).names, [
      "library/ubuntu:22.04",
      "library/ubuntu:latest",
    ]);
    assert.deepEqual((await tags.list("")).names.length, 4);
    assert.deepEqual((await tags.list("missing/repo")).names, []);
    assert.equal(await readAll(await tags.download("", "x:1")), `sha256:${HEX}`);
    assert.ok(
      (await Deno.stat(
        `${dir}/docker/registry/v2/repositories/x/_manifests/tags/1/current/link`,
      )).isFile,
    );

    const blobs = new FileBackend({ root: `${dir}/b`, namePath: "sharded_docker_blob" });
    await blobs.upload("ns", HEX, enc.encode("blob"));
    assert.deepEqual((await blobs.list("")).names, [HEX]);
    assert.deepEqual(await blobs.stat("ns", HEX), { size: 4 });
  }));

Deno.test("FileBackend: ranged downloads, paginated lists, upload sources, readiness", () =>
  withDir(async (dir) => {
    const backend = new FileBackend({ root: `${dir}/root` });
    await backend.ready(); // the root does not exist yet: it is created on the first write
    await backend.upload("ns", HEX, bytesSource(enc.encode("0123456789")));
    assert.equal(
      await readAll(await backend.download("ns", HEX, { offset: 3, length: 4 })),
      "3456",
    );
    assert.equal(await readAll(await backend.download("ns", HEX, { offset: 7 })), "789");
    assert.equal(await readAll(await backend.download("ns", HEX, { offset: 10 })), "");
    await assert.rejects(backend.download("ns", HEX, { offset: 8, length: 3 }), RangeError);
    for (const name of ["a1", "a2", "a3", "b1"]) await backend.upload("ns", name, enc.encode(name));
    const first = await backend.list("", { maxKeys: 2 });
    assert.deepEqual(first.names, ["a1", "a2"]);
    const second = await backend.list("", {
      maxKeys: 2,
      continuationToken: first.continuationToken,
    });
    assert.deepEqual(second.names, ["a3", "b1"]);
    const third = await backend.list("", {
      maxKeys: 2,
      continuationToken: second.continuationToken,
    });
    assert.deepEqual(third, { names: [HEX], continuationToken: "" });
    assert.deepEqual((await backend.list("")).names, ["a1", "a2", "a3", "b1", HEX]);
    await Deno.writeTextFile(`${dir}/plain`, "x");
    await assert.rejects(new FileBackend({ root: `${dir}/plain` }).ready(), /not a directory/);
  }));
