/**
 * Test helpers for the origin role: start an origin, or a hash ring of them, in-process on
 * 127.0.0.1 from a raw config, with a logger that keeps its lines in memory.
 *
 * @module
 */

import { createLogger } from "../../common/log.ts";
import { join } from "node:path";
import type { RawMap } from "../../common/config.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { testRoleContext } from "../_test_util.ts";
import { originRole, type RunningOrigin, startOrigin } from "./mod.ts";

/** An origin started by {@linkcode startTestOrigin}. */
export interface TestOrigin extends RunningOrigin {
  /** JSON log lines written so far. */
  readonly logs: string[];
}

/** Base URL of an origin. */
export function urlOf(origin: { addr: string }): string {
  return `http://${origin.addr}`;
}

/**
 * Starts an origin from `raw` (YAML-shaped), relative paths resolved against `baseDir`.
 * `listen` and the P2P `peer` listener default to 127.0.0.1 port 0, so tests never collide.
 */
export async function startTestOrigin(
  raw: RawMap,
  options: { baseDir?: string; tracing?: TracingRuntime } = {},
): Promise<TestOrigin> {
  const logs: string[] = [];
  const logger = createLogger({ role: "origin", level: "debug", write: (l) => logs.push(l) });
  // Through the role's parser, so HTTP backends get the traced fetch main.ts would give them.
  const config = originRole.parseConfig(
    { listen: { host: "127.0.0.1", port: 0 }, peer: { host: "127.0.0.1", port: 0 }, ...raw },
    {},
    { configPath: options.baseDir && join(options.baseDir, "origin.yaml") },
  );
  const running = await startOrigin(
    config,
    testRoleContext("origin", { logger, tracing: options.tracing }),
  );
  return { ...running, stop: () => running.stop(), logs };
}

/**
 * Starts `count` origins on one hash ring, on free ports, with storage roots `o<i>` (under
 * `options.baseDir`); `raw` is merged over each one's config, its `hashring` keys beside the ring's
 * `hosts`. If one fails to start, those already started are stopped.
 */
export async function startTestRing(
  count: number,
  raw: RawMap,
  options: { baseDir?: string; tracing?: TracingRuntime } = {},
): Promise<TestOrigin[]> {
  const hosts = freePorts(count).map((p) => `127.0.0.1:${p}`);
  const origins: TestOrigin[] = [];
  try {
    for (const [i, host] of hosts.entries()) {
      origins.push(
        await startTestOrigin({
          listen: { host: "127.0.0.1", port: Number(host.split(":")[1]) },
          advertise: host,
          storage: { root: `o${i}` },
          ...raw,
          hashring: { ...(raw.hashring as RawMap | undefined), hosts },
        }, options),
      );
    }
  } catch (error) {
    for (const o of origins) await o.stop();
    throw error;
  }
  return origins;
}
