// Unit tests of the registry backends against an in-process stand-in registry (the real
// reference registry is exercised by tests/registry_backend_flow_test.ts).

import assert from "node:assert/strict";
import { digestOfBytes } from "../digest.ts";
import { ReadOnlyBackendError } from "./backend.ts";
import { RegistryBlobBackend, RegistryTagBackend, splitTagName } from "./registry.ts";
import { parseChallenges, RegistryAuthError } from "./registry_auth.ts";

const enc = new TextEncoder();
const LAYER = enc.encode("layer bytes");
const MANIFEST = enc.encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: `sha256:${"c".repeat(64)}`,
    size: 2,
  },
  layers: [],
}));

interface StandIn {
  address: string;
  requests: { method: string; path: string; authorization: string | null; accept: string | null }[];
  tokenRequests: URL[];
  close(): Promise<void>;
}

/**
 * A registry holding one repo `team/app` with a layer blob and a manifest (kept apart from blobs,
 * as distribution does), tag `v1`. `auth` picks the challenge; the token service lives at /token.
 */
async function startStandIn(
  auth: "none" | "basic" | "bearer",
  options: { expiresIn?: number; tokenFailures?: number } = {},
): Promise<StandIn> {
  const layerHex = (await digestOfBytes(LAYER)).hex;
  const manifestHex = (await digestOfBytes(MANIFEST)).hex;
  const requests: StandIn["requests"] = [];
  const tokenRequests: URL[] = [];
  const basic = `Basic ${btoa("alice:s3cret")}`;
  let tokenFailures = options.tokenFailures ?? 0;
  let address = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/token") {
      tokenRequests.push(url);
      if (tokenFailures-- > 0) return new Response("token service restarting", { status: 503 });
      if (req.headers.get("authorization") !== basic) {
        return Response.json({ details: "bad credentials" }, { status: 401 });
      }
      return Response.json({
        token: `tok-${url.searchParams.get("scope")}`,
        expires_in: options.expiresIn ?? 300,
      });
    }
    requests.push({
      method: req.method,
      path: url.pathname,
      authorization: req.headers.get("authorization"),
      accept: req.headers.get("accept"),
    });
    const authz = req.headers.get("authorization");
    if (auth === "basic" && authz !== basic) {
      return new Response("unauthorized", {
        status: 401,
        headers: { "www-authenticate": 'Basic realm="Registry Realm"' },
      });
    }
    if (auth === "bearer" && authz !== "Bearer tok-repository:team/app:pull") {
      const scope = url.pathname === "/v2/" ? "" : ',scope="repository:team/app:pull"';
      return new Response("unauthorized", {
        status: 401,
        headers: {
          "www-authenticate": `Bearer realm="http://${address}/token",service="standin"${scope}`,
        },
      });
    }
    const body = (bytes: Uint8Array<ArrayBuffer>, type: string) =>
      new Response(req.method === "HEAD" ? null : bytes, {
        headers: { "content-type": type, "content-length": String(bytes.length) },
      });
    switch (url.pathname) {
      case `/v2/team/app/blobs/sha256:${layerHex}`:
        return body(LAYER, "application/octet-stream");
      case `/v2/team/app/manifests/sha256:${manifestHex}`:
      case "/v2/team/app/manifests/v1":
        return body(MANIFEST, "application/vnd.oci.image.manifest.v1+json");
      case "/v2/team/app/manifests/broken":
        return body(enc.encode('{"schemaVersion":1}'), "application/json");
      case "/v2/team/app/manifests/fails":
        return new Response("storage driver down", { status: 503 });
    }
    return new Response('{"errors":[{"code":"BLOB_UNKNOWN"}]}', { status: 404 });
  });
  address = `127.0.0.1:${server.addr.port}`;
  return { address, requests, tokenRequests, close: () => server.shutdown() };
}

const insecure = { tls: { disabled: true } };
/** Quick retries, so a test of a failing registry does not wait for real backoff. */
const retry = { attempts: 2, initialMs: 1, maxMs: 2 };
const alice = { username: "alice", password: "s3cret" };

async function text(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  assert.ok(stream);
  return await new Response(stream).text();
}

Deno.test("parseChallenges: bearer params, quoted commas, several challenges", () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://a/token",service="reg",scope="repository:x/y:pull,push"',
    ),
    [{
      scheme: "bearer",
      params: { realm: "https://a/token", service: "reg", scope: "repository:x/y:pull,push" },
    }],
  );
  assert.deepEqual(parseChallenges('Basic realm="r", Bearer realm=x'), [
    { scheme: "basic", params: { realm: "r" } },
    { scheme: "bearer", params: { realm: "x" } },
  ]);
  assert.deepEqual(parseChallenges(""), []);
});

Deno.test("splitTagName: repo:tag only", () => {
  assert.deepEqual(splitTagName("team/app:v1"), { repo: "team/app", tag: "v1" });
  assert.throws(() => splitTagName("team/app"), /must be repo:tag/);
  assert.throws(() => splitTagName("host:5000/app:v1"), /must be repo:tag/);
  assert.throws(() => splitTagName("../x:v1"), /repository name/);
});

Deno.test("registry_blob: layer by blob route, manifest through the manifest fallback", async () => {
  const reg = await startStandIn("none");
  try {
    const backend = new RegistryBlobBackend({ address: reg.address, security: insecure });
    assert.equal(backend.type, "registry_blob");
    assert.equal(backend.bucket, reg.address);
    const layerHex = (await digestOfBytes(LAYER)).hex;
    const manifestHex = (await digestOfBytes(MANIFEST)).hex;
    assert.deepEqual(await backend.stat("team/app", layerHex), { size: LAYER.length });
    assert.equal(await text(await backend.download("team/app", layerHex)), "layer bytes");
    assert.deepEqual(await backend.stat("team/app", manifestHex), { size: MANIFEST.length });
    assert.deepEqual(
      await new Response(await backend.download("team/app", manifestHex)).bytes(),
      MANIFEST,
    );
    assert.equal(await backend.stat("team/app", "0".repeat(64)), null);
    assert.equal(await backend.download("team/app", "0".repeat(64)), null);
    // The manifest fallback asks for the schema-2 types.
    const fallback = reg.requests.find((r) => r.path.includes("/manifests/"));
    assert.match(fallback?.accept ?? "", /application\/vnd\.oci\.image\.index\.v1\+json/);
    await assert.rejects(() => backend.stat("Team/../x", layerHex), /repository name/);
    await assert.rejects(() => backend.stat("team/app", "xyz"), /sha256 hex/);
    await assert.rejects(
      () => backend.upload("team/app", layerHex, LAYER),
      (e) => e instanceof ReadOnlyBackendError,
    );
    await assert.rejects(() => backend.list(""), /cannot list/);
  } finally {
    await reg.close();
  }
});

Deno.test("registry_tag: HEAD gives the manifest size, GET the manifest's digest", async () => {
  const reg = await startStandIn("none");
  try {
    const backend = new RegistryTagBackend({ address: reg.address, security: insecure, retry });
    assert.deepEqual(await backend.stat("team/app:v1", "team/app:v1"), { size: MANIFEST.length });
    const digest = await digestOfBytes(MANIFEST);
    assert.equal(await text(await backend.download("", "team/app:v1")), digest.toString());
    assert.equal(await backend.stat("", "team/app:nope"), null);
    assert.equal(await backend.download("", "team/app:nope"), null);
    await assert.rejects(() => backend.download("", "team/app:broken"), /schema/i);
    await assert.rejects(
      () => backend.download("", "team/app:fails"),
      /status 503: storage driver down/,
    );
    // A 5xx is retried (through transport.ts), then fails with the registry's message.
    assert.equal(reg.requests.filter((r) => r.path.endsWith("/fails")).length, 2);
    assert.equal(backend.stats.retries, 1);
    for (const r of reg.requests) {
      assert.equal(
        r.accept,
        "application/vnd.docker.distribution.manifest.v2+json," +
          "application/vnd.docker.distribution.manifest.list.v2+json," +
          "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json",
      );
    }
  } finally {
    await reg.close();
  }
});

Deno.test("registry: basic challenge answered, then sent up front", async () => {
  const reg = await startStandIn("basic");
  try {
    const backend = new RegistryTagBackend({
      address: reg.address,
      security: { ...insecure, basic: alice },
    });
    assert.ok(await backend.stat("", "team/app:v1"));
    assert.ok(await backend.stat("", "team/app:v1"));
    // First request challenged, retried with credentials; the second authenticated at once.
    assert.deepEqual(reg.requests.map((r) => r.authorization !== null), [false, true, true]);
    const anonymous = new RegistryTagBackend({ address: reg.address, security: insecure });
    await assert.rejects(() => anonymous.stat("", "team/app:v1"), RegistryAuthError);
    const wrong = new RegistryTagBackend({
      address: reg.address,
      security: { ...insecure, basic: { username: "alice", password: "nope-pw" } },
    });
    await assert.rejects(
      () => wrong.stat("", "team/app:v1"),
      (e: Error) => /status 401/.test(e.message) && !e.message.includes("nope-pw"),
    );
  } finally {
    await reg.close();
  }
});

Deno.test("registry: bearer challenge → token with scope and credentials, cached", async () => {
  const reg = await startStandIn("bearer");
  try {
    const backend = new RegistryBlobBackend({
      address: reg.address,
      security: { ...insecure, basic: alice },
    });
    const layerHex = (await digestOfBytes(LAYER)).hex;
    assert.equal(await text(await backend.download("team/app", layerHex)), "layer bytes");
    assert.ok(await backend.stat("team/app", layerHex));
    assert.equal(reg.tokenRequests.length, 1);
    assert.equal(backend.tokenRequests, 1);
    const token = reg.tokenRequests[0];
    assert.equal(token.searchParams.get("service"), "standin");
    assert.equal(token.searchParams.get("scope"), "repository:team/app:pull");
    assert.deepEqual(
      reg.requests.map((r) => r.authorization),
      [null, "Bearer tok-repository:team/app:pull", "Bearer tok-repository:team/app:pull"],
    );
    // Refused credentials: the token service's message, never the password.
    const wrong = new RegistryBlobBackend({
      address: reg.address,
      security: { ...insecure, basic: { username: "alice", password: "hunter2" } },
    });
    await assert.rejects(
      () => wrong.stat("team/app", layerHex),
      (e) =>
        e instanceof RegistryAuthError && /status 401/.test(e.message) &&
        /bad credentials/.test(e.message) && !e.message.includes("hunter2"),
    );
  } finally {
    await reg.close();
  }
});

Deno.test("registry: a token service answering 503 is retried like the registry's requests", async () => {
  const reg = await startStandIn("bearer", { tokenFailures: 2 });
  try {
    const backend = new RegistryBlobBackend({
      address: reg.address,
      security: { ...insecure, basic: alice },
      retry: { attempts: 3, initialMs: 1, maxMs: 2 },
    });
    const layerHex = (await digestOfBytes(LAYER)).hex;
    assert.ok(await backend.stat("team/app", layerHex));
    assert.equal(reg.tokenRequests.length, 3);
    assert.equal(backend.stats.retries, 2);
  } finally {
    await reg.close();
  }
});

Deno.test("registry: an expired token is fetched again", async () => {
  const reg = await startStandIn("bearer", { expiresIn: 1 });
  try {
    const backend = new RegistryTagBackend({
      address: reg.address,
      security: { ...insecure, basic: alice },
    });
    assert.ok(await backend.stat("", "team/app:v1"));
    assert.ok(await backend.stat("", "team/app:v1"));
    // expires_in 1 s is inside the safety margin: every request needs a fresh token.
    assert.equal(reg.tokenRequests.length, 2);
  } finally {
    await reg.close();
  }
});

Deno.test("registry: https by default, http fallback only when enabled", async () => {
  const reg = await startStandIn("none");
  try {
    const strict = new RegistryTagBackend({ address: reg.address, retry });
    await assert.rejects(() => strict.stat("", "team/app:v1"));
    const fallback = new RegistryTagBackend({
      address: reg.address,
      security: { enableHTTPFallback: true },
    });
    assert.deepEqual(await fallback.stat("", "team/app:v1"), { size: MANIFEST.length });
  } finally {
    await reg.close();
  }
});
