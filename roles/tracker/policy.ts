/**
 * Peer handout priority policies (upstream `peerhandoutpolicy.priority`, kraken-wire.md §2.3).
 *
 * A policy gives every peer of a handout a priority; the handout is sorted by ascending priority.
 *
 * - `completeness` (upstream's base config): complete agents (0, `peer_seeder`), then origins
 *   (1, `origin`), then incomplete agents (2, `peer_incomplete`). Agents that already finished
 *   serve first, so origins are spared when the blob is spreading.
 * - `default`: every peer 0, so the order is the store's (random) order.
 *
 * The sort here is stable, which upstream's is not; peers of equal priority arrive in random order
 * from the stores anyway, so no caller can tell the difference.
 *
 * @module
 */

import type { PeerInfo } from "../../wire/announce.ts";

/** The policy names the `handout.policy` key accepts. */
export const HANDOUT_POLICIES = ["completeness", "default"] as const;

/** One of {@linkcode HANDOUT_POLICIES}. */
export type HandoutPolicyName = typeof HANDOUT_POLICIES[number];

/** A peer's priority (lower sorts first) and its label (upstream's metric tag). */
export interface PeerPriority {
  /** Sort key; lower first. */
  priority: number;
  /** `peer_seeder`, `origin`, `peer_incomplete`, or `default`. */
  label: string;
}

/** Assigns priorities and sorts handouts. */
export interface PriorityPolicy {
  /** The policy name. */
  readonly name: HandoutPolicyName;
  /** The priority of one peer. */
  priority(peer: PeerInfo): PeerPriority;
  /** Returns the peers sorted by ascending priority (a new array). */
  sortPeers(peers: readonly PeerInfo[]): PeerInfo[];
}

/** Upstream's completeness priorities: complete agents 0, origins 1, incomplete agents 2. */
export function completenessPriority(peer: PeerInfo): PeerPriority {
  if (peer.origin) return { priority: 1, label: "origin" };
  if (peer.complete) return { priority: 0, label: "peer_seeder" };
  return { priority: 2, label: "peer_incomplete" };
}

/** The default policy's priority: the same for everyone. */
export function defaultPriority(_peer: PeerInfo): PeerPriority {
  return { priority: 0, label: "default" };
}

/**
 * Builds the named policy.
 * @throws {RangeError} for a name not in {@linkcode HANDOUT_POLICIES} (a start-up error upstream)
 */
export function createPriorityPolicy(name: string): PriorityPolicy {
  let priority: (peer: PeerInfo) => PeerPriority;
  if (name === "completeness") priority = completenessPriority;
  else if (name === "default") priority = defaultPriority;
  else throw new RangeError(`priority policy ${JSON.stringify(name)} not found`);
  return {
    name: name as HandoutPolicyName,
    priority,
    sortPeers(peers) {
      return peers
        .map((peer) => ({ peer, p: priority(peer).priority }))
        .sort((a, b) => a.p - b.p)
        .map((x) => x.peer);
    },
  };
}
