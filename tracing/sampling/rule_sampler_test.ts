import assert from "node:assert/strict";
import { type Attributes, ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import type { SamplingRule } from "./config.ts";
import { RatioSampler } from "./ratio.ts";
import { isSampled } from "./results.ts";
import { globToRegExp, RuleSampler } from "./rule_sampler.ts";

// Sampled at any rate above 0 (its 56-bit value is the maximum).
const ALWAYS_ID = "0af7651916cd43dd00ffffffffffffff";

function rule(kind: SamplingRule["match"]["kind"], pattern: string, rate: number): SamplingRule {
  return { match: { kind, pattern }, rate } as SamplingRule;
}

function path(p: string): Attributes {
  return { "url.path": p };
}

Deno.test("globs: * stays within a segment, ** crosses segments", () => {
  const prefix = globToRegExp("/namespace/*/blobs/*", false);
  assert.equal(prefix.test("/namespace/library%2Fubuntu/blobs/sha256:abc"), true);
  assert.equal(prefix.test("/namespace/a/b/blobs/x"), false);
  assert.equal(prefix.test("/namespace/a/blobs/"), true);
  const whole = globToRegExp("/v2/*/manifests/*", true);
  assert.equal(whole.test("/v2/repo/manifests/latest"), true);
  assert.equal(whole.test("/v2/org/repo/manifests/latest"), false);
  assert.equal(
    globToRegExp("/v2/**/manifests/*", true).test("/v2/org/repo/manifests/latest"),
    true,
  );
  assert.equal(globToRegExp("/a.b(c)", true).test("/a.b(c)"), true, "regex characters are literal");
  assert.equal(globToRegExp("/a.b", true).test("/aXb"), false);
});

Deno.test("rules match by path prefix, whole path and operation; first match wins", () => {
  const rules = [
    rule("path_prefix", "/health", 0),
    rule("path", "/namespace/*/blobs/*", 1),
    rule("path_prefix", "/namespace/", 0),
    rule("operation", "scheduler.download", 1),
    rule("operation", "scheduler.download", 0),
  ];
  const sampler = new RuleSampler({ rules, fallback: new RatioSampler(0) });
  assert.equal(sampler.match("GET /health", path("/healthz")), rules[0]);
  assert.equal(sampler.match("GET", path("/namespace/ns/blobs/d")), rules[1]);
  assert.equal(sampler.match("GET", path("/namespace/ns/blobs/d/extra")), rules[2]);
  assert.equal(sampler.match("scheduler.download", {}), rules[3]);
  assert.equal(sampler.match("scheduler.download", path("/health")), rules[0]);
  assert.equal(sampler.match("other", { "url.path": 7 }), undefined, "non-string path is ignored");
  assert.equal(sampler.match("other", {}), undefined);

  const decide = (name: string, attrs: Attributes) =>
    isSampled(sampler.shouldSample(ROOT_CONTEXT, ALWAYS_ID, name, SpanKind.SERVER, attrs, []));
  assert.equal(decide("GET", path("/health")), false);
  assert.equal(decide("GET", path("/namespace/ns/blobs/d")), true);
  assert.equal(decide("scheduler.download", {}), true);
  assert.equal(decide("GET", path("/elsewhere")), false, "fallback rate 0");
  assert.deepEqual(sampler.operationRules(), [rules[3], rules[4]]);
});

Deno.test("the fallback decides when no rule matches", () => {
  const sampler = new RuleSampler({
    rules: [rule("path_prefix", "/metrics", 0)],
    fallback: new RatioSampler(1),
  });
  const r = sampler.shouldSample(ROOT_CONTEXT, ALWAYS_ID, "x", SpanKind.INTERNAL, {}, []);
  assert.equal(isSampled(r), true);
  assert.equal(
    sampler.toString(),
    "RuleSampler{[path_prefix=/metrics:0], fallback=RatioSampler{1}}",
  );
});
