/**
 * Test helpers for the proxy: a push stack of a real origin, a real build-index and the proxy, all
 * in-process on 127.0.0.1 with their state in one temporary directory.
 *
 * @module
 */

import { gzipSync } from "node:zlib";
import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { TagClusterClient } from "../../cluster/tag_client.ts";
import { OCI_MANIFEST } from "../../registry/manifest.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { memoryLogger } from "../../tracing/_test_util.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { startTestBuildIndex, type TestBuildIndex } from "../build-index/_test_util.ts";
import { startTestOrigin, type TestOrigin } from "../origin/_test_util.ts";
import { parseProxyConfig } from "./config.ts";
import { type ProxyServer, startProxyServer } from "./server.ts";

/** Everything {@linkcode startPushStack} started. */
export interface PushStack {
  /** The origin (one-node ring). */
  readonly origin: TestOrigin;
  /** A client of the origin cluster, for checks. */
  readonly originClient: OriginClusterClient;
  /** The build-index. */
  readonly buildIndex: TestBuildIndex;
  /** The proxy. */
  readonly proxy: ProxyServer;
  /** `http://127.0.0.1:<proxy port>`. */
  readonly url: string;
  /** Proxy log lines. */
  readonly proxyLogs: string[];
  /** Starts a second proxy over the same storage (a restart); the caller stops it. */
  restartProxy(): Promise<ProxyServer>;
  /** Stops everything (proxy first). */
  stop(): Promise<void>;
}

/** Options of {@linkcode startPushStack}. */
export interface PushStackOptions {
  /** The tracing runtime the origin gets (default: tracing off). */
  tracing?: TracingRuntime;
  /** Extra `upload:` config of the proxy. */
  upload?: Record<string, unknown>;
}

/** Starts origin, build-index and proxy under `dir`. */
export async function startPushStack(
  dir: string,
  options: PushStackOptions = {},
): Promise<PushStack> {
  const origin = await startTestOrigin({
    storage: { root: `${dir}/origin` },
    peer: { host: "127.0.0.1", port: 0 },
    backends: [{
      namespace: ".*",
      backend: { file: { root: `${dir}/origin-backend`, name_path: "identity" } },
    }],
  }, { tracing: options.tracing });
  const originClient = new OriginClusterClient({ hosts: [origin.addr] });
  let buildIndex: TestBuildIndex;
  try {
    buildIndex = await startTestBuildIndex(`${dir}/build-index`, originClient, {
      origin: { hosts: [origin.addr] },
    });
  } catch (error) {
    await origin.stop();
    throw error;
  }
  const proxyLogger = memoryLogger("proxy");
  const config = parseProxyConfig({
    listen: { host: "127.0.0.1", port: 0 },
    storage: { root: `${dir}/proxy` },
    origin: { hosts: [origin.addr] },
    build_index: { hosts: [buildIndex.addr] },
    upload: options.upload ?? {},
  });
  const startProxy = () =>
    startProxyServer(config, {
      origin: originClient,
      tags: new TagClusterClient({ hosts: [buildIndex.addr] }),
      logger: proxyLogger,
    });
  const proxy = await startProxy();
  return {
    origin,
    originClient,
    buildIndex,
    proxy,
    url: `http://127.0.0.1:${proxy.port}`,
    proxyLogs: proxyLogger.lines,
    restartProxy: startProxy,
    async stop() {
      await proxy.stop();
      await buildIndex.stop();
      await origin.stop();
    },
  };
}

/** Random bytes (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(at + 65536, size)));
  }
  return out;
}

/**
 * A small OCI image: config, layers and the manifest over them (bytes and digests). Layers are
 * gzip-compressed random bytes, so registry clients push them as they are (skopeo compresses an
 * uncompressed layer on the way, which would change the manifest).
 */
export async function makeImage(layerSizes: number[]) {
  const layers = await Promise.all(layerSizes.map(async (size) => {
    const bytes = new Uint8Array(gzipSync(randomBytes(size)));
    return { bytes, digest: await digestOfBytes(bytes) };
  }));
  const configBytes = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest.toString()) },
  }));
  const config = { bytes: configBytes, digest: await digestOfBytes(configBytes) };
  const manifestBytes = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: config.digest.toString(),
      size: config.bytes.length,
    },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: l.digest.toString(),
      size: l.bytes.length,
    })),
  }));
  return {
    layers,
    config,
    manifest: { bytes: manifestBytes, digest: await digestOfBytes(manifestBytes) },
  };
}
