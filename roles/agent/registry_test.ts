import { createLogger } from "../../common/log.ts";
import assert from "node:assert/strict";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { addBlob } from "../../p2p/_scheduler_test_util.ts";
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from "../../registry/manifest.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { type Image, makeArtifact } from "../../tests/harness/oci.ts";
import { ATTR, initTracing, SPAN } from "../../tracing/mod.ts";
import { type AgentStack, seedImage, startAgentStack } from "./_test_util.ts";
import { AgentBlobs } from "./blobs.ts";
import { createAgentRegistryRouter } from "./registry.ts";
import { externalTest } from "../../tests/harness/external.ts";
import { hasSkopeo, skopeo } from "../../tests/harness/skopeo.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { testTracingConfig } from "../../tracing/_test_util.ts";

const exporter = new InMemorySpanExporter();
const tracing = initTracing(
  testTracingConfig("agent"),
  { role: "agent", logger: createLogger({ role: "agent", write: () => {} }), exporter },
);

async function withImage(
  fn: (stack: AgentStack, image: Image, base: string) => Promise<void>,
): Promise<void> {
  const stack = await startAgentStack(tracing);
  try {
    const image = await seedImage(stack.origin, [50_000, 3_000]);
    stack.buildIndex.tags.set("library/app:oci", image.manifest.digest);
    stack.buildIndex.tags.set("library/app:docker", image.dockerManifest.digest);
    await fn(stack, image, `http://${stack.agent.registryAddr}/v2`);
  } finally {
    await stack.close();
  }
}

async function errorCode(res: Response): Promise<string> {
  assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  const body = await res.json();
  return body.errors[0].code;
}

Deno.test("registry: base endpoint and API version header", async () => {
  await withImage(async (_stack, _image, base) => {
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.deepEqual(await res.json(), {});
  });
});

Deno.test("registry: manifest negotiation follows distribution", async () => {
  await withImage(async (_stack, image, base) => {
    // An OCI manifest without a matching Accept is unknown to the client.
    let res = await fetch(`${base}/library/app/manifests/oci`, {
      headers: { accept: DOCKER_MANIFEST },
    });
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), "MANIFEST_UNKNOWN");

    // Listed among several types (with parameters), it is served as stored.
    res = await fetch(`${base}/library/app/manifests/oci`, {
      headers: { accept: `${DOCKER_MANIFEST}, ${OCI_MANIFEST}; q=0.9` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_MANIFEST);
    assert.equal(res.headers.get("docker-content-digest"), image.manifest.digest.toString());
    assert.equal(res.headers.get("etag"), `"${image.manifest.digest}"`);
    assert.equal(res.headers.get("content-length"), String(image.manifest.bytes.length));
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), image.manifest.bytes);

    // By digest, HEAD: the same headers, no body.
    res = await fetch(`${base}/library/app/manifests/${image.manifest.digest}`, {
      method: "HEAD",
      headers: { accept: OCI_MANIFEST },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(image.manifest.bytes.length));
    assert.equal(res.headers.get("content-type"), OCI_MANIFEST);
    assert.equal((await res.arrayBuffer()).byteLength, 0);

    // If-None-Match with the digest: 304.
    res = await fetch(`${base}/library/app/manifests/oci`, {
      headers: { accept: OCI_MANIFEST, "if-none-match": `"${image.manifest.digest}"` },
    });
    assert.equal(res.status, 304);
    await res.body?.cancel();

    // A Docker schema-2 manifest is served as stored, with or without a matching Accept.
    for (const accept of [DOCKER_MANIFEST, "*/*"]) {
      res = await fetch(`${base}/library/app/manifests/docker`, { headers: { accept } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), DOCKER_MANIFEST);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), image.dockerManifest.bytes);
    }
  });
});

Deno.test("registry: OCI index needs its Accept type", async () => {
  await withImage(async (stack, image, base) => {
    const index = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{
        mediaType: OCI_MANIFEST,
        digest: image.manifest.digest.toString(),
        size: image.manifest.bytes.length,
        platform: { architecture: "amd64", os: "linux" },
      }],
    }));
    const mi = await addBlob(stack.origin.store, index, 16 * 1024);
    stack.buildIndex.tags.set("library/app:multi", mi.digest);
    let res = await fetch(`${base}/library/app/manifests/multi`, {
      headers: { accept: OCI_MANIFEST },
    });
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), "MANIFEST_UNKNOWN");
    res = await fetch(`${base}/library/app/manifests/multi`, {
      headers: { accept: OCI_INDEX },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_INDEX);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), index);
  });
});

Deno.test("registry: errors are distribution's JSON", async () => {
  await withImage(async (_stack, _image, base) => {
    const unknown = await digestOfBytes(new TextEncoder().encode("unknown"));
    const cases: [string, RequestInit, number, string][] = [
      [`${base}/library/app/manifests/nope`, {}, 404, "MANIFEST_UNKNOWN"],
      [`${base}/library/app/manifests/${unknown}`, {}, 404, "MANIFEST_UNKNOWN"],
      [`${base}/library/app/blobs/${unknown}`, {}, 404, "BLOB_UNKNOWN"],
      [`${base}/library/app/blobs/sha256:123`, {}, 400, "DIGEST_INVALID"],
      [`${base}/Library/App/manifests/v1`, {}, 400, "NAME_INVALID"],
      [`${base}/library/app/manifests/v1`, { method: "PUT", body: "{}" }, 405, "UNSUPPORTED"],
      [`${base}/library/app/tags/list`, { method: "DELETE" }, 405, "UNSUPPORTED"],
      [`${base}/library/app/manifests/${unknown}`, { method: "DELETE" }, 405, "UNSUPPORTED"],
      [`${base}/library/app/blobs/${unknown}`, { method: "DELETE" }, 405, "UNSUPPORTED"],
      [`${base}/nothing/tags/list`, {}, 404, "NAME_UNKNOWN"],
      [`${base}/library/app/tags/list?n=0`, {}, 400, "UNSUPPORTED"],
      [`${base}/library/app/blobs/sha512:${"ab".repeat(64)}`, {}, 404, "BLOB_UNKNOWN"],
      [`${base}/library/app/manifests/sha512:${"ab".repeat(64)}`, {}, 404, "MANIFEST_UNKNOWN"],
      [`${base}/library/app/blobs/sha512:abc`, {}, 400, "DIGEST_INVALID"],
    ];
    for (const [url, init, status, code] of cases) {
      const res = await fetch(url, init);
      assert.equal(res.status, status, url);
      assert.equal(await errorCode(res), code, url);
    }
  });
});

Deno.test("registry: blobs by digest, GET and HEAD", async () => {
  await withImage(async (_stack, image, base) => {
    const layer = image.layers[0];
    let res = await fetch(`${base}/library/app/blobs/${layer.digest}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(layer.bytes.length));
    assert.equal(res.headers.get("docker-content-digest"), layer.digest.toString());
    await res.body?.cancel();
    res = await fetch(`${base}/library/app/blobs/${layer.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    assert.equal(res.headers.get("etag"), `"${layer.digest}"`);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes);
  });
});

Deno.test("registry: tag listing from build-index, with n/last pages", async () => {
  await withImage(async (stack, image, base) => {
    for (const tag of ["v1", "v2", "v3"]) {
      stack.buildIndex.tags.set(`library/app:${tag}`, image.manifest.digest);
    }
    // Another repository whose name starts alike, and a record that is no tag, stay out.
    stack.buildIndex.tags.set("library/app2:x", image.manifest.digest);
    stack.buildIndex.tags.set(`library/app:_oci/referrers/a/b`, image.manifest.digest);
    let res = await fetch(`${base}/library/app/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      name: "library/app",
      tags: ["docker", "oci", "v1", "v2", "v3"],
    });
    res = await fetch(`${base}/library/app/tags/list?n=2&last=oci`);
    assert.deepEqual((await res.json()).tags, ["v1", "v2"]);
    assert.equal(
      res.headers.get("link"),
      `</v2/library/app/tags/list?n=2&last=v2>; rel="next"`,
    );
    res = await fetch(`${base}/library/app/tags/list?n=2&last=v2`);
    assert.deepEqual((await res.json()).tags, ["v3"]);
    assert.equal(res.headers.get("link"), null);
  });
});

Deno.test("registry: Range GETs of a multi-piece blob; 416 past the end or overlapping", async () => {
  await withImage(async (_stack, image, base) => {
    // 50 000 bytes in 16 KiB pieces: four pieces.
    const layer = image.layers[0];
    const url = `${base}/library/app/blobs/${layer.digest}`;
    const size = layer.bytes.length;
    for (
      const [range, start, end] of [
        ["bytes=20000-40000", 20_000, 40_000], // starts mid-piece, spans a piece boundary
        ["bytes=16384-16384", 16_384, 16_384], // first byte of the second piece
        [`bytes=${size - 10}-`, size - 10, size - 1],
        ["bytes=-100", size - 100, size - 1],
        [`bytes=49000-${size + 5000}`, 49_000, size - 1],
      ] as const
    ) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get("content-range"), `bytes ${start}-${end}/${size}`, range);
      assert.equal(res.headers.get("content-length"), String(end - start + 1), range);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes.slice(start, end + 1));
    }
    for (const range of [`bytes=${size}-`, "bytes=0-100,50-60", "bytes=x-1"]) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 416, range);
      assert.equal(res.headers.get("content-range"), `bytes */${size}`, range);
      const body = await res.json();
      assert.equal(body.errors[0].code, "RANGE_INVALID", range);
      assert.match(body.errors[0].message, /not satisfiable: \S/, range);
    }
    // Without Range (or with disjoint ranges) the whole blob, advertising range support.
    const res = await fetch(url, { headers: { range: "bytes=0-9,100-109" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), layer.bytes);
  });
});

Deno.test("registry: referrers from build-index records, manifests over P2P", async () => {
  await withImage(async (stack, image, base) => {
    const sbom = await makeArtifact({
      subject: image.manifest,
      artifactType: "application/spdx+json",
      annotations: { "org.example.kind": "sbom" },
      payload: new TextEncoder().encode("{}"),
    });
    await addBlob(stack.origin.store, sbom.manifest.bytes, 16 * 1024);
    const record = (referrer: Digest) =>
      `library/app:_oci/referrers/sha256-${image.manifest.digest.hex}/sha256-${referrer.hex}`;
    stack.buildIndex.tags.set(record(sbom.manifest.digest), sbom.manifest.digest);
    // A record whose manifest the cluster lost is left out, not a failure.
    const lost = await digestOfBytes(new TextEncoder().encode("lost"));
    stack.buildIndex.tags.set(record(lost), lost);
    const url = `${base}/library/app/referrers/${image.manifest.digest}`;
    let res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_INDEX);
    assert.deepEqual(await res.json(), {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{
        mediaType: OCI_MANIFEST,
        digest: sbom.manifest.digest.toString(),
        size: sbom.manifest.bytes.length,
        artifactType: "application/spdx+json",
        annotations: { "org.example.kind": "sbom" },
      }],
    });
    res = await fetch(`${url}?artifactType=application/vnd.other`);
    assert.equal(res.headers.get("oci-filters-applied"), "artifactType");
    assert.deepEqual((await res.json()).manifests, []);
    res = await fetch(`${url}?artifactType=bad`);
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), "UNSUPPORTED");
    res = await fetch(`${base}/library/app/referrers/${sbom.manifest.digest}`);
    assert.deepEqual((await res.json()).manifests, []);
    // The referrer itself is pulled like any manifest.
    res = await fetch(`${base}/library/app/manifests/${sbom.manifest.digest}`, {
      headers: { accept: OCI_MANIFEST },
    });
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), sbom.manifest.bytes);
  });
});

Deno.test("registry: clients outside allowed_cidrs are denied", async () => {
  const blobs = new AgentBlobs(
    {} as ConstructorParameters<typeof AgentBlobs>[0],
    { download: () => Promise.reject(new Error("unused")) },
  );
  const registry = createAgentRegistryRouter({
    tracing,
    blobs,
    tags: {
      get: () => Promise.resolve(null),
      list: () => Promise.resolve({ Links: { next: "", self: "" }, size: 0, result: [] }),
    },
    allowedCidrs: ["127.0.0.1/32"],
    maxManifestBytes: 1024,
    logger: createLogger({ role: "agent", write: () => {} }),
  });
  const remote = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 1234 });
  let res = await registry.handle(new Request("http://agent/v2/"), { remote: remote("10.1.2.3") });
  assert.equal(res.status, 403);
  assert.equal(await errorCode(res), "DENIED");
  res = await registry.handle(new Request("http://agent/v2/"), { remote: remote("127.0.0.1") });
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

function tree(spans: ReadableSpan[], root: ReadableSpan, depth = 0): string[] {
  const kids = spans
    .filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId)
    .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  return [`${"  ".repeat(depth)}${root.name}`, ...kids.flatMap((k) => tree(spans, k, depth + 1))];
}

Deno.test("registry: a blob pull is one trace with the download spans", async () => {
  await withImage(async (_stack, image, base) => {
    const layer = image.layers[0];
    await tracing.forceFlush();
    exporter.reset();
    const res = await fetch(`${base}/library/app/blobs/${layer.digest}`);
    await res.arrayBuffer();
    const spans = await waitFor("the blob server span", async () => {
      await tracing.forceFlush();
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === "GET /v2/{name+}/blobs/{digest}") ? all : undefined;
    });
    const server = spans.find((s) => s.name === "GET /v2/{name+}/blobs/{digest}");
    assert.ok(server, spans.map((s) => s.name).join(", "));
    const trace = spans.filter((s) => s.spanContext().traceId === server.spanContext().traceId);
    const lines = tree(trace, server).map((l) => l.trimEnd());
    assert.deepEqual(lines.filter((l) => !/^ {6,}/.test(l)), [
      "GET /v2/{name+}/blobs/{digest}",
      "  agent.download_blob",
      "    agent.cache_lookup",
      "    scheduler.download",
      "    agent.stream_response",
    ]);
    const download = trace.find((s) => s.name === SPAN.agentDownloadBlob)!;
    assert.equal(download.attributes.size, layer.bytes.length);
    assert.equal(download.attributes.namespace, "library/app");
    assert.equal(
      trace.find((s) => s.name === SPAN.agentCacheLookup)!.attributes[ATTR.cacheHit],
      false,
    );
    assert.equal(
      trace.find((s) => s.name === SPAN.agentStreamResponse)!.attributes[ATTR.bytesSent],
      layer.bytes.length,
    );
    const sched = trace.find((s) => s.name === SPAN.schedulerDownload)!;
    assert.equal(
      sched.attributes[ATTR.p2pPiecesFromOrigins],
      sched.attributes[ATTR.p2pPiecesTotal],
    );
    const under = tree(trace, sched).slice(1).map((l) => l.trim());
    for (
      const name of [
        SPAN.metainfoRequest,
        SPAN.storageCreateTorrent,
        SPAN.announceRequest,
        SPAN.storageCommit,
      ]
    ) {
      assert.ok(under.includes(name), `${name} under scheduler.download: ${under.join(", ")}`);
    }
  });
});

Deno.test("registry: a manifest pull by tag resolves the tag in the same trace", async () => {
  await withImage(async (_stack, image, base) => {
    await tracing.forceFlush();
    exporter.reset();
    const res = await fetch(`${base}/library/app/manifests/oci`, {
      headers: { accept: OCI_MANIFEST },
    });
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), image.manifest.bytes);
    const name = "GET /v2/{name+}/manifests/{reference}";
    const spans = await waitFor(`the ${name} span`, async () => {
      await tracing.forceFlush();
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === name) ? all : undefined;
    });
    const server = spans.find((s) => s.name === name)!;
    const trace = spans.filter((s) => s.spanContext().traceId === server.spanContext().traceId);
    const top = tree(trace, server).filter((l) => /^ {0,2}\S/.test(l));
    assert.deepEqual(top, [
      name,
      "  agent.resolve_tag",
      "  agent.download_blob",
      "  agent.stream_response",
    ]);
    const resolve = trace.find((s) => s.name === SPAN.agentResolveTag)!;
    assert.equal(resolve.attributes.tag, "library/app:oci");
    assert.equal(resolve.attributes.digest, image.manifest.digest.toString());
  });
});

externalTest({
  name: "registry: skopeo copies an image out of the agent",
  ignore: !hasSkopeo(),
  async fn() {
    await withImage(async (stack, image) => {
      stack.buildIndex.tags.set("library/app:v1", image.manifest.digest);
      const dir = await Deno.makeTempDir({ prefix: "agent-skopeo-" });
      try {
        await skopeo([
          "copy",
          "--src-tls-verify=false",
          `docker://${stack.agent.registryAddr}/library/app:v1`,
          `oci:${dir}/layout:v1`,
        ], { home: dir });
        for (const b of [image.manifest, image.config, ...image.layers]) {
          const copied = await Deno.readFile(`${dir}/layout/blobs/sha256/${b.digest.hex}`);
          assert.deepEqual(copied, b.bytes);
        }
        // `skopeo inspect` (not only --raw) reads the config and lists the repository's tags.
        const inspected = JSON.parse(
          await skopeo([
            "inspect",
            "--tls-verify=false",
            `docker://${stack.agent.registryAddr}/library/app:v1`,
          ], { home: dir }),
        );
        assert.equal(inspected.Digest, image.manifest.digest.toString());
        assert.deepEqual(inspected.RepoTags, ["docker", "oci", "v1"]);
        assert.deepEqual(inspected.Layers, image.layers.map((l) => l.digest.toString()));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});
