/**
 * The `tls:` block every role's configuration has, in upstream Kraken's shape (its `httputil`
 * TLS config, read at the top level of each component's YAML): one block for the role's listeners
 * (`server`) and for its calls to other roles (`client`, `name`, the CAs).
 *
 * ```yaml
 * tls:
 *   name: kraken                    # the name server certificates are verified against
 *   cas:                            # CAs (PEM) that verify servers and client certificates
 *     - path: /etc/kraken/tls/ca.crt
 *   server:                         # every HTTP listener of the role serves TLS when cert+key are set
 *     cert: { path: /etc/kraken/tls/server.crt }
 *     key: { path: /etc/kraken/tls/server.key }
 *     passphrase: { path: /etc/kraken/tls/server.pass }   # for an encrypted PEM key
 *   client:                         # presented on calls to other roles
 *     cert: { path: /etc/kraken/tls/client.crt }
 *     key: { path: /etc/kraken/tls/client.key }
 *     passphrase: { path: /etc/kraken/tls/client.pass }
 *     disabled: false               # true: calls stay plaintext (http) whatever else is set
 * ```
 *
 * Older upstream files name one CA as `ca: {cert: {path}}`; it is read as one more entry of `cas`.
 *
 * @module
 */

import { bool, ConfigError, type Infer, list, object, path, string } from "../common/schema.ts";

const secret = (what: string) =>
  object({ path: path().optional().describe(`File holding the ${what} (PEM).`) });

const pairFields = (side: "server" | "client") => ({
  disabled: bool().default(false).describe(
    side === "server"
      ? "True: the listeners serve plaintext even with `cert` and `key` set."
      : "True: calls to other roles stay `http`, whatever else is set (upstream's switch).",
  ),
  cert: secret(`${side} certificate chain`),
  key: secret(`${side} private key`),
  passphrase: object({
    path: path().optional().describe(
      "File holding the passphrase of an encrypted PEM `key` (trailing newline ignored).",
    ),
  }),
});

const clientFields = {
  name: string().optional().describe(
    "Server name the client verifies server certificates against (and sends as SNI). Unset: " +
      "the host of each call.",
  ),
  cas: list(object({ path: path().describe("A CA certificate file (PEM, may hold several).") }))
    .optional("none").describe(
      "CAs that verify the servers this role calls (besides the system roots) and the client " +
        "certificates its listeners receive.",
    ),
  ca: object({ cert: secret("CA certificate") }).describe(
    "Older upstream spelling of one CA (`ca.cert.path`); added to `cas`.",
  ),
};

/** The schema of the `tls:` block. */
export const tlsConfigSchema = object({
  ...clientFields,
  server: object({
    ...pairFields("server"),
    verify_loopback: bool().default(false).describe(
      "Not upstream: true applies the client-certificate rule to callers from 127.0.0.1 too " +
        "(upstream exempts exactly that address). For single-host clusters and tests.",
    ),
  }, { rename: { verify_loopback: "verifyLoopback" } }),
  client: object(pairFields("client")),
});

/**
 * The client side alone, in the same shape (upstream's `httputil.TLSConfig` without `server`): the
 * `tls:` block of an HTTP storage backend, and a registry backend's `security.tls`.
 */
export const clientTlsConfigSchema = object({
  ...clientFields,
  cas: clientFields.cas.describe("CAs that verify the server (besides the system roots)."),
  client: object({
    ...pairFields("client"),
    disabled: bool().default(false).describe(
      "True: plain `http`, whatever else is set (upstream's switch).",
    ),
  }),
});

/** The raw-parsed `tls:` block. */
type RawTlsConfig = Infer<typeof tlsConfigSchema>;

/** Paths of a certificate, its key and the key's passphrase. */
export interface KeyPairPaths {
  /** Certificate chain (PEM). */
  cert: string;
  /** Private key (PEM, maybe encrypted). */
  key: string;
  /** Passphrase file of an encrypted key. */
  passphrase?: string;
}

/** The server side of a role's `tls:` block: on when `cert` and `key` are set and not disabled. */
export interface ServerTlsConfig extends KeyPairPaths {
  /** CA files that verify client certificates. */
  cas: string[];
  /** Check client certificates of loopback callers too. */
  verifyLoopback: boolean;
}

/** The client side: on when a CA, a name or a client certificate is set and not disabled. */
export interface ClientTlsConfig {
  /** Server name to verify (and send as SNI) instead of each call's host. */
  name?: string;
  /** CA files trusted besides the system roots. */
  cas: string[];
  /** The client certificate presented, if any. */
  identity?: KeyPairPaths;
}

/** The `tls:` block resolved into its two sides; `undefined` is a side that is off. */
export interface TlsConfig {
  /** The listeners' certificate, or plaintext. */
  server?: ServerTlsConfig;
  /** The calls' settings, or plaintext. */
  client?: ClientTlsConfig;
}

function keyPair(
  side: RawTlsConfig["server"] | RawTlsConfig["client"],
  key: string,
): KeyPairPaths | undefined {
  const cert = side.cert.path;
  const privateKey = side.key.path;
  if (cert === undefined && privateKey === undefined) return undefined;
  if (cert === undefined) throw new ConfigError(`${key}.cert.path`, `is required with key.path`);
  if (privateKey === undefined) {
    throw new ConfigError(`${key}.key.path`, "is required with cert.path");
  }
  return { cert, key: privateKey, passphrase: side.passphrase.path };
}

/** A parsed client-only block (see {@linkcode clientTlsConfigSchema}), resolved. */
export interface ResolvedClientTls {
  /** `client.disabled`: plain `http`. */
  disabled: boolean;
  /** The settings, when a CA, a name or a client certificate is set and not disabled. */
  client?: ClientTlsConfig;
}

function resolveClient(
  raw: Infer<typeof clientTlsConfigSchema>,
  key: string,
): ResolvedClientTls & { cas: string[] } {
  const cas = [...(raw.cas ?? []).map((c) => c.path)];
  if (raw.ca.cert.path !== undefined) cas.push(raw.ca.cert.path);
  const pair = keyPair(raw.client, `${key}.client`);
  const on = !raw.client.disabled &&
    (cas.length > 0 || raw.name !== undefined || pair !== undefined);
  return {
    cas,
    disabled: raw.client.disabled,
    client: on ? { name: raw.name, cas, identity: pair } : undefined,
  };
}

/** {@linkcode clientTlsConfigSchema} resolved into {@linkcode ResolvedClientTls}. */
export const clientTlsSchema = clientTlsConfigSchema.map((raw, key) => {
  const { disabled, client } = resolveClient(raw, key);
  return { disabled, client } satisfies ResolvedClientTls;
});

/**
 * Resolves a parsed `tls:` block into the server and client sides.
 * @throws {ConfigError} naming the key when a certificate lacks its key or the reverse
 */
export function resolveTlsConfig(raw: RawTlsConfig, key = "tls"): TlsConfig {
  const { cas, client } = resolveClient(raw, key);
  const serverPair = keyPair(raw.server, `${key}.server`);
  const server = serverPair && !raw.server.disabled
    ? { ...serverPair, cas, verifyLoopback: raw.server.verifyLoopback }
    : undefined;
  return { server, client };
}

/** The `tls:` schema resolved into {@linkcode TlsConfig} (the form a role's config holds). */
export const tlsSchema = tlsConfigSchema.map((raw, key) => resolveTlsConfig(raw, key));
