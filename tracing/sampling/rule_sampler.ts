/**
 * Rule-based sampling of root spans: the first rule whose condition holds decides, by trace id at
 * the rule's rate; when none holds, a fallback sampler decides (a fixed ratio, or the adaptive
 * sampler). Path rules look at the span's `url.path` attribute, so they only ever match HTTP
 * server spans; operation rules compare the span name.
 *
 * @module
 */

import type { Attributes } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace";
import { ATTR } from "../names.ts";
import type { SamplingRule } from "./config.ts";
import { traceIdSampled } from "./ratio.ts";
import { NOT_SAMPLED, SAMPLED, type ShouldSample } from "./results.ts";

/** The attribute path rules match against. */
export const URL_PATH_ATTRIBUTE = ATTR.urlPath;

/**
 * Compiles a path glob to a regular expression: `**` matches any run of characters, `*` any run
 * without `/`. `anchorEnd` false makes it a prefix match.
 */
export function globToRegExp(glob: string, anchorEnd: boolean): RegExp {
  let source = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        source += ".*";
        i++;
      } else {
        source += "[^/]*";
      }
    } else {
      source += c.replace(/[.+?^${}()|[\]\\/]/g, "\\$&");
    }
  }
  return new RegExp(anchorEnd ? source + "$" : source);
}

type Test = (spanName: string, path: string | undefined) => boolean;

function compile(rule: SamplingRule): Test {
  const { kind, pattern } = rule.match;
  if (kind === "operation") return (name) => name === pattern;
  if (!pattern.includes("*")) {
    return kind === "path_prefix"
      ? (_, path) => path !== undefined && path.startsWith(pattern)
      : (_, path) => path === pattern;
  }
  const re = globToRegExp(pattern, kind === "path");
  return (_, path) => path !== undefined && re.test(path);
}

/** Options of {@linkcode RuleSampler}. */
export interface RuleSamplerOptions {
  /** Rules in match order. */
  rules: readonly SamplingRule[];
  /** Decides root spans no rule matches. */
  fallback: Sampler;
}

/** A sampler that applies the first matching rule's rate, or the fallback. */
export class RuleSampler implements Sampler {
  readonly #rules: readonly SamplingRule[];
  readonly #tests: readonly Test[];
  readonly #fallback: Sampler;

  /** Compiles the rules once. */
  constructor(options: RuleSamplerOptions) {
    this.#rules = options.rules;
    this.#tests = options.rules.map(compile);
    this.#fallback = options.fallback;
  }

  /** The first rule matching a span, or `undefined`. */
  match(spanName: string, attributes: Attributes): SamplingRule | undefined {
    const raw = attributes[URL_PATH_ATTRIBUTE];
    const path = typeof raw === "string" ? raw : undefined;
    for (let i = 0; i < this.#tests.length; i++) {
      if (this.#tests[i](spanName, path)) return this.#rules[i];
    }
    return undefined;
  }

  /** The rules that match on the span name, in match order. */
  operationRules(): readonly SamplingRule[] {
    return this.#rules.filter((rule) => rule.match.kind === "operation");
  }

  /** Decides by the first matching rule, else by the fallback. */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) => {
    const rule = this.match(spanName, attributes);
    if (rule) return traceIdSampled(traceId, rule.rate) ? SAMPLED : NOT_SAMPLED;
    return this.#fallback.shouldSample(context, traceId, spanName, kind, attributes, links);
  };

  /** Describes the sampler. */
  toString(): string {
    const rules = this.#rules.map((r) => `${r.match.kind}=${r.match.pattern}:${r.rate}`);
    return `RuleSampler{[${rules.join(", ")}], fallback=${this.#fallback.toString()}}`;
  }
}
