/**
 * Where the `s3` backend's credentials come from, first match wins:
 *
 * 1. the role config's `auth.s3.<username>.s3` block (upstream's shape:
 *    `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`), when `username` is set;
 * 2. the entry's `credentials_file` (an AWS shared-credentials INI file), profile `username`, else
 *    `AWS_PROFILE`, else `default`;
 * 3. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
 * 4. `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, with the same profile rule.
 *
 * Errors name where credentials were looked for, never a key or secret.
 *
 * @module
 */

import type { AwsCredentials } from "./sigv4.ts";

/** Inputs of {@linkcode resolveAwsCredentials}. */
export interface AwsCredentialSources {
  /** The entry's `username` (selects the `auth` block and the profile). */
  username?: string;
  /** `auth.s3` of the role config: username → credentials. */
  auth?: Record<string, AwsCredentials>;
  /** The entry's `credentials_file`. */
  credentialsFile?: string;
  /** Environment lookup (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** Reads a file (default `Deno.readTextFileSync`). */
  readFile?: (path: string) => string;
}

/** The profile `profile` of an AWS shared-credentials file, or `undefined` when absent. */
export function parseCredentialsFile(text: string, profile: string): AwsCredentials | undefined {
  let current = "";
  const values: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (section) {
      current = section[1];
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (kv && current === profile) values[kv[1].toLowerCase()] = kv[2].trim();
  }
  if (!values.aws_access_key_id || !values.aws_secret_access_key) return undefined;
  return {
    accessKeyId: values.aws_access_key_id,
    secretAccessKey: values.aws_secret_access_key,
    sessionToken: values.aws_session_token || undefined,
  };
}

/**
 * Picks the credentials of an `s3` entry (see the module doc).
 * @throws {Error} naming the places looked at when none has credentials
 */
export function resolveAwsCredentials(sources: AwsCredentialSources): AwsCredentials {
  const env = sources.env ?? ((name: string) => Deno.env.get(name));
  const readFile = sources.readFile ?? ((path: string) => Deno.readTextFileSync(path));
  const profile = sources.username || env("AWS_PROFILE") || "default";
  if (sources.username && sources.auth?.[sources.username]) return sources.auth[sources.username];
  const fromFile = (path: string, required: boolean) => {
    let text: string;
    try {
      text = readFile(path);
    } catch (error) {
      if (!required && error instanceof Deno.errors.NotFound) return undefined;
      throw new Error(`s3: cannot read credentials file ${path}: ${(error as Error).message}`);
    }
    const found = parseCredentialsFile(text, profile);
    if (!found && required) {
      throw new Error(`s3: credentials file ${path} has no profile ${profile} with keys`);
    }
    return found;
  };
  if (sources.credentialsFile) return fromFile(sources.credentialsFile, true)!;
  const id = env("AWS_ACCESS_KEY_ID");
  const secret = env("AWS_SECRET_ACCESS_KEY");
  if (id && secret) {
    return { accessKeyId: id, secretAccessKey: secret, sessionToken: env("AWS_SESSION_TOKEN") };
  }
  const shared = env("AWS_SHARED_CREDENTIALS_FILE") ??
    (env("HOME") ? `${env("HOME")}/.aws/credentials` : undefined);
  const found = shared
    ? fromFile(shared, env("AWS_SHARED_CREDENTIALS_FILE") !== undefined)
    : undefined;
  if (found) return found;
  throw new Error(
    `s3: no credentials: ${sources.username ? `no auth.s3.${sources.username} block, ` : ""}` +
      `no credentials_file, no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, no profile ${profile} in ` +
      `${shared ?? "~/.aws/credentials"}`,
  );
}
