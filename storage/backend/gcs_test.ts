// Unit tests of the gcs backend against an in-process stand-in of the JSON API that follows
// GCS's resumable-upload rules (a status query answers 308 with the stored range). The real
// emulator, fake-gcs-server, is exercised by tests/gcs_backend_flow_test.ts.

import assert from "node:assert/strict";
import { concatBytes } from "../../common/bytes.ts";
import { bytesSource, objectKeyOf, type UploadSource } from "./backend.ts";
import { GcsBackend, storedOffset } from "./gcs.ts";
import { startSlowRelay } from "../../tests/harness/slow_relay.ts";

const KIB = 1024;

interface Session {
  name: string;
  size: number;
  data: Uint8Array;
}

interface StandIn {
  endpoint: string;
  objects: Map<string, Uint8Array>;
  requests: {
    method: string;
    path: string;
    range: string | null;
    auth: string | null;
    /** The `Content-Length` and `Transfer-Encoding` request headers. */
    length: string | null;
    encoding: string | null;
  }[];
  /** Cut the connection of chunk PUT number `chunk` (from 1) after `after` body bytes. */
  cut: { chunk: number; after: number } | undefined;
  /** Finish a session when its offset is queried, as fake-gcs-server 1.56.1 does. */
  finishOnQuery: boolean;
  close(): Promise<void>;
}

function startStandIn(bucket = "blobs"): StandIn {
  const objects = new Map<string, Uint8Array>();
  const sessions = new Map<string, Session>();
  const requests: StandIn["requests"] = [];
  let chunkPuts = 0;
  const state: StandIn = {
    endpoint: "",
    objects,
    requests,
    cut: undefined,
    finishOnQuery: false,
    close: () => server.shutdown(),
  };
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    Response.json(body, { status, headers });
  const notFound = () =>
    json(
      { error: { code: 404, message: "No such object", errors: [{ reason: "notFound" }] } },
      404,
    );
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // A cut chunk throws in the handler: the answer is a plain 500, without a log line.
    onError: () => new Response("cut", { status: 500 }),
  }, async (req) => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    requests.push({
      method: req.method,
      path: `${url.pathname}${url.search}`,
      range: req.headers.get("content-range") ?? req.headers.get("range"),
      auth: req.headers.get("authorization"),
      length: req.headers.get("content-length"),
      encoding: req.headers.get("transfer-encoding"),
    });
    const b = `/storage/v1/b/${bucket}`;
    if (req.method === "GET" && path === b) return json({ name: bucket });
    if (path.startsWith("/storage/v1/b/") && !path.startsWith(b)) {
      return json({ error: { code: 404, message: "The specified bucket does not exist." } }, 404);
    }
    if (req.method === "GET" && url.pathname === `${b}/o`) {
      const prefix = url.searchParams.get("prefix") ?? "";
      const max = Number(url.searchParams.get("maxResults") ?? 1000);
      const after = url.searchParams.get("pageToken") ?? "";
      const names = [...objects.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
      const page = names.slice(0, max);
      return json({
        items: page.map((name) => ({ name })),
        ...(names.length > max ? { nextPageToken: page[page.length - 1] } : {}),
      });
    }
    if (path.startsWith(`${b}/o/`)) {
      const name = path.slice(`${b}/o/`.length);
      const data = objects.get(name);
      if (req.method === "DELETE") {
        if (!data) return notFound();
        objects.delete(name);
        return new Response(null, { status: 204 });
      }
      if (!data) return notFound();
      if (url.searchParams.get("alt") !== "media") return json({ name, size: String(data.length) });
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
      if (!range) return new Response(data.slice());
      const start = Number(range[1]);
      const end = range[2] === "" ? data.length : Math.min(data.length, Number(range[2]) + 1);
      if (start >= data.length) return new Response(null, { status: 416 });
      return new Response(data.slice(start, end), { status: 206 });
    }
    if (req.method === "POST" && url.pathname === `/upload/storage/v1/b/${bucket}/o`) {
      const name = url.searchParams.get("name") ?? "";
      if (url.searchParams.get("uploadType") === "media") {
        const data = new Uint8Array(await req.arrayBuffer());
        objects.set(name, data);
        return json({ name, size: String(data.length) });
      }
      const id = crypto.randomUUID();
      const size = Number(req.headers.get("x-upload-content-length"));
      sessions.set(id, { name, size, data: new Uint8Array(0) });
      // The session URI is on the host the client asked (through a relay, the relay).
      return json({}, 200, { location: `http://${req.headers.get("host")}/upload/session/${id}` });
    }
    if (req.method === "PUT" && url.pathname.startsWith("/upload/session/")) {
      const session = sessions.get(url.pathname.split("/").pop()!);
      if (!session) return json({ error: { code: 410, message: "gone" } }, 410);
      const stored = () =>
        session.data.length === 0 ? new Response(null, { status: 308 }) : new Response(null, {
          status: 308,
          headers: { range: `bytes=0-${session.data.length - 1}` },
        });
      const finish = () => {
        sessions.delete(url.pathname.split("/").pop()!);
        objects.set(session.name, session.data);
        return json({ name: session.name, size: String(session.data.length) });
      };
      const cr = req.headers.get("content-range") ?? "";
      const query = /^bytes \*\/(\d+)$/.exec(cr);
      if (query) {
        await req.body?.cancel();
        if (state.finishOnQuery || session.data.length === session.size) return finish();
        return stored();
      }
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr);
      if (!m) return json({ error: { code: 400, message: `bad Content-Range ${cr}` } }, 400);
      const [start, end] = [Number(m[1]), Number(m[2]) + 1];
      if (start > session.data.length) {
        return json({ error: { code: 400, message: "gap in the upload" } }, 400);
      }
      if ((end - start) % (256 * KIB) !== 0 && end !== session.size) {
        return json({ error: { code: 400, message: "chunk not a multiple of 256 KiB" } }, 400);
      }
      // Read the body; a cut keeps what arrived in whole 256 KiB units, as GCS may.
      const chunks: Uint8Array[] = [];
      let got = 0;
      chunkPuts++;
      const cut = state.cut?.chunk === chunkPuts ? state.cut.after : undefined;
      for await (const c of req.body!) {
        chunks.push(c);
        got += c.length;
        if (cut !== undefined && got >= cut) {
          const kept = concatBytes(chunks).subarray(0, Math.floor(cut / (256 * KIB)) * 256 * KIB);
          session.data = concatBytes([session.data.subarray(0, start), kept]);
          throw new Error("connection cut by the test");
        }
      }
      session.data = concatBytes([session.data.subarray(0, start), concatBytes(chunks)]);
      return session.data.length >= session.size ? finish() : stored();
    }
    return json({ error: { code: 400, message: `unexpected ${req.method} ${url.pathname}` } }, 400);
  });
  state.endpoint = `http://127.0.0.1:${server.addr.port}`;
  return state;
}

function random(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

function backendFor(
  gcs: StandIn,
  extra: Partial<ConstructorParameters<typeof GcsBackend>[0]> = {},
) {
  return new GcsBackend({
    bucket: "blobs",
    rootDirectory: "/",
    endpoint: gcs.endpoint,
    uploadPartSize: 256 * KIB,
    retry: { attempts: 4, initialMs: 1, maxMs: 5 },
    ...extra,
  });
}

Deno.test("gcs: object names follow upstream's path.Join(root_directory, name path)", () => {
  const a = new GcsBackend({ bucket: "b", rootDirectory: "/" });
  assert.equal(a.objectKey("abc"), "/abc");
  // The contract's hook: the origin's backend spans carry it as kraken.backend.key.
  assert.equal(objectKeyOf(a, "abc"), "/abc");
  const b = new GcsBackend({
    bucket: "b",
    rootDirectory: "/kraken/",
    namePath: "sharded_docker_blob",
  });
  assert.equal(
    b.objectKey("ab".repeat(32)),
    `/kraken/docker/registry/v2/blobs/sha256/ab/${"ab".repeat(32)}/data`,
  );
  assert.throws(() => new GcsBackend({ bucket: "b", rootDirectory: "rel" }), /absolute/);
  assert.throws(
    () => new GcsBackend({ bucket: "b", uploadPartSize: 1000 }),
    /multiple of 256 KiB/,
  );
});

Deno.test("storedOffset: Range bytes=0-n, absent means nothing stored", () => {
  assert.equal(storedOffset(new Response(null, { headers: { range: "bytes=0-262143" } })), 262144);
  assert.equal(storedOffset(new Response(null)), 0);
});

Deno.test("gcs: stat, download (whole and ranged), media upload of bytes, 404s", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs);
    const bytes = random(1000);
    await backend.upload("ns", "abc", bytes);
    assert.deepEqual(gcs.objects.get("/abc"), bytes);
    assert.deepEqual(await backend.stat("ns", "abc"), { size: 1000 });
    assert.equal(await backend.stat("ns", "nope"), null);
    assert.equal(await backend.download("ns", "nope"), null);
    assert.deepEqual(await new Response(await backend.download("ns", "abc")).bytes(), bytes);
    const part = await backend.download("ns", "abc", { offset: 100, length: 50 });
    assert.deepEqual(await new Response(part).bytes(), bytes.subarray(100, 150));
    const tail = await backend.download("ns", "abc", { offset: 990 });
    assert.deepEqual(await new Response(tail).bytes(), bytes.subarray(990));
    assert.equal(
      gcs.requests.find((r) => r.path.includes("alt=media") && r.range)?.range,
      "bytes=100-149",
    );
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: a resumable upload sends 256 KiB-aligned chunks and finishes", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs);
    const bytes = random(600 * KIB);
    await backend.upload("ns", "big", bytesSource(bytes));
    assert.deepEqual(gcs.objects.get("/big"), bytes);
    const puts = gcs.requests.filter((r) => r.method === "PUT").map((r) => r.range);
    assert.deepEqual(puts, [
      `bytes 0-262143/${600 * KIB}`,
      `bytes 262144-524287/${600 * KIB}`,
      `bytes 524288-614399/${600 * KIB}`,
    ]);
    // Each chunk is sent with its length, as GCS documents, not chunked.
    assert.deepEqual(
      gcs.requests.filter((r) => r.method === "PUT").map((r) => [r.length, r.encoding]),
      [["262144", null], ["262144", null], [String(600 * KIB - 524288), null]],
    );
    assert.deepEqual(backend.uploads, {
      sessions: 1,
      chunks: 3,
      queries: 0,
      resumes: 0,
      restarts: 0,
    });
    // An empty object is one PUT of the total.
    await backend.upload("ns", "empty", bytesSource(new Uint8Array(0)));
    assert.deepEqual(gcs.objects.get("/empty"), new Uint8Array(0));
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: a chunk cut mid-way resumes at the offset queried from the session", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs, { uploadPartSize: 1024 * KIB });
    const bytes = random(2048 * KIB + 100);
    const opened: [number, number][] = [];
    const source: UploadSource = {
      size: bytes.length,
      open: (start = 0, end = bytes.length) => {
        opened.push([start, end]);
        return bytesSource(bytes).open(start, end);
      },
    };
    // The first chunk is cut after 600 KiB: the server keeps 512 KiB of it.
    gcs.cut = { chunk: 1, after: 600 * KIB };
    await backend.upload("ns", "resumed", source);
    assert.deepEqual(gcs.objects.get("/resumed"), bytes);
    assert.equal(backend.uploads.queries, 1);
    assert.equal(backend.uploads.resumes, 1);
    assert.equal(backend.uploads.restarts, 0);
    // Re-read from the stored offset, not from 0.
    assert.deepEqual(opened.slice(0, 2), [[0, 1024 * KIB], [512 * KIB, 1536 * KIB]]);
    const query = gcs.requests.find((r) => r.method === "PUT" && r.range?.startsWith("bytes */"));
    assert.equal(query?.range, `bytes */${bytes.length}`);
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: a connection dropped mid-chunk after earlier chunks fails at once and resumes", async () => {
  const gcs = startStandIn();
  // Cuts the connection inside the third 256 KiB chunk, after two chunks on earlier requests.
  const relay = startSlowRelay(gcs.endpoint.slice("http://".length), {
    cutAfterBytes: 600 * KIB,
  });
  try {
    const backend = backendFor(gcs, {
      endpoint: `http://${relay.addr}`,
      idleTimeoutMs: 20_000,
    });
    const bytes = random(1024 * KIB);
    const started = performance.now();
    await backend.upload("ns", "dropped", bytesSource(bytes));
    assert.ok(relay.cut, "the relay cut a connection");
    assert.deepEqual(gcs.objects.get("/dropped"), bytes);
    // The drop is seen when it happens, not after the idle timeout.
    assert.equal(backend.stats.idleTimeouts, 0);
    assert.ok(performance.now() - started < 10_000, `${performance.now() - started} ms`);
    assert.equal(backend.uploads.queries, 1);
  } finally {
    await relay.close();
    await gcs.close();
  }
});

Deno.test("gcs: a session finished short by the offset query is deleted and the upload starts over", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs);
    const bytes = random(700 * KIB);
    gcs.finishOnQuery = true;
    // The second chunk is cut: the query then finishes the session with 256 KiB only.
    gcs.cut = { chunk: 2, after: 100 * KIB };
    await backend.upload("ns", "short", bytesSource(bytes));
    assert.deepEqual(gcs.objects.get("/short"), bytes);
    assert.equal(backend.uploads.restarts, 1);
    assert.equal(backend.uploads.sessions, 2);
    assert.ok(gcs.requests.some((r) => r.method === "DELETE"), "the short object was deleted");
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: paginated listing maps object names back to names", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs, { rootDirectory: "/root", namePath: "docker_tag" });
    for (const tag of ["a/b:1", "a/b:2", "a/c:1"]) {
      await backend.upload(tag, tag, new TextEncoder().encode(`sha256:${"0".repeat(64)}`));
    }
    gcs.objects.set("/elsewhere/x", new Uint8Array(1));
    assert.deepEqual((await backend.list("")).names.sort(), ["a/b:1", "a/b:2", "a/c:1"]);
    const page1 = await backend.list("a", { maxKeys: 2 });
    assert.equal(page1.names.length, 2);
    assert.notEqual(page1.continuationToken, "");
    const page2 = await backend.list("a", {
      maxKeys: 2,
      continuationToken: page1.continuationToken,
    });
    assert.deepEqual([...page1.names, ...page2.names].sort(), ["a/b:1", "a/b:2", "a/c:1"]);
    assert.equal(page2.continuationToken, "");
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: ready() passes for the bucket, fails naming GCS's message for a missing one", async () => {
  const gcs = startStandIn();
  try {
    await backendFor(gcs).ready();
    await assert.rejects(
      () => backendFor(gcs, { bucket: "missing" }).ready(),
      /404.*The specified bucket does not exist/,
    );
  } finally {
    await gcs.close();
  }
});

Deno.test("gcs: an explicit token is sent as a bearer token and never reported", async () => {
  const gcs = startStandIn();
  try {
    const backend = backendFor(gcs, { token: "tok-secret-123", bucket: "missing" });
    await assert.rejects(
      () => backend.ready(),
      (e: Error) => !e.message.includes("tok-secret-123"),
    );
    assert.equal(gcs.requests[0].auth, "Bearer tok-secret-123");
  } finally {
    await gcs.close();
  }
});
