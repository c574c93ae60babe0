import assert from "node:assert/strict";
import { parse } from "yaml";
import { ConfigError } from "../../common/config.ts";
import { backendManagerFromConfig, parseBackendsConfig } from "./config.ts";
import { FileBackend } from "./fs.ts";
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
    [[{ namespace: ".*", backend: { s3: {} } }], "backends[0].backend.s3"],
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
