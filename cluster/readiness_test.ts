import assert from "node:assert/strict";
import { HttpStatusError } from "../http/status_error.ts";
import { firstReady, probeReadiness } from "./readiness.ts";

/** A real HTTP server answering from `routes` (path → status); anything else is 404. */
function serve(routes: Record<string, number>) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    seen.push(path);
    const status = routes[path] ?? 404;
    return new Response(status === 200 ? "OK\n" : `status ${status}\n`, { status });
  });
  return { host: `127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

Deno.test("readiness: a node without /readiness (404) is probed on /health", async () => {
  const old = serve({ "/health": 200 });
  try {
    await probeReadiness(old.host);
    assert.deepEqual(old.seen, ["/readiness", "/health"]);
    assert.equal(await firstReady([old.host]), null);
  } finally {
    await old.close();
  }
});

Deno.test("readiness: a node that answers /readiness is not asked /health", async () => {
  const current = serve({ "/readiness": 200, "/health": 200 });
  const notReady = serve({ "/readiness": 503, "/health": 200 });
  try {
    await probeReadiness(current.host);
    assert.deepEqual(current.seen, ["/readiness"]);
    const error = await probeReadiness(notReady.host).then(() => null, (e) => e);
    assert.ok(error instanceof HttpStatusError);
    assert.equal(error.status, 503);
    assert.equal(error.message, `GET http://${notReady.host}/readiness: status 503: status 503`);
    assert.deepEqual(notReady.seen, ["/readiness"], "a 503 is an answer, not a missing route");
  } finally {
    await current.close();
    await notReady.close();
  }
});

Deno.test("readiness: 404 on both routes, an unreachable host, and a hung one are not ready", async () => {
  const empty = serve({});
  const hung = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of hung) held.push(conn);
  })();
  try {
    await assert.rejects(
      probeReadiness(empty.host),
      new HttpStatusError(
        "GET",
        `http://${empty.host}/health (no /readiness route)`,
        404,
        "status 404",
      ),
    );
    await assert.rejects(probeReadiness("127.0.0.1:1"), /GET http:\/\/127\.0\.0\.1:1\/readiness: /);
    const t0 = performance.now();
    const hungHost = `127.0.0.1:${(hung.addr as Deno.NetAddr).port}`;
    await assert.rejects(probeReadiness(hungHost, { timeoutMs: 200 }), /timed out|abort/i);
    assert.ok(performance.now() - t0 < 2000);
    const problem = await firstReady([empty.host, "127.0.0.1:1"]);
    assert.match(
      problem!,
      /^GET .*\/health \(no \/readiness route\): status 404.*; GET http:\/\/127\.0\.0\.1:1\//,
    );
  } finally {
    await empty.close();
    hung.close();
    for (const c of held) c.close();
    await accepting.catch(() => {});
  }
});

Deno.test("readiness: path /health asks /health alone", async () => {
  const node = serve({ "/health": 200 });
  try {
    assert.equal(await firstReady([node.host], { path: "/health" }), null);
    assert.deepEqual(node.seen, ["/health"]);
  } finally {
    await node.close();
  }
});
