/**
 * Readiness in a mixed cluster: Go Kraken v0.1.4 nodes have no `/readiness` route (404), only
 * `/health`. Real tracker, proxy and agent processes depending on such nodes must report ready,
 * and still report not ready when the old node's `/health` fails.
 */

import assert from "node:assert/strict";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * An HTTP server shaped like a v0.1.4 origin as the roles under test use it: `/health`, ring
 * locations naming itself, and no `/readiness` (404). `healthy` flips the `/health` answer.
 */
function oldGoNode() {
  const state = { healthy: true };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req): Response => {
    const path = new URL(req.url).pathname;
    if (/^\/blobs\/sha256:[0-9a-f]{64}\/locations$/.test(path)) {
      return new Response(null, { headers: { "origin-locations": addr } });
    }
    if (path !== "/health") return new Response("404 page not found\n", { status: 404 });
    return state.healthy ? new Response("OK\n") : new Response("unhealthy\n", { status: 500 });
  });
  const addr: string = `127.0.0.1:${server.addr.port}`;
  return { addr, state, close: () => server.shutdown() };
}

async function readiness(addr: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://${addr}/readiness`);
  return { status: res.status, text: await res.text() };
}

Deno.test("readiness: tracker, proxy and agent processes are ready with dependencies that lack /readiness", async () => {
  const old = oldGoNode();
  const dir = await Deno.makeTempDir({ prefix: "kraken-readiness-" });
  const group = new ProcessGroup();
  try {
    const [trackerPort, proxyPort, agentServer, agentRegistry, agentPeer] = freePorts(5);
    const start = async (role: string, port: number, config: Record<string, unknown>) => {
      const configPath = `${dir}/${role}.yaml`;
      await Deno.writeTextFile(
        configPath,
        JSON.stringify({ ...config, tracing: { enabled: false } }),
      );
      const process = group.spawnDeno(MAIN, [`--role=${role}`, `--config=${configPath}`], {
        name: role,
      });
      await waitForHttp(`http://127.0.0.1:${port}/health`, { process, timeoutMs: 20_000 });
      return `127.0.0.1:${port}`;
    };
    const [tracker, proxy, agent] = await Promise.all([
      start("tracker", trackerPort, {
        listen: { host: "127.0.0.1", port: trackerPort },
        origins: { hosts: [old.addr] },
        peerstore: { type: "memory" },
      }),
      start("proxy", proxyPort, {
        listen: { host: "127.0.0.1", port: proxyPort },
        storage: { root: `${dir}/proxy` },
        origin: { hosts: [old.addr] },
        build_index: { hosts: [old.addr] },
      }),
      start("agent", agentServer, {
        server: { host: "127.0.0.1", port: agentServer },
        registry: { host: "127.0.0.1", port: agentRegistry },
        peer: { ip: "127.0.0.1", port: agentPeer },
        tracker: { hosts: [old.addr] },
        build_index: { hosts: [old.addr] },
        storage: { root: `${dir}/agent` },
      }),
    ]);
    for (const addr of [tracker, proxy, agent]) {
      const r = await readiness(addr);
      assert.equal(r.status, 200, `${addr}: ${r.text}`);
    }
    // The fallback is a real check: the old node's /health failing makes them not ready.
    old.state.healthy = false;
    for (const addr of [tracker, proxy, agent]) {
      const r = await readiness(addr);
      assert.equal(r.status, 503, `${addr}: ${r.text}`);
      assert.match(r.text, /\/health \(no \/readiness route\): status 500: unhealthy/);
    }
  } finally {
    await group.stopAll();
    await old.close();
    await Deno.remove(dir, { recursive: true });
  }
});
