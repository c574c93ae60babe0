/**
 * Parent-based sampling with a cheap path for local children: a span whose parent lives in this
 * process inherits the parent's decision (no rule matching, no clock, no allocation); a root span
 * goes to the `root` sampler; a span whose parent came over the network goes to the `remoteParent`
 * sampler (the trust boundary, which honours a trusted parent's flag).
 *
 * The span in `context` counts as the parent only when the new span joins its trace, i.e. the
 * tracer passed the parent's trace id. A tracer that starts a new trace instead (the parent is
 * invalid, or `root: true` was asked for) passes a fresh id, and the span is decided as a root
 * even if `context` still holds the old span. Comparing the ids also replaces a second validity
 * check of a parent the tracer has just validated, which keeps the child path cheap.
 *
 * @module
 */

import { type Context, trace, TraceFlags } from "@opentelemetry/api";
import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { NOT_SAMPLED, SAMPLED, type ShouldSample } from "./results.ts";

/** A sampler that follows the parent span's `sampled` flag (not sampled when there is none). */
export class ParentFlagSampler implements Sampler {
  /** Samples exactly when the parent in `context` is sampled. */
  shouldSample(context: Context): SamplingResult {
    const parent = trace.getSpanContext(context);
    return parent !== undefined && (parent.traceFlags & TraceFlags.SAMPLED) !== 0
      ? SAMPLED
      : NOT_SAMPLED;
  }

  /** Describes the sampler. */
  toString(): string {
    return "ParentFlagSampler";
  }
}

/** Options of {@linkcode ParentBasedSampler}. */
export interface ParentBasedSamplerOptions {
  /** Decides spans without a valid parent. */
  root: Sampler;
  /** Decides spans with a remote parent. Default: follow the parent's flag. */
  remoteParent?: Sampler;
}

/** Routes a span start by where its parent is: none, in this process, or remote. */
export class ParentBasedSampler implements Sampler {
  readonly #root: Sampler;
  readonly #remote: Sampler;

  /** Creates the sampler. */
  constructor(options: ParentBasedSamplerOptions) {
    this.#root = options.root;
    this.#remote = options.remoteParent ?? new ParentFlagSampler();
  }

  /** Inherits from a local parent; otherwise delegates to the root or remote-parent sampler. */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) => {
    const parent = trace.getSpanContext(context);
    if (parent === undefined || parent.traceId !== traceId) {
      return this.#root.shouldSample(context, traceId, spanName, kind, attributes, links);
    }
    if (parent.isRemote) {
      return this.#remote.shouldSample(context, traceId, spanName, kind, attributes, links);
    }
    return (parent.traceFlags & TraceFlags.SAMPLED) !== 0 ? SAMPLED : NOT_SAMPLED;
  };

  /** Describes the sampler. */
  toString(): string {
    return `ParentBased{root=${this.#root.toString()}, remote=${this.#remote.toString()}}`;
  }
}
