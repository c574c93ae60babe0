/**
 * Operability end to end (issue 15): a traced cluster of real processes pushes and pulls an image,
 * then every role's `/metrics` is validated by promtool in both content types (`check metrics` for
 * the text format; the OpenMetrics importer, Prometheus's strict OpenMetrics parser, for
 * OpenMetrics with exemplars), the agent's latency
 * exemplars name traces that Jaeger holds, `kraken trace` prints those traces and lists the slowest,
 * and the metric names the dashboards and alert rules use are all in the cluster's exposition
 * (a role serving TLS among them, for the certificate-expiry series).
 */

import assert from "node:assert/strict";
import { createTestCa } from "./harness/certs.ts";
import { startDownloadCluster } from "./harness/cluster.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { makeImage, pullImage, pushImage } from "./harness/oci.ts";
import { freePort, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { checkOpenMetrics, promtool } from "./harness/promtool.ts";
import { waitFor } from "./harness/wait.ts";
import { ATTR, SPAN } from "../tracing/names.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const OPENMETRICS = "application/openmetrics-text; version=1.0.0";

async function scrape(addr: string, accept?: string, client?: Deno.HttpClient): Promise<string> {
  const scheme = client ? "https" : "http";
  const res = await fetch(`${scheme}://${addr}/metrics`, {
    headers: accept ? { accept } : {},
    client,
  });
  assert.equal(res.status, 200);
  return await res.text();
}

/** Runs `main.ts trace …` as a process, as an operator would. */
async function krakenTrace(args: string[], jaeger: string) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${ROOT}main.ts`, "trace", ...args],
    env: { KRAKEN_JAEGER_QUERY: jaeger, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, out: decode(stdout), err: decode(stderr) };
}

/** Sample and family names (`x_total`, `y_bucket`, `y`) in a Prometheus text exposition. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

/** The `kraken_*` metric names in the PromQL of the dashboards and the alert rules. */
async function documentedNames(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const files = [`${ROOT}docs/alerts.yaml`];
  for await (const entry of Deno.readDir(`${ROOT}docs/dashboards`)) {
    if (entry.name.endsWith(".json")) files.push(`${ROOT}docs/dashboards/${entry.name}`);
  }
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(/\bkraken_[a-z0-9_]+/g)) out.set(m[0], file.slice(ROOT.length));
  }
  return out;
}

Deno.test("observability: promtool-valid /metrics with exemplars, kraken trace, dashboards and alerts match", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-obs-" });
  try {
    const cluster = await startDownloadCluster({
      dir,
      group,
      agents: 1,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
    });
    const image = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    await pushImage(`http://${cluster.proxy.addr}`, "demo/app", "v1", image);
    const pulled = await pullImage(`http://${cluster.agents[0].registry}`, "demo/app", "v1");
    assert.equal(pulled.manifestDigest, image.manifest.digest.toString());

    // Every role's exposition, in both formats, passes Prometheus's own checker.
    const nodes = [
      ...cluster.origins.map((o, i) => [`origin${i + 1}`, o.addr] as const),
      ["build-index", cluster.buildIndex.addr] as const,
      ["proxy", cluster.proxy.addr] as const,
      ["tracker", cluster.tracker.addr] as const,
      ["agent", cluster.agents[0].addr] as const,
    ];
    const names = new Set<string>();
    for (const [name, addr] of nodes) {
      const plain = await scrape(addr);
      for (const n of exposedNames(plain)) names.add(n);
      const checked = await promtool(["check", "metrics"], plain);
      assert.equal(checked.code, 0, `${name} text format: ${checked.output}`);
      const open = await scrape(addr, OPENMETRICS);
      assert.ok(open.endsWith("# EOF\n"), `${name}: OpenMetrics ends with # EOF`);
      const checkedOpen = await checkOpenMetrics(open);
      assert.equal(checkedOpen.code, 0, `${name} OpenMetrics: ${checkedOpen.output}\n${open}`);
    }

    // A role serving TLS (certificates from the test CA) exposes its listener's certificate
    // expiry, which the TLS alerts use; its exposition passes the same checks.
    const ca = await createTestCa(`${dir}/ca`);
    const cert = await ca.issue("tracker");
    const tlsPort = freePort();
    const tlsConfig = `${dir}/tracker-tls.yaml`;
    await Deno.writeTextFile(
      tlsConfig,
      JSON.stringify({
        tls: {
          cas: [{ path: ca.cert }],
          server: { cert: { path: cert.cert }, key: { path: cert.key } },
          client: { disabled: true },
        },
        listen: { host: "127.0.0.1", port: tlsPort },
        origins: { hosts: cluster.origins.map((o) => o.addr) },
        peerstore: { type: "memory" },
        tracing: { enabled: false },
      }),
    );
    const tlsTracker = group.spawnDeno(
      `${ROOT}main.ts`,
      ["--role=tracker", `--config=${tlsConfig}`],
      { name: "tracker-tls", logFile: `${dir}/tracker-tls.log` },
    );
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(ca.cert)] });
    try {
      const tlsAddr = `127.0.0.1:${tlsPort}`;
      await waitForHttp(`https://${tlsAddr}/health`, { process: tlsTracker, client });
      const plain = await scrape(tlsAddr, undefined, client);
      assert.match(
        plain,
        /^kraken_tls_server_certificate_expiry_timestamp_seconds\{listener="server"\} \d+$/m,
      );
      for (const n of exposedNames(plain)) names.add(n);
      const checked = await promtool(["check", "metrics"], plain);
      assert.equal(checked.code, 0, `TLS tracker text format: ${checked.output}`);
      const checkedOpen = await checkOpenMetrics(await scrape(tlsAddr, OPENMETRICS, client));
      assert.equal(checkedOpen.code, 0, `TLS tracker OpenMetrics: ${checkedOpen.output}`);
    } finally {
      client.close();
    }

    // The agent's pull latency carries exemplars naming sampled traces Jaeger holds.
    const agentOpen = await scrape(cluster.agents[0].addr, OPENMETRICS);
    const exemplars = [
      ...agentOpen.matchAll(
        /^kraken_http_request_duration_seconds_bucket\{method="GET",route="\/v2\/\{name\+\}\/blobs\/\{digest\}",le="[^"]+"\} \d+ # \{trace_id="([0-9a-f]{32})"\} /gm,
      ),
    ].map((m) => m[1]);
    assert.ok(exemplars.length > 0, `blob pull exemplars in:\n${agentOpen}`);
    const traceId = exemplars[0];
    const tree = await jaeger.waitForTrace(traceId, { minSpans: 3, timeoutMs: 20_000 });
    assert.ok(tree.spans.some((s) => s.name === SPAN.schedulerDownload), "the pull's trace");
    const layer = tree.spans.find((s) =>
      s.name === SPAN.schedulerDownload
    )!.attributes[ATTR.digest];

    // kraken trace <id>: the waterfall, critical path and the P2P summary.
    await waitFor("the download span's P2P summary in Jaeger", async () => {
      const t = await jaeger.getTrace(traceId);
      return t?.spans.some((s) => s.attributes[ATTR.p2pPiecesTotal] !== undefined) || undefined;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    const shown = await krakenTrace([traceId], jaeger.queryUrl);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, new RegExp(`^trace ${traceId} `, "m"));
    assert.match(shown.out, /^\* kraken-agent +GET \/v2\/\{name\+\}\/blobs\/\{digest\}/m);
    assert.match(shown.out, /^[* ] kraken-agent +.*scheduler\.download +[\d.]+ (µs|ms|s) \|/m);
    assert.match(
      shown.out,
      /^ +p2p: \d+ pieces?: \d+ from origins, \d+ from agents, \d+ at start; /m,
    );
    assert.match(shown.out, /kraken-tracker/, "the announce is in the trace");

    const json = await krakenTrace([traceId, "--json"], jaeger.queryUrl);
    assert.equal(json.code, 0, json.err);
    assert.equal(JSON.parse(json.out).traceID, traceId);

    // The slowest downloads of the agent, with their digests.
    const listed = await krakenTrace([
      "--service",
      "kraken-agent",
      "--operation",
      SPAN.agentDownloadBlob,
      "--since",
      "1h",
      "--slowest",
      "10",
    ], jaeger.queryUrl);
    assert.equal(listed.code, 0, listed.err);
    const rows = listed.out.trim().split("\n").slice(1);
    assert.ok(rows.length >= 2 && rows.length <= 10, listed.out);
    const durations = rows.map((r) => r.split(/\s{2,}/)[1]);
    assert.ok(rows.every((r) => /^[0-9a-f]{32} /.test(r)), listed.out);
    assert.ok(listed.out.includes(String(layer)), `the layer's digest is listed:\n${listed.out}`);
    assert.ok(durations.length === rows.length);

    const failed = await krakenTrace(["--service", "kraken-agent", "--errors"], jaeger.queryUrl);
    assert.equal(failed.code, 1, "no failed pull: exit 1");
    assert.match(failed.err, /no failed traces of kraken-agent/);
    const missing = await krakenTrace(["0af7651916cd43dd8448eb211c80319c"], jaeger.queryUrl);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /trace 0af7651916cd43dd8448eb211c80319c not found/);

    // Dashboards and alert rules use only series the cluster exposes.
    const used = await documentedNames();
    assert.ok(used.size >= 20, `dashboards and alerts use ${used.size} metrics`);
    const absent = [...used].filter(([n]) => !names.has(n)).map(([n, f]) => `${n} (${f})`).sort();
    assert.deepEqual(absent, [], "metrics in docs/dashboards and docs/alerts.yaml but not exposed");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("alert rules: promtool check rules and the rule unit tests pass", async () => {
  const checked = await promtool(["check", "rules", `${ROOT}docs/alerts.yaml`]);
  assert.equal(checked.code, 0, checked.output);
  const tested = await promtool(["test", "rules", `${ROOT}docs/alerts_test.yaml`]);
  assert.equal(tested.code, 0, tested.output);
  assert.match(tested.output, /SUCCESS/);
});
