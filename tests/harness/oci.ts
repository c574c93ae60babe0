/**
 * Container images for flow tests and the demo: generate a small multi-layer image, write it as an
 * OCI image layout (what `skopeo copy oci:<dir> docker://...` pushes), and push it with a plain
 * Docker Registry v2 client (POST, chunked PATCH, PUT `?digest=`, manifest PUT) when skopeo is not
 * at hand.
 *
 * @module
 */

import { digestOfBytes } from "../../storage/digest.ts";

/** One content-addressed blob. */
export interface ImageBlob {
  /** `sha256:<hex>`. */
  digest: string;
  /** The bytes. */
  bytes: Uint8Array;
}

/** A generated image. */
export interface Image {
  /** The config blob. */
  config: ImageBlob;
  /** Layer blobs. */
  layers: ImageBlob[];
  /** The manifest (OCI image manifest v1) as a blob. */
  manifest: ImageBlob;
  /** The manifest's media type. */
  mediaType: string;
}

/** OCI image manifest media type. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

async function blobOf(bytes: Uint8Array): Promise<ImageBlob> {
  return { digest: (await digestOfBytes(bytes)).toString(), bytes };
}

/** Generates an image with `layers` random layers of `layerSize` bytes each. */
export async function makeImage(
  options: { layers?: number; layerSize?: number } = {},
): Promise<Image> {
  const layers: ImageBlob[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < (options.layers ?? 3); i++) {
    const raw = new Uint8Array(options.layerSize ?? 64 * 1024);
    for (let off = 0; off < raw.length; off += 65536) {
      crypto.getRandomValues(raw.subarray(off, Math.min(off + 65536, raw.length)));
    }
    // Real gzip: registry clients such as skopeo recompress layers they see as uncompressed,
    // which would change the pushed digests.
    const gz = new Uint8Array(
      await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("gzip")))
        .arrayBuffer(),
    );
    layers.push(await blobOf(gz));
    diffIds.push((await blobOf(raw)).digest);
  }
  const configJson = {
    architecture: "amd64",
    os: "linux",
    created: new Date(0).toISOString(),
    rootfs: { type: "layers", diff_ids: diffIds },
    config: { Cmd: ["/bin/true"] },
  };
  const config = await blobOf(new TextEncoder().encode(JSON.stringify(configJson)));
  const manifestJson = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: config.digest,
      size: config.bytes.length,
    },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: l.digest,
      size: l.bytes.length,
    })),
  };
  const manifest = await blobOf(new TextEncoder().encode(JSON.stringify(manifestJson)));
  return { config, layers, manifest, mediaType: OCI_MANIFEST };
}

/** Writes `image` as an OCI image layout directory tagged `ref`. */
export async function writeOciLayout(dir: string, image: Image, ref = "latest"): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const blob of [image.config, ...image.layers, image.manifest]) {
    await Deno.writeFile(`${dir}/blobs/sha256/${blob.digest.slice(7)}`, blob.bytes);
  }
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: image.mediaType,
        digest: image.manifest.digest,
        size: image.manifest.bytes.length,
        annotations: { "org.opencontainers.image.ref.name": ref },
      }],
    }),
  );
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status}: ${await res.text()}`);
  }
  await res.body?.cancel();
}

/**
 * Pushes `image` to a Registry v2 endpoint as `repo:tag`, each blob as a chunked upload session
 * (POST, PATCH per `chunkSize`, PUT `?digest=`), then the manifest. Blobs the registry already has
 * (HEAD 200) are skipped, as docker does.
 */
export async function pushImage(
  registry: string,
  repo: string,
  tag: string,
  image: Image,
  options: { chunkSize?: number } = {},
): Promise<void> {
  const chunkSize = options.chunkSize ?? 32 * 1024;
  for (const blob of [...image.layers, image.config]) {
    const head = await fetch(`${registry}/v2/${repo}/blobs/${blob.digest}`, { method: "HEAD" });
    await head.body?.cancel();
    if (head.status === 200) continue;
    const start = await fetch(`${registry}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    await expectStatus(start, [202], `start upload of ${blob.digest}`);
    let location = new URL(start.headers.get("location")!, registry).toString();
    for (let off = 0; off < blob.bytes.length; off += chunkSize) {
      const chunk = blob.bytes.subarray(off, Math.min(off + chunkSize, blob.bytes.length));
      const patch = await fetch(location, {
        method: "PATCH",
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${off}-${off + chunk.length - 1}`,
        },
        body: chunk as BodyInit,
      });
      await expectStatus(patch, [202], `upload chunk of ${blob.digest}`);
      location = new URL(patch.headers.get("location")!, registry).toString();
    }
    const url = new URL(location);
    url.searchParams.set("digest", blob.digest);
    const put = await fetch(url, { method: "PUT" });
    await expectStatus(put, [201], `commit ${blob.digest}`);
  }
  const put = await fetch(`${registry}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    headers: { "content-type": image.mediaType },
    body: image.manifest.bytes as BodyInit,
  });
  await expectStatus(put, [201], `put manifest ${repo}:${tag}`);
}

/**
 * Pulls `repo:tag` from a Registry v2 endpoint as docker does: the manifest by tag, then every blob
 * it references by digest. Returns the manifest digest and the bytes of each blob, verified against
 * their digests.
 */
export async function pullImage(
  registry: string,
  repo: string,
  tag: string,
): Promise<{ manifestDigest: string; blobs: Map<string, Uint8Array> }> {
  const res = await fetch(`${registry}/v2/${repo}/manifests/${tag}`, {
    headers: {
      accept: [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
      ].join(", "),
    },
  });
  if (res.status !== 200) {
    throw new Error(`manifest ${repo}:${tag}: HTTP ${res.status}: ${await res.text()}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const manifestDigest = (await blobOf(bytes)).digest;
  const manifest = JSON.parse(new TextDecoder().decode(bytes));
  const blobs = new Map<string, Uint8Array>();
  for (const d of [manifest.config, ...manifest.layers] as { digest: string }[]) {
    const blob = await fetch(`${registry}/v2/${repo}/blobs/${d.digest}`);
    if (blob.status !== 200) throw new Error(`blob ${d.digest}: HTTP ${blob.status}`);
    const got = await blobOf(new Uint8Array(await blob.arrayBuffer()));
    if (got.digest !== d.digest) throw new Error(`blob ${d.digest} arrived as ${got.digest}`);
    blobs.set(d.digest, got.bytes);
  }
  return { manifestDigest, blobs };
}
