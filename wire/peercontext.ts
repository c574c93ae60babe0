/**
 * The origin's peer context (upstream `core.PeerContext`): the P2P identity an origin serves at
 * `GET /internal/peercontext` so trackers can hand it out as a seeder (kraken-wire.md §2.5).
 * The origin's blob server encodes it with {@linkcode encodePeerContext}; the tracker's origin
 * store reads it with {@linkcode parsePeerContext}.
 *
 * @example
 * ```ts
 * import { encodePeerContext, parsePeerContext } from "./peercontext.ts";
 * const text = encodePeerContext({
 *   ip: "10.0.0.7", port: 15001, peerId: "ab".repeat(20), zone: "", cluster: "", origin: true,
 * }); // {"ip":"10.0.0.7","port":15001,"peer_id":[171,...],"zone":"","cluster":"","origin":true}\n
 * parsePeerContext(JSON.parse(text)).port; // 15001
 * ```
 *
 * @module
 */

import { goField, goJson, hex20ToJSON, parseHex20 } from "./announce.ts";
import { route } from "./route.ts";

/** The origin's P2P identity, asked for by trackers. */
export const PEER_CONTEXT = route("GET", "/internal/peercontext");

/**
 * An origin's P2P identity (upstream `core.PeerContext`), served at
 * {@linkcode PEER_CONTEXT} and read by trackers.
 */
export interface PeerContext {
  /** The IP peers dial. */
  ip: string;
  /** The peer port. */
  port: number;
  /** Peer id, 40 lowercase hex characters (a 20-integer array in JSON). */
  peerId: string;
  /** Zone label. */
  zone: string;
  /** Cluster label. */
  cluster: string;
  /** True for origins (an origin always sends true). */
  origin: boolean;
}

/** The JSON body of {@linkcode PEER_CONTEXT} as upstream writes it, keys in Go's order, newline ended. */
export function encodePeerContext(pc: PeerContext): string {
  return goJson({
    ip: pc.ip,
    port: pc.port,
    peer_id: hex20ToJSON(pc.peerId),
    zone: pc.zone,
    cluster: pc.cluster,
    origin: pc.origin,
  }) + "\n";
}

/**
 * Reads a {@linkcode PeerContext} (what an origin serves at {@linkcode PEER_CONTEXT}) from its JSON
 * object (keys `ip`, `port`, `peer_id`, `zone`, `cluster`, `origin`, matched as Go matches them).
 * @throws {Error} naming the bad field
 */
export function parsePeerContext(value: unknown): PeerContext {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("peer context must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const ip = goField(obj, "ip");
  if (typeof ip !== "string" || ip === "") throw new Error("peer context ip: must be a string");
  const port = goField(obj, "port");
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error("peer context port: must be an integer in 1-65535");
  }
  const text = (name: string) => {
    const v = goField(obj, name) ?? "";
    if (typeof v !== "string") throw new Error(`peer context ${name}: must be a string`);
    return v;
  };
  const origin = goField(obj, "origin") ?? false;
  if (typeof origin !== "boolean") throw new Error("peer context origin: must be a boolean");
  return {
    ip,
    port,
    peerId: parseHex20(goField(obj, "peer_id"), "peer context peer_id"),
    zone: text("zone"),
    cluster: text("cluster"),
    origin,
  };
}
