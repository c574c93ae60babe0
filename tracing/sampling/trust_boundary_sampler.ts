/**
 * The trust boundary of edge listeners (W3C Trace Context, "security considerations"): a client
 * outside the trusted networks must not be able to make us record every request by sending
 * `traceparent` with `sampled=1`.
 *
 * For a span with a remote parent on an edge listener (`kraken.edge: true`) whose client address
 * (`network.peer.address`) is not in the trusted networks:
 * - parent sampled: the client's choice is honoured up to `clientSampledRateLimit` traces per
 *   second; beyond it our own root decision applies. The span gets
 *   `kraken.sampling.client_forced = true | false` to say which happened. A refused client sample
 *   that our own decision does not sample either is a `rate_limit` drop (`onDrop`).
 * - parent not sampled: our own root decision applies (an untrusted client cannot switch tracing
 *   off either).
 * The trace id is the client's in every case, so the client can still correlate.
 *
 * Any other remote parent (internal listener, or a trusted client) goes to the `trusted` sampler.
 *
 * @module
 */

import { type Attributes, trace, TraceFlags } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace";
import type { NetworkList } from "../../common/cidr.ts";
import { ATTR } from "../names.ts";
import {
  isSampled,
  RATE_LIMITED,
  type RateLimitOptions,
  SAMPLED,
  sampledWith,
  type ShouldSample,
} from "./results.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Span attribute saying whether a client's `sampled` flag forced sampling. */
export const CLIENT_FORCED_ATTRIBUTE = ATTR.samplingClientForced;
/** Span attribute marking a server span of an edge listener. */
export const EDGE_ATTRIBUTE = ATTR.edge;
/** Span attribute carrying the client's IP address. */
export const PEER_ADDRESS_ATTRIBUTE = ATTR.networkPeerAddress;

const FORCED = sampledWith({ [CLIENT_FORCED_ATTRIBUTE]: true });
const NOT_FORCED_SAMPLED = sampledWith({ [CLIENT_FORCED_ATTRIBUTE]: false });

/** Options of {@linkcode TrustBoundarySampler}. */
export interface TrustBoundarySamplerOptions extends RateLimitOptions {
  /** Our own root decision, used when the client's flag is not honoured. */
  root: Sampler;
  /** Decides remote parents that are trusted (internal listeners, trusted networks). */
  trusted: Sampler;
  /** Client networks whose trace context is trusted on edge listeners. */
  trustedNetworks: NetworkList;
  /** Client-forced traces allowed per second (burst: one second's worth). */
  clientSampledRateLimit: number;
  /** The bucket of that limit, when shared with other client-forced samples (`jaeger-debug-id`). */
  bucket?: TokenBucket;
  /**
   * Called for each client-forced sample the limit refused and our own decision did not sample
   * (the `rate_limit` drop counter). A root decision the root chain's own rate limit turned down
   * is counted there, not twice.
   */
  onDrop?: () => void;
}

/** A sampler for spans with a remote parent that enforces the edge trust boundary. */
export class TrustBoundarySampler implements Sampler {
  readonly #root: Sampler;
  readonly #trusted: Sampler;
  readonly #networks: NetworkList;
  readonly #bucket: TokenBucket;
  readonly #limit: number;
  readonly #onDrop: (() => void) | undefined;

  /** Creates the sampler. */
  constructor(options: TrustBoundarySamplerOptions) {
    this.#root = options.root;
    this.#trusted = options.trusted;
    this.#networks = options.trustedNetworks;
    this.#limit = options.clientSampledRateLimit;
    this.#onDrop = options.onDrop;
    this.#bucket = options.bucket ?? new TokenBucket({
      ratePerSecond: options.clientSampledRateLimit,
      now: options.now,
    });
  }

  /** True when a span with these attributes comes from an untrusted client of an edge listener. */
  isUntrusted(attributes: Attributes): boolean {
    if (attributes[EDGE_ATTRIBUTE] !== true) return false;
    const peer = attributes[PEER_ADDRESS_ATTRIBUTE];
    return typeof peer !== "string" || !this.#networks.contains(peer);
  }

  /** Decides a span whose parent (in `context`) is remote. */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) => {
    if (!this.isUntrusted(attributes)) {
      return this.#trusted.shouldSample(context, traceId, spanName, kind, attributes, links);
    }
    const parent = trace.getSpanContext(context);
    const clientSampled = parent !== undefined && (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
    if (clientSampled && this.#bucket.tryTake()) return FORCED;
    const own = this.#root.shouldSample(context, traceId, spanName, kind, attributes, links);
    if (!clientSampled) return own;
    if (!isSampled(own)) {
      if (own !== RATE_LIMITED) this.#onDrop?.();
      return own;
    }
    if (own === SAMPLED) return NOT_FORCED_SAMPLED;
    return { ...own, attributes: { ...own.attributes, [CLIENT_FORCED_ATTRIBUTE]: false } };
  };

  /** Describes the sampler. */
  toString(): string {
    return `TrustBoundarySampler{${this.#networks.size} trusted networks, ` +
      `${this.#limit}/s client-forced, root=${this.#root.toString()}, ` +
      `trusted=${this.#trusted.toString()}}`;
  }
}
