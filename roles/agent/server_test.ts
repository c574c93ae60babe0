import { createLogger } from "../../common/log.ts";
import assert from "node:assert/strict";
import { digestOfBytes } from "../../storage/digest.ts";
import { initTracing, parseTracingConfig } from "../../tracing/mod.ts";
import { seedImage, startAgentStack } from "./_test_util.ts";

const tracing = initTracing(
  parseTracingConfig({ enabled: false }, "agent", {}),
  { role: "agent", logger: createLogger({ role: "agent", write: () => {} }) },
);

Deno.test("agent server: blob API downloads over P2P, serves from cache, deletes", async () => {
  const stack = await startAgentStack(tracing);
  try {
    const base = `http://${stack.agent.serverAddr}`;
    const image = await seedImage(stack.origin, [40_000]);
    const layer = image.layers[0];

    // Bare hex is accepted, and the namespace is passed through verbatim (escaped `/`).
    let res = await fetch(`${base}/namespace/library%2Fapp/blobs/${layer.digest.hex}`);
    assert.equal(res.status, 200);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes);
    assert.equal(res.headers.get("content-type"), null);
    assert.ok(
      stack.tracker.announces.some((a) => a.peer.peerId === stack.agent.peerId),
      "the agent announced",
    );

    // Now cached: served without asking the tracker again.
    const metainfoRequests = stack.tracker.metainfoRequests;
    res = await fetch(`${base}/namespace/library%2Fapp/blobs/${layer.digest}`);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes);
    assert.equal(stack.tracker.metainfoRequests, metainfoRequests);

    res = await fetch(`${base}/blobs/${layer.digest}`, { method: "DELETE" });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.deepEqual(stack.agent.scheduler.torrents, []);
    // Gone from disk: the next GET downloads again.
    res = await fetch(`${base}/namespace/library%2Fapp/blobs/${layer.digest}`);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes);
    assert.equal(stack.tracker.metainfoRequests, metainfoRequests + 1);
  } finally {
    await stack.close();
  }
});

Deno.test("agent server: unknown blob is an empty 404, a bad digest 400", async () => {
  const stack = await startAgentStack(tracing);
  try {
    const base = `http://${stack.agent.serverAddr}`;
    const unknown = await digestOfBytes(new TextEncoder().encode("not in the cluster"));
    let res = await fetch(`${base}/namespace/ns/blobs/${unknown}`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), "");
    res = await fetch(`${base}/namespace/ns/blobs/sha256:xyz`);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /invalid sha256 hex/);
    res = await fetch(`${base}/blobs/md5:abc`, { method: "DELETE" });
    assert.equal(res.status, 400);
    await res.body?.cancel();
  } finally {
    await stack.close();
  }
});

Deno.test("agent server: tags, health and readiness", async () => {
  const stack = await startAgentStack(tracing);
  try {
    const base = `http://${stack.agent.serverAddr}`;
    const digest = await digestOfBytes(new TextEncoder().encode("manifest"));
    stack.buildIndex.tags.set("library/app:v1", digest);
    let res = await fetch(`${base}/tags/library%2Fapp:v1`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), digest.toString());
    res = await fetch(`${base}/tags/library%2Fapp:v2`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), "");

    res = await fetch(`${base}/health`);
    assert.equal(await res.text(), "OK");
    res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // The tracker stand-in has neither /readiness nor /health: the agent is not ready, and says why.
    res = await fetch(`${base}/readiness`);
    assert.equal(res.status, 503);
    const text = await res.text();
    assert.match(
      text,
      /^agent not ready: tracker: GET http:\/\/127\.0\.0\.1:\d+\/health \(no \/readiness route\): status 404/,
    );
    assert.doesNotMatch(text, /build-index/);
  } finally {
    await stack.close();
  }
});
