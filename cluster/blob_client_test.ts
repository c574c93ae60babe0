import assert from "node:assert/strict";
import { HttpStatusError } from "../http/status_error.ts";
import { digestOfBytes } from "../storage/digest.ts";
import {
  AcceptedError,
  AllOriginsUnavailableError,
  bytesSource,
  isNotFound,
  OriginClient,
  OriginClusterClient,
  type OriginFetch,
  pollAccepted,
} from "./blob_client.ts";

const enc = new TextEncoder();
const DATA = enc.encode("hello, origin!"); // 14 bytes
const DIGEST = await digestOfBytes(DATA);
const UID = "0b5c4c2e-8d6a-4d0e-9f4f-2a4e1c9d7b11";

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

interface Fake {
  addr: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** A stand-in origin answering with `respond` and recording every request. */
function fakeOrigin(respond: (req: Seen) => Response | Promise<Response>): Fake {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const s = {
      method: req.method,
      path: url.pathname + url.search,
      headers: req.headers,
      body: await req.text(),
    };
    seen.push(s);
    return await respond(s);
  });
  return { addr: `127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

/** A fake that accepts uploads: start gives `UID`, PATCH and commit answer 200. */
function acceptingOrigin(extra?: (req: Seen) => Response | undefined): Fake {
  return fakeOrigin((req) => {
    const r = extra?.(req);
    if (r) return r;
    if (req.method === "POST" && req.path.includes("/uploads?size=")) {
      return new Response(null, { headers: { Location: UID } });
    }
    return new Response(null);
  });
}

function recordingFetch(routes: string[]): OriginFetch {
  return (url, init) => {
    routes.push(`${init.method} ${init.route} expected=${init.expectedStatus?.join(",")}`);
    return fetch(url, init);
  };
}

Deno.test("OriginClient.uploadBlob: start, chunked PATCHes with exclusive ranges, commit", async () => {
  const origin = acceptingOrigin();
  try {
    const routes: string[] = [];
    const client = new OriginClient(origin.addr, { chunkSize: 5, fetch: recordingFetch(routes) });
    await client.uploadBlob("library/ubuntu", DIGEST, bytesSource(DATA));
    const base = `/namespace/library%2Fubuntu/blobs/${DIGEST}/uploads`;
    assert.deepEqual(origin.seen.map((s) => `${s.method} ${s.path}`), [
      `POST ${base}?size=14`,
      `PATCH ${base}/${UID}`,
      `PATCH ${base}/${UID}`,
      `PATCH ${base}/${UID}`,
      `PUT ${base}/${UID}`,
    ]);
    const patches = origin.seen.filter((s) => s.method === "PATCH");
    assert.deepEqual(patches.map((s) => s.headers.get("content-range")), ["0-5", "5-10", "10-14"]);
    assert.equal(patches.map((s) => s.body).join(""), "hello, origin!");
    assert.deepEqual(routes, [
      "POST /namespace/{namespace}/blobs/{digest}/uploads expected=202,409",
      "PATCH /namespace/{namespace}/blobs/{digest}/uploads/{uid} expected=202,409",
      "PATCH /namespace/{namespace}/blobs/{digest}/uploads/{uid} expected=202,409",
      "PATCH /namespace/{namespace}/blobs/{digest}/uploads/{uid} expected=202,409",
      "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid} expected=202,409",
    ]);
  } finally {
    await origin.close();
  }
});

Deno.test("OriginClient.uploadBlob: 409 at start or PATCH ends the upload as success", async () => {
  const atStart = fakeOrigin(() => new Response(null, { status: 409 }));
  const atPatch = acceptingOrigin((req) =>
    req.method === "PATCH" ? new Response(null, { status: 409 }) : undefined
  );
  try {
    await new OriginClient(atStart.addr).uploadBlob("ns", DIGEST, bytesSource(DATA));
    assert.equal(atStart.seen.length, 1);
    await new OriginClient(atPatch.addr, { chunkSize: 4 }).uploadBlob(
      "ns",
      DIGEST,
      bytesSource(DATA),
    );
    assert.deepEqual(atPatch.seen.map((s) => s.method), ["POST", "PATCH"]);
  } finally {
    await atStart.close();
    await atPatch.close();
  }
});

Deno.test("OriginClient: errors carry status and body; bad Location is rejected", async () => {
  const origin = fakeOrigin((req) =>
    req.path.includes("uploads?")
      ? new Response(null, { headers: { Location: "../x" } })
      : new Response("digest mismatch", { status: 500 })
  );
  try {
    const client = new OriginClient(origin.addr);
    await assert.rejects(
      client.uploadBlob("ns", DIGEST, bytesSource(DATA)),
      /invalid Location "\.\.\/x"/,
    );
    const error = await client.download("ns", DIGEST).catch((e) => e);
    assert.ok(error instanceof HttpStatusError);
    assert.equal(error.status, 500);
    assert.equal(error.body, "digest mismatch");
  } finally {
    await origin.close();
  }
});

Deno.test("OriginClient.duplicateUpload and transferBlob: commit routes and Delay in ns", async () => {
  const origin = acceptingOrigin();
  try {
    const client = new OriginClient(origin.addr);
    await client.duplicateUpload("a/b", DIGEST, bytesSource(DATA), 1500);
    const commit = origin.seen.at(-1)!;
    assert.equal(commit.method, "PUT");
    assert.equal(commit.path, `/internal/duplicate/namespace/a%2Fb/blobs/${DIGEST}/uploads/${UID}`);
    assert.deepEqual(JSON.parse(commit.body), { Delay: 1_500_000_000 });
    assert.equal(origin.seen[0].path, `/namespace/a%2Fb/blobs/${DIGEST}/uploads?size=14`);

    origin.seen.length = 0;
    await client.transferBlob(DIGEST, bytesSource(DATA));
    assert.deepEqual(origin.seen.map((s) => `${s.method} ${s.path}`), [
      `POST /internal/blobs/${DIGEST}/uploads?size=14`,
      `PATCH /internal/blobs/${DIGEST}/uploads/${UID}`,
      `PUT /internal/blobs/${DIGEST}/uploads/${UID}`,
    ]);
  } finally {
    await origin.close();
  }
});

Deno.test("OriginClient: stat, download, metainfo and locations", async () => {
  const metainfo = JSON.stringify({
    Info: { PieceLength: 4194304, PieceSums: [1], Name: DIGEST.hex, Length: 14 },
  });
  const origin = fakeOrigin((req) => {
    if (req.method === "HEAD") {
      return req.path.endsWith("?local=true")
        ? new Response(null, { status: 404 })
        : new Response(null, { headers: { "Content-Length": "14" } });
    }
    if (req.path.endsWith("/metainfo")) return new Response(metainfo);
    if (req.path.endsWith("/locations")) {
      return new Response(null, { headers: { "Origin-Locations": "o1:1,o2:2" } });
    }
    if (req.path.startsWith("/namespace/busy/")) return new Response(null, { status: 202 });
    if (req.path.startsWith("/namespace/gone/")) return new Response(null, { status: 404 });
    return new Response(DATA);
  });
  try {
    const client = new OriginClient(origin.addr);
    assert.deepEqual(await client.stat("ns", DIGEST), { size: 14 });
    assert.equal(await client.stat("ns", DIGEST, { local: true }), null);
    assert.equal(
      origin.seen[1].path,
      `/internal/namespace/ns/blobs/${DIGEST}?local=true`,
    );
    assert.equal(await new Response(await client.download("ns", DIGEST)).text(), "hello, origin!");
    await assert.rejects(client.download("busy", DIGEST), AcceptedError);
    const gone = await client.download("gone", DIGEST).catch((e) => e);
    assert.ok(isNotFound(gone));
    assert.equal((await client.getMetaInfo("ns", DIGEST)).length, 14);
    assert.deepEqual(await client.locations(DIGEST), ["o1:1", "o2:2"]);
  } finally {
    await origin.close();
  }
});

Deno.test("pollAccepted: retries while 202, rethrows others, gives up after maxElapsed", async () => {
  let calls = 0;
  const value = await pollAccepted(() => {
    calls++;
    if (calls < 3) return Promise.reject(new AcceptedError("GET", "u"));
    return Promise.resolve("done");
  }, { initialMs: 1, maxIntervalMs: 2 });
  assert.equal(value, "done");
  assert.equal(calls, 3);
  await assert.rejects(
    pollAccepted(() => Promise.reject(new HttpStatusError("GET", "u", 404, "")), { initialMs: 1 }),
    (e) => isNotFound(e),
  );
  await assert.rejects(
    pollAccepted(() => Promise.reject(new AcceptedError("GET", "u")), {
      initialMs: 5,
      maxElapsedMs: 20,
    }),
    /still 202 Accepted/,
  );
});

Deno.test("OriginClusterClient.uploadBlob: falls back on 503 and network errors, not on 400", async () => {
  // Holds its port (so no other server can take it) and drops every connection: a network error.
  const down = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const downAddr = `127.0.0.1:${(down.addr as Deno.NetAddr).port}`;
  const dropping = (async () => {
    for await (const conn of down) conn.close();
  })();
  const busy = fakeOrigin(() => new Response("overloaded", { status: 503 }));
  const bad = fakeOrigin(() => new Response("bad digest", { status: 400 }));
  const good = acceptingOrigin();
  const directory = fakeOrigin(() =>
    new Response(null, {
      headers: { "Origin-Locations": `${downAddr},${busy.addr},${good.addr}` },
    })
  );
  const strict = fakeOrigin(() =>
    new Response(null, { headers: { "Origin-Locations": `${bad.addr},${good.addr}` } })
  );
  try {
    const cluster = new OriginClusterClient({ hosts: [directory.addr] });
    await cluster.uploadBlob("ns", DIGEST, bytesSource(DATA));
    assert.equal(busy.seen.length, 1);
    assert.deepEqual(good.seen.map((s) => s.method), ["POST", "PATCH", "PUT"]);
    assert.equal(good.seen[1].body, "hello, origin!"); // the source was re-read from the start

    const client = new OriginClusterClient({ hosts: [strict.addr] });
    await assert.rejects(client.uploadBlob("ns", DIGEST, bytesSource(DATA)), /status 400/);
    assert.equal(bad.seen.length, 1);
    assert.equal(good.seen.length, 3, "no fallback after a 400");
  } finally {
    for (const f of [busy, bad, good, directory, strict]) await f.close();
    down.close();
    await dropping.catch(() => {});
  }
});

Deno.test("OriginClusterClient: locations from up to 3 hosts, stat, polling download", async () => {
  let polls = 0;
  const fetching = fakeOrigin((req) => {
    if (req.method === "HEAD") return new Response(null, { status: 404 });
    polls++;
    return polls < 3 ? new Response(null, { status: 202 }) : new Response(DATA);
  });
  const broken = fakeOrigin(() => new Response("boom", { status: 500 }));
  const directory = fakeOrigin(() =>
    new Response(null, { headers: { "Origin-Locations": `${broken.addr},${fetching.addr}` } })
  );
  const empty = fakeOrigin(() => new Response(null));
  try {
    const cluster = new OriginClusterClient({
      hosts: [directory.addr],
      poll: { initialMs: 1, maxIntervalMs: 2 },
    });
    const body = await cluster.downloadBlob("ns", DIGEST);
    assert.equal(await new Response(body).text(), "hello, origin!");
    assert.equal(polls, 3);
    assert.equal(broken.seen.length, 1, "a 500 moves on to the next origin");
    // broken answers 500 to the stat, fetching answers 404: the first answer below 500 decides.
    assert.equal(await cluster.stat("ns", DIGEST), null);

    const noLocations = new OriginClusterClient({ hosts: [empty.addr] });
    await assert.rejects(noLocations.locations(DIGEST), AllOriginsUnavailableError);
    const allBroken = new OriginClusterClient({ hosts: [broken.addr] });
    await assert.rejects(allBroken.locations(DIGEST), /all origins unavailable/);
  } finally {
    for (const f of [fetching, broken, directory, empty]) await f.close();
  }
});

Deno.test("OriginClient: rejects bad addresses and chunk sizes", () => {
  assert.throws(() => new OriginClient("http://x:1"), TypeError);
  assert.throws(() => new OriginClient("x:1", { chunkSize: 0 }), RangeError);
  assert.throws(() => new OriginClusterClient({ hosts: [] }), RangeError);
});
