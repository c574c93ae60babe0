/**
 * Test helpers for the tracker: a real `redis-server` on a free loopback port, and a small HTTP
 * server standing in for an origin (locations, peer context, metainfo, readiness).
 *
 * @module
 */

import { createLogger, type Logger } from "../../common/log.ts";
import { hex20ToJSON } from "../../wire/announce.ts";
import { freePort } from "../../tests/harness/procs.ts";
import { RedisClient } from "./redis.ts";

/** A logger that collects lines instead of writing them. */
export function testLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    logger: createLogger({ role: "tracker", level: "debug", write: (l) => lines.push(l) }),
    lines,
  };
}

/** A running `redis-server`. */
export interface TestRedis {
  /** `127.0.0.1:<port>`. */
  addr: string;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` without persistence on `port` (default: a free one) and waits until it
 * answers PING.
 */
export async function startRedis(port: number = freePort()): Promise<TestRedis> {
  const child = new Deno.Command("redis-server", {
    args: ["--save", "", "--appendonly", "no", "--port", String(port), "--bind", "127.0.0.1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const addr = `127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
  };
  for (let i = 0; i < 100; i++) {
    const probe = new RedisClient({ addr, dialTimeoutMs: 200 });
    try {
      if (await probe.command("PING") === "PONG") return { addr, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      await probe.close();
    }
  }
  await stop();
  throw new Error("redis-server did not start");
}

/** How the fake origin answers a metainfo request. */
export interface MetaInfoAnswer {
  /** HTTP status. */
  status: number;
  /** Body text. */
  body: string;
}

/** A stand-in origin. */
export interface FakeOrigin {
  /** `127.0.0.1:<port>`. */
  addr: string;
  /** The P2P peer ID this origin reports (40 hex). */
  peerId: string;
  /** Requests received, as `METHOD path`. */
  requests: string[];
  /** Metainfo answers by digest string (`sha256:<hex>`); absent → 404. */
  metainfo: Map<string, MetaInfoAnswer>;
  /** Status of `/internal/peercontext` (200 by default). */
  peerContextStatus: number;
  /** Locations reported for every digest (default: this origin alone). */
  locations: string[] | undefined;
  /** Stops the server. */
  stop(): Promise<void>;
}

/** Starts a fake origin on a free loopback port. */
export function startFakeOrigin(peerId = "0a".repeat(20), peerPort = 15001): FakeOrigin {
  const origin: FakeOrigin = {
    addr: "",
    peerId,
    requests: [],
    metainfo: new Map(),
    peerContextStatus: 200,
    locations: undefined,
    stop: () => server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    origin.requests.push(`${req.method} ${path}`);
    if (path === "/readiness") return new Response("OK\n");
    if (/^\/blobs\/[^/]+\/locations$/.test(path)) {
      return new Response(null, {
        headers: { "origin-locations": (origin.locations ?? [origin.addr]).join(",") },
      });
    }
    if (path === "/internal/peercontext") {
      if (origin.peerContextStatus !== 200) {
        return new Response("down", { status: origin.peerContextStatus });
      }
      return new Response(
        JSON.stringify({
          ip: "127.0.0.1",
          port: peerPort,
          peer_id: hex20ToJSON(origin.peerId),
          zone: "z1",
          cluster: "c1",
          origin: true,
        }) + "\n",
      );
    }
    const m = /^\/internal\/namespace\/[^/]+\/blobs\/([^/]+)\/metainfo$/.exec(path);
    if (m) {
      const answer = origin.metainfo.get(decodeURIComponent(m[1]));
      if (!answer) return new Response(null, { status: 404 });
      return new Response(answer.body === "" ? null : answer.body, { status: answer.status });
    }
    return new Response("not found", { status: 404 });
  });
  origin.addr = `127.0.0.1:${server.addr.port}`;
  return origin;
}
