import assert from "node:assert/strict";
import { ConfigError } from "../common/schema.ts";
import { tlsSchema } from "./tls_config.ts";

const parse = (raw: unknown) => tlsSchema.parse(raw, "tls", { baseDir: "/etc/kraken" });

Deno.test("tls config: absent is plaintext on both sides", () => {
  assert.deepEqual(parse(undefined), { server: undefined, client: undefined });
});

Deno.test("tls config: upstream's shape turns both sides on, paths resolved", () => {
  const config = parse({
    name: "kraken",
    cas: [{ path: "tls/ca.crt" }],
    server: {
      cert: { path: "tls/server.crt" },
      key: { path: "tls/server.key" },
      passphrase: { path: "tls/server.pass" },
    },
    client: { cert: { path: "/abs/client.crt" }, key: { path: "/abs/client.key" } },
  });
  assert.deepEqual(config.server, {
    cert: "/etc/kraken/tls/server.crt",
    key: "/etc/kraken/tls/server.key",
    passphrase: "/etc/kraken/tls/server.pass",
    cas: ["/etc/kraken/tls/ca.crt"],
    verifyLoopback: false,
  });
  assert.deepEqual(config.client, {
    name: "kraken",
    cas: ["/etc/kraken/tls/ca.crt"],
    identity: { cert: "/abs/client.crt", key: "/abs/client.key", passphrase: undefined },
  });
});

Deno.test("tls config: the older ca.cert.path joins cas; disabled switches a side off", () => {
  const config = parse({
    ca: { cert: { path: "/ca.crt" } },
    server: { disabled: true, cert: { path: "/s.crt" }, key: { path: "/s.key" } },
  });
  assert.equal(config.server, undefined);
  assert.deepEqual(config.client, { name: undefined, cas: ["/ca.crt"], identity: undefined });
  assert.equal(
    parse({ ca: { cert: { path: "/ca.crt" } }, client: { disabled: true } }).client,
    undefined,
  );
});

Deno.test("tls config: a certificate without its key is refused naming the key", () => {
  assert.throws(
    () => parse({ server: { cert: { path: "/s.crt" } } }),
    (e: unknown) =>
      e instanceof ConfigError && /tls\.server\.key\.path: is required/.test(e.message),
  );
  assert.throws(
    () => parse({ client: { key: { path: "/c.key" } } }),
    /tls\.client\.cert\.path: is required/,
  );
  assert.throws(
    () => parse({ server: { certificate: {} } }),
    /tls\.server\.certificate: unknown key/,
  );
});
