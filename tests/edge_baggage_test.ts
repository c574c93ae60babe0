/**
 * Flow: client baggage at the edge. An agent process (blob API and registry ports) and a proxy
 * process, both with tracing disabled, call a recording build-index stand-in; what baggage reaches
 * it is what crossed the edge. By default nothing does (with or without a `traceparent`); the
 * proxy's allow-list lets one key through within its size cap. Drops show on `/metrics` and in a
 * log line.
 */

import assert from "node:assert/strict";
import { stringify } from "yaml";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { waitFor } from "./harness/wait.ts";
import { externalTest } from "./harness/external.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const HOSTILE = "tenant=evil,role=root,auth=Bearer%20secret123";

function metric(text: string, reason: string): number {
  const line = text.split("\n").find((l) =>
    l.startsWith(`kraken_tracing_baggage_dropped_total{reason="${reason}"}`)
  );
  return line ? Number(line.split(" ").at(-1)) : NaN;
}

externalTest("edge baggage: agent and proxy drop client baggage unless allowed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-baggage-" });
  // What the build-index stand-in saw: path and baggage header of each request.
  const seen: { path: string; baggage: string | null }[] = [];
  const buildIndex = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    seen.push({ path: url.pathname, baggage: req.headers.get("baggage") });
    if (url.pathname.startsWith("/list/")) {
      return Response.json({ Links: { next: "", self: "" }, size: 0, result: [] });
    }
    return new Response("", { status: 404 });
  });
  const bi = `127.0.0.1:${buildIndex.addr.port}`;
  const [server, registry, proxyPort] = freePorts(3);
  const agentConfig = `${dir}/agent.yaml`;
  const proxyConfig = `${dir}/proxy.yaml`;
  await Deno.writeTextFile(
    agentConfig,
    stringify({
      server: { port: server },
      registry: { port: registry },
      peer: { port: 0 },
      tracker: { hosts: ["127.0.0.1:1"] },
      build_index: { hosts: [bi] },
      storage: { root: `${dir}/agent` },
      tracing: { enabled: false },
    }),
  );
  await Deno.writeTextFile(
    proxyConfig,
    stringify({
      listen: { port: proxyPort },
      storage: { root: `${dir}/proxy` },
      origin: { hosts: ["127.0.0.1:1"] },
      build_index: { hosts: [bi] },
      tracing: {
        enabled: false,
        sampling: { trust: { baggage_allowed_keys: ["team", "big"], baggage_max_bytes: 64 } },
      },
    }),
  );
  await using group = new ProcessGroup();
  const agent = group.spawnDeno(MAIN, ["--role=agent", `--config=${agentConfig}`], {
    name: "agent",
  });
  const proxy = group.spawnDeno(MAIN, ["--role=proxy", `--config=${proxyConfig}`], {
    name: "proxy",
  });
  try {
    await waitForHttp(`http://127.0.0.1:${server}/health`, { process: agent });
    await waitForHttp(`http://127.0.0.1:${proxyPort}/health`, { process: proxy });
    const get = async (url: string, headers: Record<string, string>) => {
      const res = await fetch(url, { headers });
      await res.body?.cancel();
      return res.status;
    };

    // Agent blob API, with and without a traceparent; agent registry.
    assert.equal(await get(`http://127.0.0.1:${server}/tags/app:v1`, { baggage: HOSTILE }), 404);
    assert.equal(
      await get(`http://127.0.0.1:${server}/tags/app:v2`, {
        baggage: HOSTILE,
        traceparent: TRACEPARENT,
      }),
      404,
    );
    assert.equal(
      await get(`http://127.0.0.1:${registry}/v2/library/app/manifests/v3`, { baggage: HOSTILE }),
      404,
    );
    // Proxy: only the allowed key, and only what fits in 64 bytes.
    assert.equal(
      await get(`http://127.0.0.1:${proxyPort}/v2/_catalog`, {
        baggage: `${HOSTILE},team=blue,big=${"x".repeat(100)}`,
      }),
      200,
    );

    const tagCalls = seen.filter((s) => s.path.startsWith("/tags/"));
    assert.equal(tagCalls.length, 3, JSON.stringify(seen));
    for (const call of tagCalls) assert.equal(call.baggage, null, `${call.path} got baggage`);
    const listCall = seen.find((s) => s.path.startsWith("/list/"));
    assert.equal(listCall?.baggage, "team=blue");

    const agentMetrics = await (await fetch(`http://127.0.0.1:${server}/metrics`)).text();
    assert.equal(metric(agentMetrics, "not_allowed"), 9, agentMetrics);
    const proxyMetrics = await (await fetch(`http://127.0.0.1:${proxyPort}/metrics`)).text();
    assert.equal(metric(proxyMetrics, "not_allowed"), 3);
    assert.equal(metric(proxyMetrics, "too_large"), 1);
    await waitFor(
      "baggage log lines",
      () =>
        agent.log().includes("client baggage dropped at the edge") &&
        proxy.log().includes("client baggage dropped at the edge"),
    );
  } finally {
    await group.stopAll();
    await buildIndex.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
