import assert from "node:assert/strict";
import { startGcsTokenServer } from "../../tests/harness/gcs.ts";
import { GcsAuthError, GcsTokenSource, parseServiceAccountKey } from "./gcs_auth.ts";

Deno.test("gcs auth: parses a service-account key, naming what is missing", () => {
  const key = parseServiceAccountKey(
    JSON.stringify({ type: "service_account", client_email: "a@b", private_key: "k" }),
  );
  assert.equal(key.tokenUri, "https://oauth2.googleapis.com/token");
  assert.throws(() => parseServiceAccountKey("{"), /not JSON/);
  assert.throws(() => parseServiceAccountKey(JSON.stringify({ client_email: "a" })), /private_key/);
  assert.throws(
    () => parseServiceAccountKey(JSON.stringify({ type: "authorized_user", private_key: "x" })),
    /type "authorized_user"/,
  );
});

Deno.test("gcs auth: the JWT-bearer exchange is signed, scoped and cached", async () => {
  const endpoint = await startGcsTokenServer();
  try {
    let now = 1_000_000_000_000;
    const source = new GcsTokenSource({
      key: parseServiceAccountKey(endpoint.keyJson),
      now: () => now,
    });
    assert.equal(source.kind, "service_account");
    const [a, b] = await Promise.all([source.authorization(), source.authorization()]);
    assert.equal(a, "Bearer tok-1");
    assert.equal(b, "Bearer tok-1");
    assert.equal(source.exchanges, 1);
    const claims = endpoint.granted[0];
    assert.equal(claims.iss, "kraken@kraken-test.iam.gserviceaccount.com");
    assert.equal(claims.aud, endpoint.tokenUri);
    assert.equal(claims.scope, "https://www.googleapis.com/auth/devstorage.read_write");
    assert.equal(claims.exp, Number(claims.iat) + 3600);
    assert.deepEqual(claims.header, { alg: "RS256", typ: "JWT", kid: "kraken-test-key" });
    // Renewed a minute before it expires.
    now += 3600_000 - 59_000;
    assert.equal(await source.authorization(), "Bearer tok-2");
    assert.ok(source.secrets().includes("tok-2"));
  } finally {
    await endpoint.close();
  }
});

Deno.test("gcs auth: a refused key fails with the token server's message, no secrets", async () => {
  const endpoint = await startGcsTokenServer();
  const other = await startGcsTokenServer();
  try {
    // Other's key, endpoint's token_uri: the signature does not verify.
    const key = { ...parseServiceAccountKey(other.keyJson), tokenUri: endpoint.tokenUri };
    const source = new GcsTokenSource({ key });
    await assert.rejects(
      () => source.authorization(),
      (e: Error) =>
        e instanceof GcsAuthError &&
        /status 400: invalid_grant: Invalid JWT Signature/.test(e.message) &&
        !e.message.includes("PRIVATE KEY"),
    );
    const broken = new GcsTokenSource({ key: { ...key, privateKey: "garbage" } });
    await assert.rejects(() => broken.authorization(), /service-account key: no PEM block/);
  } finally {
    await endpoint.close();
    await other.close();
  }
});

Deno.test("gcs auth: an explicit token, or none", async () => {
  assert.equal(await new GcsTokenSource({ token: "t0" }).authorization(), "Bearer t0");
  assert.equal(await new GcsTokenSource().authorization(), undefined);
  assert.throws(
    () =>
      new GcsTokenSource({
        token: "t",
        key: parseServiceAccountKey('{"client_email":"a","private_key":"b"}'),
      }),
    /not both/,
  );
});
