import assert from "node:assert/strict";
import { parse } from "yaml";
import { ConfigError } from "../../common/config.ts";
import { backendAuthSchema, backendManagerFromConfig, parseBackendsConfig } from "./config.ts";
import { S3Backend } from "./s3.ts";
import { FileBackend } from "./fs.ts";
import { HttpBackend } from "./http.ts";
import { RegistryBlobBackend, RegistryTagBackend } from "./registry.ts";
import { TestfsBackend } from "./testfs.ts";

Deno.test("backends config: YAML in upstream's shape builds the mapping", () => {
  const doc = parse(`
backends:
  - namespace: "^library/.*"
    backend:
      testfs:
        addr: 127.0.0.1:14000
        root: tags
        name_path: docker_tag
  - namespace: .*
    backend:
      file:
        root: data/backend
`);
  const manager = backendManagerFromConfig(doc.backends, { baseDir: "/srv/kraken" });
  const lib = manager.getClient("library/ubuntu:latest");
  assert.ok(lib instanceof TestfsBackend);
  assert.equal(lib.bucket, "127.0.0.1:14000/tags");
  const other = manager.getClient("TODO");
  assert.ok(other instanceof FileBackend);
  assert.equal(other.bucket, "/srv/kraken/data/backend");
  assert.equal(manager.getClient("__noop__").type, "noop");
});

Deno.test("backends config: the injected fetch reaches HTTP backends", async () => {
  const seen: string[] = [];
  const fetchSpy: typeof fetch = (input) => {
    seen.push(String(input));
    return Promise.resolve(new Response(null, { status: 404 }));
  };
  const [entry] = parseBackendsConfig(
    [{ namespace: ".*", backend: { testfs: { addr: "h:1", root: "blobs" } } }],
    { fetch: fetchSpy },
  );
  assert.equal(await entry.backend.stat("ns", "abcd"), null);
  assert.deepEqual(seen, ["http://h:1/files/blobs/abcd"]);
});

Deno.test("backends config: missing or empty block means no backends", () => {
  assert.deepEqual(parseBackendsConfig(undefined), []);
  assert.deepEqual(parseBackendsConfig(null), []);
  assert.deepEqual(parseBackendsConfig([]), []);
});

Deno.test("backends config: errors name the offending key", () => {
  const cases: [unknown, string][] = [
    [{ namespace: ".*" }, "backends"],
    [[1], "backends[0]"],
    [[{ backend: { file: { root: "x" } } }], "backends[0].namespace"],
    [[{ namespace: "(", backend: { file: { root: "x" } } }], "backends[0].namespace"],
    [[{ namespace: ".*" }], "backends[0].backend"],
    [[{ namespace: ".*", backend: {} }], "backends[0].backend"],
    [
      [{ namespace: ".*", backend: { file: { root: "a" }, testfs: { addr: "h:1" } } }],
      "backends[0].backend",
    ],
    [[{ namespace: ".*", backend: { hdfs: {} } }], "backends[0].backend.hdfs"],
    [[{ namespace: ".*", backend: { s3: {} } }], "backends[0].backend.s3.region"],
    [[{ namespace: ".*", backend: { file: "x" } }], "backends[0].backend.file"],
    [[{ namespace: ".*", backend: { file: {} } }], "backends[0].backend.file.root"],
    [[{ namespace: ".*", backend: { file: { root: 3 } } }], "backends[0].backend.file.root"],
    [[{ namespace: ".*", backend: { testfs: { root: "x" } } }], "backends[0].backend.testfs.addr"],
    [
      [{ namespace: ".*", backend: { testfs: { addr: "no-port" } } }],
      "backends[0].backend.testfs.addr",
    ],
    [
      [{ namespace: ".*", backend: { testfs: { addr: "h:1", name_path: "flat" } } }],
      "backends[0].backend.testfs.name_path",
    ],
    [
      [{ namespace: ".*", backend: { testfs: { addr: "h:1", bucket: "b" } } }],
      "backends[0].backend.testfs.bucket",
    ],
    [
      [{ namespace: ".*", backend: { file: { root: "r" } }, bandwidth: {} }],
      "backends[0].bandwidth",
    ],
    [
      [{ namespace: ".*", backend: { testfs: { addr: "h:1", idle_timeout: "soon" } } }],
      "backends[0].backend.testfs.idle_timeout",
    ],
    [
      [{ namespace: ".*", backend: { testfs: { addr: "h:1", idle_timeout: "0s" } } }],
      "backends[0].backend.testfs.idle_timeout",
    ],
  ];
  for (const [raw, key] of cases) {
    assert.throws(
      () => parseBackendsConfig(raw),
      (err) => err instanceof ConfigError && err.key === key && err.message.startsWith(`${key}: `),
      `${JSON.stringify(raw)} should fail on ${key}`,
    );
  }
  assert.throws(
    () => parseBackendsConfig(3, { key: "origin.backends" }),
    /^ConfigError: origin\.backends: must be a list/,
  );
});

Deno.test("backends config: registry_blob, registry_tag and http in upstream's keys", () => {
  const doc = parse(`
backends:
  - namespace: "^team/.*"
    backend:
      registry_blob:
        address: registry.example:5000
        timeout: 30s
        security:
          tls: { client: { disabled: true } }
          basic: { username: kraken, password: secret }
  - namespace: ".*:.*"
    backend:
      registry_tag:
        address: registry.example:5000
        security: { enableHTTPFallback: true }
  - namespace: .*
    backend:
      http:
        download_url: http://cdn.example/blobs/%s
        download_timeout: 10s
`);
  const [blob, tag, http] = parseBackendsConfig(doc.backends).map((e) => e.backend);
  assert.ok(blob instanceof RegistryBlobBackend);
  assert.equal(blob.bucket, "registry.example:5000");
  assert.ok(tag instanceof RegistryTagBackend);
  assert.ok(http instanceof HttpBackend);
  assert.equal(http.bucket, "cdn.example");
  const bad: [unknown, string][] = [
    [{ registry_blob: {} }, "backends[0].backend.registry_blob.address"],
    [{ registry_blob: { address: "http://x" } }, "backends[0].backend.registry_blob.address"],
    [
      { registry_tag: { address: "x", security: { basic: { user: "u" } } } },
      "backends[0].backend.registry_tag.security.basic.user",
    ],
    [{ http: {} }, "backends[0].backend.http.download_url"],
    [{ http: { download_url: "http://x/blobs" } }, "backends[0].backend.http.download_url"],
  ];
  for (const [backend, key] of bad) {
    assert.throws(
      () => parseBackendsConfig([{ namespace: ".*", backend }]),
      (err) => err instanceof ConfigError && err.key === key,
      `${JSON.stringify(backend)} should fail on ${key}`,
    );
  }
});

Deno.test("backends config: s3 in upstream's keys, credentials from the auth block by username", () => {
  const doc = parse(`
backends:
  - namespace: s3-images/.*
    backend:
      s3:
        region: us-west-1
        bucket: test-bucket
        root_directory: /kraken/default/
        name_path: sharded_docker_blob
        username: kraken-user
        endpoint: http://127.0.0.1:9000
        force_path_style: true
        upload_part_size: 16MB
        upload_concurrency: 4
        download_part_size: 67108864
        buffer_guard: 10MB
auth:
  s3:
    kraken-user:
      s3:
        aws: kraken-user
        aws_access_key_id: AKIAEXAMPLE
        aws_secret_access_key: secret-never-shown
`);
  const [entry] = parseBackendsConfig(doc.backends, {
    auth: backendAuthSchema.parse(doc.auth, "auth"),
  });
  assert.ok(entry.backend instanceof S3Backend);
  assert.equal(entry.backend.bucket, "test-bucket");
  const hex = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
  assert.equal(
    entry.backend.objectKey(hex),
    `kraken/default/docker/registry/v2/blobs/sha256/3e/${hex}/data`,
  );
  // No credentials anywhere: a ConfigError naming the entry, without secrets.
  assert.throws(
    () =>
      parseBackendsConfig([{
        namespace: ".*",
        backend: {
          s3: {
            region: "r",
            bucket: "bucket",
            username: "nobody",
            credentials_file: "/nonexistent/creds",
          },
        },
      }]),
    (e: Error) =>
      e instanceof ConfigError &&
      /^backends\[0\]\.backend\.s3: .*cannot read credentials file/.test(e.message),
  );
  assert.throws(
    () =>
      parseBackendsConfig([{
        namespace: ".*",
        backend: {
          s3: { region: "r", bucket: "bucket", root_directory: "x/", credentials_file: "/c" },
        },
      }]),
    /backends\[0\]\.backend\.s3\.root_directory: must be an absolute path/,
  );
  assert.throws(
    () =>
      parseBackendsConfig([{
        namespace: ".*",
        backend: { s3: { region: "r", bucket: "bucket", upload_part_size: "1MB" } },
      }]),
    /upload_part_size: must be at least 5MB/,
  );
});
