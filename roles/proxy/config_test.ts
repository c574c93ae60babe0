import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { parseProxyConfig } from "./config.ts";

const base = {
  storage: { root: "/var/proxy" },
  origin: { hosts: ["origin:15002"] },
  build_index: { hosts: ["bi:15004"] },
};

Deno.test("proxy config: defaults, flags and relative paths", () => {
  const c = parseProxyConfig(base);
  assert.deepEqual(c.listen, { host: "127.0.0.1", port: 15000 });
  assert.equal(c.storageRoot, "/var/proxy");
  assert.deepEqual(c.upload, { ttlMs: 3_600_000, pruneIntervalMs: 300_000 });
  const f = parseProxyConfig({ ...base, storage: { root: "p" } }, { port: "0" }, {
    configPath: "/etc/kraken/proxy.yaml",
  });
  assert.equal(f.listen.port, 0);
  assert.equal(f.storageRoot, "/etc/kraken/p");
});

Deno.test("proxy config: errors name the key", () => {
  const cases: [Record<string, unknown>, Record<string, string>, string][] = [
    [{ ...base, extra: true }, {}, "extra"],
    [{ ...base, storage: {} }, {}, "storage.root"],
    [{ ...base, build_index: {} }, {}, "build_index.hosts"],
    [{ ...base, origin: { hosts: ["x"] } }, {}, "origin.hosts[0]"],
    [{ ...base, upload: { ttl: "soon" } }, {}, "upload.ttl"],
    [{ ...base, upload: { prune_interval: 0 } }, {}, "upload.prune_interval"],
    [base, { port: "x" }, "--port"],
    [base, { role2: "x" }, "--role2"],
  ];
  for (const [raw, flags, key] of cases) {
    assert.throws(() => parseProxyConfig(raw, flags), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, key);
      return true;
    });
  }
});
