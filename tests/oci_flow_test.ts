/**
 * OCI 1.1 end to end with real processes (testfs, two origins, build-index, proxy, tracker, two
 * agents): an artifact with a `subject` pushed through the proxy is listed by an agent's referrers
 * API from build-index records; Range GETs of a multi-piece blob and `skopeo inspect` against agent
 * processes.
 */

import assert from "node:assert/strict";
import { startDownloadCluster } from "./harness/cluster.ts";
import { makeArtifact, makeImage, pushImage, randomBytes } from "./harness/oci.ts";
import { OCI_MANIFEST } from "../registry/manifest.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";

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
