/**
 * OCI 1.1 end to end with real processes (testfs, two origins, build-index, proxy, tracker, two
 * agents): an artifact with a `subject` pushed through the proxy is listed by an agent's referrers
 * API from build-index records; Range GETs of a multi-piece blob and `skopeo inspect` against agent
 * processes; and the real oras CLI: `oras attach` of an SBOM-like artifact through the proxy,
 * `oras discover` through one agent and `oras pull` through the other, byte for byte.
 */

import assert from "node:assert/strict";
import { startDownloadCluster } from "./harness/cluster.ts";
import { makeArtifact, makeImage, pushImage, randomBytes, writeOciLayout } from "./harness/oci.ts";
import { oras } from "./harness/oras.ts";
import { OCI_MANIFEST } from "../registry/manifest.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";

/** Every `digest` anywhere in an `oras discover --format json` document (its shape varies). */
function digestsIn(doc: unknown): string[] {
  if (Array.isArray(doc)) return doc.flatMap(digestsIn);
  if (typeof doc !== "object" || doc === null) return [];
  return Object.entries(doc).flatMap(([k, v]) =>
    k === "digest" && typeof v === "string" ? [v] : digestsIn(v)
  );
}

Deno.test("oci: referrers, ranges and tag lists through real agent processes", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-oci-" });
  try {
    const cluster = await startDownloadCluster({ dir, group });
    const image = await makeImage({ layers: 1, layerSize: 300 * 1024 });
    const proxy = `http://${cluster.proxy.addr}`;
    await pushImage(proxy, "demo/app", "v1", image);
    const signature = await makeArtifact({
      subject: image.manifest,
      configMediaType: "application/vnd.example.signature.v1+json",
      payload: randomBytes(100),
    });
    await pushImage(proxy, "demo/app", signature.manifest.digest.toString(), signature);

    const agent = `http://${cluster.agents[0].registry}/v2/demo/app`;
    const res = await fetch(`${agent}/referrers/${image.manifest.digest}`);
    assert.equal(res.status, 200);
    const index = await res.json();
    assert.deepEqual(index.manifests, [{
      mediaType: OCI_MANIFEST,
      digest: signature.manifest.digest.toString(),
      size: signature.manifest.bytes.length,
      artifactType: "application/vnd.example.signature.v1+json",
    }]);
    assert.deepEqual(await (await fetch(`${agent}/tags/list`)).json(), {
      name: "demo/app",
      tags: ["v1"],
    });

    // The layer has several 64 KB pieces; a range starting mid-piece and crossing pieces.
    const layer = image.layers[0];
    const ranged = await fetch(`${agent}/blobs/${layer.digest}`, {
      headers: { range: "bytes=100000-200000" },
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 100000-200000/${layer.bytes.length}`);
    assert.deepEqual(
      new Uint8Array(await ranged.arrayBuffer()),
      layer.bytes.slice(100_000, 200_001),
    );
    const past = await fetch(`${agent}/blobs/${layer.digest}`, {
      headers: { range: `bytes=${layer.bytes.length}-` },
    });
    assert.equal(past.status, 416);
    assert.equal((await past.json()).errors[0].code, "RANGE_INVALID");

    // skopeo inspect (config and tag list) against the agent process.
    const inspected = JSON.parse(
      await skopeo([
        "inspect",
        "--tls-verify=false",
        `docker://${cluster.agents[1].registry}/demo/app:v1`,
      ], { home: dir }),
    );
    assert.equal(inspected.Digest, image.manifest.digest.toString());
    assert.deepEqual(inspected.RepoTags, ["v1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("oci: oras attaches through the proxy, discovers and pulls through agents", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-oci-" });
  try {
    const cluster = await startDownloadCluster({ dir, group });
    const image = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}/image:latest`,
      `docker://${cluster.proxy.addr}/demo/app:v1`,
    ], { home: dir });

    const work = `${dir}/work`;
    await Deno.mkdir(work);
    const sbom = JSON.stringify({ spdxVersion: "SPDX-2.3", name: "demo/app", packages: [] });
    await Deno.writeTextFile(`${work}/sbom.spdx.json`, sbom);
    const attached = JSON.parse(
      await oras([
        "attach",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        "application/spdx+json",
        "--annotation",
        "org.example.kind=sbom",
        `${cluster.proxy.addr}/demo/app:v1`,
        "sbom.spdx.json:application/spdx+json",
      ], { home: dir, cwd: work }),
    );
    const sbomDigest: string = attached.digest;
    assert.match(sbomDigest, /^sha256:[0-9a-f]{64}$/);
    // oras saw OCI-Subject, so it made no referrers-tag-schema fallback tag (`sha256-<hex>`).
    const tags = await (await fetch(`http://${cluster.proxy.addr}/v2/demo/app/tags/list`)).json();
    assert.deepEqual(tags.tags, ["v1"]);

    // Discover through agent 1: the referrers API answers from build-index records.
    const discovered = JSON.parse(
      await oras([
        "discover",
        "--plain-http",
        "--format",
        "json",
        `${cluster.agents[0].registry}/demo/app:v1`,
      ], { home: dir }),
    );
    assert.ok(
      digestsIn(discovered).includes(sbomDigest),
      `discover lists the SBOM: ${JSON.stringify(discovered)}`,
    );
    const filtered = await fetch(
      `http://${cluster.agents[0].registry}/v2/demo/app/referrers/${image.manifest.digest}` +
        "?artifactType=application/spdx%2Bjson",
    );
    assert.equal(filtered.headers.get("oci-filters-applied"), "artifactType");
    const index = await filtered.json();
    assert.deepEqual(index.manifests.map((m: { digest: string }) => m.digest), [sbomDigest]);
    assert.equal(index.manifests[0].artifactType, "application/spdx+json");
    assert.equal(index.manifests[0].annotations["org.example.kind"], "sbom");

    // Pull the artifact through agent 2, byte for byte.
    const out = `${dir}/pulled`;
    await Deno.mkdir(out);
    await oras([
      "pull",
      "--plain-http",
      "-o",
      out,
      `${cluster.agents[1].registry}/demo/app@${sbomDigest}`,
    ], { home: dir });
    assert.equal(await Deno.readTextFile(`${out}/sbom.spdx.json`), sbom);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
