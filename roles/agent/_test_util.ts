/**
 * Test helpers for the agent role: a build-index stand-in (tag lookups only), a small image
 * (config, layers, OCI and Docker schema-2 manifests) and a whole pull stack — tracker stand-in,
 * origin seeder holding the image, build-index stand-in and a started agent.
 *
 * @module
 */

import { createLogger } from "../../common/log.ts";
import {
  addBlob,
  startTestOrigin,
  type TestOrigin,
  TestTracker,
} from "../../p2p/_scheduler_test_util.ts";
import type { Digest } from "../../storage/digest.ts";
import { type Image, makeImage } from "../../tests/harness/oci.ts";
import { type TracingRuntime } from "../../tracing/mod.ts";
import { parseAgentConfig } from "./config.ts";
import { type RunningAgent, startAgent } from "./mod.ts";

/**
 * A build-index stand-in answering `GET /tags/{tag}`, `GET /list/{prefix}` (names whose `docker_tag`
 * path is under the prefix, as the real one lists its backend) and `GET /readiness`.
 */
export class TestBuildIndex {
  /** `host:port`. */
  readonly addr: string;
  /** `repo:tag` → manifest digest. */
  readonly tags = new Map<string, Digest>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  /** Starts it on an ephemeral port. */
  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/readiness") return new Response("OK\n");
      if (path.startsWith("/list/")) {
        const prefix = decodeURIComponent(path.slice("/list/".length));
        const result = [...this.tags.keys()].filter((name) => {
          const at = name.lastIndexOf(":");
          const p = `${name.slice(0, at)}/_manifests/tags/${name.slice(at + 1)}`;
          return prefix === "" || p === prefix || p.startsWith(`${prefix}/`);
        }).sort();
        return Response.json({ Links: { next: "", self: path }, size: result.length, result });
      }
      const m = /^\/tags\/([^/]+)$/.exec(path);
      const digest = m ? this.tags.get(decodeURIComponent(m[1])) : undefined;
      return digest ? new Response(digest.toString()) : new Response(null, { status: 404 });
    });
    this.addr = `127.0.0.1:${this.#server.addr.port}`;
  }

  /** Stops serving. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

/**
 * Generates an image ({@linkcode makeImage}) with gzipped random layers of the given sizes and
 * stores every blob, both manifests included, in `origin`.
 */
export async function seedImage(
  origin: TestOrigin,
  layerSizes: number[],
  pieceLength = 16 * 1024,
): Promise<Image> {
  const image = await makeImage({ layerSizes });
  for (const b of [image.config, ...image.layers, image.manifest, image.dockerManifest]) {
    await addBlob(origin.store, b.bytes, pieceLength);
  }
  return image;
}

/** Tracker and build-index stand-ins, an origin seeder and a started agent. */
export interface AgentStack {
  /** Tracker stand-in. */
  tracker: TestTracker;
  /** The origin seeder. */
  origin: TestOrigin;
  /** Build-index stand-in. */
  buildIndex: TestBuildIndex;
  /** The agent. */
  agent: RunningAgent;
  /** Stops everything and removes the directories. */
  close(): Promise<void>;
}

/** Starts a pull stack on 127.0.0.1; `config` overrides keys of the agent's YAML. */
export async function startAgentStack(
  tracing: TracingRuntime,
  config: Record<string, unknown> = {},
): Promise<AgentStack> {
  const root = await Deno.makeTempDir({ prefix: "agent-stack-" });
  const tracker = new TestTracker();
  const buildIndex = new TestBuildIndex();
  const origin = await startTestOrigin();
  tracker.origins = [origin];
  let agent: RunningAgent;
  try {
    agent = await startAgent(
      parseAgentConfig({
        server: { port: 0 },
        registry: { port: 0 },
        peer: { port: 0 },
        tracker: { hosts: [tracker.addr] },
        build_index: { hosts: [buildIndex.addr] },
        storage: { root: `${root}/agent` },
        scheduler: { announce_interval: "100ms" },
        ...config,
      }),
      { logger: createLogger({ role: "agent", write: () => {} }), tracing, flags: {} },
    );
  } catch (error) {
    await origin.close();
    await buildIndex.close();
    await tracker.close();
    await Deno.remove(root, { recursive: true });
    throw error;
  }
  return {
    tracker,
    origin,
    buildIndex,
    agent,
    async close() {
      await agent.stop();
      await origin.close();
      await buildIndex.close();
      await tracker.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}
