/**
 * Container images for unit tests, flow tests and the demo: generate a small multi-layer image, write it as an
 * OCI image layout (what `skopeo copy oci:<dir> docker://...` pushes), and push it with a plain
 * Docker Registry v2 client (POST, chunked PATCH, PUT `?digest=`, manifest PUT) when skopeo is not
 * at hand.
 *
 * @module
 */

import { DOCKER_MANIFEST, OCI_MANIFEST } from "../../registry/manifest.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";

/** One content-addressed blob. */
export interface ImageBlob {
  /** Its digest. */
  digest: Digest;
  /** The bytes. */
  bytes: Uint8Array<ArrayBuffer>;
}

/** A generated image. */
export interface Image {
  /** The config blob. */
  config: ImageBlob;
  /** Layer blobs (gzip streams). */
  layers: ImageBlob[];
  /** The OCI image manifest over config and layers. */
  manifest: ImageBlob;
  /** The manifest's media type ({@linkcode OCI_MANIFEST}). */
  mediaType: string;
  /** A Docker schema-2 manifest of the same config and layers. */
  dockerManifest: ImageBlob;
}

/** Options of {@linkcode makeImage}. */
export interface MakeImageOptions {
  /** Uncompressed size of each layer; wins over `layers` and `layerSize`. */
  layerSizes?: number[];
  /** Number of layers (default 3). */
  layers?: number;
  /** Uncompressed size of every layer (default 64 KiB). */
  layerSize?: number;
}

/** `size` random bytes (`crypto.getRandomValues` fills at most 64 KiB per call). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(at + 65536, size)));
  }
  return out;
}

async function blobOf(bytes: Uint8Array<ArrayBuffer>): Promise<ImageBlob> {
  return { digest: await digestOfBytes(bytes), bytes };
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function manifestJson(
  mediaType: string,
  configType: string,
  layerType: string,
  config: ImageBlob,
  layers: ImageBlob[],
): Uint8Array<ArrayBuffer> {
  const descriptor = (blob: ImageBlob, type: string) => ({
    mediaType: type,
    digest: blob.digest.toString(),
    size: blob.bytes.length,
  });
  return new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: descriptor(config, configType),
    layers: layers.map((l) => descriptor(l, layerType)),
  }));
}

/**
 * Generates an image of random layers: config, layers and an OCI and a Docker schema-2 manifest
 * over them. Layers are real gzip streams: registry clients such as skopeo recompress layers they
 * see as uncompressed, which would change the pushed digests.
 */
export async function makeImage(options: MakeImageOptions = {}): Promise<Image> {
  const sizes = options.layerSizes ??
    Array.from({ length: options.layers ?? 3 }, () => options.layerSize ?? 64 * 1024);
  const layers: ImageBlob[] = [];
  const diffIds: string[] = [];
  for (const size of sizes) {
    const raw = randomBytes(size);
    layers.push(await blobOf(await gzip(raw)));
    diffIds.push((await digestOfBytes(raw)).toString());
  }
  const config = await blobOf(new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    created: new Date(0).toISOString(),
    rootfs: { type: "layers", diff_ids: diffIds },
    config: { Cmd: ["/bin/true"] },
  })));
  const manifest = await blobOf(manifestJson(
    OCI_MANIFEST,
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    config,
    layers,
  ));
  const dockerManifest = await blobOf(manifestJson(
    DOCKER_MANIFEST,
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    config,
    layers,
  ));
  return { config, layers, manifest, mediaType: OCI_MANIFEST, dockerManifest };
}

/** What {@linkcode pushImage} pushes: an image or an artifact. */
export type Pushable = Pick<Image, "config" | "layers" | "manifest" | "mediaType">;

/** The OCI empty descriptor's media type; its blob is `{}`. */
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";

/** Options of {@linkcode makeArtifact}. */
export interface MakeArtifactOptions {
  /** The manifest referred to (its OCI media type is assumed unless given). */
  subject: ImageBlob & { mediaType?: string };
  /** The manifest's `artifactType`; without it the config's media type names the artifact. */
  artifactType?: string;
  /** The config's media type (default the OCI empty descriptor's, over `{}`). */
  configMediaType?: string;
  /** The manifest's annotations. */
  annotations?: Record<string, string>;
  /** The one layer's bytes and media type. */
  payload: Uint8Array<ArrayBuffer>;
  /** Default `application/octet-stream`. */
  payloadMediaType?: string;
}

/** An OCI 1.1 artifact manifest (one payload layer) with a `subject`, as `oras attach` makes. */
export async function makeArtifact(options: MakeArtifactOptions): Promise<Pushable> {
  const configMediaType = options.configMediaType ?? OCI_EMPTY;
  const config = await blobOf(new TextEncoder().encode("{}"));
  const layer = await blobOf(options.payload);
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config: { mediaType: configMediaType, digest: config.digest.toString(), size: 2 },
    layers: [{
      mediaType: options.payloadMediaType ?? "application/octet-stream",
      digest: layer.digest.toString(),
      size: layer.bytes.length,
    }],
    subject: {
      mediaType: options.subject.mediaType ?? OCI_MANIFEST,
      digest: options.subject.digest.toString(),
      size: options.subject.bytes.length,
    },
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const manifest = await blobOf(new TextEncoder().encode(JSON.stringify(doc)));
  return { config, layers: [layer], manifest, mediaType: OCI_MANIFEST };
}

/** Writes `image` as an OCI image layout directory tagged `ref`. */
export async function writeOciLayout(dir: string, image: Image, ref = "latest"): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const blob of [image.config, ...image.layers, image.manifest]) {
    await Deno.writeFile(`${dir}/blobs/sha256/${blob.digest.hex}`, blob.bytes);
  }
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: image.mediaType,
        digest: image.manifest.digest.toString(),
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
  image: Pushable,
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
    url.searchParams.set("digest", blob.digest.toString());
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
  const manifestDigest = (await digestOfBytes(bytes)).toString();
  const manifest = JSON.parse(new TextDecoder().decode(bytes));
  const blobs = new Map<string, Uint8Array>();
  for (const d of [manifest.config, ...manifest.layers] as { digest: string }[]) {
    const blob = await fetch(`${registry}/v2/${repo}/blobs/${d.digest}`);
    if (blob.status !== 200) throw new Error(`blob ${d.digest}: HTTP ${blob.status}`);
    const got = new Uint8Array(await blob.arrayBuffer());
    const digest = (await digestOfBytes(got)).toString();
    if (digest !== d.digest) throw new Error(`blob ${d.digest} arrived as ${digest}`);
    blobs.set(d.digest, got);
  }
  return { manifestDigest, blobs };
}
