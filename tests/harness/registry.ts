/**
 * Starts the reference Docker registry (distribution v3, `registry` in `scripts/go-tools.tsv`) on a
 * free loopback port, plain HTTP (HTTPS with `tls`), filesystem storage in a temporary directory,
 * with one of three auth modes:
 *
 * - `none`;
 * - `basic`: `auth.htpasswd` with bcrypt entries (bcryptjs) for the given users;
 * - `bearer`: `auth.token`, with a token server run by this harness in the test process. It
 *   authenticates the token request with the users' passwords (basic), grants every action asked
 *   in the `scope` parameters, and signs RS256 JWTs whose `x5c` header carries a self-signed
 *   certificate made at start with `openssl`, which is also the registry's `rootcertbundle`.
 *
 * ```ts
 * import { startRegistry } from "./registry.ts";
 * await using registry = await startRegistry({ auth: "bearer", users: { alice: "pw" } });
 * registry.addr; // "127.0.0.1:<port>"
 * ```
 *
 * @module
 */

import bcrypt from "bcryptjs";
import { base64url, importRsaPrivateKey, pemBytes, signJwtRs256 } from "../../common/jwt.ts";
import { freePort, spawnProcess, waitForHttp } from "./procs.ts";
import { toolBinary } from "./tools.ts";

/** How clients authenticate to the registry. */
export type RegistryAuthMode = "none" | "basic" | "bearer";

/** Options of {@linkcode startRegistry}. */
export interface StartRegistryOptions {
  /** Auth mode (default `none`). */
  auth?: RegistryAuthMode;
  /** User name → password, for `basic` and `bearer` (default `{ kraken: "kraken-secret" }`). */
  users?: Record<string, string>;
  /** Registry binary (default: `REGISTRY_BIN`, else the install script's cache). */
  binary?: string;
  /** How long to wait for the registry to answer (default 30 000 ms). */
  startTimeoutMs?: number;
  /** Serve HTTPS with this certificate and unencrypted key (files), signed by `ca` (a file). */
  tls?: { cert: string; key: string; ca: string };
}

/** A request the harness's token server answered. */
export interface TokenRequest {
  /** The authenticated user, or `""` for an anonymous request. */
  user: string;
  /** `scope` parameters asked for. */
  scopes: string[];
  /** The status answered. */
  status: number;
}

/** A running registry. */
export interface RegistryInstance {
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  /** Its auth mode. */
  readonly auth: RegistryAuthMode;
  /** The token server's requests (`bearer` only; empty otherwise). */
  readonly tokenRequests: readonly TokenRequest[];
  /** `service` of the token auth (the JWT audience). */
  readonly service: string;
  /** The registry's combined output so far. */
  log(): string;
  /** Stops the registry and the token server and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Same as {@linkcode stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const SERVICE = "kraken-test-registry";
const ISSUER = "kraken-test-token-issuer";

/** Parses `repository:<name>:<a>,<b>` scopes (other resource types are granted nothing). */
function accessOf(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const m = /^(repository):(.+):([a-z*,]+)$/.exec(scope);
  return m ? { type: m[1], name: m[2], actions: m[3].split(",") } : undefined;
}

async function makeSigningCert(dir: string): Promise<{ key: string; cert: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${dir}/token.key`,
      "-out",
      `${dir}/token.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${ISSUER}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`openssl req failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    key: await Deno.readTextFile(`${dir}/token.key`),
    cert: await Deno.readTextFile(`${dir}/token.crt`),
  };
}

/** Starts a token server on a free port; see the module doc. */
async function startTokenServer(dir: string, users: Record<string, string>) {
  const { key, cert } = await makeSigningCert(dir);
  const signingKey = await importRsaPrivateKey(key);
  // x5c is standard base64 of the DER certificate, not base64url.
  const x5c = [btoa(String.fromCharCode(...pemBytes(cert, "CERTIFICATE")))];
  const requests: TokenRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
    const basic = /^Basic (.+)$/i.exec(req.headers.get("authorization") ?? "");
    let user = "";
    if (basic) {
      const [name, ...rest] = atob(basic[1]).split(":");
      if (users[name] === undefined || users[name] !== rest.join(":")) {
        requests.push({ user: name, scopes, status: 401 });
        return Response.json({ details: "invalid username or password" }, { status: 401 });
      }
      user = name;
    }
    if (user === "") {
      requests.push({ user, scopes, status: 401 });
      return Response.json({ details: "authentication required" }, { status: 401 });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = await signJwtRs256(signingKey, {
      iss: ISSUER,
      sub: user,
      aud: url.searchParams.get("service") ?? SERVICE,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: base64url(crypto.getRandomValues(new Uint8Array(12))),
      access: scopes.map(accessOf).filter((a) => a !== undefined),
    }, { x5c });
    requests.push({ user, scopes, status: 200 });
    return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date() });
  });
  return {
    realm: `http://127.0.0.1:${server.addr.port}/token`,
    rootCertBundle: `${dir}/token.crt`,
    requests,
    stop: () => server.shutdown(),
  };
}

/** Starts the registry; see the module doc. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<RegistryInstance> {
  const auth = options.auth ?? "none";
  const users = options.users ?? { kraken: "kraken-secret" };
  const binary = toolBinary("registry", options.binary);
  const dir = await Deno.makeTempDir({ prefix: "kraken-registry-" });
  const port = freePort();
  const addr = `127.0.0.1:${port}`;
  let tokenServer: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  let authBlock: Record<string, unknown> = {};
  if (auth === "basic") {
    const lines = Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`);
    await Deno.writeTextFile(`${dir}/htpasswd`, lines.join("\n") + "\n");
    authBlock = { htpasswd: { realm: "kraken-test", path: `${dir}/htpasswd` } };
  } else if (auth === "bearer") {
    tokenServer = await startTokenServer(dir, users);
    authBlock = {
      token: {
        realm: tokenServer.realm,
        service: SERVICE,
        issuer: ISSUER,
        rootcertbundle: tokenServer.rootCertBundle,
      },
    };
  }
  const config = {
    version: 0.1,
    log: { level: "info", formatter: "text" },
    storage: { filesystem: { rootdirectory: `${dir}/data` }, delete: { enabled: true } },
    http: {
      addr,
      secret: "kraken-test-secret",
      ...(options.tls
        ? { tls: { certificate: options.tls.cert, key: options.tls.key, minimumtls: "tls1.2" } }
        : {}),
    },
    ...(auth === "none" ? {} : { auth: authBlock }),
  };
  // JSON is YAML.
  await Deno.writeTextFile(`${dir}/config.yml`, JSON.stringify(config, null, 2));
  const process = spawnProcess(binary, ["serve", `${dir}/config.yml`], {
    name: "registry",
    logFile: `${dir}/registry.log`,
    // distribution v3 would export its own traces to a default OTLP endpoint.
    env: { OTEL_TRACES_EXPORTER: "none", OTEL_SDK_DISABLED: "true" },
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await process.stop();
    await tokenServer?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const client = options.tls
    ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(options.tls.ca)] })
    : undefined;
  try {
    await waitForHttp(`${options.tls ? "https" : "http"}://${addr}/v2/`, {
      process,
      timeoutMs: options.startTimeoutMs ?? 30_000,
      ready: (r) => r.status === 200 || r.status === 401,
      client,
    });
  } catch (error) {
    await stop();
    throw error;
  } finally {
    client?.close();
  }
  return {
    addr,
    auth,
    service: SERVICE,
    get tokenRequests() {
      return tokenServer?.requests ?? [];
    },
    log: () => process.log(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
