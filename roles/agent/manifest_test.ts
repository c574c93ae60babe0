import assert from "node:assert/strict";
import {
  acceptedMediaTypes,
  classifyManifest,
  etagMatches,
  ManifestError,
  MEDIA_TYPE_LIST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_SCHEMA1_SIGNED,
  MEDIA_TYPE_SCHEMA2,
  negotiationFailure,
} from "./manifest.ts";

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

Deno.test("classifyManifest reads schema version and media type like distribution", () => {
  assert.deepEqual(classifyManifest(json({ schemaVersion: 2, mediaType: MEDIA_TYPE_SCHEMA2 })), {
    kind: "schema2",
    mediaType: MEDIA_TYPE_SCHEMA2,
  });
  assert.equal(
    classifyManifest(json({ schemaVersion: 2, mediaType: MEDIA_TYPE_LIST })).kind,
    "list",
  );
  assert.equal(
    classifyManifest(json({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST })).kind,
    "oci",
  );
  // Without a mediaType: an index when it lists manifests, else an image manifest.
  assert.deepEqual(classifyManifest(json({ schemaVersion: 2, manifests: [] })), {
    kind: "oci-index",
    mediaType: MEDIA_TYPE_OCI_INDEX,
  });
  assert.deepEqual(classifyManifest(json({ schemaVersion: 2, layers: [] })), {
    kind: "oci",
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
  });
  assert.deepEqual(classifyManifest(json({ schemaVersion: 1, signatures: [] })), {
    kind: "schema1",
    mediaType: MEDIA_TYPE_SCHEMA1_SIGNED,
  });
  assert.throws(
    () => classifyManifest(json({ schemaVersion: 2, mediaType: "x/y" })),
    ManifestError,
  );
  assert.throws(() => classifyManifest(json({ schemaVersion: 3 })), ManifestError);
  assert.throws(() => classifyManifest(new TextEncoder().encode("{")), ManifestError);
  assert.throws(() => classifyManifest(json([1])), ManifestError);
});

Deno.test("Accept parsing and OCI negotiation", () => {
  const headers = new Headers();
  headers.append(
    "accept",
    `${MEDIA_TYPE_SCHEMA2}; q=1, APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON`,
  );
  headers.append("accept", MEDIA_TYPE_LIST);
  const accepted = acceptedMediaTypes(headers);
  assert.deepEqual(
    [...accepted].sort(),
    [MEDIA_TYPE_LIST, MEDIA_TYPE_SCHEMA2, MEDIA_TYPE_OCI_MANIFEST].sort(),
  );
  assert.equal(negotiationFailure("oci", accepted), undefined);
  assert.match(negotiationFailure("oci-index", accepted)!, /OCI index/);
  assert.match(negotiationFailure("oci", new Set()) ?? "", /OCI manifest/);
  // Docker types are never refused (distribution would rewrite them to schema 1 instead).
  assert.equal(negotiationFailure("schema2", new Set()), undefined);
  assert.equal(negotiationFailure("list", new Set()), undefined);
});

Deno.test("etagMatches takes the digest quoted or bare, among several values", () => {
  const d = "sha256:" + "ab".repeat(32);
  assert.ok(etagMatches(new Headers({ "if-none-match": `"${d}"` }), d));
  assert.ok(etagMatches(new Headers({ "if-none-match": d }), d));
  assert.ok(etagMatches(new Headers({ "if-none-match": `"x", "${d}"` }), d));
  assert.ok(!etagMatches(new Headers({ "if-none-match": `"sha256:${"cd".repeat(32)}"` }), d));
  assert.ok(!etagMatches(new Headers(), d));
});
