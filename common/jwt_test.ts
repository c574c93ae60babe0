import assert from "node:assert/strict";
import { base64url, importRsaPrivateKey, pemBytes, signJwtRs256 } from "./jwt.ts";

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function fromBase64url(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(
    atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)),
    (c) => c.charCodeAt(0),
  );
}

Deno.test("jwt: RS256 token verifies with the key's public half", async () => {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const pem = toPem(await crypto.subtle.exportKey("pkcs8", pair.privateKey), "PRIVATE KEY");
  const key = await importRsaPrivateKey(pem);
  const jwt = await signJwtRs256(key, { iss: "a", n: 1 }, { kid: "k1" });
  const [head, body, sig] = jwt.split(".");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(fromBase64url(head))), {
    alg: "RS256",
    typ: "JWT",
    kid: "k1",
  });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(fromBase64url(body))), { iss: "a", n: 1 });
  assert.ok(
    await crypto.subtle.verify(
      "RSASSA-PKCS1-v1_5",
      pair.publicKey,
      fromBase64url(sig),
      new TextEncoder().encode(`${head}.${body}`),
    ),
  );
});

Deno.test("jwt: base64url has no padding or +/", () => {
  assert.equal(base64url(new Uint8Array([0xfb, 0xff])), "-_8");
  assert.equal(base64url(new Uint8Array()), "");
});

Deno.test("jwt: a PEM without a private key, or a non-RSA one, is a TypeError", async () => {
  assert.throws(() => pemBytes("nothing", "PRIVATE KEY"), /no PEM block/);
  await assert.rejects(() => importRsaPrivateKey("nothing"), TypeError);
  const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
  ]);
  const pem = toPem(await crypto.subtle.exportKey("pkcs8", ec.privateKey), "PRIVATE KEY");
  await assert.rejects(() => importRsaPrivateKey(pem), /not a PKCS#8 RSA private key/);
});
