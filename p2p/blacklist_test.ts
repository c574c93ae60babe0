import assert from "node:assert/strict";
import { Blacklist } from "./blacklist.ts";

Deno.test("entries are per (peer, info hash) and expire after the duration", () => {
  let now = 1000;
  const b = new Blacklist({ durationMs: 30_000, now: () => now });
  b.add("p1", "h1");
  assert.ok(b.has("p1", "h1"));
  assert.ok(!b.has("p1", "h2"));
  assert.ok(!b.has("p2", "h1"));
  now += 29_999;
  assert.ok(b.has("p1", "h1"));
  b.add("p1", "h1"); // re-adding extends the entry
  now += 2;
  assert.ok(b.has("p1", "h1"));
  now += 30_000;
  assert.ok(!b.has("p1", "h1"));
});

Deno.test("clear forgets one torrent only", () => {
  const b = new Blacklist();
  b.add("p1", "h1");
  b.add("p1", "h2");
  b.clear("h1");
  assert.ok(!b.has("p1", "h1"));
  assert.ok(b.has("p1", "h2"));
});

Deno.test("a disabled blacklist holds nothing", () => {
  const b = new Blacklist({ disabled: true });
  b.add("p1", "h1");
  assert.ok(!b.has("p1", "h1"));
});
