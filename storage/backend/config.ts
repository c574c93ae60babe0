/**
 * Parses the `backends:` block of a role's YAML configuration into a
 * {@linkcode BackendManager}, in upstream Kraken's shape:
 *
 * ```yaml
 * backends:
 *   - namespace: "^library/.*"
 *     backend:
 *       testfs: { addr: "127.0.0.1:14000", root: blobs, name_path: identity, idle_timeout: 60s }
 *   - namespace: ".*"
 *     backend:
 *       file: { root: /var/cache/kraken/backend, name_path: identity }
 * ```
 *
 * Each entry has exactly one backend type. Supported types are `testfs` (HTTP),
 * `file` (a local directory; this project's embedded default, which upstream
 * does not have), `gcs` (a Google Cloud Storage bucket), and the read-only
 * `registry_blob`, `registry_tag` (a Docker registry) and `http` (a URL template);
 * docs/backends.md describes each. Credentials sit in the role's top-level
 * `auth:` block ({@linkcode backendAuthSchema}), as upstream. The block is a schema of `common/schema.ts`, so errors
 * are `ConfigError`s naming the offending key, for example
 * `backends[1].backend.testfs.addr: ...`.
 *
 * @module
 */

import {
  ConfigError,
  duration,
  hostPort,
  type Infer,
  list,
  object,
  oneOf,
  path,
  record,
  regex,
  string,
  variant,
} from "../../common/schema.ts";
import { clientTlsSchema } from "../../http/tls_config.ts";
import { type BackendEntry, type BackendFetch, BackendManager } from "./backend.ts";
import { FileBackend } from "./fs.ts";
import { GcsBackend, gcsBackendSchema } from "./gcs.ts";
import { parseServiceAccountKey, type ServiceAccountKey } from "./gcs_auth.ts";
import { HttpBackend, httpBackendSchema } from "./http.ts";
import { registryBackendSchema, RegistryBlobBackend, RegistryTagBackend } from "./registry.ts";
import { NAME_PATH_IDS } from "./namepath.ts";
import { s3AuthSchema, s3BackendFromConfig, s3BackendSchema } from "./s3.ts";
import { TestfsBackend } from "./testfs.ts";

/** The `tls:` block of an HTTP backend: upstream's `httputil.TLSConfig` client side. */
const backendTls = clientTlsSchema.describe(
  "TLS to the backend's server (not upstream, whose backend clients have none; the keys are " +
    "its `tls:` block's client side): `cas`, `name`, `client.cert`/`key`/`passphrase`. With " +
    "any set (and `client.disabled` false) requests are `https` with them; the files are read " +
    "at start-up.",
);

const namePath = oneOf(NAME_PATH_IDS).default("identity")
  .describe("Layout of names in the backend (`identity`, `docker_tag`, `sharded_docker_blob`, …).");

/** One `backends:` entry: a namespace regex and exactly one backend type. */
export const backendEntrySchema = object({
  namespace: regex().describe(
    "Regular expression matched anywhere in the namespace (the repository, or the tag string); " +
      "the first matching entry wins.",
  ),
  backend: variant({
    testfs: object({
      addr: hostPort().describe("`host:port` of the testfs server."),
      root: string().optional('`""`').describe("Directory prefix inside testfs."),
      name_path: namePath,
      idle_timeout: duration({ positive: true }).optional("`60s`").describe(
        "A request fails after making no progress (bytes sent or received, an answer) for this " +
          "long; a slow but steady transfer never times out. Keep it above the time the " +
          "sockets' buffers (a few MiB) take to drain at the slowest rate expected.",
      ),
      tls: backendTls,
    }, { rename: { name_path: "namePath", idle_timeout: "idleTimeoutMs" } })
      .describe("An HTTP testfs server (tests, demos)."),
    file: object({
      root: path().describe("Directory of the blobs (relative: against the config file)."),
      name_path: namePath,
    }, { rename: { name_path: "namePath" } }).describe("A local directory."),
    registry_blob: registryBackendSchema.describe(
      "Read-through from a Docker registry's blobs (origins; the namespace is the repository).",
    ),
    registry_tag: registryBackendSchema.describe(
      "Read-through from a Docker registry's tags (build-index; the value is the manifest digest).",
    ),
    http: httpBackendSchema.extend({ tls: backendTls }).describe(
      "Read-only blobs from an HTTP server (a URL template).",
    ),
    gcs: gcsBackendSchema.extend({ tls: backendTls }).describe(
      "A Google Cloud Storage bucket (JSON API), or an emulator's.",
    ),
    s3: s3BackendSchema.extend({ tls: backendTls }).describe(
      "An S3-compatible object store (AWS S3, MinIO, SeaweedFS, moto).",
    ),
  }),
});

/**
 * The top-level `auth:` block, upstream's layout: credentials per backend type, then per user name
 * (the backend's `username` picks one). Secrets: never logged or traced.
 */
export const backendAuthSchema = object({
  gcs: record(object({
    gcs: object({
      access_blob: string().optional().describe(
        "Service-account JSON key (the key file's text): tokens come from signing a JWT with it.",
      ),
      access_token: string().optional().describe("An OAuth2 access token, sent as is."),
    }, { rename: { access_blob: "accessBlob", access_token: "accessToken" } }),
  })).default({}).describe(
    "`<username>: {gcs: {access_blob | access_token}}` for `gcs` backends.",
  ),
  s3: s3AuthSchema.optional().describe(
    "`<username>: {s3: {aws_access_key_id, aws_secret_access_key, aws_session_token}}`, chosen " +
      "by an `s3` entry's `username`.",
  ),
}).describe("Backend credentials by type and user name.");

/** A validated `auth:` block. */
export type BackendAuthConfig = Infer<typeof backendAuthSchema>;

/** The `backends:` list (absent: no backends). */
export const backendsSchema = list(backendEntrySchema).default([]);

/** A validated `backends:` entry, before its backend is built. */
export type BackendEntryConfig = Infer<typeof backendEntrySchema>;

/** Options for {@linkcode parseBackendsConfig}. */
export interface BackendsConfigOptions {
  /** Key the block sits under, used in error messages (default `backends`). */
  key?: string;
  /** The fetch HTTP backends use; roles pass a traced one. */
  fetch?: BackendFetch;
  /** The role's `auth:` block (credentials of `gcs` backends). */
  auth?: BackendAuthConfig;
  /** Directory relative `file` roots are resolved against (default: the working directory). */
  baseDir?: string;
}

/** Builds the backend of one validated entry. */
export function buildBackendEntry(
  entry: BackendEntryConfig,
  options: Pick<BackendsConfigOptions, "fetch" | "auth"> = {},
): BackendEntry {
  const { fetch } = options;
  const backend = (() => {
    const spec = entry.backend;
    switch (spec.kind) {
      case "testfs":
        return new TestfsBackend({ ...spec.value, tls: spec.value.tls.client, fetch });
      case "file":
        return new FileBackend(spec.value);
      case "registry_blob":
        return new RegistryBlobBackend({ ...spec.value, fetch });
      case "registry_tag":
        return new RegistryTagBackend({ ...spec.value, fetch });
      case "http":
        return new HttpBackend({ ...spec.value, tls: spec.value.tls.client, fetch });
      case "gcs":
        return new GcsBackend({
          ...spec.value,
          ...gcsCredentials(spec.value.username, options.auth),
          tls: spec.value.tls.client,
          fetch,
        });
      case "s3":
        return s3BackendFromConfig({ ...spec.value, tls: spec.value.tls.client }, {
          fetch,
          auth: options.auth?.s3,
        });
    }
  })();
  return { namespace: entry.namespace, backend };
}

/**
 * Builds validated entries; a backend that cannot be built (an `s3` entry without credentials) is a
 * `ConfigError` naming its key, `backends[<i>].backend.<type>`.
 */
export function buildBackendEntries<E extends BackendEntryConfig>(
  entries: E[],
  options: Pick<BackendsConfigOptions, "fetch" | "auth" | "key"> = {},
): (BackendEntry & { config: E })[] {
  return entries.map((entry, i) => {
    try {
      return { ...buildBackendEntry(entry, options), config: entry };
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(
        `${options.key ?? "backends"}[${i}].backend.${entry.backend.kind}`,
        (error as Error).message,
      );
    }
  });
}

/**
 * The credentials `auth.gcs.<username>.gcs` names, for a `gcs` backend (none without a username).
 * @throws {ConfigError} when the user has no credentials, or the key is not a service-account key
 */
function gcsCredentials(
  username: string | undefined,
  auth: BackendAuthConfig | undefined,
): { key?: ServiceAccountKey; token?: string } {
  if (username === undefined) return {};
  const key = `auth.gcs.${username}.gcs`;
  const creds = auth?.gcs[username]?.gcs;
  if (!creds || (creds.accessBlob === undefined && creds.accessToken === undefined)) {
    throw new ConfigError(key, "needs access_blob or access_token (the gcs backend's username)");
  }
  if (creds.accessBlob !== undefined && creds.accessToken !== undefined) {
    throw new ConfigError(key, "give access_blob or access_token, not both");
  }
  if (creds.accessToken !== undefined) return { token: creds.accessToken };
  try {
    return { key: parseServiceAccountKey(creds.accessBlob!) };
  } catch (error) {
    throw new ConfigError(`${key}.access_blob`, (error as Error).message);
  }
}

/**
 * Validates a `backends:` value and builds its entries.
 *
 * @param raw the parsed YAML value under the `backends` key (`undefined`/`null` = none)
 * @param options see {@linkcode BackendsConfigOptions}
 * @throws {ConfigError} naming the first invalid key
 */
export function parseBackendsConfig(
  raw: unknown,
  options: BackendsConfigOptions = {},
): BackendEntry[] {
  const key = options.key ?? "backends";
  return buildBackendEntries(backendsSchema.parse(raw, key, { baseDir: options.baseDir }), {
    ...options,
    key,
  });
}

/**
 * Builds a {@linkcode BackendManager} from a `backends:` value.
 *
 * @param raw the parsed YAML value under the `backends` key
 * @param options see {@linkcode BackendsConfigOptions}
 * @throws {ConfigError} naming the first invalid key
 */
export function backendManagerFromConfig(
  raw: unknown,
  options: BackendsConfigOptions = {},
): BackendManager {
  return new BackendManager(parseBackendsConfig(raw, options));
}
