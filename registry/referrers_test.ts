import assert from "node:assert/strict";
import { digestOfBytes } from "../storage/digest.ts";
import { RegistryError } from "./errors.ts";
import { OCI_INDEX, OCI_MANIFEST } from "./manifest.ts";
import {
  artifactTypeFilter,
  parseReferrerRecord,
  referrerDescriptor,
  referrerRecordTag,
  referrersListPrefix,
} from "./referrers.ts";

const enc = new TextEncoder();

Deno.test("referrer records: tag name, listing prefix and back", async () => {
  const subject = await digestOfBytes(enc.encode("subject"));
  const referrer = await digestOfBytes(enc.encode("referrer"));
  const tag = referrerRecordTag(subject, referrer);
  assert.equal(tag, `_oci/referrers/sha256-${subject.hex}/sha256-${referrer.hex}`);
  assert.equal(
    referrersListPrefix("library/app", subject),
    `library/app/_manifests/tags/_oci/referrers/sha256-${subject.hex}`,
  );
  const record = parseReferrerRecord(`library/app:${tag}`);
  assert.equal(record?.repo, "library/app");
  assert.ok(record?.subject.equals(subject));
  assert.ok(record?.referrer.equals(referrer));
  for (const name of ["library/app:v1", `library/app:_oci/referrers/sha256-${subject.hex}`, tag]) {
    assert.equal(parseReferrerRecord(name), null, name);
  }
});

Deno.test("referrerDescriptor: artifactType, config fallback, indexes, no subject", async () => {
  const d = await digestOfBytes(enc.encode("x"));
  const desc = { mediaType: OCI_MANIFEST, digest: d.toString(), size: 1 };
  const image = (extra: Record<string, unknown>) =>
    enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...desc, mediaType: "application/vnd.example.config" },
      layers: [],
      ...extra,
    }));
  assert.equal(
    referrerDescriptor(image({ subject: desc, artifactType: "application/a" }), d)?.artifactType,
    "application/a",
  );
  assert.equal(
    referrerDescriptor(image({ subject: desc }), d)?.artifactType,
    "application/vnd.example.config",
  );
  const index = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [],
    subject: desc,
    annotations: { a: "b" },
  }));
  assert.deepEqual(referrerDescriptor(index, d), {
    mediaType: OCI_INDEX,
    digest: d.toString(),
    size: index.length,
    annotations: { a: "b" },
  });
  assert.equal(referrerDescriptor(image({}), d), null, "no subject");
  assert.equal(referrerDescriptor(enc.encode("{"), d), null, "no manifest");
});

Deno.test("artifactTypeFilter: media types only", () => {
  const url = (q: string) => new URL(`http://r/v2/a/referrers/x?${q}`);
  assert.deepEqual(artifactTypeFilter(url("")), []);
  assert.deepEqual(artifactTypeFilter(url("artifactType=application/spdx%2Bjson")), [
    "application/spdx+json",
  ]);
  for (
    const bad of ["artifactType=", "artifactType=text", "artifactType=a/b/c", "artifactType=a/%20"]
  ) {
    assert.throws(() => artifactTypeFilter(url(bad)), (e: unknown) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.status, 400);
      assert.match(e.message, /invalid artifactType filter/);
      return true;
    }, bad);
  }
});
