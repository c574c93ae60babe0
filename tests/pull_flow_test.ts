/**
 * The download path end to end (issue: a `docker pull` is one trace in Jaeger): real processes for
 * testfs, two origins, build-index, proxy, tracker and two agents; skopeo pushes an image through the
 * proxy and pulls it back from the agents' registries; a real Jaeger receives the spans.
 */

import assert from "node:assert/strict";
import { startDownloadCluster } from "./harness/cluster.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { makeImage, writeOciLayout } from "./harness/oci.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import { assertTree, findSpans, formatTree, type TraceTree } from "./harness/trace_tree.ts";
import { waitFor, type WaitForOptions } from "./harness/wait.ts";
import { ATTR, SPAN } from "../tracing/names.ts";

/** Traces arrive in exporter batches from several processes: poll Jaeger gently, for a while. */
const JAEGER_WAIT: WaitForOptions = { timeoutMs: 20_000, intervalMs: 200 };

Deno.test("pull: skopeo pulls through an agent; one trace per pull; P2P between agents", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-pull-" });
  try {
    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
    });
    const image = await makeImage({ layers: 3, layerSize: 1024 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}/image:latest`,
      `docker://${cluster.proxy.addr}/demo/app:v1`,
    ]);

    // Agent 1 pulls the image by tag.
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      `docker://${cluster.agents[0].registry}/demo/app:v1`,
      `oci:${dir}/pulled1:v1`,
    ]);
    const index = JSON.parse(await Deno.readTextFile(`${dir}/pulled1/index.json`));
    assert.equal(index.manifests[0].digest, image.manifest.digest.toString());
    for (const blob of [...image.layers, image.config]) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/pulled1/blobs/sha256/${blob.digest.hex}`),
        blob.bytes,
      );
    }
    // Agent 2 pulls the same image after agent 1 completed and announced it.
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      `docker://${cluster.agents[1].registry}/demo/app:v1`,
      `oci:${dir}/pulled2:v1`,
    ]);
    for (const blob of image.layers) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/pulled2/blobs/sha256/${blob.digest.hex}`),
        blob.bytes,
      );
    }

    // One trace per blob pull, with the tracker inside it.
    const layer = image.layers[0].digest.toString();
    const pulls = await waitFor("agent pull traces", async () => {
      const traces = await jaeger.findTraces({
        service: "kraken-agent",
        operation: SPAN.schedulerDownload,
        limit: 100,
      });
      return traces.length >= 8 ? traces : undefined;
    }, JAEGER_WAIT);
    const first = pulls.find((t) =>
      findSpans(t, (s) => s.name === SPAN.schedulerDownload && s.attributes.digest === layer)
        .some((s) => s.resource["process.pid"] === cluster.agents[0].process.pid)
    ) as TraceTree;
    assert.ok(first, "no pull trace for the first layer on agent 1");
    const assertPullTree = (tree: TraceTree): void => {
      assertTree(tree, {
        name: "GET /v2/{name+}/blobs/{digest}",
        service: "kraken-agent",
        kind: "server",
        attrs: { [ATTR.edge]: true, "http.response.status_code": 200 },
        children: [{
          name: SPAN.agentDownloadBlob,
          attrs: { digest: layer, namespace: "demo/app" },
          children: [
            { name: SPAN.agentCacheLookup },
            {
              name: SPAN.schedulerDownload,
              attrs: {
                [ATTR.torrentSize]: image.layers[0].bytes.length,
                [ATTR.torrentInfohash]: /^[0-9a-f]{40}$/,
                [ATTR.p2pPiecesTotal]: (v) => typeof v === "number" && v > 1,
              },
              children: [
                {
                  name: SPAN.metainfoRequest,
                  children: [{
                    name: "GET /namespace/{namespace}/blobs/{digest}/metainfo",
                    kind: "client",
                    children: [{
                      name: "GET /namespace/{namespace}/blobs/{digest}/metainfo",
                      service: "kraken-tracker",
                      kind: "server",
                    }],
                  }],
                },
                { name: SPAN.storageCreateTorrent },
                {
                  name: SPAN.announceRequest,
                  children: [{
                    name: "POST /announce/{infohash}",
                    kind: "client",
                    children: [{
                      name: "POST /announce/{infohash}",
                      service: "kraken-tracker",
                      children: [{
                        name: SPAN.trackerAnnounce,
                        service: "kraken-tracker",
                        children: [{ name: SPAN.peerstoreGetPeers }, {
                          name: SPAN.policySortPeers,
                        }],
                      }],
                    }],
                  }],
                },
                { name: SPAN.storageCommit, attrs: { verified: true } },
              ],
            },
            { name: SPAN.agentStreamResponse },
          ],
        }],
      });
    };
    // Spans reach Jaeger in batches from three processes: retry the shape until it holds.
    let tree = await jaeger.waitForTrace(first.traceId, { minSpans: 20 });
    for (let attempt = 0;; attempt++) {
      try {
        assertPullTree(tree);
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((r) => setTimeout(r, 200));
        tree = await jaeger.waitForTrace(first.traceId, { minSpans: 20 });
      }
    }
    // No spans for the P2P layer itself (ERD NG1–NG3).
    assert.deepEqual(
      findSpans(tree, (s) => /piece|peer\.conn|dispatch/i.test(s.name)),
      [],
      formatTree(tree),
    );

    // Agent 2 got pieces from agent 1, as the P2P summary on its downloads says.
    const agent2Pid = cluster.agents[1].process.pid;
    const summaries = pulls.flatMap((t) => t.spans).filter((s) =>
      s.name === SPAN.schedulerDownload && s.resource["process.pid"] === agent2Pid
    );
    const all = await waitFor("agent 2's downloads", async () => {
      const traces = await jaeger.findTraces({
        service: "kraken-agent",
        operation: SPAN.schedulerDownload,
        limit: 100,
      });
      const spans = traces.flatMap((t) => t.spans).filter((s) =>
        s.name === SPAN.schedulerDownload && s.resource["process.pid"] === agent2Pid
      );
      return spans.length >= summaries.length && spans.length >= 4 ? spans : undefined;
    }, JAEGER_WAIT);
    const fromAgents = all.reduce(
      (n, s) => n + Number(s.attributes[ATTR.p2pPiecesFromAgents] ?? 0),
      0,
    );
    const total = all.reduce((n, s) => n + Number(s.attributes[ATTR.p2pPiecesTotal] ?? 0), 0);
    assert.ok(
      fromAgents > 0,
      `agent 2 took no pieces from agent 1: ${JSON.stringify(all.map((s) => s.attributes))}`,
    );
    assert.ok(fromAgents <= total);
    console.log(`agent 2: ${fromAgents} of ${total} pieces from agent 1`);

    // Bad input on the download path: clear 4xx answers, nothing cached.
    const agent = `http://${cluster.agents[0].addr}`;
    const unknown = `sha256:${"0f".repeat(32)}`;
    const missing = await fetch(`${agent}/namespace/demo%2Fapp/blobs/${unknown}`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "");
    const badDigest = await fetch(`${agent}/namespace/demo%2Fapp/blobs/not-a-digest`);
    assert.equal(badDigest.status, 400);
    assert.ok((await badDigest.text()).length > 0);
    const noTag = await fetch(`http://${cluster.agents[0].registry}/v2/demo/app/manifests/nope`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(noTag.status, 404);
    assert.equal((await noTag.json()).errors[0].code, "MANIFEST_UNKNOWN");
    const tracker = `http://${cluster.tracker.addr}`;
    for (
      const [path, body] of [
        [`/announce/${"ab".repeat(20)}`, "{not json"],
        ["/announce/zz", JSON.stringify({ digest: unknown })],
        [`/announce/${"ab".repeat(20)}`, JSON.stringify({ digest: unknown, peer: { ip: 7 } })],
      ]
    ) {
      const res = await fetch(`${tracker}${path}`, { method: "POST", body });
      assert.equal(res.status, 400, `${path} ${body}`);
      assert.ok((await res.text()).length > 0, "a 400 must say what is wrong");
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
