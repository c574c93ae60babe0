import assert from "node:assert/strict";
import { OCI_INDEX, OCI_MANIFEST } from "../../registry/manifest.ts";
import type { Digest } from "../../storage/digest.ts";
import { withTempDir } from "../../tests/harness/fs.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { collectSpans } from "../../tracing/_test_util.ts";
import { ATTR, SPAN } from "../../tracing/names.ts";
import { FakeOrigin, startTestBuildIndex, type TestBuildIndex } from "./_test_util.ts";
import { readTaskPayload, Remotes, taskPayload } from "./replication.ts";

const enc = new TextEncoder();

/** An origin cluster stand-in whose replicate-to-remote copies into `remote` (unless refused). */
class SourceOrigin extends FakeOrigin {
  readonly refuse = new Set<string>();
  constructor(readonly remote: FakeOrigin) {
    super();
  }
  override async replicateToRemote(ns: string, digest: Digest, addr: string): Promise<void> {
    await super.replicateToRemote(ns, digest, addr);
    if (this.refuse.has(digest.toString())) return;
    this.remote.blobs.set(digest.toString(), this.blobs.get(digest.toString())!);
  }
  sent(): string[] {
    return this.calls.filter((c) => c.startsWith("replicate ")).map((c) => c.split(" ")[2]);
  }
}

async function image(origin: FakeOrigin, seed: string) {
  const config = await origin.add(`{"config":"${seed}"}`);
  const layer = await origin.add(`layer-${seed}`);
  const digest = await origin.add(enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `${config}`, size: 1 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `${layer}`, size: 1 }],
  })));
  return { config, layer, digest };
}

interface Pair {
  a: TestBuildIndex;
  b: TestBuildIndex;
  source: SourceOrigin;
  dest: FakeOrigin;
  startB(): Promise<TestBuildIndex>;
}

/** Build-index A (remotes → B at a fixed port) and B, each over its own origin stand-in. */
async function withPair(
  fn: (p: Pair) => Promise<void>,
  options: { startB?: boolean } = {},
) {
  await withTempDir(async (dir) => {
    const dest = new FakeOrigin();
    const source = new SourceOrigin(dest);
    const [bPort] = freePorts(1);
    const bAddr = `127.0.0.1:${bPort}`;
    const pair = {
      source,
      dest,
      startB: async () =>
        pair.b = await startTestBuildIndex(`${dir}/b`, dest, {
          listen: { host: "127.0.0.1", port: bPort },
          origin: { hosts: ["127.0.0.1:1"], dns: "dest-origin:80" },
        }),
    } as Pair;
    pair.a = await startTestBuildIndex(`${dir}/a`, source, {
      remotes: { [bAddr]: ["^library/"] },
      cluster: { name: "zone-a" },
      tag_replication: { retry_interval: "100ms", poll_interval: "50ms" },
    }, { remoteOrigin: (addr) => (addr === "dest-origin:80" ? dest : new FakeOrigin()) });
    if (options.startB !== false) await pair.startB();
    try {
      await fn(pair);
    } finally {
      await pair.a.stop();
      await pair.b?.stop();
    }
  }, { prefix: "kraken-replication-test-" });
}

const put = (bi: TestBuildIndex, tag: string, d: Digest, query = "?replicate=true") =>
  fetch(`${bi.url}/tags/${encodeURIComponent(tag)}/digest/${d}${query}`, { method: "PUT" })
    .then(async (r) => [r.status, await r.text()] as const);

const getTag = (bi: TestBuildIndex, tag: string) =>
  fetch(`${bi.url}/tags/${encodeURIComponent(tag)}`).then(async (r) => [r.status, await r.text()]);

Deno.test("replication: remotes match tags anywhere; task payloads are upstream's JSON", () => {
  const remotes = new Remotes({
    "b:1": { tags: [/^library\//] },
    "c:1": { tags: [/team/, /^x$/] },
  });
  assert.deepEqual(remotes.match("library/team:v1"), ["b:1", "c:1"]);
  assert.deepEqual(remotes.match("org/app:v1"), []);
  assert.equal(remotes.valid("x", "c:1"), true);
  assert.equal(remotes.valid("x", "b:1"), false);
  const d = `sha256:${"ab".repeat(32)}`;
  const payload = taskPayload({ toString: () => d } as Digest, []);
  assert.deepEqual(payload, { digest: `"${d}"`, dependencies: "[]" });
  assert.equal(readTaskPayload({ payload }).digest.toString(), d);
  assert.deepEqual(readTaskPayload({ payload: { digest: `"${d}"`, dependencies: "null" } }), {
    digest: readTaskPayload({ payload }).digest,
    dependencies: [],
  });
});

Deno.test("replication: a put with replicate=true sends the missing blobs, then the tag, in one trace", async () => {
  const collector = collectSpans("build-index");
  try {
    await withPair(async ({ a, b, source, dest }) => {
      const img = await image(source, "1");
      // The config is on the destination already: stat says so and it is not sent.
      dest.blobs.set(`${img.config}`, source.blobs.get(`${img.config}`)!);
      const tag = "library/app:v1";
      assert.deepEqual(await put(a, tag, img.digest), [200, ""]);
      await waitFor("the tag on B", async () => (await getTag(b, tag))[0] === 200 || undefined);
      assert.deepEqual(await getTag(b, tag), [200, `${img.digest}`]);
      assert.deepEqual(source.sent().sort(), [`${img.digest}`, `${img.layer}`].sort());
      await waitFor("the task row to go", () => a.replication.pending().length === 0);
      const metrics = await (await fetch(`${a.url}/metrics`)).text();
      assert.match(metrics, /^kraken_replication_tasks_total\{result="replicated"\} 1$/m);
      assert.match(metrics, /^kraken_replication_blobs_sent_total 2$/m);
      assert.match(metrics, /^kraken_replication_tasks 0$/m);
      // Not matching `remotes` → nothing scheduled.
      const other = await image(source, "2");
      assert.deepEqual(await put(a, "org/app:v1", other.digest), [200, ""]);
      assert.equal(a.replication.pending().length, 0);

      const spans = await collector.spans();
      const trigger = spans.find((s) => s.name === SPAN.replicationTrigger);
      assert.ok(trigger, spans.map((s) => s.name).join(", "));
      // Parented on A's build_index.put_tag, the request that scheduled it.
      const parent = spans.find((s) =>
        s.spanContext().spanId === trigger.parentSpanContext?.spanId
      );
      assert.equal(parent?.name, SPAN.buildIndexPutTag);
      assert.equal(parent?.attributes.replicate, true);
      assert.equal(parent?.spanContext().traceId, trigger.spanContext().traceId);
      assert.equal(trigger.attributes[ATTR.srcCluster], "zone-a");
      assert.equal(trigger.attributes[ATTR.dstCluster], b.addr);
      assert.equal(trigger.attributes[ATTR.replicationResult], "replicated");
      assert.equal(trigger.attributes[ATTR.replicationBlobsPresent], 1);
      assert.equal(trigger.attributes[ATTR.replicationBlobsSent], 2);
      const children = spans.filter((s) =>
        s.parentSpanContext?.spanId === trigger.spanContext().spanId
      );
      const names = children.map((s) => s.name);
      assert.equal(names.filter((n) => n === SPAN.originStatBlob).length, 3);
      assert.equal(names.filter((n) => n === SPAN.replicationTransfer).length, 2);
      for (const n of [SPAN.buildIndexResolveTag, SPAN.buildIndexPutTag, "HEAD /tags/{tag}"]) {
        assert.ok(names.includes(n), `${n} under replication.trigger: ${names}`);
      }
      const resolve = children.find((s) => s.name === SPAN.buildIndexResolveTag)!;
      assert.equal(resolve.attributes.digest, `${img.digest}`);
      const stat = children.find((s) =>
        s.name === SPAN.originStatBlob && s.attributes.digest === `${img.config}`
      )!;
      assert.equal(stat.attributes[ATTR.exists], true);
      const transfer = children.find((s) => s.name === SPAN.replicationTransfer)!;
      assert.equal(typeof transfer.attributes[ATTR.size], "number");
      assert.equal(typeof transfer.attributes[ATTR.durationMs], "number");
    });
  } finally {
    await collector.runtime.shutdown();
  }
});

Deno.test("replication: an image index sends every child manifest with its config and layers", () =>
  withPair(async ({ a, b, source }) => {
    const amd = await image(source, "amd64");
    const arm = await image(source, "arm64");
    const index = await source.add(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [amd, arm].map((m) => ({
        mediaType: OCI_MANIFEST,
        digest: `${m.digest}`,
        size: 1,
      })),
    }));
    assert.deepEqual(await put(a, "library/multi:v1", index), [200, ""]);
    await waitFor(
      "the index tag on B",
      async () => (await getTag(b, "library/multi:v1"))[0] === 200 || undefined,
    );
    const expected = [index, amd.digest, amd.config, amd.layer, arm.digest, arm.config, arm.layer];
    assert.deepEqual(source.sent().sort(), expected.map(String).sort());
  }));

Deno.test("replication: the remote down → retried with backoff until it is up, completed blobs not sent again", () =>
  withPair(async (pair) => {
    const { a, source } = pair;
    const img = await image(source, "3");
    assert.deepEqual(await put(a, "library/late:v1", img.digest), [200, ""]);
    await waitFor("two failed attempts", () => (a.replication.pending()[0]?.failures ?? 0) >= 2);
    assert.ok(
      a.logs.some((l) => l.includes("tag replication failed") && l.includes("library/late:v1")),
      a.logs.join("\n"),
    );
    // Backoff: the second wait is longer than the first.
    const row = a.replication.pending()[0];
    assert.ok(
      a.replication.retryWaitMs({ ...row, failures: 2 }) >
        a.replication.retryWaitMs({ ...row, failures: 1 }),
    );
    const b = await pair.startB();
    await waitFor(
      "the tag on B",
      async () => (await getTag(b, "library/late:v1"))[0] === 200 || undefined,
      { timeoutMs: 20_000 },
    );
    // The remote's origin was asked before any blob was sent, so each was sent once.
    assert.deepEqual(source.sent().sort(), [img.config, img.layer, img.digest].map(String).sort());
  }, { startB: false }));

Deno.test("replication: a remote's 4xx is logged with its message and retried, not looped", () =>
  withPair(async ({ a, source }) => {
    const img = await image(source, "4");
    source.refuse.add(`${img.layer}`); // B's origins never get the layer: B refuses the tag.
    assert.deepEqual(await put(a, "library/refused:v1", img.digest), [200, ""]);
    await waitFor("a failed attempt", () => (a.replication.pending()[0]?.failures ?? 0) >= 1);
    const line = a.logs.find((l) => l.includes("tag replication failed"));
    assert.ok(line);
    assert.match(line, /put tag on remote build-index .*cannot upload tag, missing dependency/);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    assert.match(metrics, /^kraken_replication_tasks_total\{result="failed"\} [1-9]/m);
    assert.match(metrics, /^kraken_replication_tasks 1$/m);
    // Backoff: over 600 ms, with a 100 ms first wait doubling, a handful of attempts at most.
    await new Promise((r) => setTimeout(r, 600));
    const failures = a.replication.pending()[0].failures;
    assert.ok(failures >= 2 && failures <= 4, `failures ${failures}`);
  }));

Deno.test("replication: POST /remotes/tags/{tag} re-schedules a stored tag; unknown is 404", () =>
  withPair(async ({ a, b, source }) => {
    const img = await image(source, "5");
    assert.deepEqual(await put(a, "library/again:v1", img.digest, ""), [200, ""]);
    assert.equal(a.replication.pending().length, 0);
    const unknown = await fetch(`${a.url}/remotes/tags/${encodeURIComponent("library/none:v1")}`, {
      method: "POST",
    });
    assert.equal(unknown.status, 404, await unknown.text());
    const res = await fetch(`${a.url}/remotes/tags/${encodeURIComponent("library/again:v1")}`, {
      method: "POST",
    });
    assert.equal(res.status, 200, await res.text());
    await waitFor(
      "the tag on B",
      async () => (await getTag(b, "library/again:v1"))[0] === 200 || undefined,
    );
  }));

Deno.test("replication: neighbours get delayed copies of the tasks; a bad body is 400", () =>
  withTempDir(async (dir) => {
    const origin = new FakeOrigin();
    const [p1, p2] = freePorts(2);
    const hosts = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    const common = { remotes: { "127.0.0.1:1": [".*"] }, tag_replication: { poll_interval: "1h" } };
    const bi1 = await startTestBuildIndex(`${dir}/1`, origin, {
      ...common,
      listen: { host: "127.0.0.1", port: p1 },
      cluster: { hosts, self: hosts[0], duplicate_replicate_stagger: "10m" },
    });
    const bi2 = await startTestBuildIndex(`${dir}/2`, origin, {
      ...common,
      listen: { host: "127.0.0.1", port: p2 },
      cluster: { hosts, self: hosts[1] },
    });
    try {
      const img = await image(origin, "6");
      assert.deepEqual(await put(bi1, "r/app:v1", img.digest), [200, ""]);
      const [row] = bi2.replication.pending();
      assert.equal(row.namespace, "r/app:v1");
      assert.equal(row.name, "127.0.0.1:1");
      assert.equal(row.delayMs, 10 * 60_000);
      const deps = readTaskPayload(row).dependencies.map(String).sort();
      assert.deepEqual(deps, [img.config, img.layer, img.digest].map(String).sort());
      const bad = await fetch(
        `${bi2.url}/internal/duplicate/remotes/tags/r%2Fapp:v2/digest/${img.digest}`,
        { method: "POST", body: '{"dependencies":["nope"]}' },
      );
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /json decode/);
    } finally {
      await bi1.stop();
      await bi2.stop();
    }
  }, { prefix: "kraken-replication-test-" }));

Deno.test("replication: a named remote reaches its cluster through a host list, past a host that is down", () =>
  withTempDir(async (dir) => {
    const dest = new FakeOrigin();
    const source = new SourceOrigin(dest);
    const b = await startTestBuildIndex(`${dir}/b`, dest, {
      origin: { hosts: ["127.0.0.1:1"], dns: "dest-origin:80" },
    });
    const [down] = freePorts(1);
    const a = await startTestBuildIndex(`${dir}/a`, source, {
      remotes: { "zone-b": { tags: ["^library/"], hosts: [`127.0.0.1:${down}`, b.addr] } },
      tag_replication: { retry_interval: "100ms", poll_interval: "50ms" },
    }, { remoteOrigin: () => dest });
    try {
      const img = await image(source, "7");
      assert.deepEqual(await put(a, "library/named:v1", img.digest), [200, ""]);
      await waitFor(
        "the tag on B",
        async () => (await getTag(b, "library/named:v1"))[0] === 200 || undefined,
        { timeoutMs: 20_000 },
      );
      await waitFor("the task row to go", () => a.replication.pending().length === 0);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, { prefix: "kraken-replication-test-" }));
