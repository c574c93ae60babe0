// Walks every route the project's clients request and checks the role that should serve it has
// a router entry with the same method and template: the client's span name `{METHOD} {template}`
// is then the server's too. The clients run against a recording fetch; the routers are the
// roles' real ones, built with stand-in dependencies (no handler runs).

import assert from "node:assert/strict";
import { AnnounceClient } from "../cluster/announce_client.ts";
import { bytesSource, OriginClient } from "../cluster/blob_client.ts";
import { TagClient } from "../cluster/tag_client.ts";
import type { Router } from "../http/router.ts";
import { type AgentServerDeps, createAgentRouter } from "../roles/agent/server.ts";
import { type BuildIndexRouterDeps, createBuildIndexRouter } from "../roles/build-index/server.ts";
import { createOriginRouter, type OriginRouterDeps } from "../roles/origin/server.ts";
import { HttpOriginStore } from "../roles/tracker/originstore.ts";
import { createTrackerRouter, type TrackerRouterDeps } from "../roles/tracker/server.ts";
import { TestfsBackend } from "../storage/backend/testfs.ts";
import { createTestfsHandler } from "../storage/backend/testfs_server.ts";
import { parseDigest } from "../storage/digest.ts";
import type { TracingRuntime } from "../tracing/mod.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { HEALTH, READINESS } from "./health.ts";
import type { Route } from "./route.ts";
import { TESTFS_DOWNLOAD, TESTFS_LIST, TESTFS_STAT, TESTFS_UPLOAD } from "./testfs.ts";

interface Call {
  method: string;
  route: string | undefined;
  path: string;
}

const DIGEST = parseDigest(`sha256:${"ab".repeat(32)}`);
const NAMESPACE = "library/ubuntu";

/** A fetch that records each request and answers 200 with the headers the clients read. */
function recorder(calls: Call[]) {
  return (url: string | URL | Request, init: RequestInit & { route?: string } = {}) => {
    calls.push({
      method: (init.method ?? "GET").toUpperCase(),
      route: init.route,
      path: new URL(String(url)).pathname,
    });
    return Promise.resolve(
      new Response(null, {
        headers: { location: "uid1", "content-length": "1", "origin-locations": "127.0.0.1:1" },
      }),
    );
  };
}

/** Runs `fn`; the calls it records matter, not whether it understood the canned answers. */
async function recordOf(fn: (fetch: ReturnType<typeof recorder>) => Promise<unknown>[]) {
  const calls: Call[] = [];
  for (const p of fn(recorder(calls))) await p.catch(() => {});
  return calls;
}

// Stand-ins: registering routes reads only the tracing runtime and the build-index's backends.
const standIn = <T>(fields: Partial<T> = {}) => fields as T;
const tracing = standIn<TracingRuntime>({
  serverMiddleware: () => (_ctx, next) => next(),
  metricsHandler: () => new Response(""),
});

function routers(): Record<string, Router> {
  return {
    origin: createOriginRouter(standIn<OriginRouterDeps>({ tracing })),
    tracker: createTrackerRouter(standIn<TrackerRouterDeps>({ tracing })),
    "build-index": createBuildIndexRouter(
      standIn<BuildIndexRouterDeps>({
        tracing,
        originHosts: [],
        service: standIn<BuildIndexRouterDeps["service"]>({
          backends: standIn<BuildIndexRouterDeps["service"]["backends"]>({ backends: [] }),
        }),
      }),
    ),
    agent: createAgentRouter(
      standIn<AgentServerDeps>({ tracing, trackerHosts: ["127.0.0.1:1"], buildIndexHosts: [] }),
    ),
  };
}

function assertServed(router: Router, role: string, call: Call): void {
  const label = `${call.method} ${call.path} (client route ${call.route})`;
  assert.ok(call.route !== undefined, `${label}: the client names no route`);
  const found = router.match(call.method, call.path);
  assert.ok("route" in found, `${label}: ${role} has no route for it`);
  assert.equal(found.route.template, call.route, `${label}: ${role} matches another template`);
  assert.equal(found.route.method, call.method, `${label}: ${role} serves it by another method`);
}

Deno.test("every origin, tracker and build-index client route is served by its role", async () => {
  const serving = routers();
  const originCalls = await recordOf((fetch) => {
    const c = new OriginClient("127.0.0.1:1", { fetch, timeoutMs: 1000 });
    const src = bytesSource(new Uint8Array([1]));
    return [
      c.uploadBlob(NAMESPACE, DIGEST, src),
      c.duplicateUpload(NAMESPACE, DIGEST, src, 10),
      c.transferBlob(DIGEST, src),
      c.stat(NAMESPACE, DIGEST, { local: true }),
      c.download(NAMESPACE, DIGEST),
      c.getMetaInfo(NAMESPACE, DIGEST),
      c.locations(DIGEST),
      c.replicateToRemote(NAMESPACE, DIGEST, "127.0.0.2:80"),
      new HttpOriginStore({ cluster: { locations: () => Promise.resolve(["127.0.0.1:1"]) }, fetch })
        .getOrigins(DIGEST),
    ];
  });
  const tagCalls = await recordOf((fetch) => {
    const c = new TagClient("127.0.0.1:1", { fetch });
    return [
      c.put("repo:tag", DIGEST, { replicate: true }),
      c.get("repo:tag"),
      c.has("repo:tag"),
      c.list(""),
      c.list("library/ubuntu"),
      c.listRepository("library/ubuntu", { limit: 2 }),
      c.origin(),
      c.duplicatePut("repo:tag", DIGEST, 10),
      c.replicate("repo:tag"),
      c.duplicateReplicate("repo:tag", DIGEST, [DIGEST], 10),
    ];
  });
  const trackerCalls = await recordOf((fetch) => {
    const c = new AnnounceClient({ trackers: ["127.0.0.1:1"], fetch });
    return [
      c.announce({
        digest: DIGEST,
        infoHash: InfoHash.fromHex("cd".repeat(20)),
        peer: { peerId: "ef".repeat(20), ip: "127.0.0.1", port: 1 },
        complete: false,
      }),
      c.getMetaInfo(NAMESPACE, DIGEST),
    ];
  });
  // Every client method above made its requests (uploads: start, PATCH, commit).
  assert.equal(originCalls.length, 3 * 3 + 5 + 1);
  assert.equal(tagCalls.length, 10);
  assert.equal(trackerCalls.length, 2);
  for (const call of originCalls) assertServed(serving.origin, "origin", call);
  for (const call of tagCalls) assertServed(serving["build-index"], "build-index", call);
  for (const call of trackerCalls) assertServed(serving.tracker, "tracker", call);
});

Deno.test("the health routes roles ask of each other are served by the asked role", () => {
  const serving = routers();
  // Who asks whom: agents ask trackers and build-indexes, trackers and build-indexes and
  // proxies ask origins for readiness; proxies ask build-indexes for health.
  const asked: [Route, string][] = [
    [READINESS, "tracker"],
    [READINESS, "build-index"],
    [READINESS, "origin"],
    [HEALTH, "build-index"],
  ];
  for (const [r, role] of asked) {
    assertServed(serving[role], role, { method: r.method, route: r.template, path: r.template });
  }
});

Deno.test("every testfs client request names a testfs route the testfs server answers", async () => {
  const root = await Deno.makeTempDir({ prefix: "kraken-wire-testfs-" });
  try {
    const handler = createTestfsHandler(root);
    const calls: (Call & { status: number })[] = [];
    const backend = new TestfsBackend({
      addr: "127.0.0.1:1",
      root: "blobs",
      fetch: async (url, init) => {
        const res = await handler(new Request(url, init));
        calls.push({
          method: (init.method ?? "GET").toUpperCase(),
          path: new URL(url).pathname,
          route: init.route,
          status: res.status,
        });
        return res;
      },
    });
    const name = "ab".repeat(32);
    await backend.upload("ns", name, new Uint8Array([1, 2]));
    assert.deepEqual(await backend.stat("ns", name), { size: 2 });
    await (await backend.download("ns", name))?.cancel();
    assert.deepEqual((await backend.list("")).names, [name]);
    const expected = [TESTFS_UPLOAD, TESTFS_STAT, TESTFS_DOWNLOAD, TESTFS_LIST];
    assert.deepEqual(
      calls.map((c) => `${c.method} ${c.route} ${c.status}`),
      expected.map((r) => `${r.spanName} 200`),
    );
    for (const c of calls) {
      const prefix = c.route!.replace("{path+}", "");
      assert.ok(c.path.startsWith(prefix), `${c.path} is not under ${c.route}`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
