/**
 * Tests of the Jaeger harness against a real Jaeger v2: OTLP/JSON in, trace tree out, and
 * stop/restart on the same ports. A missing Jaeger binary fails these tests (it never skips them);
 * the failure says to run scripts/setup.sh.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type JaegerInstance, startJaeger } from "./jaeger.ts";
import { assertTree, formatTree } from "./trace_tree.ts";
import { externalTest } from "./external.ts";

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Posts a two-span trace (server parent, client child with an error) as OTLP/JSON. */
async function postTrace(jaeger: JaegerInstance, traceId: string): Promise<void> {
  const parentId = randomHex(8);
  const startNs = BigInt(Date.now()) * 1_000_000n;
  const body = {
    resourceSpans: [{
      resource: {
        attributes: [
          { key: "service.name", value: { stringValue: "harness-test" } },
          { key: "host.name", value: { stringValue: "test-host" } },
        ],
      },
      scopeSpans: [{
        scope: { name: "harness" },
        spans: [
          {
            traceId,
            spanId: parentId,
            name: "GET /blobs/{digest}",
            kind: 2,
            startTimeUnixNano: String(startNs),
            endTimeUnixNano: String(startNs + 12_000_000n),
            attributes: [
              { key: "http.request.method", value: { stringValue: "GET" } },
              { key: "http.response.status_code", value: { intValue: "200" } },
            ],
          },
          {
            traceId,
            spanId: randomHex(8),
            parentSpanId: parentId,
            name: "backend.fetch",
            kind: 3,
            startTimeUnixNano: String(startNs + 1_000_000n),
            endTimeUnixNano: String(startNs + 5_000_000n),
            attributes: [{ key: "retry", value: { boolValue: true } }],
            events: [{ name: "cache.miss", timeUnixNano: String(startNs + 2_000_000n) }],
            status: { code: 2, message: "boom" },
          },
        ],
      }],
    }],
  };
  const response = await fetch(`${jaeger.otlpHttpEndpoint}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `OTLP export failed: ${text}`);
}

externalTest("jaeger harness: an OTLP/JSON trace comes back as a tree", async () => {
  const jaeger = await startJaeger();
  try {
    const traceId = randomHex(16);
    await postTrace(jaeger, traceId);
    const tree = await jaeger.waitForTrace(traceId, { minSpans: 2, timeoutMs: 10_000 });

    assert.equal(tree.traceId, traceId);
    assert.equal(tree.roots.length, 1);
    const [root] = tree.roots;
    assert.equal(root.service, "harness-test");
    assert.equal(root.resource["host.name"], "test-host");
    assert.equal(root.kind, "server");
    assert.equal(root.durationUs, 12_000);
    const [child] = root.children;
    assert.equal(child.parentSpanId, root.spanId);
    assert.equal(child.status, "error");
    assert.equal(child.statusMessage, "boom");
    assert.deepEqual(child.events.map((e) => e.name), ["cache.miss"]);

    assertTree(tree, {
      name: "GET /blobs/{digest}",
      service: "harness-test",
      kind: "server",
      attrs: { "http.request.method": "GET", "http.response.status_code": 200 },
      absentAttrs: ["authorization"],
      children: [{
        name: "backend.fetch",
        kind: "client",
        status: "error",
        attrs: { retry: true },
        events: ["cache.miss"],
      }],
    });
    assert.throws(
      () => assertTree(tree, { name: "GET /blobs/{digest}", children: [{ name: "missing.span" }] }),
      /no span missing\.span under \(trace root\) > GET \/blobs\/\{digest\}[\s\S]*backend\.fetch/,
    );
    assert.throws(
      () => assertTree(tree, { name: /^GET /, attrs: { "http.request.method": "POST" } }),
      /attribute http\.request\.method is "GET", expected POST/,
    );

    const printed = formatTree(tree);
    assert.match(printed, /\[harness-test\] GET \/blobs\/\{digest\} {2}12\.0 ms server/);
    assert.match(printed, /\n {4}\[harness-test\] backend\.fetch {2}4\.000 ms client ERROR: boom/);

    assert.deepEqual(await jaeger.services(), ["harness-test"]);
    const found = await jaeger.findTraces({ service: "harness-test", operation: "backend.fetch" });
    assert.deepEqual(found.map((t) => t.traceId), [traceId]);
    assert.equal(await jaeger.getTrace(randomHex(16)), undefined);
  } finally {
    await jaeger.stop();
  }
});

externalTest("jaeger harness: restart keeps the ports and accepts traces again", async () => {
  const jaeger = await startJaeger();
  try {
    const ports = { ...jaeger.ports };
    const first = randomHex(16);
    await postTrace(jaeger, first);
    await jaeger.waitForTrace(first, { minSpans: 2 });

    await jaeger.stop();
    await assert.rejects(fetch(`${jaeger.queryUrl}/api/services`));
    await jaeger.restart();

    assert.deepEqual(jaeger.ports, ports);
    assert.equal(await jaeger.getTrace(first), undefined, "memory storage starts empty");
    const second = randomHex(16);
    await postTrace(jaeger, second);
    const tree = await jaeger.waitForTrace(second, { minSpans: 2 });
    assert.equal(tree.spans.length, 2);
  } finally {
    await jaeger.stop();
  }
});

externalTest("jaeger harness: waitForTrace times out with a clear message", async () => {
  const jaeger = await startJaeger();
  try {
    await assert.rejects(
      jaeger.waitForTrace(randomHex(16), { minSpans: 1, timeoutMs: 300 }),
      /did not reach 1 spans within 300 ms; Jaeger holds no span of it/,
    );
  } finally {
    await jaeger.stop();
  }
});

Deno.test("jaeger harness: a missing binary names the install script", async () => {
  await assert.rejects(
    startJaeger({ binary: "/nonexistent/jaeger" }),
    /jaeger binary not found at \/nonexistent\/jaeger\. Run scripts\/setup\.sh/,
  );
});
