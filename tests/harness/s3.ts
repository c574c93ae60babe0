/**
 * A real S3 server for tests: moto's server (`moto[server]` from PyPI, installed into a cached
 * virtualenv by `scripts/setup.sh`; SeaweedFS took over 30 minutes to build cold, see
 * docs/backends.md) on a free loopback port, with authentication on. Start-up creates an IAM user
 * with an access key allowed everything and, if asked, buckets; requests signed with any other key
 * or secret are refused (403), as on AWS.
 *
 * moto logs one line per request (`"PUT /bucket/key?partNumber=3&uploadId=… HTTP/1.1" 200`), which
 * {@linkcode S3Server.requests} parses: the tests count parts on the server side from it.
 *
 * ```ts
 * const s3 = await startS3({ buckets: ["blobs"] });
 * // s3.endpoint, s3.credentials
 * await s3.stop();
 * ```
 *
 * @module
 */

import { sha256Hex, signRequest } from "../../storage/backend/sigv4.ts";
import type { AwsCredentials } from "../../storage/backend/sigv4.ts";
import { closeQuietly } from "../../common/close.ts";
import { freePort, type ManagedProcess, spawnProcess, waitForHttp } from "./procs.ts";

/** The moto version `scripts/setup.sh` installs. */
export const MOTO_VERSION = "5.2.5";

/** Region the test buckets live in. */
export const S3_REGION = "us-east-1";

/** Where setup.sh puts moto's virtualenv (`MOTO_SERVER_BIN` overrides the server binary). */
export function motoServerBinary(): string {
  const fromEnv = Deno.env.get("MOTO_SERVER_BIN");
  if (fromEnv) return fromEnv;
  const cacheRoot = Deno.env.get("KRAKEN_CACHE") ?? `${Deno.env.get("HOME") ?? "."}/.cache/kraken`;
  return `${cacheRoot}/moto-${MOTO_VERSION}/bin/moto_server`;
}

/** Whether moto's server is installed (tests that need it say how to install it otherwise). */
export function s3ServerInstalled(): boolean {
  try {
    return Deno.statSync(motoServerBinary()).isFile;
  } catch {
    return false;
  }
}

/**
 * An origin's `backend:` block on `bucket` of `s3` (path-style, keys under `kraken/`, identity
 * names); `extra` keys override. The credentials go in the environment: {@linkcode s3Env}.
 */
export function s3BackendBlock(
  s3: { endpoint: string },
  bucket: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    s3: {
      region: S3_REGION,
      bucket,
      endpoint: s3.endpoint,
      force_path_style: true,
      root_directory: "/kraken/",
      name_path: "identity",
      ...extra,
    },
  };
}

/** The `AWS_*` variables that give a role `s3`'s credentials. */
export function s3Env(s3: S3Server): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
}

/** One request in the server's log. */
export interface S3Request {
  /** HTTP method. */
  method: string;
  /** Path and query as sent. */
  target: string;
  /** Status answered. */
  status: number;
}

/** Options of {@linkcode startS3}. */
export interface StartS3Options {
  /** Buckets to create. */
  buckets?: string[];
}

/** A running S3 server. */
export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Credentials of the user allowed everything. */
  readonly credentials: AwsCredentials;
  /** The server process. */
  readonly process: ManagedProcess;
  /** Requests answered so far, from the server's log. */
  requests(): S3Request[];
  /** Creates a bucket. */
  createBucket(name: string): Promise<void>;
  /** Lists every key of a bucket (through the S3 API, `ListObjectsV2`). */
  listKeys(bucket: string): Promise<string[]>;
  /** An object's bytes (`GetObject`). */
  getObject(bucket: string, key: string): Promise<Uint8Array>;
  /** Stores an object (`PutObject`). */
  putObject(bucket: string, key: string, body: Uint8Array): Promise<void>;
  /** Starts a multipart upload of `key` (`CreateMultipartUpload`); returns its id. */
  createMultipartUpload(bucket: string, key: string): Promise<string>;
  /** The unfinished multipart uploads of a bucket (`ListMultipartUploads`), by key. */
  listMultipartUploads(
    bucket: string,
  ): Promise<{ key: string; uploadId: string; initiated: string }[]>;
  /** Stops the server. */
  stop(): Promise<void>;
}

/** Sends one signed request with `credentials` (service `iam` or `s3`). */
async function signedFetch(
  service: "iam" | "s3",
  method: string,
  url: string,
  credentials: AwsCredentials,
  body: Uint8Array = new Uint8Array(),
  contentType?: string,
): Promise<Response> {
  const headers = await signRequest({
    method,
    url: new URL(url),
    region: S3_REGION,
    service,
    credentials,
    headers: contentType ? { "content-type": contentType } : {},
    payloadHash: await sha256Hex(body),
  });
  return await fetch(url, {
    method,
    headers,
    body: body.length ? body as Uint8Array<ArrayBuffer> : undefined,
  });
}

async function expectOk(res: Response, what: string): Promise<string> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: status ${res.status}: ${text.slice(0, 500)}`);
  return text;
}

/**
 * Starts moto's server with authentication on, creates the IAM user and `options.buckets`.
 * @throws Error saying how to install moto when it is missing, or with the log when it fails
 */
export async function startS3(options: StartS3Options = {}): Promise<S3Server> {
  const binary = motoServerBinary();
  if (!s3ServerInstalled()) {
    throw new Error(
      `moto's server is not installed at ${binary}: run scripts/setup.sh (it installs ` +
        `moto[server]==${MOTO_VERSION} into a virtualenv there), or set MOTO_SERVER_BIN`,
    );
  }
  const port = freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // The three IAM calls below are the unauthenticated ones; every request after them is checked.
  const process = spawnProcess(binary, ["-H", "127.0.0.1", "-p", String(port)], {
    name: "moto",
    env: { INITIAL_NO_AUTH_ACTION_COUNT: "3", PYTHONUNBUFFERED: "1" },
  });
  try {
    await waitForHttp(`${endpoint}/moto-api/`, { process, timeoutMs: 60_000 });
    const boot = { accessKeyId: "AKIABOOTSTRAP0000000", secretAccessKey: "bootstrap" };
    const form = "application/x-www-form-urlencoded";
    const iam = (params: string) =>
      signedFetch(
        "iam",
        "POST",
        `${endpoint}/`,
        boot,
        new TextEncoder().encode(`${params}&Version=2010-05-08`),
        form,
      );
    await expectOk(await iam("Action=CreateUser&UserName=kraken"), "CreateUser");
    const keyXml = await expectOk(
      await iam("Action=CreateAccessKey&UserName=kraken"),
      "CreateAccessKey",
    );
    const policy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
    });
    await expectOk(
      await iam(
        `Action=PutUserPolicy&UserName=kraken&PolicyName=all&PolicyDocument=${
          encodeURIComponent(policy)
        }`,
      ),
      "PutUserPolicy",
    );
    const credentials: AwsCredentials = {
      accessKeyId: /<AccessKeyId>(.*?)<\/AccessKeyId>/.exec(keyXml)?.[1] ?? "",
      secretAccessKey: /<SecretAccessKey>(.*?)<\/SecretAccessKey>/.exec(keyXml)?.[1] ?? "",
    };
    const server: S3Server = {
      endpoint,
      credentials,
      process,
      requests() {
        const out: S3Request[] = [];
        // deno-lint-ignore no-control-regex
        const plain = process.log().replace(/\u001b\[[0-9;]*m/g, "");
        for (const m of plain.matchAll(/"([A-Z]+) (\S+) HTTP\/1\.[01]" (\d{3})/g)) {
          out.push({ method: m[1], target: m[2], status: Number(m[3]) });
        }
        return out;
      },
      async createBucket(name) {
        await expectOk(
          await signedFetch("s3", "PUT", `${endpoint}/${name}`, credentials),
          `CreateBucket ${name}`,
        );
      },
      async listKeys(bucket) {
        const keys: string[] = [];
        let token = "";
        do {
          const query = new URLSearchParams({ "list-type": "2" });
          if (token) query.set("continuation-token", token);
          const xml = await expectOk(
            await signedFetch("s3", "GET", `${endpoint}/${bucket}?${query}`, credentials),
            `ListObjectsV2 ${bucket}`,
          );
          for (const m of xml.matchAll(/<Key>(.*?)<\/Key>/g)) keys.push(m[1]);
          token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
            ? /<NextContinuationToken>(.*?)<\/NextContinuationToken>/.exec(xml)?.[1] ?? ""
            : "";
        } while (token);
        return keys.sort();
      },
      async getObject(bucket, key) {
        const res = await signedFetch("s3", "GET", `${endpoint}/${bucket}/${key}`, credentials);
        if (!res.ok) throw new Error(`GetObject ${key}: status ${res.status}: ${await res.text()}`);
        return new Uint8Array(await res.arrayBuffer());
      },
      async putObject(bucket, key, body) {
        await expectOk(
          await signedFetch("s3", "PUT", `${endpoint}/${bucket}/${key}`, credentials, body),
          `PutObject ${key}`,
        );
      },
      async createMultipartUpload(bucket, key) {
        const xml = await expectOk(
          await signedFetch("s3", "POST", `${endpoint}/${bucket}/${key}?uploads=`, credentials),
          `CreateMultipartUpload ${key}`,
        );
        const id = /<UploadId>(.*?)<\/UploadId>/.exec(xml)?.[1];
        if (!id) throw new Error(`CreateMultipartUpload ${key}: no UploadId in ${xml}`);
        return id;
      },
      async listMultipartUploads(bucket) {
        const xml = await expectOk(
          await signedFetch("s3", "GET", `${endpoint}/${bucket}?uploads=`, credentials),
          `ListMultipartUploads ${bucket}`,
        );
        return [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)].map((m) => ({
          key: /<Key>(.*?)<\/Key>/.exec(m[1])?.[1] ?? "",
          uploadId: /<UploadId>(.*?)<\/UploadId>/.exec(m[1])?.[1] ?? "",
          initiated: /<Initiated>(.*?)<\/Initiated>/.exec(m[1])?.[1] ?? "",
        })).sort((a, b) => a.key.localeCompare(b.key));
      },
      async stop() {
        await process.stop();
      },
    };
    for (const bucket of options.buckets ?? []) await server.createBucket(bucket);
    return server;
  } catch (error) {
    await process.stop();
    throw new Error(`moto did not start: ${(error as Error).message}\n${process.log()}`, {
      cause: error,
    });
  }
}

/** A TCP relay in front of an S3 server that can answer every request 503 `SlowDown` for a while. */
export interface FlakyRelay {
  /** `http://127.0.0.1:<port>` to point clients at. */
  readonly endpoint: string;
  /** Whether requests are refused now. */
  failing: boolean;
  /** Connections answered 503 so far. */
  readonly refused: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>' +
  "<Message>Please reduce your request rate.</Message></Error>";

/**
 * Starts a relay to `endpoint` (an `http://host:port`). While `failing`, a connection's first
 * request is answered `503 SlowDown` and the connection closed; otherwise bytes are piped both ways
 * unchanged (the `Host` the client signed stays as it was, so signatures still verify upstream).
 */
export function startFlakyRelay(endpoint: string, options: { failing?: boolean } = {}): FlakyRelay {
  const target = new URL(endpoint);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let refused = 0;
  const relay: FlakyRelay = {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    failing: options.failing ?? false,
    get refused() {
      return refused;
    },
    async close() {
      listener.close();
      for (const c of conns) closeQuietly(c);
      await accepting.catch(() => {});
    },
  };
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      if (relay.failing) {
        refused++;
        // Read the request head (part of a body may follow; it is dropped with the connection).
        await conn.read(new Uint8Array(64 * 1024));
        const body = new TextEncoder().encode(SLOW_DOWN);
        await conn.write(new TextEncoder().encode(
          `HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\n` +
            `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        ));
        await conn.write(body);
        return;
      }
      const upstream = await Deno.connect({
        hostname: target.hostname,
        port: Number(target.port),
      });
      conns.add(upstream);
      await Promise.allSettled([
        conn.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(conn.writable),
      ]);
      conns.delete(upstream);
      closeQuietly(upstream);
    } catch {
      // A peer that went away ends its connection.
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) void serve(conn);
  })();
  return relay;
}
