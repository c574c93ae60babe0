import assert from "node:assert/strict";
import { OCI_INDEX, OCI_MANIFEST } from "../../registry/manifest.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import { collectSpans } from "../../tracing/_test_util.ts";
import { FakeOrigin, startTestBuildIndex } from "./_test_util.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { ATTR, SPAN } from "../../tracing/names.ts";

const enc = new TextEncoder();

/** Stores a config, two layers and an OCI manifest over them in `origin`. */
async function pushImage(origin: FakeOrigin, seed: string) {
  const config = await origin.add(`{"config":"${seed}"}`);
  const layers = [await origin.add(`layer-a-${seed}`), await origin.add(`layer-b-${seed}`)];
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: `${config}`,
      size: 10,
    },
    layers: layers.map((d) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `${d}`,
      size: 10,
    })),
  }));
  const digest = await origin.add(manifest);
  return { config, layers, manifest, digest };
}

function tagUrl(base: string, tag: string, digest?: Digest, query = ""): string {
  const t = encodeURIComponent(tag);
  return digest ? `${base}/tags/${t}/digest/${digest}${query}` : `${base}/tags/${t}`;
}

Deno.test("build-index: put tag resolves the manifest, stores it on disk and in the backend", async () => {
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin);
  try {
    const image = await pushImage(origin, "1");
    const tag = "library/app:v1";
    const put = await fetch(tagUrl(bi.url, tag, image.digest, "?replicate=true"), {
      method: "PUT",
    });
    assert.equal(put.status, 200, await put.text());

    // Dependencies were stat-ed with the tag as namespace: config, layers, the manifest itself.
    const stats = origin.calls.filter((c) => c.startsWith("stat "));
    assert.deepEqual(
      stats.sort(),
      [
        `stat ${tag} ${image.config}`,
        `stat ${tag} ${image.digest}`,
        `stat ${tag} ${image.layers[0]}`,
        `stat ${tag} ${image.layers[1]}`,
      ].sort(),
    );
    assert.ok(origin.calls.includes(`download ${tag} ${image.digest}`));

    const get = await fetch(tagUrl(bi.url, tag));
    assert.equal(get.status, 200);
    assert.equal(await get.text(), image.digest.toString());
    const head = await fetch(tagUrl(bi.url, tag), { method: "HEAD" });
    assert.equal(head.status, 200);
    // write_through (default): the backend has the docker_tag link file already.
    const link =
      `${dir}/backend/docker/registry/v2/repositories/library/app/_manifests/tags/v1/current/link`;
    assert.equal(await Deno.readTextFile(link), image.digest.toString());

    const unknown = await fetch(tagUrl(bi.url, "library/app:nope"));
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const unknownHead = await fetch(tagUrl(bi.url, "library/app:nope"), { method: "HEAD" });
    assert.equal(unknownHead.status, 404);
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: a missing dependency fails the put with upstream's message (400) and stores nothing", async () => {
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin);
  try {
    const image = await pushImage(origin, "2");
    origin.blobs.delete(image.layers[1].toString());
    const res = await fetch(tagUrl(bi.url, "library/app:v2", image.digest), { method: "PUT" });
    assert.equal(res.status, 400);
    assert.equal(await res.text(), `cannot upload tag, missing dependency ${image.layers[1]}`);
    const get = await fetch(tagUrl(bi.url, "library/app:v2"));
    assert.equal(get.status, 404);
    await get.body?.cancel();
    assert.equal(await exists(`${dir}/backend/docker`), false);

    // The manifest itself missing from the origin is a resolution failure (500 too).
    const absent = await digestOfBytes(enc.encode("never uploaded"));
    const res2 = await fetch(tagUrl(bi.url, "library/app:v3", absent), { method: "PUT" });
    assert.equal(res2.status, 500);
    assert.match(await res2.text(), /resolve dependencies: download manifest/);

    // Not a manifest at all.
    const junk = await origin.add("not json");
    const res3 = await fetch(tagUrl(bi.url, "library/app:v4", junk), { method: "PUT" });
    assert.equal(res3.status, 400);
    assert.match(await res3.text(), /parse manifest/);
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: bad input is refused and hostile tags never leave the storage root", async () => {
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin, {
    tag_types: [{ namespace: ".*", type: "default" }],
  });
  try {
    const d = await origin.add("blob");
    const cases: [string, number][] = [
      [`${bi.url}/tags/${encodeURIComponent("../../escape:x")}/digest/${d}`, 400],
      [`${bi.url}/tags/${encodeURIComponent("a/./b:x")}/digest/${d}`, 400],
      [`${bi.url}/tags/${encodeURIComponent("a\nb:x")}/digest/${d}`, 400],
      [`${bi.url}/tags/%2E%2E%2F%2E%2E%2Fetc:x/digest/${d}`, 400],
      [`${bi.url}/tags/repo:tag/digest/sha256:1234`, 400],
      [`${bi.url}/tags/repo:tag/digest/md5:${"a".repeat(64)}`, 400],
      [`${bi.url}/tags/repo:tag/digest/${d}?replicate=maybe`, 400],
      // An unescaped slash splits the segment: no route.
      [`${bi.url}/tags/library/app:v1/digest/${d}`, 404],
    ];
    for (const [url, status] of cases) {
      const res = await fetch(url, { method: "PUT" });
      assert.equal(res.status, status, `${url}: ${await res.text()}`);
    }
    // Only the tag directory and the write-back database exist under the root.
    for await (const e of Deno.readDir(dir)) {
      assert.match(e.name, /^(tags|build-index\.db(-shm|-wal)?)$/);
    }
    assert.equal(await exists(`${dir}/escape:x`), false);
    assert.equal(await exists(`${dir}/backend`), false);
    const tagFiles: string[] = [];
    for await (const e of Deno.readDir(`${dir}/tags`)) tagFiles.push(e.name);
    assert.deepEqual(tagFiles, []);

    // A tag with characters that need escaping round-trips.
    const odd = "team/app:v1.0_rc-1";
    const ok = await fetch(tagUrl(bi.url, odd, d), { method: "PUT" });
    assert.equal(ok.status, 200, await ok.text());
    assert.equal(await (await fetch(tagUrl(bi.url, odd))).text(), d.toString());
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: list and repositories answer ListResponse with pagination", async () => {
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin, {
    tag_types: [{ namespace: ".*", type: "default" }],
  });
  try {
    const d = await origin.add("x");
    for (const tag of ["repo/a:1", "repo/a:2", "repo/a:3", "repo/b:1"]) {
      const res = await fetch(tagUrl(bi.url, tag, d), { method: "PUT" });
      assert.equal(res.status, 200, await res.text());
    }
    const all = await (await fetch(`${bi.url}/list/repo`)).json();
    assert.deepEqual(all, {
      Links: { next: "", self: "/list/repo" },
      size: 4,
      result: ["repo/a:1", "repo/a:2", "repo/a:3", "repo/b:1"],
    });
    const page1 = await (await fetch(`${bi.url}/list/repo/a?limit=2`)).json();
    assert.deepEqual(page1.result, ["repo/a:1", "repo/a:2"]);
    assert.equal(page1.Links.self, "/list/repo/a?limit=2");
    assert.notEqual(page1.Links.next, "");
    const page2 = await (await fetch(`${bi.url}${page1.Links.next}`)).json();
    assert.deepEqual(page2.result, ["repo/a:3"]);
    assert.equal(page2.Links.next, "");

    const repoTags = await (await fetch(`${bi.url}/repositories/repo%2Fa/tags`)).json();
    assert.deepEqual(repoTags.result, ["1", "2", "3"]);

    for (const query of ["limit=0", "limit=1&limit=2", "foo=1", "limit=x"]) {
      const res = await fetch(`${bi.url}/list/repo?${query}`);
      assert.equal(res.status, 400, query);
      await res.body?.cancel();
    }
    const empty = await (await fetch(`${bi.url}/list/nothing-here`)).json();
    assert.deepEqual(empty.result, []);
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: tags are duplicated to neighbours with a staggered write-back", async () => {
  const dirA = await Deno.makeTempDir();
  const dirB = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const [portA, portB] = freePorts(2);
  const hosts = [`127.0.0.1:${portA}`, `127.0.0.1:${portB}`];
  const cluster = { hosts, duplicate_put_stagger: "7m" };
  const a = await startTestBuildIndex(dirA, origin, {
    listen: { host: "127.0.0.1", port: portA },
    cluster,
  });
  const b = await startTestBuildIndex(dirB, origin, {
    listen: { host: "127.0.0.1", port: portB },
    cluster,
    tag_store: { write_through: false },
  });
  try {
    assert.deepEqual(a.service.neighbours, [hosts[1]]);
    assert.deepEqual(b.service.neighbours, [hosts[0]]);
    const image = await pushImage(origin, "dup");
    const res = await fetch(tagUrl(a.url, "library/dup:v1", image.digest), { method: "PUT" });
    assert.equal(res.status, 200, await res.text());
    // B has it on disk (no dependency check there) and a write-back row delayed by 1 × stagger.
    assert.equal(await (await fetch(tagUrl(b.url, "library/dup:v1"))).text(), `${image.digest}`);
    const rows = b.writeback.pending();
    assert.equal(rows.length, 1);
    assert.equal(rows[0].name, "library/dup:v1");
    assert.equal(rows[0].namespace, "library/dup:v1");
    assert.equal(rows[0].delayMs, 7 * 60_000);
  } finally {
    await a.stop();
    await b.stop();
    await Deno.remove(dirA, { recursive: true });
    await Deno.remove(dirB, { recursive: true });
  }
});

Deno.test("build-index: write_through false writes the tag back through the queue", async () => {
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin, {
    tag_store: { write_through: false },
    tag_types: [{ namespace: "^plain/", type: "default" }, { namespace: ".*", type: "docker" }],
  });
  try {
    const d = await origin.add("plain blob");
    const res = await fetch(tagUrl(bi.url, "plain/x:1", d), { method: "PUT" });
    assert.equal(res.status, 200, await res.text());
    const link =
      `${dir}/backend/docker/registry/v2/repositories/plain/x/_manifests/tags/1/current/link`;
    await waitFor("the write-back to reach the backend", () => exists(link));
    assert.equal(await Deno.readTextFile(link), d.toString());
    await waitFor("the write-back row to be deleted", () => bi.writeback.pending().length === 0);

    // Duplicate put from a neighbour: body {"delay": ns}; bad JSON is a 400.
    const dup = await fetch(
      `${bi.url}/internal/duplicate/tags/${encodeURIComponent("plain/y:1")}/digest/${d}`,
      {
        method: "PUT",
        body: JSON.stringify({ delay: 5e9 }),
      },
    );
    assert.equal(dup.status, 200, await dup.text());
    assert.equal(bi.writeback.pending().find((r) => r.name === "plain/y:1")?.delayMs, 5000);
    const bad = await fetch(`${bi.url}/internal/duplicate/tags/x:1/digest/${d}`, {
      method: "PUT",
      body: "{",
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: a listing is traced as backend.list below the server span", async () => {
  const collector = collectSpans("build-index");
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin, {
    tag_types: [{ namespace: ".*", type: "default" }],
  });
  try {
    const d = await origin.add("x");
    for (const tag of ["repo/a:1", "repo/a:2", "repo/b:1"]) {
      const res = await fetch(tagUrl(bi.url, tag, d), { method: "PUT" });
      assert.equal(res.status, 200, await res.text());
    }
    assert.deepEqual((await (await fetch(`${bi.url}/list/repo/a`)).json()).result, [
      "repo/a:1",
      "repo/a:2",
    ]);
    const tags = await (await fetch(`${bi.url}/repositories/repo%2Fb/tags`)).json();
    assert.deepEqual(tags.result, ["1"]);
    const spans = await collector.spans();
    const lists = spans.filter((s) => s.name === SPAN.backendList);
    assert.equal(lists.length, 2, spans.map((s) => s.name).join(", "));
    const [prefix, repo] = lists[0].attributes[ATTR.backendPrefix] === "repo/a" ? lists : [
      lists[1],
      lists[0],
    ];
    const server = spans.find((s) => s.name === "GET /list/{prefix+}");
    assert.ok(server, spans.map((s) => s.name).join(", "));
    assert.equal(prefix.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(prefix.attributes[ATTR.backendType], "file");
    assert.equal(prefix.attributes[ATTR.bucket], `${dir}/backend`);
    assert.equal(prefix.attributes[ATTR.namespace], "repo/a");
    assert.equal(prefix.attributes[ATTR.backendNames], 2);
    assert.equal(repo.attributes[ATTR.backendPrefix], "repo/b/_manifests/tags");
    assert.equal(repo.attributes[ATTR.namespace], "repo/b");
    assert.equal(repo.attributes[ATTR.backendNames], 1);
  } finally {
    await bi.stop();
    await collector.runtime.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: health, origin and readiness", async () => {
  const dir = await Deno.makeTempDir();
  const bi = await startTestBuildIndex(dir, new FakeOrigin(), {
    origin: { hosts: ["127.0.0.1:1"], dns: "origin.example:15002" },
  });
  try {
    assert.equal(await (await fetch(`${bi.url}/health`)).text(), "OK\n");
    assert.equal(await (await fetch(`${bi.url}/origin`)).text(), "origin.example:15002");
    const ready = await fetch(`${bi.url}/readiness`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /^not ready to serve traffic: origin cluster/);
  } finally {
    await bi.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-index: put tag is traced as build_index.put_tag › resolve_dependencies", async () => {
  const collector = collectSpans("build-index");
  const dir = await Deno.makeTempDir();
  const origin = new FakeOrigin();
  const bi = await startTestBuildIndex(dir, origin);
  try {
    const index = await origin.add(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{
        mediaType: OCI_MANIFEST,
        digest: `${(await pushImage(origin, "t")).digest}`,
        size: 1,
      }],
    }));
    const res = await fetch(tagUrl(bi.url, "library/traced:v1", index), { method: "PUT" });
    assert.equal(res.status, 200, await res.text());
    const spans = await collector.spans();
    const server = spans.find((s) => s.name === "PUT /tags/{tag}/digest/{digest}");
    const put = spans.find((s) => s.name === SPAN.buildIndexPutTag);
    const resolve = spans.find((s) => s.name === SPAN.buildIndexResolveDependencies);
    assert.ok(server && put && resolve, spans.map((s) => s.name).join(", "));
    assert.equal(put.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(resolve.parentSpanContext?.spanId, put.spanContext().spanId);
    assert.equal(put.attributes.tag, "library/traced:v1");
    assert.equal(put.attributes.digest, index.toString());
    assert.equal(put.attributes[ATTR.buildIndexDependencies], 2);
    assert.equal(put.attributes.replicate, false);
    assert.equal(put.attributes[ATTR.buildIndexSuccess], true);
    assert.equal(resolve.attributes[ATTR.manifestMediaType], OCI_INDEX);
  } finally {
    await bi.stop();
    await collector.runtime.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
