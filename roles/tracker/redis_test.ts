import assert from "node:assert/strict";
import { encodeCommand, RedisClient, RedisConnectionError, RedisReplyError } from "./redis.ts";
import { freePort } from "../../tests/harness/procs.ts";
import { startRedis } from "./_test_util.ts";
import { externalTest } from "../../tests/harness/external.ts";

Deno.test("redis: commands encode as RESP arrays of bulk strings", () => {
  assert.equal(
    new TextDecoder().decode(encodeCommand(["SADD", "k", "é", 12])),
    "*4\r\n$4\r\nSADD\r\n$1\r\nk\r\n$2\r\né\r\n$2\r\n12\r\n",
  );
});

externalTest("redis: replies of every RESP2 type against a real redis-server", async () => {
  const redis = await startRedis();
  const client = new RedisClient({ addr: redis.addr });
  try {
    assert.equal(await client.command("PING"), "PONG");
    assert.equal(await client.command("SADD", "s", "a", "b"), 2);
    assert.deepEqual(((await client.command("SMEMBERS", "s")) as string[]).sort(), ["a", "b"]);
    assert.equal(await client.command("GET", "missing"), null);
    assert.deepEqual(await client.command("SRANDMEMBER", "missing", 3), []);
    const big = "x".repeat(100_000); // spans several socket reads
    await client.command("SET", "big", big);
    assert.equal(await client.command("GET", "big"), big);
    await assert.rejects(client.command("NOSUCHCOMMAND"), RedisReplyError);
    // An error reply fails only its own command in a pipeline; the connection stays usable.
    const replies = await client.pipeline([["SADD", "s", "c"], ["INCR", "s"], ["SCARD", "s"]]);
    assert.equal(replies[0], 1);
    assert.ok(replies[1] instanceof RedisReplyError && /WRONGTYPE/.test(replies[1].message));
    assert.equal(replies[2], 3);
    assert.equal(await client.command("PING"), "PONG");
  } finally {
    await client.close();
    await redis.stop();
  }
});

externalTest("redis: pool caps active connections and reuses idle ones", async () => {
  const redis = await startRedis();
  const client = new RedisClient({ addr: redis.addr, maxActive: 2, maxIdle: 2 });
  const admin = new RedisClient({ addr: redis.addr });
  try {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.command("ECHO", `m${i}`)),
    );
    assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => `m${i}`));
    const clients = String(await admin.command("CLIENT", "LIST")).trim().split("\n");
    // Two pooled connections plus the admin one.
    assert.equal(clients.length, 3);
  } finally {
    await client.close();
    await admin.close();
    await redis.stop();
  }
});

Deno.test("redis: unreachable server and closed client fail with RedisConnectionError", async () => {
  const client = new RedisClient({ addr: `127.0.0.1:${freePort()}`, dialTimeoutMs: 500 });
  await assert.rejects(client.command("PING"), RedisConnectionError);
  await client.close();
  await assert.rejects(client.command("PING"), /closed/);
});

Deno.test("redis: a reply that never comes times out and drops the connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  const client = new RedisClient({
    addr: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    readTimeoutMs: 100,
  });
  await assert.rejects(client.command("PING"), /timed out/);
  await client.close();
  listener.close();
  await accepting;
  for (const c of accepted) c.close();
});
