import assert from "node:assert/strict";
import { type Attributes, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from "@opentelemetry/api";
import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { NetworkList } from "../../common/cidr.ts";
import { ParentFlagSampler } from "./parent_based_sampler.ts";
import { RatioSampler } from "./ratio.ts";
import { isSampled, NOT_SAMPLED, SAMPLED } from "./results.ts";
import { CLIENT_FORCED_ATTRIBUTE, TrustBoundarySampler } from "./trust_boundary_sampler.ts";

function randomTraceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function remoteParent(traceId: string, sampled: boolean) {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId: "00f067aa0ba902b7",
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

const EDGE_CLIENT: Attributes = {
  "kraken.edge": true,
  "network.peer.address": "203.0.113.9",
  "url.path": "/v2/library/ubuntu/manifests/latest",
};

/** One edge server span with a fresh trace id whose client sent `sampled`. */
function decide(sampler: Sampler, sampled: boolean, attributes = EDGE_CLIENT): SamplingResult {
  const id = randomTraceId();
  return sampler.shouldSample(
    remoteParent(id, sampled),
    id,
    "GET",
    SpanKind.SERVER,
    attributes,
    [],
  );
}

function boundary(root: Sampler, now: () => number, trusted: string[] = []) {
  return new TrustBoundarySampler({
    root,
    trusted: new ParentFlagSampler(),
    trustedNetworks: NetworkList.parse(trusted),
    clientSampledRateLimit: 10,
    now,
  });
}

Deno.test("a flood of client-sampled requests forces at most the limit per second", () => {
  let now = 0;
  const ownRate = 0.1;
  const sampler = boundary(new RatioSampler(ownRate), () => now);
  let forced = 0;
  let ownSampled = 0;
  let unsampled = 0;
  // 1000 requests with sampled=1 within one simulated second.
  for (let i = 0; i < 1000; i++) {
    now = i;
    const r = decide(sampler, true);
    if (!isSampled(r)) {
      unsampled++;
      continue;
    }
    const flag = r.attributes?.[CLIENT_FORCED_ATTRIBUTE];
    if (flag === true) forced++;
    else if (flag === false) ownSampled++;
    else assert.fail("a sampled client-flagged span says whether the client forced it");
  }
  // Burst of 10 plus 10 refilled over the second.
  assert.ok(forced >= 10 && forced <= 20, `forced ${forced}`);
  // Beyond the limit our own 10% decision applies.
  const rest = 1000 - forced;
  assert.ok(ownSampled > rest * 0.04 && ownSampled < rest * 0.2, `own ${ownSampled} of ${rest}`);
  assert.equal(forced + ownSampled + unsampled, 1000);
});

Deno.test("an untrusted client cannot switch sampling off either", () => {
  const sampler = boundary(new RatioSampler(1), () => 0);
  assert.equal(decide(sampler, false), SAMPLED, "our own decision, no client_forced attribute");
});

Deno.test("trusted networks and internal listeners follow the parent's flag", () => {
  const sampler = boundary(new RatioSampler(0), () => 0, ["203.0.113.0/24"]);
  assert.equal(decide(sampler, true), SAMPLED, "trusted edge client");
  const internal = { ...EDGE_CLIENT, "kraken.edge": false, "network.peer.address": "198.51.100.1" };
  assert.equal(decide(sampler, true, internal), SAMPLED);
  assert.equal(decide(sampler, false, internal), NOT_SAMPLED);
  assert.equal(sampler.isUntrusted({ "kraken.edge": true }), true, "no peer address: untrusted");
  assert.equal(sampler.isUntrusted(EDGE_CLIENT), false);
});

Deno.test("root results with their own attributes keep them next to client_forced=false", () => {
  const withAttrs: Sampler = {
    shouldSample: (): SamplingResult => ({ decision: SAMPLED.decision, attributes: { rule: "x" } }),
    toString: () => "withAttrs",
  };
  const sampler = new TrustBoundarySampler({
    root: withAttrs,
    trusted: new ParentFlagSampler(),
    trustedNetworks: new NetworkList([]),
    clientSampledRateLimit: 0,
    now: () => 0,
  });
  assert.deepEqual(decide(sampler, true).attributes, {
    rule: "x",
    [CLIENT_FORCED_ATTRIBUTE]: false,
  });
});
