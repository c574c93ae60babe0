/**
 * Cross-cluster replication end to end (ERD G3, flow §5.3): two clusters of real processes side by
 * side, each with its own testfs backend, origins, build-index (and in the first test a tracker and
 * an agent in the destination), exporting to one real Jaeger. A push to the source cluster's proxy
 * replicates the tag to the destination; skopeo pulls it from the destination's agent; the
 * replication is one trace across both clusters. The fault tests stop the replication at the remote
 * tag put with a forwarder in front of the destination build-index, then kill a build-index.
 */

import assert from "node:assert/strict";
import { bytesSource, OriginClusterClient } from "../cluster/blob_client.ts";
import { startDownloadCluster, startUploadCluster, type UploadCluster } from "./harness/cluster.ts";
import { startGateProxy } from "./harness/gate_proxy.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { type Image, makeImage, pushImage, writeOciLayout } from "./harness/oci.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import { findSpans, formatTree, type SpanNode, type TraceTree } from "./harness/trace_tree.ts";
import { waitFor, type WaitForOptions } from "./harness/wait.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../registry/manifest.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { ATTR, SPAN } from "../tracing/names.ts";

/** Replication runs after the push answered, and spans come from many processes: wait a while. */
const SLOW: WaitForOptions = { timeoutMs: 60_000, intervalMs: 250 };

const portOf = (addr: string) => Number(addr.split(":")[1]);

/** The tag's digest on a build-index, or undefined while it has none. */
async function tagOn(buildIndex: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${buildIndex}/tags/${encodeURIComponent(tag)}`);
  const text = await res.text();
  return res.status === 200 ? text : undefined;
}

/** The trace holding the `replication.trigger` spans of `tag`, once `ready` holds for it. */
async function replicationTrace(
  jaeger: Awaited<ReturnType<typeof startJaeger>>,
  tag: string,
  ready: (tree: TraceTree) => boolean,
): Promise<TraceTree> {
  let last: TraceTree | undefined;
  try {
    return await waitFor(`the replication trace of ${tag}`, async () => {
      const traces = await jaeger.findTraces({
        service: "kraken-build-index",
        operation: SPAN.replicationTrigger,
        limit: 50,
      });
      for (const listed of traces) {
        const tree = await jaeger.getTrace(listed.traceId);
        if (!tree || !triggers(tree).some((s) => s.attributes.tag === tag)) continue;
        last = tree;
        if (ready(tree)) return tree;
      }
      return undefined;
    }, SLOW);
  } catch (error) {
    throw new Error(`${error}\n${last ? formatTree(last) : "no trace"}`);
  }
}

const triggers = (tree: TraceTree) => findSpans(tree, (s) => s.name === SPAN.replicationTrigger);
const descendants = (span: SpanNode): SpanNode[] =>
  span.children.flatMap((c) => [c, ...descendants(c)]);
const childrenNamed = (span: SpanNode, name: string) =>
  span.children.filter((c) => c.name === name);

/** The destination build-index's own `build_index.put_tag`, below its server span. */
function remotePutTag(tree: TraceTree, remoteBuildIndex: string): SpanNode | undefined {
  return findSpans(
    tree,
    (s) =>
      s.name === "PUT /tags/{tag}/digest/{digest}" && s.kind === "server" &&
      s.attributes[ATTR.serverPort] === portOf(remoteBuildIndex),
  )[0]?.children
    .find((c) => c.name === SPAN.buildIndexPutTag);
}

/** An OCI image index over two images, as an OCI layout tagged `ref`, and its digest. */
async function writeIndexLayout(dir: string, images: Image[], ref: string): Promise<string> {
  for (const [i, image] of images.entries()) await writeOciLayout(`${dir}/parts/${i}`, image);
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  for (const image of images) {
    for (const blob of [image.config, ...image.layers, image.manifest]) {
      await Deno.writeFile(`${dir}/blobs/sha256/${blob.digest.hex}`, blob.bytes);
    }
  }
  const index = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: images.map((image, i) => ({
      mediaType: OCI_MANIFEST,
      digest: image.manifest.digest.toString(),
      size: image.manifest.bytes.length,
      platform: { architecture: i === 0 ? "amd64" : "arm64", os: "linux" },
    })),
  }));
  const digest = await digestOfBytes(index);
  await Deno.writeFile(`${dir}/blobs/sha256/${digest.hex}`, index);
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: OCI_INDEX,
        digest: digest.toString(),
        size: index.length,
        annotations: { "org.opencontainers.image.ref.name": ref },
      }],
    }),
  );
  return digest.toString();
}

Deno.test("replication: a pushed tag reaches the second cluster in one trace; present blobs are not sent; its agent pulls image and index", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-replication-" });
  try {
    const dest = await startDownloadCluster({
      dir: `${dir}/b`,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      name: "zone-b",
      agents: 1,
    });
    const src = await startUploadCluster({
      dir: `${dir}/a`,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      name: "zone-a",
      remotes: { [dest.buildIndex.addr]: ["^demo/"] },
    });
    const image = await makeImage({ layers: 3, layerSize: 256 * 1024 });
    const tag = "demo/app:v1";
    // One layer is in the destination cluster already (namespace = tag, as replication uses).
    const seeded = image.layers[0];
    await new OriginClusterClient({ hosts: dest.origins.map((o) => o.addr) })
      .uploadBlob(tag, seeded.digest, bytesSource(seeded.bytes));

    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}/image:latest`,
      `docker://${src.proxy.addr}/demo/app:v1`,
    ]);
    const replicated = await waitFor(
      "the tag on the destination",
      () => tagOn(dest.buildIndex.addr, tag),
      SLOW,
    );
    assert.equal(replicated, image.manifest.digest.toString());

    // The destination's agent pulls it, digests matching.
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      `docker://${dest.agents[0].registry}/demo/app:v1`,
      `oci:${dir}/pulled:v1`,
    ]);
    const pulled = JSON.parse(await Deno.readTextFile(`${dir}/pulled/index.json`));
    assert.equal(pulled.manifests[0].digest, image.manifest.digest.toString());
    for (const blob of [...image.layers, image.config]) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/pulled/blobs/sha256/${blob.digest.hex}`),
        blob.bytes,
      );
    }

    // One trace: the push › source build-index put_tag › replication.trigger › … › destination.
    const tree = await replicationTrace(
      jaeger,
      tag,
      (t) => remotePutTag(t, dest.buildIndex.addr) !== undefined,
    );
    const [trigger] = triggers(tree);
    assert.equal(triggers(tree).length, 1, formatTree(tree));
    assert.equal(tree.roots[0].service, "kraken-proxy", formatTree(tree));
    const parent = tree.spans.find((s) => s.spanId === trigger.parentSpanId);
    assert.equal(parent?.name, SPAN.buildIndexPutTag);
    assert.equal(parent?.attributes.replicate, true);
    assert.equal(trigger.attributes[ATTR.srcCluster], "zone-a");
    assert.equal(trigger.attributes[ATTR.dstCluster], dest.buildIndex.addr);
    assert.equal(trigger.attributes[ATTR.replicationResult], "replicated");
    const resolve = childrenNamed(trigger, SPAN.buildIndexResolveTag);
    assert.equal(resolve[0]?.attributes.digest, image.manifest.digest.toString());

    const all = [...image.layers, image.config, image.manifest].map((b) => b.digest.toString());
    const destOriginPorts = new Set(dest.origins.map((o) => portOf(o.addr)));
    const stats = childrenNamed(trigger, SPAN.originStatBlob);
    assert.deepEqual(stats.map((s) => s.attributes.digest).sort(), [...all].sort());
    for (const stat of stats) {
      assert.equal(stat.attributes[ATTR.exists], stat.attributes.digest === `${seeded.digest}`);
      // The stat went to the destination's origins.
      const servers = descendants(stat).filter((s) => s.kind === "server");
      assert.ok(servers.length > 0, formatTree(tree));
      for (const server of servers) {
        assert.ok(destOriginPorts.has(Number(server.attributes[ATTR.serverPort])), server.name);
      }
    }
    const transfers = childrenNamed(trigger, SPAN.replicationTransfer);
    assert.deepEqual(
      transfers.map((s) => s.attributes.digest).sort(),
      all.filter((d) => d !== `${seeded.digest}`).sort(),
      "one transfer per missing blob, none for the seeded one",
    );
    for (const transfer of transfers) {
      assert.ok(Number(transfer.attributes[ATTR.size]) > 0);
      assert.equal(typeof transfer.attributes[ATTR.durationMs], "number");
    }
    // The blobs arrived at the destination's origins through the public upload, in this trace.
    const commits = findSpans(
      tree,
      (s) =>
        s.kind === "server" &&
        s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}" &&
        destOriginPorts.has(Number(s.attributes[ATTR.serverPort])),
    );
    assert.equal(commits.length, transfers.length, formatTree(tree));
    assert.ok(remotePutTag(tree, dest.buildIndex.addr), "the destination's build_index.put_tag");

    // A multi-arch index: every child manifest with its config and layers.
    const images = [await makeImage({ layers: 2 }), await makeImage({ layers: 2 })];
    const indexDigest = await writeIndexLayout(`${dir}/multi`, images, "latest");
    await skopeo([
      "copy",
      "--all",
      "--dest-tls-verify=false",
      `oci:${dir}/multi:latest`,
      `docker://${src.proxy.addr}/demo/multi:v1`,
    ]);
    assert.equal(
      await waitFor(
        "the index tag on the destination",
        () => tagOn(dest.buildIndex.addr, "demo/multi:v1"),
        SLOW,
      ),
      indexDigest,
    );
    await skopeo([
      "copy",
      "--all",
      "--src-tls-verify=false",
      `docker://${dest.agents[0].registry}/demo/multi:v1`,
      `oci:${dir}/pulled-multi:v1`,
    ]);
    const pulledIndex = JSON.parse(await Deno.readTextFile(`${dir}/pulled-multi/index.json`));
    assert.equal(pulledIndex.manifests[0].digest, indexDigest);
    for (const blob of images.flatMap((i) => [i.manifest, i.config, ...i.layers])) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/pulled-multi/blobs/sha256/${blob.digest.hex}`),
        blob.bytes,
      );
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Source and destination clusters (one origin each) with a held-put forwarder between them. */
async function startPair(dir: string, group: ProcessGroup, otlpEndpoint: string) {
  const dest = await startUploadCluster({
    dir: `${dir}/b`,
    group,
    otlpEndpoint,
    name: "zone-b",
    origins: 1,
  });
  const gate = startGateProxy(
    dest.buildIndex.addr,
    (req) => req.method === "PUT" && new URL(req.url).pathname.startsWith("/tags/"),
  );
  const src = await startUploadCluster({
    dir: `${dir}/a`,
    group,
    otlpEndpoint,
    name: "zone-a",
    origins: 1,
    remotes: { [gate.addr]: [".*"] },
  });
  return { src, dest, gate };
}

/** Transfers of `tree` (also those whose attempt's trigger span was lost with its process). */
const transfersOf = (tree: TraceTree) =>
  findSpans(tree, (s) => s.name === SPAN.replicationTransfer).map((s) =>
    String(s.attributes.digest)
  );

async function push(cluster: UploadCluster, image: Image, tag: string): Promise<void> {
  const [repo, ref] = tag.split(":");
  await pushImage(`http://${cluster.proxy.addr}`, repo, ref, image, { chunkSize: 64 * 1024 });
}

Deno.test("replication: the remote build-index down mid-replication → retried until it succeeds, blobs sent once, one whole trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-replication-down-" });
  const { src, dest, gate } = await startPair(dir, group, jaeger.otlpHttpEndpoint);
  try {
    const image = await makeImage({ layers: 2 });
    const tag = "demo/down:v1";
    await push(src, image, tag);
    // Every blob has been sent; the tag put is held. The destination build-index goes down.
    await waitFor("the held tag put", () => gate.held > 0 || undefined, SLOW);
    dest.buildIndex.process.kill("SIGKILL");
    await dest.buildIndex.process.stopped;
    gate.release();
    await waitFor("the put to fail", () => gate.unreachable > 0 || undefined, SLOW);
    await dest.restartBuildIndex();
    assert.equal(
      await waitFor("the tag on the destination", () => tagOn(dest.buildIndex.addr, tag), SLOW),
      image.manifest.digest.toString(),
    );

    const tree = await replicationTrace(
      jaeger,
      tag,
      (t) =>
        triggers(t).some((s) => s.attributes[ATTR.replicationResult] === "replicated") &&
        remotePutTag(t, dest.buildIndex.addr) !== undefined,
    );
    const attempts = triggers(tree);
    assert.ok(attempts.length >= 2, formatTree(tree));
    // All attempts hang off the put that scheduled them.
    assert.equal(new Set(attempts.map((s) => s.parentSpanId)).size, 1);
    assert.equal(attempts[0].status, "error");
    const all = [...image.layers, image.config, image.manifest].map((b) => b.digest.toString());
    assert.deepEqual(transfersOf(tree).sort(), [...all].sort(), "each blob sent exactly once");
    const last = attempts.find((s) => s.attributes[ATTR.replicationResult] === "replicated")!;
    assert.equal(childrenNamed(last, SPAN.replicationTransfer).length, 0);
    assert.ok(
      childrenNamed(last, SPAN.originStatBlob).every((s) => s.attributes[ATTR.exists] === true),
    );
  } finally {
    await gate.close();
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replication: the source build-index killed (-9) mid-replication → the task resumes after restart in the same trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-replication-kill-" });
  const { src, dest, gate } = await startPair(dir, group, jaeger.otlpHttpEndpoint);
  try {
    const image = await makeImage({ layers: 2 });
    const tag = "demo/kill:v1";
    await push(src, image, tag);
    await waitFor("the held tag put", () => gate.held > 0 || undefined, SLOW);
    // Let the finished transfer spans leave the process before it dies.
    await new Promise((r) => setTimeout(r, 1000));
    src.buildIndex.process.kill("SIGKILL");
    await src.buildIndex.process.stopped;
    gate.release({ forwardHeld: false }); // The held put's client is gone.
    assert.equal(await tagOn(dest.buildIndex.addr, tag), undefined);
    await src.restartBuildIndex();
    assert.equal(
      await waitFor("the tag on the destination", () => tagOn(dest.buildIndex.addr, tag), SLOW),
      image.manifest.digest.toString(),
    );

    const tree = await replicationTrace(
      jaeger,
      tag,
      (t) =>
        triggers(t).some((s) => s.attributes[ATTR.replicationResult] === "replicated") &&
        remotePutTag(t, dest.buildIndex.addr) !== undefined,
    );
    const resumed = triggers(tree).find((s) =>
      s.attributes[ATTR.replicationResult] === "replicated"
    )!;
    // The restarted process joined the stored context: parent is the push's put_tag.
    const parent = tree.spans.find((s) => s.spanId === resumed.parentSpanId);
    assert.equal(parent?.name, SPAN.buildIndexPutTag, formatTree(tree));
    assert.equal(tree.roots[0].service, "kraken-proxy");
    const all = [...image.layers, image.config, image.manifest].map((b) => b.digest.toString());
    assert.deepEqual(transfersOf(tree).sort(), [...all].sort(), "each blob sent exactly once");
    assert.equal(childrenNamed(resumed, SPAN.replicationTransfer).length, 0);
  } finally {
    await gate.close();
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});
