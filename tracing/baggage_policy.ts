/**
 * The edge baggage policy: what of a client's W3C `baggage` an edge listener (the agent's and the
 * proxy's registry ports, the agent's blob API) lets into the cluster. Baggage is copied onto every
 * downstream call, so a client could otherwise plant `tenant=evil` or a credential in every
 * internal request. Beside the sampling trust boundary (`sampling.trust`), and with the same notion
 * of a trusted client:
 *
 * - a client in `trust.trusted_networks` keeps its baggage;
 * - any other client keeps only the members whose key is in `trust.baggage_allowed_keys` (none by
 *   default, so client baggage is dropped), and of those only as many as fit in
 *   `trust.baggage_max_bytes` (members in the order sent; `key=value` with the value
 *   percent-encoded, separators counted).
 *
 * This applies whether or not the request carries a `traceparent`. Internal listeners (origin,
 * tracker, build-index) keep the baggage our own nodes send.
 *
 * @module
 */

import { type Baggage, type Context, propagation } from "@opentelemetry/api";
import type { NetworkList } from "../common/cidr.ts";

/** Why a baggage member was dropped at the edge. */
export type BaggageDropReason = "not_allowed" | "too_large";

/** Options of {@linkcode EdgeBaggagePolicy}. */
export interface EdgeBaggagePolicyOptions {
  /** Keys an untrusted client may send. Default none. */
  allowedKeys?: readonly string[];
  /** Largest serialized size of the kept members, bytes. Default 1024. */
  maxBytes?: number;
  /** Clients whose baggage is kept as sent. Default none. */
  trustedNetworks?: NetworkList;
  /** Called once per request that lost members, with how many per reason. */
  onDrop?: (dropped: Record<BaggageDropReason, number>, remote: string | undefined) => void;
}

function memberSize(key: string, value: string, metadata: string | undefined): number {
  return key.length + 1 + encodeURIComponent(value).length + (metadata ? metadata.length + 1 : 0);
}

/** Filters a client's baggage on an edge listener; see the module doc. */
export class EdgeBaggagePolicy {
  readonly #allowed: ReadonlySet<string>;
  readonly #maxBytes: number;
  readonly #trusted: NetworkList | undefined;
  readonly #onDrop: EdgeBaggagePolicyOptions["onDrop"];

  /** Creates the policy. */
  constructor(options: EdgeBaggagePolicyOptions = {}) {
    this.#allowed = new Set(options.allowedKeys ?? []);
    this.#maxBytes = options.maxBytes ?? 1024;
    this.#trusted = options.trustedNetworks;
    this.#onDrop = options.onDrop;
  }

  /**
   * Returns `ctx` with the client's baggage reduced to what the policy keeps (`ctx` itself when
   * there is no baggage or the client is trusted).
   */
  apply(ctx: Context, remote: string | undefined): Context {
    const baggage = propagation.getBaggage(ctx);
    if (!baggage) return ctx;
    if (remote !== undefined && this.#trusted?.contains(remote)) return ctx;
    const dropped: Record<BaggageDropReason, number> = { not_allowed: 0, too_large: 0 };
    const kept: [string, ReturnType<Baggage["getAllEntries"]>[number][1]][] = [];
    let size = 0;
    for (const [key, entry] of baggage.getAllEntries()) {
      if (!this.#allowed.has(key)) {
        dropped.not_allowed++;
        continue;
      }
      const bytes = memberSize(key, entry.value, entry.metadata?.toString()) +
        (kept.length > 0 ? 1 : 0);
      if (size + bytes > this.#maxBytes) {
        dropped.too_large++;
        continue;
      }
      size += bytes;
      kept.push([key, entry]);
    }
    if (dropped.not_allowed === 0 && dropped.too_large === 0) return ctx;
    this.#onDrop?.(dropped, remote);
    return kept.length === 0
      ? propagation.deleteBaggage(ctx)
      : propagation.setBaggage(ctx, propagation.createBaggage(Object.fromEntries(kept)));
  }
}
