import assert from "node:assert/strict";
import { requestBody, RequestBodyError } from "./request_body.ts";

const enc = new TextEncoder();

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += new TextDecoder().decode(chunk);
  return text;
}

Deno.test("requestBody passes the bytes through; no body is null", async () => {
  const req = new Request("http://x/", { method: "PUT", body: "hello" });
  assert.equal(await readAll(requestBody(req)!), "hello");
  assert.equal(requestBody(new Request("http://x/")), null);
});

Deno.test("requestBody turns a body that breaks off into RequestBodyError", async () => {
  let sent = false;
  const broken = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(enc.encode("part"));
      } else controller.error(new Error("connection reset"));
    },
  });
  const req = new Request("http://x/", { method: "PUT", body: broken });
  await assert.rejects(readAll(requestBody(req)!), (error: unknown) => {
    assert.ok(error instanceof RequestBodyError);
    assert.match(error.message, /could not be read to its end: connection reset/);
    return true;
  });
});

Deno.test("requestBody: a body cut short of its Content-Length on a real connection", async () => {
  const seen = Promise.withResolvers<unknown>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      try {
        await readAll(requestBody(req)!);
        seen.resolve(null);
      } catch (error) {
        seen.resolve(error);
      }
      return new Response(null, { status: 400 });
    },
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await conn.write(enc.encode("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  await conn.closeWrite();
  assert.ok(await seen.promise instanceof RequestBodyError);
  const buf = new Uint8Array(1024);
  while (await conn.read(buf).catch(() => null) !== null) { /* drain the answer */ }
  conn.close();
});
