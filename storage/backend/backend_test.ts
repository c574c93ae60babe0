import assert from "node:assert/strict";
import {
  type Backend,
  BackendManager,
  bytesSource,
  isUploadSource,
  NoBackendError,
  noopBackend,
  paginate,
  readinessProbeName,
  resolveRange,
} from "./backend.ts";

function fake(type: string): Backend {
  return { ...noopBackend, type };
}

Deno.test("BackendManager: first unanchored match wins", () => {
  const lib = fake("lib");
  const all = fake("all");
  const manager = new BackendManager([
    { namespace: "library/.*", backend: lib },
    { namespace: /.*/g, backend: all },
  ]);
  assert.equal(manager.getClient("library/ubuntu"), lib);
  // Unanchored: the pattern may match in the middle of the namespace.
  assert.equal(manager.getClient("mirror/library/ubuntu"), lib);
  assert.equal(manager.getClient("TODO"), all);
  // A global flag must not make matching alternate between calls.
  assert.equal(manager.getClient("TODO"), all);
  assert.deepEqual(manager.backends.map((b) => b.type), ["lib", "all"]);
});

Deno.test("BackendManager: no match is a NoBackendError, __noop__ always resolves", () => {
  const manager = new BackendManager([{ namespace: "^only$", backend: fake("x") }]);
  assert.throws(
    () => manager.getClient("other"),
    (err) => err instanceof NoBackendError && err.message === "no matches for namespace other",
  );
  assert.equal(manager.getClient("__noop__"), noopBackend);
  assert.equal(new BackendManager([]).getClient("__noop__").type, "noop");
  assert.equal(manager.find("other"), undefined, "find: no match is undefined");
  assert.equal(manager.find("only")?.type, "x");
  assert.equal(manager.find("__noop__"), noopBackend);
});

Deno.test("noop backend: uploads succeed and drain, nothing is found", async () => {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulled++ < 3) c.enqueue(new Uint8Array(4));
      else c.close();
    },
  });
  await noopBackend.upload("ns", "n", body);
  assert.equal(pulled, 4);
  await noopBackend.upload("ns", "n", new Uint8Array(1));
  assert.equal(await noopBackend.stat("ns", "n"), null);
  assert.equal(await noopBackend.download("ns", "n"), null);
  assert.deepEqual(await noopBackend.list(""), { names: [], continuationToken: "" });
});

Deno.test("paginate: pages after the token, an empty token at the end", () => {
  const names = ["a", "b", "c", "d", "e"];
  assert.deepEqual(paginate(names), { names, continuationToken: "" });
  assert.deepEqual(paginate(names, { maxKeys: 2 }), { names: ["a", "b"], continuationToken: "b" });
  assert.deepEqual(paginate(names, { maxKeys: 2, continuationToken: "d" }), {
    names: ["e"],
    continuationToken: "",
  });
  assert.throws(() => paginate(names, { maxKeys: 0 }), RangeError);
});

Deno.test("resolveRange and bytesSource", async () => {
  assert.deepEqual(resolveRange({}, 10), [0, 10]);
  assert.deepEqual(resolveRange({ offset: 4, length: 6 }, 10), [4, 10]);
  assert.throws(() => resolveRange({ offset: 4, length: 7 }, 10), RangeError);
  assert.throws(() => resolveRange({ offset: 11 }, 10), RangeError);
  const source = bytesSource(new TextEncoder().encode("hello world"));
  assert.equal(source.size, 11);
  assert.equal(await new Response(await source.open(6)).text(), "world");
  assert.equal(await new Response(await source.open(0, 5)).text(), "hello");
  assert.ok(isUploadSource(source));
  assert.ok(!isUploadSource(new Uint8Array(1)));
  assert.match(readinessProbeName(), /^kraken-readiness:[0-9a-f]{32}$/);
});
