import assert from "node:assert/strict";
import type { BackendEvent, BackendFetch } from "./backend.ts";
import {
  BackendRequestError,
  BackendTimeoutError,
  BackendTransport,
  backoffMs,
  isRetryableStatus,
  redactSecrets,
} from "./transport.ts";
import { MetricsRegistry } from "../../tracing/mod.ts";
import { observeBackends } from "./transport.ts";

const FAST = { initialMs: 1, maxMs: 2 };

/** A fetch answering from `answers` in turn, recording every attempt's body. */
function scripted(answers: (() => Response | Promise<Response>)[]) {
  const bodies: string[] = [];
  const fetch: BackendFetch = async (_url, init) => {
    bodies.push(init.body ? await new Response(init.body).text() : "");
    const next = answers.shift();
    if (!next) throw new Error("no more answers");
    return await next();
  };
  return { fetch, bodies };
}

const xmlError = (status: number, code: string, message: string) => () =>
  new Response(`<Error><Code>${code}</Code><Message>${message}</Message></Error>`, { status });

const describe = (_status: number, body: string) => ({
  code: /<Code>(.*?)<\/Code>/.exec(body)?.[1],
  message: /<Message>(.*?)<\/Message>/.exec(body)?.[1] ?? body,
});

Deno.test("transport: 5xx, 429, SlowDown and network errors are retried with a fresh body", async () => {
  const { fetch, bodies } = scripted([
    xmlError(503, "SlowDown", "Please reduce your request rate."),
    () => Promise.reject(new TypeError("connection reset")),
    xmlError(429, "", "too many"),
    xmlError(400, "RequestTimeout", "idle socket"),
    () => new Response("done"),
  ]);
  const events: BackendEvent[] = [];
  const transport = new BackendTransport({
    type: "s3",
    fetch,
    retry: FAST,
    describeError: describe,
  });
  transport.stats.listen((e) => events.push(e));
  let opened = 0;
  const res = await transport.request({
    method: "PUT",
    url: "http://127.0.0.1:1/b/k?partNumber=1&uploadId=xyz",
    route: "/{bucket}/{key+}",
    body: () => Promise.resolve(new TextEncoder().encode(`attempt ${++opened}`)),
  });
  assert.equal(await res.text(), "done");
  assert.deepEqual(bodies, ["attempt 1", "attempt 2", "attempt 3", "attempt 4", "attempt 5"]);
  assert.deepEqual(events.map((e) => [e.kind, e.attempt, e.status]), [
    ["retry", 1, 503],
    ["retry", 2, undefined],
    ["retry", 3, 429],
    ["retry", 4, 400],
  ]);
  assert.equal(transport.stats.retries, 4);
  assert.equal(transport.stats.failures, 0);
});

Deno.test("transport: another 4xx fails at once with the backend's code and message", async () => {
  const { fetch, bodies } = scripted([xmlError(403, "AccessDenied", "Access Denied.")]);
  const transport = new BackendTransport({
    type: "s3",
    fetch,
    retry: FAST,
    describeError: describe,
  });
  await assert.rejects(
    transport.request({
      method: "GET",
      url: "http://h:1/b/k?X-Amz-Signature=abc",
      route: "/{key+}",
    }),
    (e: Error) =>
      e instanceof BackendRequestError && e.status === 403 && e.code === "AccessDenied" &&
      !e.retryable && e.message === "GET http://h:1/b/k: status 403: AccessDenied: Access Denied.",
  );
  assert.equal(bodies.length, 1);
  assert.equal(transport.stats.failures, 1);
  assert.equal(transport.stats.retries, 0);
});

Deno.test("transport: retries run out on a persistent 503; expected statuses are answers", async () => {
  const { fetch, bodies } = scripted([
    xmlError(503, "ServiceUnavailable", "busy"),
    xmlError(503, "ServiceUnavailable", "busy"),
    xmlError(503, "ServiceUnavailable", "busy"),
    () => new Response(null, { status: 404 }),
  ]);
  const transport = new BackendTransport({
    type: "s3",
    fetch,
    retry: { ...FAST, attempts: 3 },
    describeError: describe,
  });
  await assert.rejects(
    transport.request({ method: "HEAD", url: "http://h:1/k", route: "/{key+}" }),
    (e: Error) => e instanceof BackendRequestError && e.status === 503 && e.retryable,
  );
  assert.equal(bodies.length, 3);
  const res = await transport.request({
    method: "HEAD",
    url: "http://h:1/k",
    route: "/{key+}",
    expectedStatus: [404],
  });
  assert.equal(res.status, 404);
});

Deno.test("transport: a one-shot stream body is sent once", async () => {
  const { fetch, bodies } = scripted([xmlError(500, "InternalError", "oops")]);
  const transport = new BackendTransport({ type: "testfs", fetch, retry: FAST });
  await assert.rejects(
    transport.request({
      method: "POST",
      url: "http://h:1/k",
      route: "/{key+}",
      body: new Blob(["once"]).stream(),
    }),
    BackendRequestError,
  );
  assert.deepEqual(bodies, ["once"]);
});

Deno.test("transport: secrets never appear in errors or events", async () => {
  const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const { fetch } = scripted([
    () => Promise.reject(new Error(`socket closed while sending ${secret}`)),
    xmlError(403, "SignatureDoesNotMatch", `expected key ${secret}`),
  ]);
  const events: BackendEvent[] = [];
  const transport = new BackendTransport({
    type: "s3",
    fetch,
    retry: FAST,
    describeError: describe,
    secrets: () => [secret, ""],
  });
  transport.stats.listen((e) => events.push(e));
  await assert.rejects(
    transport.request({ method: "GET", url: "http://h:1/k", route: "/{key+}" }),
    (e: Error) => !e.message.includes(secret) && e.message.includes("<redacted>"),
  );
  assert.equal(events.length, 2);
  for (const e of events) assert.ok(!e.error.message.includes(secret), e.error.message);
  assert.equal(redactSecrets("a TOKEN1 b", ["TOKEN1", "x"]), "a <redacted> b");
});

Deno.test("transport: a hung server fails by the idle timeout, counted, then retried", async () => {
  let calls = 0;
  const fetch: BackendFetch = (_url, init) => {
    calls++;
    if (calls === 2) return Promise.resolve(new Response("ok"));
    return new Promise((_res, reject) =>
      init.signal?.addEventListener("abort", () => reject(init.signal?.reason))
    );
  };
  const transport = new BackendTransport({ type: "s3", fetch, idleTimeoutMs: 20, retry: FAST });
  assert.equal(
    await (await transport.request({ method: "GET", url: "http://h:1/", route: "/" })).text(),
    "ok",
  );
  assert.equal(transport.stats.idleTimeouts, 1);
  assert.equal(transport.stats.retries, 1);
  const once = new BackendTransport({
    type: "s3",
    fetch,
    idleTimeoutMs: 20,
    retry: { attempts: 1 },
  });
  await assert.rejects(
    once.request({ method: "GET", url: "http://h:1/?token=x", route: "/" }),
    (e: Error) =>
      e instanceof BackendTimeoutError &&
      e.message === "GET http://h:1/: no progress for 20 ms (idle timeout)",
  );
});

Deno.test("backoff grows, is capped, and is jittered downwards", () => {
  const o = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 };
  assert.equal(backoffMs(1, o, () => 0), 100);
  assert.equal(backoffMs(3, o, () => 0), 400);
  assert.equal(backoffMs(10, o, () => 0), 1000);
  assert.equal(backoffMs(3, o, () => 0.999999), 400 * (1 - 0.5 * 0.999999));
  assert.ok(isRetryableStatus(500) && isRetryableStatus(429) && isRetryableStatus(400, "SlowDown"));
  assert.ok(!isRetryableStatus(403) && !isRetryableStatus(404, "NoSuchBucket"));
});

Deno.test("observeBackends reports counters per backend type and logs rate-limited", async () => {
  const { fetch } = scripted([xmlError(503, "", "x"), xmlError(403, "", "denied")]);
  const transport = new BackendTransport({ type: "s3", fetch, retry: FAST });
  const metrics = new MetricsRegistry();
  const lines: string[] = [];
  observeBackends(
    [{ type: "s3", stats: transport.stats }, { type: "file" }] as never,
    metrics,
    (msg, fields) => lines.push(`${msg} ${fields.status}`),
  );
  await assert.rejects(transport.request({ method: "GET", url: "http://h:1/", route: "/" }));
  const text = metrics.render();
  assert.match(text, /kraken_backend_retries_total\{backend="s3"\} 1/);
  assert.match(text, /kraken_backend_request_failures_total\{backend="s3"\} 1/);
  assert.match(text, /kraken_backend_idle_timeouts_total\{backend="s3"\} 0/);
  assert.doesNotMatch(text, /backend="file"/);
  assert.deepEqual(lines, ["backend request retried 503", "backend request failed 403"]);
});
