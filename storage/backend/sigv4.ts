/**
 * AWS Signature Version 4 for S3 requests, with Web Crypto (HMAC-SHA256, SHA-256): the
 * `Authorization` header AWS and every S3-compatible store check.
 *
 * A request is signed over its method, path, query, the `host` and `x-amz-*` headers (plus
 * `content-type`, `content-md5` and `range` when present) and the payload hash. A streamed body
 * is sent as `UNSIGNED-PAYLOAD` (S3 accepts it; its integrity rests on TLS and the blob digest);
 * small bodies in memory are hashed.
 *
 * ```ts
 * import { signRequest } from "./sigv4.ts";
 * const headers = await signRequest({
 *   method: "GET", url: new URL("https://s3.us-east-1.amazonaws.com/bucket/key"),
 *   region: "us-east-1", credentials: { accessKeyId, secretAccessKey },
 * });
 * ```
 *
 * @module
 */

import { bytesToHex } from "../../common/bytes.ts";

/** Credentials of one request signer. */
export interface AwsCredentials {
  /** Access key id (`AKIA…`). */
  accessKeyId: string;
  /** Secret access key: used for signing, never sent or reported. */
  secretAccessKey: string;
  /** Session token of temporary credentials, sent as `x-amz-security-token`. */
  sessionToken?: string;
}

/** What {@linkcode signRequest} signs. */
export interface SignInput {
  /** HTTP method. */
  method: string;
  /** Full URL (its path must already be percent-encoded as sent). */
  url: URL;
  /** Region of the bucket (`us-east-1`). */
  region: string;
  /** Credentials. */
  credentials: AwsCredentials;
  /** Headers to send besides the signed ones (e.g. `content-length`, `range`). */
  headers?: Record<string, string>;
  /** Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD` (default: the hash of an empty body). */
  payloadHash?: string;
  /** Signing time (default now). */
  date?: Date;
  /** Service name (default `s3`). */
  service?: string;
}

/** The payload hash of a streamed body. */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

const encoder = new TextEncoder();

/** Hex SHA-256 of `data`. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return bytesToHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  );
}

async function hmac(key: Uint8Array | ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as ArrayBuffer,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return crypto.subtle.sign("HMAC", k, encoder.encode(data));
}

/** RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` is `%XX`. */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The canonical query string: pairs encoded, sorted by key then value. */
function canonicalQuery(url: URL): string {
  const pairs = [...url.searchParams].map(([k, v]) => [uriEncode(k), uriEncode(v)]);
  pairs.sort(([a, av], [b, bv]) => a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0);
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** `20130524T000000Z` of `date`. */
function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * Signs a request.
 *
 * @returns every header to send: the given ones plus `host`, `x-amz-date`,
 *   `x-amz-content-sha256`, `x-amz-security-token` (with a session token) and `authorization`
 */
export async function signRequest(input: SignInput): Promise<Record<string, string>> {
  const service = input.service ?? "s3";
  const time = amzDate(input.date ?? new Date());
  const day = time.slice(0, 8);
  const payloadHash = input.payloadHash ?? (await sha256Hex(""));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;
  headers["host"] = input.url.host;
  headers["x-amz-date"] = time;
  headers["x-amz-content-sha256"] = payloadHash;
  if (input.credentials.sessionToken) {
    headers["x-amz-security-token"] = input.credentials.sessionToken;
  }
  const signed = Object.keys(headers)
    .filter((h) =>
      h === "host" || h.startsWith("x-amz-") || h === "content-type" || h === "content-md5" ||
      h === "range"
    )
    .sort();
  const canonicalHeaders = signed.map((h) => `${h}:${headers[h].trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonicalRequest = [
    input.method.toUpperCase(),
    input.url.pathname || "/",
    canonicalQuery(input.url),
    canonicalHeaders,
    signed.join(";"),
    payloadHash,
  ].join("\n");
  const scope = `${day}/${input.region}/${service}/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    time,
    scope,
    await sha256Hex(canonicalRequest),
  ].join("\n");
  let key = await hmac(encoder.encode(`AWS4${input.credentials.secretAccessKey}`), day);
  key = await hmac(key, input.region);
  key = await hmac(key, service);
  key = await hmac(key, "aws4_request");
  const signature = bytesToHex(new Uint8Array(await hmac(key, stringToSign)));
  headers["authorization"] = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/` +
    `${scope}, SignedHeaders=${signed.join(";")}, Signature=${signature}`;
  return headers;
}
