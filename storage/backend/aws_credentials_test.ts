import assert from "node:assert/strict";
import { parseCredentialsFile, resolveAwsCredentials } from "./aws_credentials.ts";

const FILE = `
# comment
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = SKDEFAULT

[profile kraken-user]
aws_access_key_id=AKUSER
aws_secret_access_key=SKUSER
aws_session_token=TOKEN
`;

Deno.test("credentials: auth block, then credentials_file, then AWS_* variables, then the shared file", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const readFile = (path: string) => {
    if (path === "/etc/kraken/creds" || path === "/home/k/.aws/credentials") return FILE;
    throw new Deno.errors.NotFound(path);
  };
  const auth = { "kraken-user": { accessKeyId: "AKAUTH", secretAccessKey: "SKAUTH" } };
  assert.equal(
    resolveAwsCredentials({ username: "kraken-user", auth, env: env({}), readFile }).accessKeyId,
    "AKAUTH",
  );
  assert.deepEqual(
    resolveAwsCredentials({
      username: "kraken-user",
      credentialsFile: "/etc/kraken/creds",
      env: env({}),
      readFile,
    }),
    { accessKeyId: "AKUSER", secretAccessKey: "SKUSER", sessionToken: "TOKEN" },
  );
  assert.equal(
    resolveAwsCredentials({
      env: env({ AWS_ACCESS_KEY_ID: "AKENV", AWS_SECRET_ACCESS_KEY: "SKENV", HOME: "/home/k" }),
      readFile,
    }).accessKeyId,
    "AKENV",
  );
  assert.equal(
    resolveAwsCredentials({ env: env({ HOME: "/home/k" }), readFile }).accessKeyId,
    "AKDEFAULT",
  );
  assert.equal(
    resolveAwsCredentials({ env: env({ HOME: "/home/k", AWS_PROFILE: "kraken-user" }), readFile })
      .accessKeyId,
    "AKUSER",
  );
  assert.throws(
    () => resolveAwsCredentials({ env: env({ HOME: "/nowhere" }), readFile }),
    (e: Error) => /no credentials/.test(e.message) && !/SK/.test(e.message),
  );
  assert.throws(
    () =>
      resolveAwsCredentials({
        credentialsFile: "/etc/kraken/creds",
        username: "nobody",
        env: env({}),
        readFile,
      }),
    /has no profile nobody/,
  );
  assert.equal(parseCredentialsFile(FILE, "missing"), undefined);
});
