import assert from "node:assert/strict";
import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { type Digest, parseDigest } from "../../storage/digest.ts";
import { HttpOriginStore } from "./originstore.ts";
import { freePort } from "../../tests/harness/procs.ts";
import { startFakeOrigin } from "./_test_util.ts";

const D = parseDigest(`sha256:${"c3".repeat(32)}`);

Deno.test("originstore: origins from locations and peer contexts, cached with upstream TTLs", async () => {
  const o1 = startFakeOrigin("01".repeat(20), 15101);
  const o2 = startFakeOrigin("02".repeat(20), 15102);
  o1.locations = o2.locations = [o1.addr, o2.addr];
  let now = 0;
  const unavailable: string[] = [];
  const store = new HttpOriginStore({
    cluster: new OriginClusterClient({ hosts: [o1.addr] }),
    now: () => now,
    onUnavailable: (addr) => unavailable.push(addr),
  });
  const count = (o: typeof o1, what: string) => o.requests.filter((r) => r.includes(what)).length;
  try {
    const origins = await store.getOrigins(D);
    assert.deepEqual(origins, [
      { peerId: "01".repeat(20), ip: "127.0.0.1", port: 15101, origin: true, complete: true },
      { peerId: "02".repeat(20), ip: "127.0.0.1", port: 15102, origin: true, complete: true },
    ]);
    // Concurrent and repeated lookups within 10 s are served from the cache.
    await Promise.all([store.getOrigins(D), store.getOrigins(D)]);
    now += 9_999;
    await store.getOrigins(D);
    assert.equal(count(o1, "/locations"), 1);
    assert.equal(count(o2, "/peercontext"), 1);

    // After 10 s everything is asked again; o2 is now down and is remembered as down for 1 min.
    now += 1;
    o2.peerContextStatus = 503;
    assert.deepEqual((await store.getOrigins(D)).map((o) => o.port), [15101]);
    assert.equal(count(o1, "/locations"), 2);
    assert.deepEqual(unavailable, [o2.addr]);
    o2.peerContextStatus = 200;
    now += 59_999;
    assert.deepEqual((await store.getOrigins(D)).map((o) => o.port), [15101]);
    now += 1;
    assert.deepEqual((await store.getOrigins(D)).map((o) => o.port), [15101, 15102]);
  } finally {
    await o1.stop();
    await o2.stop();
  }
});

Deno.test("originstore: every origin down, or no locations, is an error (errors cached 1 s)", async () => {
  const o1 = startFakeOrigin();
  o1.peerContextStatus = 500;
  let now = 0;
  const store = new HttpOriginStore({
    cluster: new OriginClusterClient({ hosts: [o1.addr] }),
    now: () => now,
  });
  const dead = `127.0.0.1:${freePort()}`;
  let asked = 0;
  const noLocations = new HttpOriginStore({
    cluster: {
      locations(_d: Digest) {
        asked++;
        return Promise.reject(new Error(`locations of ${dead}: connection refused`));
      },
    },
    now: () => now,
  });
  try {
    await assert.rejects(
      store.getOrigins(D),
      /all origins unavailable: 127\.0\.0\.1:\d+: GET .* 500/,
    );
    await assert.rejects(noLocations.getOrigins(D), /origin locations: .*connection refused/);
    await assert.rejects(noLocations.getOrigins(D));
    assert.equal(asked, 1);
    now += 1_000;
    await assert.rejects(noLocations.getOrigins(D));
    assert.equal(asked, 2);
  } finally {
    await o1.stop();
  }
});
