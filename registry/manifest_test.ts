import assert from "node:assert/strict";
import { digestOfBytes } from "../storage/digest.ts";
import {
  acceptedMediaTypes,
  classifyManifest,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_MANIFEST_SCHEMA1_SIGNED,
  etagMatches,
  ManifestError,
  negotiationFailure,
  OCI_INDEX,
  OCI_MANIFEST,
  parseManifest,
  readManifestBytes,
} from "./manifest.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const d1 = await digestOfBytes(enc("one"));
const d2 = await digestOfBytes(enc("two"));
const desc = (d: typeof d1, mediaType = "x") => ({ mediaType, digest: `${d}`, size: 3 });

Deno.test("parseManifest: image manifests list config then layers", () => {
  const m = parseManifest(enc({
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: desc(d1),
    layers: [desc(d2)],
  }));
  assert.equal(m.mediaType, DOCKER_MANIFEST);
  assert.equal(m.kind, "image");
  assert.deepEqual(m.references.map(String), [`${d1}`, `${d2}`]);
});

Deno.test("parseManifest: lists and indexes list their sub-manifests", () => {
  const list = parseManifest(enc({
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST_LIST,
    manifests: [desc(d1, DOCKER_MANIFEST), desc(d2, DOCKER_MANIFEST)],
  }));
  assert.equal(list.kind, "index");
  assert.deepEqual(list.references.map(String), [`${d1}`, `${d2}`]);
});

Deno.test("parseManifest: without mediaType, Content-Type decides, else manifests → OCI index", () => {
  const index = { schemaVersion: 2, manifests: [desc(d1)] };
  const image = { schemaVersion: 2, config: desc(d1), layers: [] };
  assert.equal(parseManifest(enc(index)).mediaType, OCI_INDEX);
  assert.equal(parseManifest(enc(image)).mediaType, OCI_MANIFEST);
  assert.equal(
    parseManifest(enc(image), `${DOCKER_MANIFEST}; charset=utf-8`).mediaType,
    DOCKER_MANIFEST,
  );
  // A Content-Type that contradicts the body's mediaType is refused.
  assert.throws(
    () => parseManifest(enc({ ...image, mediaType: OCI_MANIFEST }), DOCKER_MANIFEST),
    ManifestError,
  );
});

Deno.test("parseManifest: malformed input is a ManifestError naming the problem", () => {
  const bad: [unknown, RegExp][] = [
    ["{", /not valid JSON/],
    [[], /JSON object/],
    [{ schemaVersion: 1 }, /schemaVersion/],
    [{ schemaVersion: 2, mediaType: "text/plain" }, /unsupported manifest media type/],
    [{ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }, /config/],
    [{ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(d1) }, /layers: must be a list/],
    [{ schemaVersion: 2, config: { digest: "sha256:12", size: 1 }, layers: [] }, /config\.digest/],
    [{ schemaVersion: 2, config: { digest: `${d1}`, size: -1 }, layers: [] }, /config\.size/],
    [{ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [1] }, /manifests\[0\]/],
  ];
  for (const [doc, message] of bad) {
    assert.throws(() => parseManifest(enc(doc as string)), (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("readManifestBytes enforces the size limit", async () => {
  const bytes = await readManifestBytes(ReadableStream.from([enc("ab"), enc("cd")]));
  assert.equal(new TextDecoder().decode(bytes), "abcd");
  await assert.rejects(readManifestBytes(ReadableStream.from([enc("abcdef")]), 5), ManifestError);
});

Deno.test("classifyManifest reads schema version and media type like distribution", () => {
  assert.deepEqual(classifyManifest(enc({ schemaVersion: 2, mediaType: DOCKER_MANIFEST })), {
    kind: "schema2",
    mediaType: DOCKER_MANIFEST,
  });
  assert.equal(
    classifyManifest(enc({ schemaVersion: 2, mediaType: DOCKER_MANIFEST_LIST })).kind,
    "list",
  );
  assert.equal(
    classifyManifest(enc({ schemaVersion: 2, mediaType: OCI_MANIFEST })).kind,
    "oci",
  );
  // Without a mediaType: an index when it lists manifests, else an image manifest.
  assert.deepEqual(classifyManifest(enc({ schemaVersion: 2, manifests: [] })), {
    kind: "oci-index",
    mediaType: OCI_INDEX,
  });
  assert.deepEqual(classifyManifest(enc({ schemaVersion: 2, layers: [] })), {
    kind: "oci",
    mediaType: OCI_MANIFEST,
  });
  assert.deepEqual(classifyManifest(enc({ schemaVersion: 1, signatures: [] })), {
    kind: "schema1",
    mediaType: DOCKER_MANIFEST_SCHEMA1_SIGNED,
  });
  assert.throws(
    () => classifyManifest(enc({ schemaVersion: 2, mediaType: "x/y" })),
    ManifestError,
  );
  assert.throws(() => classifyManifest(enc({ schemaVersion: 3 })), ManifestError);
  assert.throws(() => classifyManifest(enc("{")), ManifestError);
  assert.throws(() => classifyManifest(enc([1])), ManifestError);
});

Deno.test("Accept parsing and OCI negotiation", () => {
  const headers = new Headers();
  headers.append(
    "accept",
    `${DOCKER_MANIFEST}; q=1, APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON`,
  );
  headers.append("accept", DOCKER_MANIFEST_LIST);
  const accepted = acceptedMediaTypes(headers);
  assert.deepEqual(
    [...accepted].sort(),
    [DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_MANIFEST].sort(),
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

Deno.test("parseManifest: subject, artifactType, annotations and urls; subject is no reference", async () => {
  const d = await digestOfBytes(new TextEncoder().encode("x"));
  const desc = { mediaType: OCI_MANIFEST, digest: d.toString(), size: 1 };
  const m = parseManifest(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/spdx+json",
    config: desc,
    layers: [{ ...desc, urls: ["https://example.com/layer"] }],
    subject: desc,
    annotations: { k: "v" },
  })));
  assert.ok(m.subject?.digest.equals(d));
  assert.equal(m.artifactType, "application/spdx+json");
  assert.deepEqual(m.annotations, { k: "v" });
  assert.deepEqual(m.layers[0].urls, ["https://example.com/layer"]);
  assert.equal(m.references.length, 2);
  for (const bad of [{ subject: "x" }, { layers: [{ ...desc, urls: "https://x" }] }]) {
    assert.throws(
      () =>
        parseManifest(new TextEncoder().encode(JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: desc,
          layers: [],
          ...bad,
        }))),
      ManifestError,
    );
  }
});
