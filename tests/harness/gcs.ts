/**
 * GCS for tests: {@linkcode startFakeGcs} runs fake-gcs-server (`scripts/go-tools.tsv`) on a free
 * loopback port, plain HTTP, in-memory storage, with the given buckets; its helpers read the bucket
 * through the JSON API (paginated listing, media download) so tests check what the server holds.
 * {@linkcode startGcsTokenServer} is an OAuth2 token endpoint for the JWT-bearer grant: it makes an
 * RSA key at start, hands out a service-account JSON key for it, and grants tokens only to
 * assertions that key signed (fake-gcs-server itself checks no credentials).
 *
 * ```ts
 * import { startFakeGcs } from "./gcs.ts";
 * await using gcs = await startFakeGcs({ buckets: ["blobs"] });
 * await gcs.listObjects("blobs"); // ["/abc…", …]
 * ```
 *
 * @module
 */

import { freePort, type ManagedProcess, spawnProcess, waitForHttp } from "./procs.ts";
import { toolBinary } from "./tools.ts";

/** Options of {@linkcode startFakeGcs}. */
export interface StartFakeGcsOptions {
  /** Buckets created at start (default `["kraken"]`). */
  buckets?: string[];
  /** The binary (default: `FAKE_GCS_SERVER_BIN`, else the install script's cache). */
  binary?: string;
  /** How long to wait for it to answer (default 30 000 ms). */
  startTimeoutMs?: number;
}

/** A running fake-gcs-server. */
export interface FakeGcs {
  /** JSON API base URL, `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  /** The process. */
  readonly process: ManagedProcess;
  /** Creates a bucket. */
  createBucket(name: string): Promise<void>;
  /** Every object name in `bucket` under `prefix`, read page by page (`pageSize` per page). */
  listObjects(bucket: string, prefix?: string, pageSize?: number): Promise<string[]>;
  /** The bytes of an object, or `undefined` when it does not exist. */
  getObject(bucket: string, name: string): Promise<Uint8Array | undefined>;
  /** Stores an object (a one-request media upload). */
  putObject(bucket: string, name: string, bytes: Uint8Array<ArrayBuffer>): Promise<void>;
  /** Its combined output so far. */
  log(): string;
  /** Stops the server. Idempotent. */
  stop(): Promise<void>;
  /** Same as {@linkcode stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

async function check(res: Response, what: string): Promise<string> {
  const text = await res.text();
  if (!res.ok) throw new Error(`fake-gcs-server: ${what}: ${res.status} ${text}`);
  return text;
}

/** Starts fake-gcs-server; see the module doc. */
export async function startFakeGcs(options: StartFakeGcsOptions = {}): Promise<FakeGcs> {
  const binary = toolBinary("fake-gcs-server", options.binary);
  const port = freePort();
  const addr = `127.0.0.1:${port}`;
  const endpoint = `http://${addr}`;
  const process = spawnProcess(binary, [
    "-scheme",
    "http",
    "-host",
    "127.0.0.1",
    "-port",
    String(port),
    "-backend",
    "memory",
    "-log-level",
    "warn",
  ], { name: "fake-gcs-server" });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await process.stop();
  };
  try {
    await waitForHttp(`${endpoint}/storage/v1/b`, {
      process,
      timeoutMs: options.startTimeoutMs ?? 30_000,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  const gcs: FakeGcs = {
    endpoint,
    addr,
    process,
    async createBucket(name) {
      await check(
        await fetch(`${endpoint}/storage/v1/b?project=kraken-test`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name }),
        }),
        `create bucket ${name}`,
      );
    },
    async listObjects(bucket, prefix = "", pageSize = 100) {
      const names: string[] = [];
      let token = "";
      do {
        const url = new URL(`${endpoint}/storage/v1/b/${encodeURIComponent(bucket)}/o`);
        url.searchParams.set("prefix", prefix);
        url.searchParams.set("maxResults", String(pageSize));
        if (token) url.searchParams.set("pageToken", token);
        const page = JSON.parse(await check(await fetch(url), `list ${bucket}`));
        for (const item of page.items ?? []) names.push(item.name);
        token = page.nextPageToken ?? "";
      } while (token);
      return names;
    },
    async getObject(bucket, name) {
      const res = await fetch(
        `${endpoint}/storage/v1/b/${encodeURIComponent(bucket)}/o/${
          encodeURIComponent(name)
        }?alt=media`,
      );
      if (res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      return new Uint8Array(await (await checkBody(res, `get ${name}`)).arrayBuffer());
    },
    async putObject(bucket, name, bytes) {
      const url = new URL(`${endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o`);
      url.searchParams.set("uploadType", "media");
      url.searchParams.set("name", name);
      await check(await fetch(url, { method: "POST", body: bytes }), `put ${name}`);
    },
    log: () => process.log(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
  try {
    for (const bucket of options.buckets ?? ["kraken"]) await gcs.createBucket(bucket);
  } catch (error) {
    await stop();
    throw error;
  }
  return gcs;
}

async function checkBody(res: Response, what: string): Promise<Response> {
  if (!res.ok) {
    throw new Error(`fake-gcs-server: ${what}: ${res.status} ${await res.text()}`);
  }
  return res;
}

/** A running OAuth2 token endpoint of {@linkcode startGcsTokenServer}. */
export interface GcsTokenServer {
  /** Its URL, the key's `token_uri`. */
  readonly tokenUri: string;
  /** A service-account JSON key whose assertions the server accepts. */
  readonly keyJson: string;
  /** Claims (and `header`) of every accepted assertion. */
  readonly granted: readonly Record<string, unknown>[];
  /** Assertions refused. */
  readonly refused: number;
  /** Stops the server. */
  close(): Promise<void>;
  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

function fromBase64url(part: string): Uint8Array<ArrayBuffer> {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(
    atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)),
    (c) => c.charCodeAt(0),
  );
}

function toPem(der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN PRIVATE KEY-----\n${
    b64.match(/.{1,64}/g)!.join("\n")
  }\n-----END PRIVATE KEY-----\n`;
}

/**
 * Starts a token endpoint on a free loopback port (in this process); see the module doc.
 * Tokens it grants are `tok-<n>` with `expires_in` of `tokenSeconds` (default 3600).
 */
export async function startGcsTokenServer(
  options: { tokenSeconds?: number } = {},
): Promise<GcsTokenServer> {
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
  const pem = toPem(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const granted: Record<string, unknown>[] = [];
  let refused = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const [h = "", b = "", sig = ""] = (form.get("assertion") ?? "").split(".");
    let valid = false;
    try {
      valid = form.get("grant_type") === "urn:ietf:params:oauth:grant-type:jwt-bearer" &&
        await crypto.subtle.verify(
          "RSASSA-PKCS1-v1_5",
          pair.publicKey,
          fromBase64url(sig),
          new TextEncoder().encode(`${h}.${b}`),
        );
    } catch {
      valid = false;
    }
    if (!valid) {
      refused++;
      return Response.json(
        { error: "invalid_grant", error_description: "Invalid JWT Signature." },
        { status: 400 },
      );
    }
    const decode = (part: string) => JSON.parse(new TextDecoder().decode(fromBase64url(part)));
    granted.push({ header: decode(h), ...decode(b) });
    return Response.json({
      access_token: `tok-${granted.length}`,
      expires_in: options.tokenSeconds ?? 3600,
      token_type: "Bearer",
    });
  });
  const tokenUri = `http://127.0.0.1:${server.addr.port}/token`;
  const close = () => server.shutdown();
  return {
    tokenUri,
    keyJson: JSON.stringify({
      type: "service_account",
      project_id: "kraken-test",
      private_key_id: "kraken-test-key",
      private_key: pem,
      client_email: "kraken@kraken-test.iam.gserviceaccount.com",
      token_uri: tokenUri,
    }),
    granted,
    get refused() {
      return refused;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
