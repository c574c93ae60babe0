import assert from "node:assert/strict";
import { HashRing, rendezvousScore, shardKey } from "./hashring.ts";

const HOSTS = ["origin1:15002", "origin2:15002", "origin3:15002"];
const SHA_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
const SHA_B = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
const SHA_KRAKEN = "686d22d695e2c21166a89498a3a3f198e8d4ad8b09190bd1d86e350a79597341";
const SHA_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Deno.test("hashring: derived ring orders from kraken-wire §6.1", () => {
  const ring = new HashRing(HOSTS);
  const names = (d: string) => ring.ordered(d).map((h) => h.split(":")[0]);
  assert.deepEqual(names(SHA_A), ["origin3", "origin2", "origin1"]);
  assert.deepEqual(names(SHA_B), ["origin2", "origin1", "origin3"]);
  assert.deepEqual(names(SHA_KRAKEN), ["origin1", "origin2", "origin3"]);
  assert.deepEqual(names(SHA_EMPTY), ["origin1", "origin2", "origin3"]);
});

Deno.test("hashring: order does not depend on member order or on digest bytes past the shard", () => {
  const a = new HashRing(HOSTS);
  const b = new HashRing([...HOSTS].reverse());
  assert.deepEqual(a.ordered(SHA_B), b.ordered(SHA_B));
  assert.deepEqual(a.ordered(SHA_B), a.ordered("3e23" + "0".repeat(60)));
  assert.deepEqual(a.ordered(SHA_A), a.ordered(SHA_A.toUpperCase()));
});

Deno.test("hashring: shardKey decodes the first two bytes and rejects non-hex", () => {
  assert.deepEqual([...shardKey(SHA_A)], [0xca, 0x97]);
  assert.throws(() => shardKey("sha256:" + SHA_A), TypeError);
  assert.throws(() => shardKey("ab"), TypeError);
});

Deno.test("hashring: score is finite and positive", () => {
  const input = new Uint8Array([0xca, 0x97, ...new TextEncoder().encode("origin1:15002")]);
  const s = rendezvousScore(input);
  assert.ok(Number.isFinite(s) && s > 0);
});

Deno.test("hashring: locations honours maxReplica", () => {
  const hosts = Array.from({ length: 6 }, (_, i) => `origin${i}:15002`);
  const ring = new HashRing(hosts, { maxReplica: 2 });
  const order = ring.ordered(SHA_A);
  assert.equal(order.length, 6);
  assert.deepEqual(ring.locations(SHA_A), order.slice(0, 2));
  assert.deepEqual(new HashRing(hosts).locations(SHA_A), order.slice(0, 3));
  assert.deepEqual(new HashRing(HOSTS, { maxReplica: 10 }).locations(SHA_A).length, 3);
  assert.throws(() => new HashRing(HOSTS, { maxReplica: 0 }), RangeError);
});

Deno.test("hashring: locations skips unhealthy members and keeps walking until one is healthy", () => {
  const hosts = Array.from({ length: 6 }, (_, i) => `origin${i}:15002`);
  const order = new HashRing(hosts).ordered(SHA_KRAKEN);

  const down = new Set([order[1]]);
  const ring = new HashRing(hosts, { maxReplica: 3, isHealthy: (h) => !down.has(h) });
  assert.deepEqual(ring.locations(SHA_KRAKEN), [order[0], order[2]]);

  // The first three positions are all down: the walk continues to the first healthy one.
  down.clear();
  for (const h of order.slice(0, 4)) down.add(h);
  assert.deepEqual(ring.locations(SHA_KRAKEN), [order[4]]);

  // Nobody healthy: only the top member.
  for (const h of order) down.add(h);
  assert.deepEqual(ring.locations(SHA_KRAKEN), [order[0]]);
});

Deno.test("hashring: setHosts, contains, duplicates and an empty ring", () => {
  const ring = new HashRing([...HOSTS, HOSTS[0]]);
  assert.deepEqual(ring.hosts, HOSTS);
  assert.ok(ring.contains("origin2:15002"));
  ring.setHosts(["origin9:15002"]);
  assert.ok(!ring.contains("origin2:15002"));
  assert.deepEqual(ring.locations(SHA_A), ["origin9:15002"]);
  ring.setHosts([]);
  assert.deepEqual(ring.locations(SHA_A), []);
});
