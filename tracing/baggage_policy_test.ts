import assert from "node:assert/strict";
import { Router } from "../http/router.ts";
import { NetworkList, parseCidr } from "../common/cidr.ts";
import { EdgeBaggagePolicy } from "./baggage_policy.ts";
import { tracingMiddleware } from "./http.ts";
import { injectIntoHeaders } from "./propagation.ts";
import { installContextPropagation } from "./setup.ts";

installContextPropagation();

/** A router whose handler answers with the baggage it would send downstream. */
function echoRouter(edge: boolean, policy?: EdgeBaggagePolicy): Router {
  return new Router().use(tracingMiddleware({ edge, baggagePolicy: policy })).get("/x", () => {
    const out = new Headers();
    injectIntoHeaders(out);
    return new Response(out.get("baggage") ?? "");
  });
}

const remote = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 1 });

async function forwarded(r: Router, baggage: string, from = "203.0.113.9"): Promise<string> {
  const res = await r.handle(new Request("http://h/x", { headers: { baggage } }), {
    remote: remote(from),
  });
  return await res.text();
}

Deno.test("baggage policy: an edge drops client baggage by default; internal hops keep it", async () => {
  const drops: unknown[] = [];
  const policy = new EdgeBaggagePolicy({ onDrop: (d) => drops.push(d) });
  assert.equal(await forwarded(echoRouter(true, policy), "tenant=evil,role=root"), "");
  assert.deepEqual(drops, [{ not_allowed: 2, too_large: 0 }]);
  assert.equal(await forwarded(echoRouter(false, policy), "team=blue"), "team=blue");
});

Deno.test("baggage policy: allow-list, size cap in order sent, trusted networks", async () => {
  const drops: unknown[] = [];
  const policy = new EdgeBaggagePolicy({
    allowedKeys: ["a", "b", "c"],
    maxBytes: 8,
    trustedNetworks: new NetworkList([parseCidr("10.0.0.0/8")!]),
    onDrop: (d) => drops.push(d),
  });
  const r = echoRouter(true, policy);
  // "a=1" (3) + ",b=22" (5) = 8 fits; "c=3" does not; "x" is not allowed.
  assert.equal(await forwarded(r, "a=1,x=9,b=22,c=3"), "a=1,b=22");
  assert.deepEqual(drops, [{ not_allowed: 1, too_large: 1 }]);
  assert.equal(await forwarded(r, "a=1"), "a=1");
  assert.equal(drops.length, 1, "nothing dropped, nothing reported");
  assert.equal(await forwarded(r, "x=9,y=8", "10.1.2.3"), "x=9,y=8");
});
