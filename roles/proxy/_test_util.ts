/**
 * Test helpers for the proxy: a push stack of a real origin, a real build-index and the proxy, all
 * in-process on 127.0.0.1 with their state in one temporary directory.
 *
 * @module
 */

import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { TagClusterClient } from "../../cluster/tag_client.ts";
import { memoryLogger } from "../../tracing/_test_util.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { startTestBuildIndex, type TestBuildIndex } from "../build-index/_test_util.ts";
import { startTestOrigin, type TestOrigin } from "../origin/_test_util.ts";
import { parseProxyConfig } from "./config.ts";
import { testRoleContext } from "../_test_util.ts";
import { type RunningProxy, startProxy as startProxyRole } from "./mod.ts";

/** Everything {@linkcode startPushStack} started. */
export interface PushStack {
  /** The origin (one-node ring). */
  readonly origin: TestOrigin;
  /** A client of the origin cluster, for checks. */
  readonly originClient: OriginClusterClient;
  /** The build-index. */
  readonly buildIndex: TestBuildIndex;
  /** The proxy. */
  readonly proxy: RunningProxy;
  /** `http://127.0.0.1:<proxy port>`. */
  readonly url: string;
  /** Proxy log lines. */
  readonly proxyLogs: string[];
  /** Starts a second proxy over the same storage (a restart); the caller stops it. */
  restartProxy(): Promise<RunningProxy>;
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
    startProxyRole(
      config,
      testRoleContext("proxy", { logger: proxyLogger, tracing: options.tracing }),
      { origin: originClient, tags: new TagClusterClient({ hosts: [buildIndex.addr] }) },
    );
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
