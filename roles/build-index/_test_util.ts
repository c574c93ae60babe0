/**
 * Test helpers for the build-index (and the proxy tests that start one): an in-memory origin
 * cluster stand-in and a build-index started in-process on 127.0.0.1.
 *
 * @module
 */

import type { RawMap } from "../../common/config.ts";
import { HttpStatusError } from "../../http/status_error.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { memoryLogger } from "../../tracing/_test_util.ts";
import { parseBuildIndexConfig } from "./config.ts";
import { testRoleContext } from "../_test_util.ts";
import { type BuildIndexDeps, type RunningBuildIndex, startBuildIndex } from "./mod.ts";
import type { OriginBlobs } from "./service.ts";

/** An in-memory origin cluster: blobs by digest, in every namespace. */
export class FakeOrigin implements OriginBlobs {
  /** Stored blobs by digest string. */
  readonly blobs = new Map<string, Uint8Array>();
  /** `namespace digest` of every stat and download, in order. */
  readonly calls: string[] = [];

  /** Stores bytes and returns their digest. */
  async add(bytes: Uint8Array | string): Promise<Digest> {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    const digest = await digestOfBytes(data);
    this.blobs.set(digest.toString(), data);
    return digest;
  }

  /** See {@linkcode OriginBlobs.stat}. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null> {
    this.calls.push(`stat ${namespace} ${digest}`);
    const blob = this.blobs.get(digest.toString());
    return Promise.resolve(blob ? { size: blob.length } : null);
  }

  /** See {@linkcode OriginBlobs.downloadBlob}; a missing blob is an origin 404. */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>> {
    this.calls.push(`download ${namespace} ${digest}`);
    const blob = this.blobs.get(digest.toString());
    if (!blob) {
      return Promise.reject(new HttpStatusError("GET", `fake://${digest}`, 404, ""));
    }
    return Promise.resolve(ReadableStream.from([blob]));
  }

  /** See {@linkcode OriginBlobs.replicateToRemote}; records the call. */
  replicateToRemote(namespace: string, digest: Digest, remote: string): Promise<void> {
    this.calls.push(`replicate ${namespace} ${digest} ${remote}`);
    return Promise.resolve();
  }
}

/** A build-index started by {@linkcode startTestBuildIndex}. */
export interface TestBuildIndex extends RunningBuildIndex {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  /** Log lines. */
  readonly logs: string[];
}

/**
 * Starts a build-index on 127.0.0.1 with its state under `dir` and a `file` backend in
 * `<dir>/backend` (`docker_tag` layout). `raw` is merged over those defaults.
 */
export async function startTestBuildIndex(
  dir: string,
  origin: OriginBlobs,
  raw: RawMap = {},
  deps: Omit<BuildIndexDeps, "origin"> = {},
): Promise<TestBuildIndex> {
  const logger = memoryLogger("build-index");
  const config = parseBuildIndexConfig({
    listen: { host: "127.0.0.1", port: 0 },
    storage: { root: dir },
    origin: { hosts: ["127.0.0.1:1"] },
    backends: [{
      namespace: ".*",
      backend: { file: { root: `${dir}/backend`, name_path: "docker_tag" } },
    }],
    manifest_download: { attempts: 1 },
    ...raw,
  });
  const server = await startBuildIndex(config, testRoleContext("build-index", { logger }), {
    ...deps,
    origin,
  });
  return {
    ...server,
    stop: () => server.stop(),
    url: `http://127.0.0.1:${server.port}`,
    addr: `127.0.0.1:${server.port}`,
    logs: logger.lines,
  };
}
