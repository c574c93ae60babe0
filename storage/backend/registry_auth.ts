/**
 * Authentication to a Docker Registry v2 as a client, the way docker and upstream Kraken's
 * registry backends do it: a request goes out with whatever authorization is already known for its
 * repository; a 401 carries a `WWW-Authenticate` challenge, which is answered and the request sent
 * once more.
 *
 * - `Basic realm="…"`: the configured username and password.
 * - `Bearer realm="<token url>",service="…",scope="…"`: a token from the realm, asked for with
 *   `service` and the scope (the challenge's, else `repository:<repo>:pull`), authenticated with
 *   the username and password if configured (anonymous otherwise), or, with an identity token, the
 *   OAuth2 refresh-token grant. The answer's `token` (or `access_token`) is cached per scope until
 *   `expires_in` (default 60 s) runs out.
 *
 * Credentials never appear in errors: a token server's refusal is reported with its status and
 * message only.
 *
 * ```ts
 * import { RegistryAuthenticator } from "./registry_auth.ts";
 * const auth = new RegistryAuthenticator({ send, credentials: { username: "u", password: "p" } });
 * const header = auth.cached("library/ubuntu"); // undefined before the first challenge
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../../http/status_error.ts";

/** What the registry backends authenticate with (upstream `security.basic`). */
export interface RegistryCredentials {
  /** User name for basic auth and the token request. */
  username?: string;
  /** Password for basic auth and the token request. */
  password?: string;
  /** OAuth2 refresh token for the token service (docker's identity token). */
  identityToken?: string;
}

/** One `WWW-Authenticate` challenge: its scheme (lower case) and parameters. */
export interface AuthChallenge {
  /** `basic` or `bearer` (others are kept but not answered). */
  scheme: string;
  /** Auth parameters, keys lower case (`realm`, `service`, `scope`, …). */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1): `scheme k=v, k="v"`,
 * several challenges separated by commas.
 */
export function parseChallenges(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const skip = (re: RegExp) => {
    while (i < header.length && re.test(header[i])) i++;
  };
  const token = () => {
    const start = i;
    skip(/[!#$%&'*+.^_`|~0-9A-Za-z-]/);
    return header.slice(start, i);
  };
  while (i < header.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (scheme === "") break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/\s/);
      const mark = i;
      const key = token();
      skip(/\s/);
      if (key === "" || header[i] !== "=") {
        // Not a parameter: the next challenge's scheme (or a token68 we do not need).
        i = mark;
        break;
      }
      i++;
      skip(/\s/);
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < header.length && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < header.length) i++;
          value += header[i++];
        }
        i++;
      } else {
        value = token();
      }
      challenge.params[key.toLowerCase()] = value;
      skip(/\s/);
      if (header[i] !== ",") break;
      i++;
      // A comma ends either this parameter or this challenge: a following `token=` continues it.
      const save = i;
      skip(/\s/);
      token();
      skip(/\s/);
      const continues = header[i] === "=";
      i = save;
      if (!continues) break;
    }
  }
  return challenges;
}

/** A token request, as {@linkcode RegistryAuthenticatorOptions.send} sends it. */
export interface TokenRequest {
  /** `GET` (query parameters) or `POST` (the refresh-token form). */
  method: "GET" | "POST";
  /** The realm with the query. */
  url: string;
  /** Authorization and content type. */
  headers: Headers;
  /** The form body of a `POST`. */
  body?: Uint8Array;
}

/** Options of {@linkcode RegistryAuthenticator}. */
export interface RegistryAuthenticatorOptions {
  /**
   * Sends a token request the way the registry's own requests go (the backend's request layer:
   * its TLS client, idle timeout, retries and redaction). A refusal rejects with the status and
   * the token service's message.
   */
  send: (request: TokenRequest) => Promise<Response>;
  /** Configured credentials (none: anonymous tokens only). */
  credentials?: RegistryCredentials;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
}

/** A registry refused the credentials, or demanded a scheme this client cannot answer. */
export class RegistryAuthError extends Error {
  /** @param message what failed */
  constructor(message: string) {
    super(message);
    this.name = "RegistryAuthError";
  }
}

/** Tokens are used until this long before they expire, so none expires in flight. */
const EXPIRY_MARGIN_MS = 5_000;
/** Lifetime of a token whose answer gives none (the token spec's default). */
const DEFAULT_TOKEN_SECONDS = 60;

/** Answers registry auth challenges and caches what they yield; see the module doc. */
export class RegistryAuthenticator {
  readonly #send: (request: TokenRequest) => Promise<Response>;
  readonly #credentials: RegistryCredentials;
  readonly #now: () => number;
  /** The last challenge seen, so later requests authenticate up front. */
  #challenge: AuthChallenge | undefined;
  readonly #tokens = new Map<string, { header: string; until: number }>();

  /** @param options see {@linkcode RegistryAuthenticatorOptions} */
  constructor(options: RegistryAuthenticatorOptions) {
    this.#send = options.send;
    this.#credentials = options.credentials ?? {};
    this.#now = options.now ?? Date.now;
  }

  #tokenRequests = 0;

  /** Token requests made so far (tests check the cache with it). */
  get tokenRequests(): number {
    return this.#tokenRequests;
  }

  #basicHeader(): string | undefined {
    const { username, password } = this.#credentials;
    if (username === undefined && password === undefined) return undefined;
    const bytes = new TextEncoder().encode(`${username ?? ""}:${password ?? ""}`);
    return `Basic ${btoa(String.fromCharCode(...bytes))}`;
  }

  /** The tokens currently held, for redaction. */
  secrets(): string[] {
    return [...this.#tokens.values()].map((t) => t.header.slice("Bearer ".length));
  }

  /** The `Authorization` value to send for `repo` before any challenge, if one is known. */
  cached(repo: string): string | undefined {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === "basic") return this.#basicHeader();
    const token = this.#tokens.get(scopeFor(challenge, repo));
    return token && token.until > this.#now() ? token.header : undefined;
  }

  /**
   * Answers the 401 `response` got for a request on `repo` (its body is consumed).
   *
   * @returns the `Authorization` value to retry with
   * @throws {RegistryAuthError} when the challenge cannot be answered or the token service refuses
   */
  async answer(repo: string, response: Response): Promise<string> {
    await response.body?.cancel();
    const challenges = parseChallenges(response.headers.get("www-authenticate") ?? "");
    const challenge = challenges.find((c) => c.scheme === "bearer") ??
      challenges.find((c) => c.scheme === "basic");
    if (challenge === undefined) {
      throw new RegistryAuthError(
        `registry answered 401 without a Basic or Bearer challenge (${
          JSON.stringify(response.headers.get("www-authenticate") ?? "")
        })`,
      );
    }
    // The challenge names the scope of this request; a later one on the same repo uses the repo's.
    this.#challenge = { scheme: challenge.scheme, params: { ...challenge.params, scope: "" } };
    if (challenge.scheme === "basic") {
      const header = this.#basicHeader();
      if (header === undefined) {
        throw new RegistryAuthError("registry asks for basic auth and no credentials are set");
      }
      return header;
    }
    return await this.#token(challenge, repo);
  }

  async #token(challenge: AuthChallenge, repo: string): Promise<string> {
    const { realm, service } = challenge.params;
    if (!realm) throw new RegistryAuthError("bearer challenge without a realm");
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryAuthError(`bearer challenge realm is not a URL: ${JSON.stringify(realm)}`);
    }
    const scope = scopeFor(challenge, repo);
    const { identityToken } = this.#credentials;
    const headers = new Headers();
    let body: URLSearchParams | undefined;
    if (identityToken) {
      body = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: identityToken,
        client_id: "kraken",
        scope,
      });
      if (service) body.set("service", service);
    } else {
      if (service) url.searchParams.set("service", service);
      url.searchParams.set("scope", scope);
      url.searchParams.set("client_id", "kraken");
      const basic = this.#basicHeader();
      if (basic) headers.set("authorization", basic);
    }
    const method = body ? "POST" : "GET";
    if (body) headers.set("content-type", "application/x-www-form-urlencoded");
    this.#tokenRequests++;
    const started = this.#now();
    const target = `${url.origin}${url.pathname}`;
    const where = `${method} ${target}`;
    let text: string;
    try {
      const res = await this.#send({
        method,
        url: url.toString(),
        headers,
        body: body ? new TextEncoder().encode(body.toString()) : undefined,
      });
      text = await res.text();
      if (res.status !== 200) {
        throw new HttpStatusError(method, target, res.status, text);
      }
    } catch (error) {
      // Refused (the status and the service's message) or unreachable: the auth failed.
      throw new RegistryAuthError((error as Error).message);
    }
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      answer = JSON.parse(text);
    } catch {
      throw new RegistryAuthError(`${where}: token answer is not JSON`);
    }
    const token = typeof answer.token === "string" && answer.token !== ""
      ? answer.token
      : answer.access_token;
    if (typeof token !== "string" || token === "") {
      throw new RegistryAuthError(`${where}: token answer has no token`);
    }
    const seconds = typeof answer.expires_in === "number" && answer.expires_in > 0
      ? answer.expires_in
      : DEFAULT_TOKEN_SECONDS;
    const header = `Bearer ${token}`;
    this.#tokens.set(scope, { header, until: started + seconds * 1000 - EXPIRY_MARGIN_MS });
    return header;
  }
}

/** The token scope for a request on `repo`: the challenge's, else pull on the repository. */
function scopeFor(challenge: AuthChallenge, repo: string): string {
  return challenge.params.scope || `repository:${repo}:pull`;
}
