import { createLogger } from "../common/log.ts";
import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type SpanProcessor } from "@opentelemetry/sdk-trace";
import { ResponseEnds } from "../http/response_ends.ts";
import { Router } from "../http/router.ts";
import { serveHttp } from "../http/serve.ts";
import {
  onBodyDone,
  serverSpanName,
  tracedFetch,
  tracingMiddleware,
  whenResponseDone,
} from "./http.ts";
import { parseTracingConfig } from "./config.ts";
import { initTracing } from "./setup.ts";
import { traceLogFields, withSpan } from "./api.ts";
import { waitFor } from "../tests/harness/wait.ts";
import { testTracingConfig } from "./_test_util.ts";

function setup() {
  const exporter = new InMemorySpanExporter();
  const lines: string[] = [];
  const logger = createLogger({
    role: "test",
    write: (l) => lines.push(l),
    contextFields: traceLogFields,
  });
  const runtime = initTracing(
    testTracingConfig("test"),
    { role: "test", logger, exporter },
  );
  return { exporter, runtime, lines, logger };
}

Deno.test("http: span names come from the route template, never the raw path", () => {
  assert.equal(
    serverSpanName("GET", "/namespace/{namespace}/blobs/{digest}"),
    "GET /namespace/{namespace}/blobs/{digest}",
  );
  assert.equal(serverSpanName("GET", undefined), "GET");
  assert.equal(serverSpanName("BREW", "/pot"), "HTTP /pot");
});

Deno.test("http: server and client spans, streaming end, status mapping, log correlation", async () => {
  const { exporter, runtime, lines, logger } = setup();
  const router = new Router().use(tracingMiddleware());
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  router.get("/blobs/{digest}", (ctx) => {
    logger.info("serving", { digest: ctx.params.digest });
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await gate;
        c.enqueue(new Uint8Array([1, 2, 3]));
        c.close();
      },
    });
    return new Response(body);
  });
  router.get("/boom", () => {
    throw new Error("kaput");
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, router.handler());
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    await withSpan("test.root", {}, async () => {
      const res = await tracedFetch(`${base}/blobs/sha256:abc?secret=1`, {
        route: "/blobs/{digest}",
      });
      // Headers are in, the body is not: the server span must still be open.
      await runtime.forceFlush();
      assert.equal(
        exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER),
        false,
      );
      release();
      assert.deepEqual([...new Uint8Array(await res.arrayBuffer())], [1, 2, 3]);
      const boom = await tracedFetch(`${base}/boom`, { route: "/boom" });
      assert.equal(boom.status, 500);
      await boom.body?.cancel();
    });
    await runtime.forceFlush();
    // Give the server's body-done callback a tick.
    await new Promise((r) => setTimeout(r, 20));
    await runtime.forceFlush();
    const spans = exporter.getFinishedSpans();
    const byName = (n: string, k: SpanKind) => spans.find((s) => s.name === n && s.kind === k);
    const server1 = byName("GET /blobs/{digest}", SpanKind.SERVER)!;
    const client1 = byName("GET /blobs/{digest}", SpanKind.CLIENT)!;
    const root = spans.find((s) => s.name === "test.root")!;
    assert.ok(server1 && client1 && root, spans.map((s) => s.name).join(","));
    assert.equal(client1.parentSpanContext?.spanId, root.spanContext().spanId);
    assert.equal(server1.parentSpanContext?.spanId, client1.spanContext().spanId);
    assert.equal(server1.spanContext().traceId, root.spanContext().traceId);
    assert.equal(server1.attributes["http.route"], "/blobs/{digest}");
    assert.equal(server1.attributes["url.path"], "/blobs/sha256:abc");
    assert.equal(server1.attributes["http.response.status_code"], 200);
    // The query string (it may hold secrets) is not recorded.
    assert.equal(client1.attributes["url.full"], `${base}/blobs/sha256:abc`);
    const server2 = byName("GET /boom", SpanKind.SERVER)!;
    assert.equal(server2.status.code, SpanStatusCode.ERROR);
    assert.equal(server2.events[0]?.name, "exception");
    assert.equal(byName("GET /boom", SpanKind.CLIENT)!.status.code, SpanStatusCode.ERROR);
    // The log line written inside the handler carries the server span's ids.
    const line = JSON.parse(lines.find((l) => l.includes('"serving"'))!);
    assert.equal(line.trace_id, server1.spanContext().traceId);
    assert.equal(line.span_id, server1.spanContext().spanId);
    assert.equal(line.role, "test");
    assert.equal(line.level, "info");
  } finally {
    await server.shutdown();
    await runtime.shutdown();
  }
});

Deno.test("http: a client that cancels the body still ends the server span, with an error", async () => {
  const { exporter, runtime } = setup();
  const router = new Router().use(tracingMiddleware());
  router.get("/endless", () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(new Uint8Array(1024));
          return new Promise((r) => setTimeout(r, 5));
        },
      }),
    ));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, router.handler());
  try {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/endless`);
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const span = await waitFor("the server span to end", async () => {
      await runtime.forceFlush();
      return exporter.getFinishedSpans().find((s) => s.name === "GET /endless");
    }, { intervalMs: 20 });
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes["error.type"], "body_stream_aborted");
  } finally {
    await server.shutdown();
    await runtime.shutdown();
  }
});

Deno.test("http: onBodyDone reports once; with a size, done at that size and short bodies fail", async () => {
  const enc = new TextEncoder();
  const calls: [unknown, number][] = [];
  const record = (error: unknown, bytes: number) => calls.push([error, bytes]);

  await new Response(onBodyDone(ReadableStream.from([enc.encode("ab"), enc.encode("c")]), record))
    .text();
  assert.deepEqual(calls, [[undefined, 3]]);

  // Done as soon as `size` bytes passed, before the source's end is read.
  calls.length = 0;
  const reader = onBodyDone(ReadableStream.from([enc.encode("abc"), enc.encode("d")]), record, {
    size: 3,
  }).getReader();
  await reader.read();
  assert.deepEqual(calls, [[undefined, 3]]);
  await reader.cancel();
  assert.equal(calls.length, 1);

  calls.length = 0;
  await new Response(onBodyDone(ReadableStream.from([enc.encode("ab")]), record, { size: 5 }))
    .text();
  assert.equal(calls.length, 1);
  assert.match(String(calls[0][0]), /body ended after 2 of 5 bytes/);
});

Deno.test("http: the middleware counts requests in flight only into the counter it was given", async () => {
  const events: string[] = [];
  const counter = { begin: () => events.push("begin"), end: () => events.push("end") };
  const counted = new Router().use(tracingMiddleware({ inFlight: counter }));
  counted.get("/x", () => {
    events.push("handler");
    return new Response("ok");
  });
  const other = new Router().use(tracingMiddleware());
  other.get("/x", () => new Response("ok"));
  await (await other.handle(new Request("http://h/x"))).text();
  assert.deepEqual(events, []);
  await (await counted.handle(new Request("http://h/x"))).text();
  assert.deepEqual(events, ["begin", "handler", "end"]);
});

Deno.test("http: tracedFetch hands the request to a given transport, context headers included", async () => {
  const { exporter, runtime } = setup();
  try {
    const seen: { url: string; traceparent: string | null; method?: string }[] = [];
    const res = await tracedFetch("http://127.0.0.1:9/bucket/key?uploads", {
      method: "POST",
      route: "/{bucket}/{key+}",
      attributes: { "rpc.system": "aws-api" },
      transport: (url, init) => {
        seen.push({
          url,
          traceparent: new Headers(init.headers).get("traceparent"),
          method: init.method,
        });
        return Promise.resolve(new Response("ok"));
      },
    });
    assert.equal(await res.text(), "ok");
    assert.equal(seen.length, 1);
    assert.equal(seen[0].url, "http://127.0.0.1:9/bucket/key?uploads");
    assert.equal(seen[0].method, "POST");
    await runtime.forceFlush();
    const span = exporter.getFinishedSpans().find((s) => s.name === "POST /{bucket}/{key+}");
    assert.ok(span, exporter.getFinishedSpans().map((s) => s.name).join(","));
    assert.equal(span.attributes["rpc.system"], "aws-api");
    assert.match(seen[0].traceparent ?? "", new RegExp(`^00-${span.spanContext().traceId}-`));
  } finally {
    await runtime.shutdown();
  }
});

function bodyCtx(method = "GET") {
  const req = new Request("http://h/x", { method });
  return { req, url: new URL(req.url), params: {}, route: "/x", remote: undefined, state: {} };
}

Deno.test("http: whenResponseDone shares one body wrapper per request and reads small declared bodies at once", async () => {
  const calls: string[] = [];
  const record = (who: string) => (error: unknown, bytes: number) =>
    calls.push(`${who} ${error ?? "ok"} ${bytes}`);

  // Undeclared length: one wrapper, both callbacks when the body is read, inner first.
  const ctx = bodyCtx();
  const chunk = new Uint8Array(70_000);
  const source = new Response(ReadableStream.from([chunk, chunk]));
  const inner = await whenResponseDone(ctx, source, record("inner"));
  const outer = await whenResponseDone(ctx, inner, record("outer"));
  assert.equal(outer, inner, "the outer middleware adds no second wrapper");
  assert.deepEqual(calls, []);
  assert.equal((await outer.arrayBuffer()).byteLength, 140_000);
  assert.deepEqual(calls, ["inner ok 140000", "outer ok 140000"]);

  // A declared small body is done once read here; a later tracker joins the finished one.
  calls.length = 0;
  const small = bodyCtx();
  const first = await whenResponseDone(
    small,
    new Response("abc", { status: 201, headers: { "content-length": "3", "x-a": "1" } }),
    record("inner"),
  );
  assert.deepEqual(calls, ["inner ok 3"]);
  const second = await whenResponseDone(small, first, record("outer"));
  assert.equal(second, first);
  assert.deepEqual(calls, ["inner ok 3", "outer ok 3"]);
  assert.equal(second.status, 201);
  assert.equal(second.headers.get("x-a"), "1");
  assert.equal(await second.text(), "abc");

  // A small body that fails: the callbacks see the error, and so does the server reading it.
  calls.length = 0;
  const failing = new Response(
    new ReadableStream({ pull: (c) => c.error(new Error("disk gone")) }),
    { headers: { "content-length": "5" } },
  );
  const failed = await whenResponseDone(bodyCtx(), failing, record("inner"));
  assert.deepEqual(calls, ["inner Error: disk gone 0"]);
  await assert.rejects(() => failed.arrayBuffer(), /disk gone/);

  // HEAD and bodiless answers are done at once.
  calls.length = 0;
  await whenResponseDone(bodyCtx("HEAD"), new Response("abc"), record("head"));
  await whenResponseDone(bodyCtx(), new Response(null, { status: 204 }), record("empty"));
  assert.deepEqual(calls, ["head ok 0", "empty ok 0"]);
});

Deno.test("http: whenResponseDone with a listener that reports ends passes every body on as it is and is done on the report", async () => {
  const calls: string[] = [];
  const record = (who: string) => (error: unknown, bytes: number) =>
    calls.push(`${who} ${error ?? "ok"} ${bytes}`);
  const ends = new ResponseEnds();
  const ctx = { ...bodyCtx(), responseEnds: ends };
  const small = new Response("abc", { headers: { "content-length": "3" } });
  const inner = await whenResponseDone(ctx, small, record("inner"));
  const outer = await whenResponseDone(ctx, inner, record("outer"));
  assert.equal(inner, small, "a small body is not read and made into a new response");
  assert.equal(outer, small);
  assert.equal(small.bodyUsed, false);
  assert.deepEqual(calls, []);
  ends.report(small, undefined, 3);
  assert.deepEqual(calls, ["inner ok 3", "outer ok 3"]);

  calls.length = 0;
  const streamed = new Response(ReadableStream.from([new Uint8Array(70_000)]));
  const other = { ...bodyCtx(), responseEnds: ends };
  assert.equal(await whenResponseDone(other, streamed, record("streamed")), streamed);
  const gone = new Error("client closed the connection after 10 bytes of the response body");
  ends.report(streamed, gone, 10);
  assert.deepEqual(calls, [`streamed ${gone} 10`]);
});

Deno.test("http: through the role listener, the server span ends when the body is written, and with an error when the client leaves", async () => {
  const { exporter, runtime } = setup();
  const router = new Router().use(tracingMiddleware());
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  router.get("/slow", () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async pull(c) {
          await gate;
          c.enqueue(new Uint8Array(3000));
          c.close();
        },
      }),
      { headers: { "content-length": "3000" } },
    ));
  router.get("/endless", () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(new Uint8Array(64 * 1024));
          return new Promise((r) => setTimeout(r, 5));
        },
      }),
    ));
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: (req, info) => router.handle(req, info),
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const finished = async (name: string) => {
    await runtime.forceFlush();
    return exporter.getFinishedSpans().find((s) => s.name === name);
  };
  try {
    const slow = fetch(`${base}/slow`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await finished("GET /slow"), undefined, "the body is not written yet");
    release();
    assert.equal((await (await slow).arrayBuffer()).byteLength, 3000);
    const span = await waitFor("the slow span to end", () => finished("GET /slow"), {
      intervalMs: 20,
    });
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    assert.equal(span.attributes["http.response.body.size"], 3000);

    const res = await fetch(`${base}/endless`);
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const aborted = await waitFor("the endless span to end", () => finished("GET /endless"), {
      intervalMs: 20,
    });
    assert.equal(aborted.status.code, SpanStatusCode.ERROR);
    assert.equal(aborted.attributes["error.type"], "body_stream_aborted");
  } finally {
    await server.shutdown();
    await runtime.shutdown();
  }
});

Deno.test("http: with no tracer provider the handler runs in the incoming context and no span starts", async () => {
  trace.disable();
  const logger = createLogger({ role: "test", write: () => {} });
  const runtime = initTracing(parseTracingConfig({ enabled: false }, "test", {}), {
    role: "test",
    logger,
  });
  try {
    const router = new Router().use(runtime.serverMiddleware());
    let seen: ReturnType<typeof traceLogFields>;
    router.get("/x", () => {
      seen = traceLogFields();
      return new Response("ok");
    });
    const res = await router.handle(
      new Request("http://h/x", {
        headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      }),
    );
    assert.equal(await res.text(), "ok");
    assert.deepEqual(seen, {
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      span_id: "00f067aa0ba902b7",
    });
  } finally {
    await runtime.shutdown();
  }
});

Deno.test("http: unsampled requests and tracing off still propagate through withSpan children", async () => {
  for (const enabled of [true, false]) {
    trace.disable();
    const exporter = new InMemorySpanExporter();
    const logger = createLogger({ role: "test", write: () => {} });
    const runtime = initTracing(
      parseTracingConfig({ enabled, sampling: { default_rate: 0 } }, "test", {}),
      { role: "test", logger, exporter },
    );
    try {
      const sent: (string | null)[] = [];
      const transport = (_url: string, init: RequestInit) => {
        sent.push(new Headers(init.headers).get("traceparent"));
        return Promise.resolve(new Response("ok"));
      };
      const router = new Router().use(runtime.serverMiddleware());
      let inHandler: ReturnType<typeof traceLogFields>;
      let inChild: ReturnType<typeof traceLogFields>;
      router.get("/x", async () => {
        inHandler = traceLogFields();
        await withSpan("test.outer", {}, () =>
          withSpan("test.inner", {}, async () => {
            inChild = traceLogFields();
            await tracedFetch("http://127.0.0.1:1/next", { transport });
          }));
        return new Response("done");
      });
      const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
      const res = await router.handle(
        new Request("http://h/x", { headers: { traceparent: incoming } }),
      );
      assert.equal(await res.text(), "done");
      await runtime.forceFlush();
      assert.equal(exporter.getFinishedSpans().length, 0, `enabled ${enabled}`);
      // The incoming trace goes on, unsampled, with the server span's context (or, tracing off,
      // the caller's): the children add none of their own.
      assert.equal(inHandler!.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
      assert.deepEqual(inChild, inHandler);
      assert.equal(sent.length, 1);
      assert.match(sent[0]!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
      if (!enabled) assert.equal(sent[0], incoming);
      else assert.notEqual(sent[0], incoming);
    } finally {
      await runtime.shutdown();
    }
  }
});

Deno.test("http: a jaeger-debug-id samples an edge request at 0%, and the server span has every attribute", async () => {
  trace.disable();
  const exporter = new InMemorySpanExporter();
  const logger = createLogger({ role: "test", write: () => {} });
  const runtime = initTracing(
    parseTracingConfig(
      { enabled: true, sampling: { default_rate: 0 }, safeguards: { load_threshold: 1 } },
      "test",
      {},
    ),
    { role: "test", logger, exporter },
  );
  try {
    const router = new Router().use(runtime.serverMiddleware({ edge: true }));
    router.get(
      "/blobs/{digest}",
      () => new Response("four", { headers: { "content-length": "4" } }),
    );
    const remote: Deno.NetAddr = { transport: "tcp", hostname: "10.1.2.3", port: 40000 };
    const get = async (headers: Record<string, string>) => {
      const res = await router.handle(
        new Request("http://agent.local:8080/blobs/sha256:abc", { headers }),
        { remote },
      );
      assert.equal(await res.text(), "four");
    };
    await get({ "user-agent": "docker/27" });
    await runtime.forceFlush();
    assert.equal(exporter.getFinishedSpans().length, 0, "0% samples nothing without the header");
    await get({ "user-agent": "docker/27", "jaeger-debug-id": "debug-1" });
    await runtime.forceFlush();
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 1);
    assert.equal(spans[0].name, "GET /blobs/{digest}");
    assert.equal(spans[0].kind, SpanKind.SERVER);
    assert.deepEqual(spans[0].attributes, {
      "http.request.method": "GET",
      "url.path": "/blobs/sha256:abc",
      "url.scheme": "http",
      "server.address": "agent.local",
      "server.port": 8080,
      "kraken.edge": true,
      "http.route": "/blobs/{digest}",
      "client.address": "10.1.2.3",
      "network.peer.address": "10.1.2.3",
      "network.peer.port": 40000,
      "kraken.sampling.debug_id": "debug-1",
      "kraken.sampling.client_forced": true,
      "user_agent.original": "docker/27",
      "http.response.status_code": 200,
      "http.response.body.size": 4,
    });
  } finally {
    await runtime.shutdown();
  }
});

Deno.test("http: a server span starts with what the samplers read and gets the rest once it records", async () => {
  trace.disable();
  const exporter = new InMemorySpanExporter();
  const atStart: Record<string, unknown>[] = [];
  const processor = {
    onStart: (span: { attributes: Record<string, unknown> }) =>
      atStart.push({ ...span.attributes }),
    onEnd: () => {},
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const runtime = initTracing(
    parseTracingConfig(
      {
        enabled: true,
        sampling: { default_rate: 0, rules: [{ match: { path_prefix: "/traced/*" }, rate: 1 }] },
        safeguards: { load_threshold: 1 },
      },
      "test",
      {},
    ),
    {
      role: "test",
      logger: createLogger({ role: "test", write: () => {} }),
      exporter,
      spanProcessors: [processor as unknown as SpanProcessor],
    },
  );
  try {
    const router = new Router().use(runtime.serverMiddleware({ edge: true }));
    router.get("/traced/{name}", () => new Response("yes"));
    router.get("/quiet/{name}", () => new Response("no"));
    const remote: Deno.NetAddr = { transport: "tcp", hostname: "10.1.2.3", port: 40000 };
    for (const path of ["/quiet/a", "/traced/b"]) {
      const res = await router.handle(
        new Request(`http://agent.local:8080${path}`, { headers: { "user-agent": "docker/27" } }),
        { remote },
      );
      await res.text();
    }
    await runtime.forceFlush();
    // The path rule saw url.path before the decision: only the /traced request was sampled.
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(spans.map((s) => s.attributes["url.path"]), ["/traced/b"]);
    assert.deepEqual(atStart, [{
      "url.path": "/traced/b",
      "kraken.edge": true,
      "network.peer.address": "10.1.2.3",
    }]);
    assert.deepEqual(spans[0].attributes, {
      "url.path": "/traced/b",
      "kraken.edge": true,
      "network.peer.address": "10.1.2.3",
      "http.request.method": "GET",
      "url.scheme": "http",
      "server.address": "agent.local",
      "server.port": 8080,
      "http.route": "/traced/{name}",
      "client.address": "10.1.2.3",
      "network.peer.port": 40000,
      "user_agent.original": "docker/27",
      "http.response.status_code": 200,
    });
  } finally {
    await runtime.shutdown();
  }
});
