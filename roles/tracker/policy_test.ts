import assert from "node:assert/strict";
import type { PeerInfo } from "../../wire/announce.ts";
import { completenessPriority, createPriorityPolicy } from "./policy.ts";

function p(id: string, origin: boolean, complete: boolean): PeerInfo {
  return { peerId: id.repeat(40), ip: "10.0.0.1", port: 1, origin, complete };
}

Deno.test("policy completeness: complete agents, then origins, then incomplete agents", () => {
  const incomplete1 = p("1", false, false);
  const origin1 = p("2", true, true);
  const seeder1 = p("3", false, true);
  const incomplete2 = p("4", false, false);
  const origin2 = p("5", true, true);
  const seeder2 = p("6", false, true);
  const policy = createPriorityPolicy("completeness");
  assert.equal(policy.name, "completeness");
  const sorted = policy.sortPeers([incomplete1, origin1, seeder1, incomplete2, origin2, seeder2]);
  assert.deepEqual(sorted.map((x) => x.peerId[0]), ["3", "6", "2", "5", "1", "4"]);
});

Deno.test("policy completeness: priorities and labels are upstream's", () => {
  assert.deepEqual(completenessPriority(p("a", false, true)), {
    priority: 0,
    label: "peer_seeder",
  });
  assert.deepEqual(completenessPriority(p("a", true, true)), { priority: 1, label: "origin" });
  // An origin is an origin even if it claims to be incomplete.
  assert.deepEqual(completenessPriority(p("a", true, false)), { priority: 1, label: "origin" });
  assert.deepEqual(completenessPriority(p("a", false, false)), {
    priority: 2,
    label: "peer_incomplete",
  });
});

Deno.test("policy default: order unchanged; input never mutated", () => {
  const peers = [p("1", false, false), p("2", true, true), p("3", false, true)];
  const copy = [...peers];
  assert.deepEqual(createPriorityPolicy("default").sortPeers(peers), copy);
  createPriorityPolicy("completeness").sortPeers(peers);
  assert.deepEqual(peers, copy);
});

Deno.test("policy: unknown names are rejected", () => {
  assert.throws(
    () => createPriorityPolicy("ipv4netmask"),
    /priority policy "ipv4netmask" not found/,
  );
});
