import assert from "node:assert/strict";
import { bytesBodyOf, bytesResponse } from "./bytes_response.ts";
import { serveHttp } from "./serve.ts";

Deno.test("bytes response: for the role listener it has no body of its own; a GET gets the bytes, a HEAD none, and the end is reported", async () => {
  const ended: [unknown, number][] = [];
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: (_req, info) => {
      const response = bytesResponse('{"peers":[]}', {
        headers: { "content-type": "text/plain; charset=utf-8" },
      }, { responseEnds: info.responseEnds });
      assert.equal(response.body, null, "no body is built for the listener");
      assert.deepEqual(bytesBodyOf(response), new TextEncoder().encode('{"peers":[]}'));
      info.responseEnds.watch(response, (error, bytes) => ended.push([error, bytes]));
      return Promise.resolve(response);
    },
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/announce`;
    const get = await fetch(url);
    assert.equal(get.headers.get("content-length"), "12");
    assert.equal(get.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await get.text(), '{"peers":[]}');
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    assert.deepEqual(ended, [[undefined, 12], [undefined, 0]]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("bytes response: in-process, without the listener, the response carries the bytes", async () => {
  const response = bytesResponse(new Uint8Array([1, 2, 3]), { status: 201 });
  assert.equal(bytesBodyOf(response), undefined);
  assert.equal(response.status, 201);
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([1, 2, 3]));
  const withoutEnds = bytesResponse("x", {}, { responseEnds: undefined });
  assert.equal(await withoutEnds.text(), "x");
});
