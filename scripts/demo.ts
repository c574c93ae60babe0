/**
 * `npm run demo` / `deno task demo`: starts a traced local Kraken cluster — a testfs storage
 * backend, two origins on one hash ring, build-index, proxy, tracker and two agents, one process
 * each on free loopback ports with data in a temporary directory — pushes a generated multi-layer
 * image through the proxy, pulls it through both agents (the second gets pieces from the first over
 * P2P), and prints the push and pull traces as waterfalls (`cli/waterfall.ts`, the renderer
 * of `kraken trace`). A second cluster,
 * `zone-b` (its own testfs, origins, build-index, tracker and agent), runs beside it: the pushed
 * tag replicates there (the replication spans are part of the manifest push's trace) and zone-b's
 * agent pulls the image.
 *
 * The roles export OTLP/JSON to a small collector inside this program. With
 * `OTEL_EXPORTER_OTLP_ENDPOINT` set (a Jaeger or OpenTelemetry Collector), every span is forwarded
 * there too. `--keep` leaves the data directory and the cluster's logs in place.
 *
 * `--backend=s3` puts the origins of both clusters on an S3 store instead of testfs: moto's S3
 * server (`tests/harness/s3.ts`, installed by `scripts/setup.sh`) with one bucket per cluster; the
 * write-backs then show as `backend.upload` with their `PutObject` client spans in the push traces.
 * Without moto installed the demo says how to install it and exits 1. The build-index keeps its
 * tags in testfs either way.
 *
 * @module
 */

import { startCollector } from "./otlp_collector.ts";
import { startDownloadCluster } from "../tests/harness/cluster.ts";
import { makeImage, pullImage, pushImage } from "../tests/harness/oci.ts";
import { ProcessGroup } from "../tests/harness/procs.ts";
import {
  motoServerBinary,
  s3BackendBlock,
  s3Env,
  type S3Server,
  s3ServerInstalled,
  startS3,
} from "../tests/harness/s3.ts";
import type { TraceTree } from "../cli/trace_tree.ts";
import { renderWaterfall } from "../cli/waterfall.ts";
import { ATTR, SPAN } from "../tracing/names.ts";

const keep = Deno.args.includes("--keep");
/** The origins' storage: `testfs` (default) or `s3`. */
const BACKENDS = ["testfs", "s3"] as const;
type DemoBackend = typeof BACKENDS[number];
const forward = Deno.env.get("OTEL_EXPORTER_OTLP_ENDPOINT");
const forwardUrl = forward ? `${forward.replace(/\/$/, "")}/v1/traces` : undefined;

function describe(tree: TraceTree, agentNames: Map<unknown, string>): string {
  const root = tree.roots[0];
  const upload = tree.spans.find((s) => s.name === SPAN.proxyCommitUpload);
  if (upload) return `push: blob upload ${upload.attributes.digest}`;
  if (tree.spans.some((s) => s.name === SPAN.proxyPutManifest)) {
    const replication = tree.spans.find((s) => s.name === SPAN.replicationTrigger);
    return "push: manifest and tag" +
      (replication ? `, replicated to ${replication.attributes[ATTR.dstCluster]}` : "");
  }
  const download = tree.spans.find((s) => s.name === SPAN.schedulerDownload);
  if (download) {
    const fromAgents = download.attributes[ATTR.p2pPiecesFromAgents];
    const total = download.attributes[ATTR.p2pPiecesTotal];
    const agent = agentNames.get(download.resource["process.pid"]) ?? "an agent";
    return `pull: ${download.attributes.digest} on ${agent} ` +
      `(${total} piece${total === 1 ? "" : "s"}, ${fromAgents} from other agents)`;
  }
  if (tree.spans.some((s) => s.name === SPAN.agentResolveTag)) return "pull: manifest by tag";
  return root ? `${root.service} ${root.name}` : "trace";
}

async function settle(collector: ReturnType<typeof startCollector>): Promise<void> {
  // Spans leave each role every 100 ms; wait until nothing new arrives for a while.
  let last = -1;
  for (let i = 0; i < 50 && collector.spanCount() !== last; i++) {
    last = collector.spanCount();
    await new Promise((r) => setTimeout(r, 400));
  }
}

/** `--backend=<name>` of the arguments (default testfs); exits 2 on an unknown one. */
function backendArg(args: string[]): DemoBackend {
  const raw = args.find((a) => a.startsWith("--backend="))?.slice("--backend=".length) ??
    "testfs";
  if ((BACKENDS as readonly string[]).includes(raw)) return raw as DemoBackend;
  console.error(`kraken demo: unknown --backend=${raw}; one of ${BACKENDS.join(", ")}`);
  Deno.exit(2);
}

/** The origins' backend block on `bucket` of `s3`; testfs (the cluster's default) without it. */
function bucketOf(
  s3: S3Server | undefined,
  bucket: string,
): (() => Record<string, unknown>) | undefined {
  return s3 ? () => s3BackendBlock(s3, bucket) : undefined;
}

async function main(): Promise<void> {
  const backend = backendArg(Deno.args);
  if (backend === "s3" && !s3ServerInstalled()) {
    console.error(
      `kraken demo: --backend=s3 needs moto's S3 server, which is not installed at ` +
        `${motoServerBinary()}. Install it with scripts/setup.sh (a virtualenv with ` +
        `moto[server] in ~/.cache/kraken), or point MOTO_SERVER_BIN at a moto_server.`,
    );
    Deno.exit(1);
  }
  const dir = await Deno.makeTempDir({ prefix: "kraken-demo-" });
  const collector = startCollector(forwardUrl);
  await using group = new ProcessGroup();
  let s3: S3Server | undefined;
  try {
    if (backend === "s3") {
      s3 = await startS3({ buckets: ["zone-a-blobs", "zone-b-blobs"] });
      console.log(
        `kraken demo: moto's S3 server at ${s3.endpoint}, buckets zone-a-blobs, zone-b-blobs`,
      );
    }
    const storage = s3 ? "an S3 store" : "testfs";
    console.log(
      `kraken demo: starting ${storage}, 2 origins, build-index, proxy, tracker and 2 agents, ` +
        `and a second cluster zone-b for replication ` +
        `(data in ${dir})`,
    );
    // The origins find the S3 credentials in the standard AWS_* variables.
    const env: Record<string, string> = {
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      ...(s3 ? s3Env(s3) : {}),
    };
    const zoneB = await startDownloadCluster({
      dir: `${dir}/zone-b`,
      group,
      name: "zone-b",
      agents: 1,
      otlpEndpoint: collector.endpoint,
      otlpProtocol: "http/json",
      env,
      originBackend: bucketOf(s3, "zone-b-blobs"),
    });
    console.log(`second cluster zone-b: build-index ${zoneB.buildIndex.addr}, 1 agent`);
    const cluster = await startDownloadCluster({
      dir,
      group,
      name: "zone-a",
      remotes: { [zoneB.buildIndex.addr]: ["^demo/"] },
      otlpEndpoint: collector.endpoint,
      otlpProtocol: "http/json",
      env,
      originBackend: bucketOf(s3, "zone-a-blobs"),
    });
    const image = await makeImage({ layers: 3, layerSize: 512 * 1024 });
    const registry = `http://${cluster.proxy.addr}`;
    console.log(`pushing demo/app:v1 (3 layers) to the proxy at ${registry}`);
    const started = performance.now();
    await pushImage(registry, "demo/app", "v1", image, { chunkSize: 256 * 1024 });
    console.log(`pushed in ${(performance.now() - started).toFixed(0)} ms; collecting traces…\n`);
    // The asynchronous write-backs belong to the push traces: wait for them to land too.
    const hexes = [...image.layers, image.config, image.manifest].map((b) => b.digest.hex);
    const written = async (): Promise<boolean> => {
      if (s3) {
        const keys = new Set(await s3.listKeys("zone-a-blobs"));
        return hexes.every((h) => keys.has(`kraken/${h}`));
      }
      const done = await Promise.all(
        hexes.map((h) => Deno.stat(`${cluster.testfs.dataDir}/blobs/${h}`).then(() => 1, () => 0)),
      );
      return done.every((d) => d === 1);
    };
    for (let i = 0; i < 100 && !await written(); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (s3) {
      console.log(
        `bucket zone-a-blobs holds ${(await s3.listKeys("zone-a-blobs")).length} objects ` +
          `(listed through the S3 API)`,
      );
    }
    for (const [i, agent] of cluster.agents.entries()) {
      const t0 = performance.now();
      const pulled = await pullImage(`http://${agent.registry}`, "demo/app", "v1");
      console.log(
        `agent ${i + 1} pulled demo/app:v1 (${pulled.blobs.size} blobs, manifest ` +
          `${pulled.manifestDigest.slice(0, 19)}…) in ${(performance.now() - t0).toFixed(0)} ms`,
      );
    }
    // The tag replicates to zone-b after the push; zone-b's agent then pulls the image.
    const tagUrl = `http://${zoneB.buildIndex.addr}/tags/demo%2Fapp:v1`;
    for (let i = 0; i < 300; i++) {
      const res = await fetch(tagUrl);
      await res.body?.cancel();
      if (res.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const t0 = performance.now();
    const replicated = await pullImage(`http://${zoneB.agents[0].registry}`, "demo/app", "v1");
    console.log(
      `zone-b's agent pulled the replicated demo/app:v1 (${replicated.blobs.size} blobs, ` +
        `manifest ${replicated.manifestDigest.slice(0, 19)}…) in ` +
        `${(performance.now() - t0).toFixed(0)} ms`,
    );
    await settle(collector);
    // One trace per blob upload session, one for the manifest, one per pulled blob and manifest;
    // each PATCH/PUT request of a push session also has its own one-span server trace, linked from
    // the session's spans.
    const all = collector.traces();
    const traces = all.filter((t) =>
      t.spans.some((s) =>
        s.name === SPAN.proxyUpload || s.name === SPAN.proxyPutManifest ||
        s.name === SPAN.agentDownloadBlob || s.name === SPAN.agentResolveTag
      )
    );
    const agentNames = new Map<unknown, string>([
      ...cluster.agents.map((a, i): [number, string] => [a.process.pid, `agent ${i + 1}`]),
      [zoneB.agents[0].process.pid, "zone-b's agent"],
    ]);
    for (const tree of traces) {
      console.log(`── ${describe(tree, agentNames)}`);
      console.log(
        renderWaterfall(tree, { color: Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR") }),
      );
      console.log();
    }
    console.log(
      `${traces.length} push and pull traces (plus ${all.length - traces.length} request ` +
        `traces they link to, blob probes and announces), ${collector.spanCount()} spans in all` +
        (forwardUrl ? `, forwarded to ${forwardUrl}` : "") +
        `. Tag: curl http://${cluster.buildIndex.addr}/tags/demo%2Fapp:v1`,
    );
  } finally {
    await group.stopAll();
    await s3?.stop();
    await collector.close();
    if (keep) console.log(`kept ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
