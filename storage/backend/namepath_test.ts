import assert from "node:assert/strict";
import { createNamePath } from "./namepath.ts";

const HEX = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

Deno.test("namepath identity: root/name and back", () => {
  const np = createNamePath("identity", "blobs/");
  assert.equal(np.basePath, "blobs");
  assert.equal(np.blobPath(HEX), `blobs/${HEX}`);
  assert.equal(np.nameFromBlobPath(`blobs/${HEX}`), HEX);
  assert.equal(np.nameFromBlobPath(`other/${HEX}`), null);
  assert.equal(np.nameFromBlobPath("blobsx/y"), null);
  assert.throws(() => np.blobPath(""), TypeError);

  const bare = createNamePath("identity");
  assert.equal(bare.blobPath("a/b"), "a/b");
  assert.equal(bare.nameFromBlobPath("a/b"), "a/b");
});

Deno.test("namepath sharded_docker_blob: registry blob layout and back", () => {
  const np = createNamePath("sharded_docker_blob", "root");
  const path = `root/docker/registry/v2/blobs/sha256/ca/${HEX}/data`;
  assert.equal(np.basePath, "root/docker/registry/v2/blobs");
  assert.equal(np.blobPath(HEX), path);
  assert.equal(np.nameFromBlobPath(path), HEX);
  assert.equal(np.nameFromBlobPath(`root/docker/registry/v2/blobs/sha256/ca/${HEX}/link`), null);
  assert.equal(np.nameFromBlobPath(`root/docker/registry/v2/blobs/sha256/${HEX}/data`), null);
  assert.throws(() => np.blobPath("ab"), /too short/);
  assert.equal(
    createNamePath("sharded_docker_blob").blobPath(HEX),
    `docker/registry/v2/blobs/sha256/ca/${HEX}/data`,
  );
});

Deno.test("namepath docker_tag: repo:tag layout and back", () => {
  const np = createNamePath("docker_tag", "tags");
  const path =
    "tags/docker/registry/v2/repositories/library/ubuntu/_manifests/tags/latest/current/link";
  assert.equal(np.basePath, "tags/docker/registry/v2/repositories");
  assert.equal(np.blobPath("library/ubuntu:latest"), path);
  assert.equal(np.nameFromBlobPath(path), "library/ubuntu:latest");
  assert.equal(
    np.nameFromBlobPath(
      "tags/docker/registry/v2/repositories/library/ubuntu/_layers/sha256/x/link",
    ),
    null,
  );
  assert.equal(
    np.nameFromBlobPath("elsewhere/library/ubuntu/_manifests/tags/a/current/link"),
    null,
  );
  assert.throws(() => np.blobPath("no-tag"), /repo:tag/);
  assert.throws(() => np.blobPath("a:b:c"), /repo:tag/);
  assert.throws(() => np.blobPath(":tag"), /repo must be non-empty/);
  assert.throws(() => np.blobPath("repo:"), /tag must be non-empty/);
});

Deno.test("namepath: unknown identifier is rejected", () => {
  assert.throws(() => createNamePath("s3_style"), /unknown name_path "s3_style"/);
  assert.throws(() => createNamePath(""), /unknown name_path ""/);
});
