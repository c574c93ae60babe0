/**
 * The read-only backends end to end (issue 10): an image that only a foreign store holds pulls
 * through a Kraken agent whose cold origins read it from that store.
 *
 * - `http`: the blobs are files served by a real HTTP server process (Python's `http.server`), the
 *   origins' `download_url` points into it; the tag is in the build-index's testfs backend.
 * - `registry_blob` / `registry_tag`: skopeo pushes the image to the reference registry
 *   (distribution v3) with auth on, basic (htpasswd) and bearer (a token server of the harness);
 *   origins and build-index read from it.
 *
 * Each pull gives the image's digests, and one pull trace in Jaeger holds the origin's
 * `backend.download` of a layer with the backend's type and address.
 */

import assert from "node:assert/strict";
import { startDownloadCluster } from "./harness/cluster.ts";
import { waitForBackendDownloadTrace } from "./harness/backend_traces.ts";
import { type JaegerInstance, startJaeger } from "./harness/jaeger.ts";
import { type Image, makeImage, writeOciLayout } from "./harness/oci.ts";
import { freePort, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { createTestCa } from "./harness/certs.ts";
import { type RegistryAuthMode, startRegistry } from "./harness/registry.ts";
import { skopeo } from "./harness/skopeo.ts";
import { formatTree } from "./harness/trace_tree.ts";
import { ATTR } from "../tracing/names.ts";
import { RegistryBlobBackend, RegistryTagBackend } from "../storage/backend/registry.ts";

/** Pulls `ref` from the agent's registry into an OCI layout and checks every digest. */
async function pullAndCheck(agentRegistry: string, ref: string, image: Image, dir: string) {
  await skopeo([
    "copy",
    "--src-tls-verify=false",
    `docker://${agentRegistry}/${ref}`,
    `oci:${dir}:pulled`,
  ]);
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const manifestDigest = index.manifests[0].digest;
  const manifest = JSON.parse(
    await Deno.readTextFile(`${dir}/blobs/sha256/${manifestDigest.slice(7)}`),
  );
  assert.equal(manifest.config.digest, image.config.digest.toString());
  assert.deepEqual(
    manifest.layers.map((l: { digest: string }) => l.digest),
    image.layers.map((l) => l.digest.toString()),
  );
  for (const blob of [...image.layers, image.config]) {
    assert.deepEqual(await Deno.readFile(`${dir}/blobs/sha256/${blob.digest.hex}`), blob.bytes);
  }
  return manifestDigest as string;
}

/** Waits for the agent's pull trace in which an origin downloaded `layer` from the backend. */
async function assertBackendDownloadTrace(
  jaeger: JaegerInstance,
  layer: string,
  attrs: { type: string; bucket: string },
) {
  const { trace, span } = await waitForBackendDownloadTrace(jaeger, layer);
  assert.equal(span.attributes[ATTR.backendType], attrs.type, formatTree(trace));
  assert.equal(span.attributes[ATTR.bucket], attrs.bucket, formatTree(trace));
  assert.equal(span.status === "error", false, formatTree(trace));
}

Deno.test("http backend: cold origins read an image from a real HTTP server; one pull trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-http-backend-" });
  try {
    // The foreign store: a plain file server over a directory of blobs named by digest hex.
    const image = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    const served = `${dir}/served`;
    await Deno.mkdir(`${served}/blobs`, { recursive: true });
    for (const blob of [image.manifest, image.config, ...image.layers]) {
      await Deno.writeFile(`${served}/blobs/${blob.digest.hex}`, blob.bytes);
    }
    const httpPort = freePort();
    const server = group.spawn(
      "python3",
      ["-m", "http.server", String(httpPort), "--bind", "127.0.0.1", "--directory", served],
      { name: "http.server", logFile: `${dir}/http-server.log` },
    );
    await waitForHttp(`http://127.0.0.1:${httpPort}/`, { process: server });

    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      agents: 1,
      originBackend: () => ({
        http: { download_url: `http://127.0.0.1:${httpPort}/blobs/%s` },
      }),
    });
    // The tag is in the build-index's testfs backend, in the registry layout.
    await cluster.putTestfsTag("demo/app", "v1", image.manifest.digest.toString());
    const manifestDigest = await pullAndCheck(
      cluster.agents[0].registry,
      "demo/app:v1",
      image,
      `${dir}/pulled`,
    );
    assert.equal(manifestDigest, image.manifest.digest.toString());
    await assertBackendDownloadTrace(jaeger, image.layers[0].digest.toString(), {
      type: "http",
      bucket: `127.0.0.1:${httpPort}`,
    });
    // Every blob came from the file server.
    const log = await Deno.readTextFile(`${dir}/http-server.log`);
    for (const blob of [image.manifest, image.config, ...image.layers]) {
      assert.match(log, new RegExp(`"GET /blobs/${blob.digest.hex} HTTP/1.1" 200`));
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** Pushes an image to the reference registry (auth `mode`) and pulls it through an agent. */
async function registryPullThrough(mode: RegistryAuthMode) {
  await using jaeger = await startJaeger();
  await using registry = await startRegistry({ auth: mode, users: { kraken: "kraken-secret" } });
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: `kraken-registry-backend-${mode}-` });
  try {
    const image = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      "--dest-creds=kraken:kraken-secret",
      `oci:${dir}/image:latest`,
      `docker://${registry.addr}/demo/app:v1`,
    ]);
    // As YAML (the roles' config) and as the backends' constructor options (resolved).
    const security = {
      tls: { client: { disabled: true } },
      basic: { username: "kraken", password: "kraken-secret" },
    };
    const plainHttp = { ...security, tls: { disabled: true } };

    // The registry enforces auth: wrong credentials are refused, with the registry's answer.
    const wrong = new RegistryTagBackend({
      address: registry.addr,
      security: { ...plainHttp, basic: { username: "kraken", password: "wrong" } },
    });
    await assert.rejects(() => wrong.stat("", "demo/app:v1"), /401/);
    const right = new RegistryBlobBackend({ address: registry.addr, security: plainHttp });
    assert.deepEqual(await right.stat("demo/app", image.layers[0].digest.hex), {
      size: image.layers[0].bytes.length,
    });

    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      agents: 1,
      originBackend: () => ({ registry_blob: { address: registry.addr, security } }),
      buildIndexBackend: () => ({ registry_tag: { address: registry.addr, security } }),
    });
    const manifestDigest = await pullAndCheck(
      cluster.agents[0].registry,
      "demo/app:v1",
      image,
      `${dir}/pulled`,
    );
    assert.equal(manifestDigest, image.manifest.digest.toString());
    await assertBackendDownloadTrace(jaeger, image.layers[0].digest.toString(), {
      type: "registry_blob",
      bucket: registry.addr,
    });
    if (mode === "bearer") {
      // Kraken asked the token server for pull only, as the configured user.
      const pulls = registry.tokenRequests.filter((r) =>
        r.scopes.length === 1 && r.scopes[0] === "repository:demo/app:pull"
      );
      // Tokens were granted to the configured user; the one refusal is the wrong password above.
      assert.ok(
        pulls.some((r) => r.user === "kraken" && r.status === 200),
        JSON.stringify(registry.tokenRequests),
      );
      assert.equal(pulls.filter((r) => r.status !== 200).length, 1);
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("registry backends: basic auth (htpasswd) — an image pushed to the registry pulls through an agent", () =>
  registryPullThrough("basic"));

Deno.test("registry backends: bearer tokens — an image pushed to the registry pulls through an agent", () =>
  registryPullThrough("bearer"));

Deno.test("registry backends over TLS: security.tls.cas verifies the registry, another CA is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-registry-tls-" });
  try {
    const ca = await createTestCa(`${dir}/ca`);
    const other = await createTestCa(`${dir}/other`, "other-ca");
    const cert = await ca.issue("registry");
    await using registry = await startRegistry({
      auth: "basic",
      users: { kraken: "kraken-secret" },
      tls: { cert: cert.cert, key: cert.key, ca: ca.cert },
    });
    const image = await makeImage({ layers: 1, layerSize: 64 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    const certDir = `${dir}/skopeo-certs`;
    await Deno.mkdir(certDir);
    await Deno.copyFile(ca.cert, `${certDir}/ca.crt`);
    await skopeo([
      "copy",
      `--dest-cert-dir=${certDir}`,
      "--dest-creds=kraken:kraken-secret",
      `oci:${dir}/image:latest`,
      `docker://${registry.addr}/demo/app:v1`,
    ]);
    const basic = { username: "kraken", password: "kraken-secret" };
    const trusting = { tls: { disabled: false, client: { cas: [ca.cert] } }, basic };
    const blobs = new RegistryBlobBackend({ address: registry.addr, security: trusting });
    const layer = image.layers[0];
    assert.deepEqual(await blobs.stat("demo/app", layer.digest.hex), { size: layer.bytes.length });
    assert.deepEqual(
      await new Response(await blobs.download("demo/app", layer.digest.hex)).bytes(),
      layer.bytes,
    );
    const tags = new RegistryTagBackend({ address: registry.addr, security: trusting });
    assert.equal(
      await new Response(await tags.download("", "demo/app:v1")).text(),
      image.manifest.digest.toString(),
    );
    // The registry's certificate does not verify against another CA, nor against the system
    // roots alone: refused at the handshake, nothing sent.
    for (const client of [{ cas: [other.cert] }, undefined]) {
      const refused = new RegistryTagBackend({
        address: registry.addr,
        security: { tls: { disabled: false, client }, basic },
        retry: { attempts: 1 },
      });
      await assert.rejects(() => refused.stat("", "demo/app:v1"), (e: Error) => {
        // Deno's fetch (no TLS settings) puts the reason in the cause.
        const text = `${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
        assert.match(text, /certificate|issuer/i);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
