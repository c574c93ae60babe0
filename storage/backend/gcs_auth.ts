/**
 * Credentials of the `gcs` backend: where its `Authorization: Bearer` value comes from.
 *
 * - A service-account JSON key (upstream's `access_blob`, or a key file): an RS256 JWT signed with
 *   the key (`common/jwt.ts`, Web Crypto) is exchanged at the key's `token_uri` for an OAuth2
 *   access token (the JWT-bearer grant, RFC 7523), which is cached until a minute before it
 *   expires.
 * - An explicit access token (`access_token`), sent as is.
 * - None: requests go unauthenticated (an emulator such as fake-gcs-server).
 *
 * The key, the JWT and the tokens are secrets: {@linkcode GcsTokenSource.secrets} lists what is
 * to be redacted, and errors of the token exchange carry the token server's status and message
 * only.
 *
 * ```ts
 * import { GcsTokenSource, parseServiceAccountKey } from "./gcs_auth.ts";
 * const source = new GcsTokenSource({ key: parseServiceAccountKey(json) });
 * await source.authorization(); // "Bearer ya29…"
 * ```
 *
 * @module
 */

import { importRsaPrivateKey, signJwtRs256 } from "../../common/jwt.ts";
import { GCS_TOKEN } from "../../wire/gcs.ts";
import { type BackendFetch, plainFetch } from "./backend.ts";
import { safeUrl } from "./transport.ts";

/** The fields of a service-account JSON key the token exchange needs. */
export interface ServiceAccountKey {
  /** `client_email`: the JWT's issuer. */
  clientEmail: string;
  /** `private_key`: PKCS#8 PEM. */
  privateKey: string;
  /** `private_key_id`: the JWT's `kid`, when present. */
  privateKeyId?: string;
  /** `token_uri` (default Google's). */
  tokenUri: string;
}

/** Google's OAuth2 token endpoint, for keys that name none. */
export const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token";

/** The OAuth2 scope the backend asks for: read and write objects. */
export const GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";

/**
 * Parses a service-account JSON key.
 * @throws {TypeError} naming the missing or wrong field (never echoing the key)
 */
export function parseServiceAccountKey(json: string): ServiceAccountKey {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new TypeError("service-account key is not JSON");
  }
  if (raw === null || typeof raw !== "object") {
    throw new TypeError("service-account key is not a JSON object");
  }
  if (raw.type !== undefined && raw.type !== "service_account") {
    throw new TypeError(`service-account key has type ${JSON.stringify(raw.type)}`);
  }
  for (const field of ["client_email", "private_key"]) {
    if (typeof raw[field] !== "string" || raw[field] === "") {
      throw new TypeError(`service-account key has no ${field}`);
    }
  }
  const tokenUri = typeof raw.token_uri === "string" && raw.token_uri !== ""
    ? raw.token_uri
    : DEFAULT_TOKEN_URI;
  try {
    new URL(tokenUri);
  } catch {
    throw new TypeError("service-account key's token_uri is not a URL");
  }
  return {
    clientEmail: raw.client_email as string,
    privateKey: raw.private_key as string,
    privateKeyId: typeof raw.private_key_id === "string" ? raw.private_key_id : undefined,
    tokenUri,
  };
}

/** Options of {@linkcode GcsTokenSource}: at most one of `key` and `token`. */
export interface GcsTokenSourceOptions {
  /** A service-account key: tokens come from its token exchange. */
  key?: ServiceAccountKey;
  /** An explicit access token. */
  token?: string;
  /** The fetch the token exchange goes through (default {@linkcode plainFetch}). */
  fetch?: BackendFetch;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
}

/** The token exchange refused the key, or answered something that is not a token. */
export class GcsAuthError extends Error {
  /** @param message what failed, free of secrets */
  constructor(message: string) {
    super(message);
    this.name = "GcsAuthError";
  }
}

/** A token is renewed this long before it expires. */
const RENEW_BEFORE_MS = 60_000;
/** Lifetime asked for in the JWT (the longest Google grants). */
const JWT_LIFETIME_S = 3600;

/** Gives the `Authorization` value of GCS requests; see the module doc. */
export class GcsTokenSource {
  readonly #key: ServiceAccountKey | undefined;
  readonly #token: string | undefined;
  readonly #fetch: BackendFetch;
  readonly #now: () => number;
  #signingKey: Promise<CryptoKey> | undefined;
  #cached: { token: string; until: number } | undefined;
  #pending: Promise<string> | undefined;
  #exchanges = 0;

  /** @param options see {@linkcode GcsTokenSourceOptions} */
  constructor(options: GcsTokenSourceOptions = {}) {
    if (options.key && options.token) {
      throw new TypeError("gcs: give a service-account key or an access token, not both");
    }
    this.#key = options.key;
    this.#token = options.token;
    this.#fetch = options.fetch ?? plainFetch;
    this.#now = options.now ?? Date.now;
  }

  /** Token exchanges made so far. */
  get exchanges(): number {
    return this.#exchanges;
  }

  /** `service_account`, `token` or `none`. */
  get kind(): "service_account" | "token" | "none" {
    return this.#key ? "service_account" : this.#token ? "token" : "none";
  }

  /** What must never be reported: the explicit token, the current access token, the key. */
  secrets(): string[] {
    return [this.#token, this.#cached?.token, this.#key?.privateKey].filter((s): s is string =>
      s !== undefined && s !== ""
    );
  }

  /** Forgets the cached access token (the server refused it), so the next request renews it. */
  invalidate(): void {
    this.#cached = undefined;
  }

  /**
   * The `Authorization` header value, or `undefined` without credentials.
   * @throws {GcsAuthError} when the token exchange fails
   */
  async authorization(): Promise<string | undefined> {
    if (this.#token) return `Bearer ${this.#token}`;
    if (!this.#key) return undefined;
    const cached = this.#cached;
    if (cached && cached.until > this.#now()) return `Bearer ${cached.token}`;
    // Concurrent requests share one exchange.
    this.#pending ??= this.#exchange(this.#key).finally(() => {
      this.#pending = undefined;
    });
    return `Bearer ${await this.#pending}`;
  }

  async #exchange(key: ServiceAccountKey): Promise<string> {
    this.#signingKey ??= importRsaPrivateKey(key.privateKey).catch((error) => {
      this.#signingKey = undefined;
      throw new GcsAuthError(`service-account key: ${(error as Error).message}`);
    });
    const signingKey = await this.#signingKey;
    const issued = Math.floor(this.#now() / 1000);
    const assertion = await signJwtRs256(signingKey, {
      iss: key.clientEmail,
      scope: GCS_SCOPE,
      aud: key.tokenUri,
      iat: issued,
      exp: issued + JWT_LIFETIME_S,
    }, key.privateKeyId ? { kid: key.privateKeyId } : {});
    this.#exchanges++;
    const where = `POST ${safeUrl(key.tokenUri)}`;
    let res: Response;
    try {
      res = await this.#fetch(key.tokenUri, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
          assertion,
        }),
        signal: AbortSignal.timeout(30_000),
        route: GCS_TOKEN.template,
        expectedStatus: [],
      });
    } catch (error) {
      throw new GcsAuthError(`${where}: ${(error as Error).message}`);
    }
    const text = await res.text();
    if (res.status !== 200) {
      // OAuth2 errors are `{error, error_description}`; nothing in them is secret.
      let detail = text.slice(0, 500);
      try {
        const body = JSON.parse(text);
        detail = [body.error, body.error_description].filter(Boolean).join(": ") || detail;
      } catch {
        // not JSON: keep the text
      }
      throw new GcsAuthError(`${where}: status ${res.status}${detail ? `: ${detail}` : ""}`);
    }
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      throw new GcsAuthError(`${where}: the answer is not JSON`);
    }
    if (typeof body.access_token !== "string" || body.access_token === "") {
      throw new GcsAuthError(`${where}: the answer has no access_token`);
    }
    const seconds = typeof body.expires_in === "number" ? body.expires_in : JWT_LIFETIME_S;
    this.#cached = {
      token: body.access_token,
      until: this.#now() + Math.max(0, seconds * 1000 - RENEW_BEFORE_MS),
    };
    return body.access_token;
  }
}
