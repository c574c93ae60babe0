import assert from "node:assert/strict";
import { expand, route, templateParams } from "./route.ts";

Deno.test("a route names its span `{METHOD} {template}`", () => {
  const r = route("put", "/tags/{tag}/digest/{digest}");
  assert.equal(r.method, "PUT");
  assert.equal(r.spanName, "PUT /tags/{tag}/digest/{digest}");
  assert.deepEqual(templateParams("/list/{prefix+}/x/{a}"), ["prefix", "a"]);
});

Deno.test("expand inserts escaped values verbatim and refuses missing or unknown ones", () => {
  const r = route("GET", "/namespace/{namespace}/blobs/{digest}");
  assert.equal(
    expand(r, { namespace: "library%2Fubuntu", digest: "sha256:ab" }),
    "/namespace/library%2Fubuntu/blobs/sha256:ab",
  );
  assert.equal(expand(route("GET", "/list/{prefix+}"), { prefix: "a/b" }), "/list/a/b");
  assert.throws(() => expand(r, { namespace: "n" }), /digest missing/);
  assert.throws(() => expand(r, { namespace: "n", digest: "d", uid: "u" }), /no parameter uid/);
});
