/**
 * RS256-signed JSON Web Tokens (RFC 7519) with Web Crypto: what a GCS service-account key signs to
 * get an OAuth2 access token, and what a Docker registry token server issues. Only signing; the
 * private key is a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, the form of a service-account JSON
 * key's `private_key` and of `openssl req -newkey`'s output).
 *
 * ```ts
 * import { importRsaPrivateKey, signJwtRs256 } from "./jwt.ts";
 * const key = await importRsaPrivateKey(pem);
 * const jwt = await signJwtRs256(key, { iss: "me", exp: Math.floor(Date.now() / 1000) + 60 });
 * ```
 *
 * @module
 */

/** Bytes of the first PEM block labelled `label` in `pem`. */
export function pemBytes(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const match = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(pem);
  if (!match) throw new TypeError(`no PEM block "${label}" found`);
  const binary = atob(match[1].replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Imports a PKCS#8 PEM RSA private key for RS256 signing.
 * @throws {TypeError} when `pem` holds no `PRIVATE KEY` block or it is not an RSA key
 */
export async function importRsaPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey(
      "pkcs8",
      pemBytes(pem, "PRIVATE KEY"),
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
  } catch (error) {
    if (error instanceof TypeError) throw error;
    throw new TypeError(`not a PKCS#8 RSA private key: ${(error as Error).message}`);
  }
}

/** Base64url without padding (RFC 7515 §2). */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Signs `claims` as a compact JWS with RS256. `header` adds fields to `{alg, typ}` (`kid`, `x5c`).
 */
export async function signJwtRs256(
  key: CryptoKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const enc = new TextEncoder();
  const head = base64url(enc.encode(JSON.stringify({ alg: "RS256", typ: "JWT", ...header })));
  const body = base64url(enc.encode(JSON.stringify(claims)));
  const input = `${head}.${body}`;
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, enc.encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}
