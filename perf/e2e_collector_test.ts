import assert from "node:assert/strict";
import { sinkHandler } from "./e2e_collector.ts";

Deno.test("e2e collector: answers exports at once, counts requests and bytes", async () => {
  const { handler, stats } = sinkHandler();
  const proto = await handler(
    new Request("http://sink/v1/traces", {
      method: "POST",
      headers: { "content-type": "application/x-protobuf" },
      body: new Uint8Array(300),
    }),
  );
  assert.equal(proto.status, 200);
  assert.equal(proto.headers.get("content-type"), "application/x-protobuf");
  assert.equal((await proto.arrayBuffer()).byteLength, 0);
  const json = await handler(
    new Request("http://sink/v1/traces", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"resourceSpans":[]}',
    }),
  );
  assert.deepEqual(await json.json(), {});
  assert.deepEqual(stats, { requests: 2, bytes: 320 });
  const read = await handler(new Request("http://sink/stats"));
  assert.deepEqual(await read.json(), { requests: 2, bytes: 320 });
  const wrong = await handler(new Request("http://sink/v1/metrics", { method: "POST" }));
  assert.equal(wrong.status, 404);
  assert.match(await wrong.text(), /POST \/v1\/traces/);
  assert.equal(stats.requests, 2);
});
