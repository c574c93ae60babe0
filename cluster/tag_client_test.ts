import assert from "node:assert/strict";
import { digestOfBytes } from "../storage/digest.ts";
import { TagClient, TagClientError, TagClusterClient, tagRefusal } from "./tag_client.ts";

interface Seen {
  method: string;
  path: string;
  body: string;
}

/** A stand-in build-index answering from `answer`, recording every request (raw path + query). */
function fakeBuildIndex(answer: (req: Seen) => Response) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const s = { method: req.method, path: url.pathname + url.search, body: await req.text() };
    seen.push(s);
    return answer(s);
  });
  return { seen, addr: `127.0.0.1:${server.addr.port}`, stop: () => server.shutdown() };
}

const digest = await digestOfBytes(new TextEncoder().encode("manifest"));

Deno.test("tag client: routes, escaping and bodies match upstream's wire format", async () => {
  const fake = fakeBuildIndex((req) => {
    if (req.path.startsWith("/tags/library%2Fubuntu:latest/digest/")) return new Response(null);
    if (req.path === "/tags/library%2Fubuntu:latest") {
      return new Response(req.method === "HEAD" ? null : digest.toString());
    }
    if (req.path.startsWith("/tags/")) return new Response(null, { status: 404 });
    if (req.path.startsWith("/list/")) {
      return Response.json({ Links: { next: "", self: req.path }, size: 0, result: null });
    }
    if (req.path.startsWith("/repositories/")) {
      return Response.json({ Links: { next: "n", self: req.path }, size: 2, result: ["a", "b"] });
    }
    if (req.path === "/origin") return new Response("origin.example:15002");
    if (req.path.startsWith("/internal/duplicate/")) return new Response(null);
    return new Response("no route", { status: 404 });
  });
  try {
    const client = new TagClient(fake.addr);
    await client.put("library/ubuntu:latest", digest, { replicate: true });
    await client.put("library/ubuntu:latest", digest);
    assert.equal((await client.get("library/ubuntu:latest"))?.toString(), digest.toString());
    assert.equal(await client.get("library/ubuntu:missing"), null);
    assert.equal(await client.has("library/ubuntu:latest"), true);
    assert.equal(await client.has("library/ubuntu:missing"), false);
    const listed = await client.list("library/ubuntu", { limit: 2, offset: "tok en" });
    assert.deepEqual(listed.result, []);
    const repo = await client.listRepository("library/ubuntu");
    assert.deepEqual(repo.result, ["a", "b"]);
    assert.equal(repo.Links.next, "n");
    assert.equal(await client.origin(), "origin.example:15002");
    await client.duplicatePut("library/ubuntu:latest", digest, 20 * 60_000);

    assert.deepEqual(fake.seen.map((s) => `${s.method} ${s.path}`), [
      `PUT /tags/library%2Fubuntu:latest/digest/${digest}?replicate=true`,
      `PUT /tags/library%2Fubuntu:latest/digest/${digest}`,
      "GET /tags/library%2Fubuntu:latest",
      "GET /tags/library%2Fubuntu:missing",
      "HEAD /tags/library%2Fubuntu:latest",
      "HEAD /tags/library%2Fubuntu:missing",
      "GET /list/library/ubuntu?limit=2&offset=tok+en",
      "GET /repositories/library%2Fubuntu/tags",
      "GET /origin",
      `PUT /internal/duplicate/tags/library%2Fubuntu:latest/digest/${digest}`,
    ]);
    // Go's time.Duration: integer nanoseconds under a lowercase key.
    assert.deepEqual(JSON.parse(fake.seen.at(-1)!.body), { delay: 1_200_000_000_000 });
  } finally {
    await fake.stop();
  }
});

Deno.test("tag client: errors carry the status and body; duplicate puts retry 503", async () => {
  let calls = 0;
  const fake = fakeBuildIndex((req) => {
    if (req.path.startsWith("/internal/")) {
      calls++;
      return new Response(null, { status: calls < 3 ? 503 : 200 });
    }
    return new Response("cannot upload tag, missing dependency sha256:x", { status: 500 });
  });
  try {
    const client = new TagClient(fake.addr);
    await assert.rejects(client.put("a:b", digest), (error: unknown) => {
      assert.ok(error instanceof TagClientError);
      assert.equal(error.status, 500);
      assert.match(error.message, /missing dependency/);
      return true;
    });
    await assert.rejects(client.get("a:b"), TagClientError);
    await client.duplicatePut("a:b", digest, 0);
    assert.equal(calls, 3);
  } finally {
    await fake.stop();
  }
});

Deno.test("tag cluster client: fails over on network errors only", async () => {
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadAddr = `127.0.0.1:${(dead.addr as Deno.NetAddr).port}`;
  dead.close();
  const fake = fakeBuildIndex((req) =>
    req.path === "/tags/a:b"
      ? new Response(digest.toString())
      : new Response("boom", { status: 500 })
  );
  try {
    // random() = 0 always picks the first remaining host: the dead one, then the live one.
    const cluster = new TagClusterClient({ hosts: [deadAddr, fake.addr], random: () => 0 });
    assert.equal((await cluster.get("a:b"))?.toString(), digest.toString());
    const both = new TagClusterClient({ hosts: [fake.addr, deadAddr], random: () => 0 });
    // An HTTP error from a live host is the answer; no failover.
    await assert.rejects(both.put("c:d", digest), TagClientError);
    assert.equal(fake.seen.filter((s) => s.method === "PUT").length, 1);
    assert.throws(() => new TagClusterClient({ hosts: [] }), TypeError);
    assert.throws(() => new TagClient("no-port"), TypeError);
  } finally {
    await fake.stop();
  }
});

Deno.test("tagRefusal: a build-index 4xx with its message, nothing for 5xx or other errors", () => {
  const refused = new TagClientError(
    "GET",
    "http://bi/tags/x",
    400,
    "tag has an invalid path segment",
  );
  assert.deepEqual(tagRefusal(refused), {
    status: 400,
    message: "build-index: tag has an invalid path segment",
  });
  assert.equal(tagRefusal(new TagClientError("GET", "http://bi/tags/x", 500, "boom")), null);
  assert.equal(tagRefusal(new Error("connection refused")), null);
});
