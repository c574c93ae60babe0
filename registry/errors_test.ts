import assert from "node:assert/strict";
import {
  parseReference,
  parseRegistryDigest,
  RegistryError,
  registryErrorResponse,
  validateRepoName,
  validateTagName,
} from "./errors.ts";

const HEX = "a".repeat(64);

Deno.test("registry errors: JSON body with code, message and detail; HEAD has none", async () => {
  const res = registryErrorResponse(
    new RegistryError("BLOB_UNKNOWN", "blob unknown", { digest: "d" }),
  );
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  assert.deepEqual(await res.json(), {
    errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown", detail: { digest: "d" } }],
  });
  const head = registryErrorResponse(new RegistryError("MANIFEST_BLOB_UNKNOWN", "x"), "HEAD");
  assert.equal(head.status, 400);
  assert.equal(head.body, null);
  const other = registryErrorResponse(new Error("boom"));
  assert.equal(other.status, 500);
  assert.deepEqual((await other.json()).errors[0], {
    code: "UNKNOWN",
    message: "unknown error",
    detail: "boom",
  });
  assert.equal(registryErrorResponse(new RegistryError("DENIED", "denied")).status, 403);
});

Deno.test("registry names: distribution's grammar, no traversal, no uppercase", () => {
  for (const ok of ["a", "library/ubuntu", "a.b_c__d--e/f-g", "x/y/z", "0"]) {
    assert.equal(validateRepoName(ok), ok);
  }
  for (
    const bad of [
      "",
      "..",
      "../x",
      "a/../b",
      "a//b",
      "/a",
      "a/",
      "Upper",
      "a_",
      "-a",
      "a b",
      "a:b",
      "x".repeat(256),
    ]
  ) {
    assert.throws(
      () => validateRepoName(bad),
      (e: unknown) => e instanceof RegistryError && e.code === "NAME_INVALID",
      bad,
    );
  }
});

Deno.test("registry tags and references", () => {
  assert.equal(validateTagName("v1.0_rc-1"), "v1.0_rc-1");
  for (const bad of ["", ".x", "-x", "a/b", "..", "a:b", "x".repeat(129)]) {
    assert.throws(
      () => validateTagName(bad),
      (e: unknown) => e instanceof RegistryError && e.code === "TAG_INVALID",
      bad,
    );
  }
  assert.deepEqual(parseReference("latest"), { tag: "latest" });
  assert.equal(parseReference(`sha256:${HEX}`).digest?.hex, HEX);
  for (const bad of ["sha256:xyz", "md5:abc", `sha512:${HEX}`]) {
    assert.throws(
      () => parseReference(bad),
      (e: unknown) => e instanceof RegistryError && e.code === "DIGEST_INVALID",
    );
  }
  assert.throws(
    () => parseRegistryDigest(null),
    (e: unknown) => e instanceof RegistryError && e.code === "DIGEST_INVALID",
  );
});
