/**
 * Flow: a role process's listener limits (`http:` block) against hostile clients — slow header
 * senders are closed after `header_timeout` while a normal client is served, connections beyond
 * `max_connections` are answered 503 and counted, idle keep-alive connections are closed after
 * `idle_timeout`, and oversized headers get 431 with a message; each shows on `/metrics` and in a
 * log line.
 */

import assert from "node:assert/strict";
import { stringify } from "yaml";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { waitFor } from "./harness/wait.ts";
import { externalTest } from "./harness/external.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

/** Reads until the peer closes the connection (or errors); returns what arrived. */
async function readAll(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

/** Sends a request's headers one byte every `everyMs`; resolves with when the server closed it. */
async function slowloris(port: number, everyMs: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  const closed = readAll(conn).then(() => Date.now() - started);
  const head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(1000);
  let open = true;
  closed.then(() => open = false);
  for (const ch of head) {
    if (!open) break;
    try {
      await conn.write(encoder.encode(ch));
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const ms = await closed;
  try {
    conn.close();
  } catch { /* already closed */ }
  return ms;
}

/** One request on its own connection (`connection: close`, so no pooled connection lingers). */
async function rawGet(port: number, path: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
  const text = await readAll(conn);
  conn.close();
  return text;
}

function openConnections(text: string): number {
  const line = text.split("\n").find((l) =>
    l.startsWith('kraken_http_connections_open{listener="registry"}')
  );
  return line ? Number(line.split(" ").at(-1)) : NaN;
}

function metric(text: string, reason: string): number {
  const line = text.split("\n").find((l) =>
    l.startsWith(`kraken_http_connections_closed_total{listener="registry",reason="${reason}"}`)
  );
  return line ? Number(line.split(" ").at(-1)) : NaN;
}

externalTest(
  "listener limits: a proxy process closes slowloris, caps connections, 431s",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-listener-" });
    const [port] = freePorts(1);
    const config = `${dir}/proxy.yaml`;
    await Deno.writeTextFile(
      config,
      stringify({
        listen: { host: "127.0.0.1", port },
        storage: { root: `${dir}/store` },
        origin: { hosts: ["127.0.0.1:1"] },
        build_index: { hosts: ["127.0.0.1:1"] },
        http: {
          header_timeout: "1500ms",
          idle_timeout: "2s",
          max_connections: 20,
          max_header_size: "16KB",
        },
        tracing: { enabled: false },
      }),
    );
    await using group = new ProcessGroup();
    const proxy = group.spawnDeno(MAIN, ["--role=proxy", `--config=${config}`], { name: "proxy" });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/health`, { process: proxy });
      // The probe's pooled connection goes once idle_timeout passes; then only ours is open.
      await waitFor(
        "probe connection closed",
        async () => openConnections(await rawGet(port, "/metrics")) === 1,
        { timeoutMs: 10_000 },
      );

      // 10 slow header senders; a normal client is served while they hang on.
      const slow = Array.from({ length: 10 }, () => slowloris(port, 100));
      await new Promise((r) => setTimeout(r, 300));
      assert.match(await rawGet(port, "/health"), /^HTTP\/1.1 200/);
      const closedAfter = await Promise.all(slow);
      for (const ms of closedAfter) {
        assert.ok(ms >= 1200 && ms < 5000, `slow connection closed after ${ms} ms`);
      }

      // More silent connections than the cap: the excess is answered 503 and closed at once.
      const conns = await Promise.all(
        Array.from({ length: 25 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      );
      const refused: string[] = [];
      const reads = conns.map((conn) => readAll(conn));
      await Promise.all(reads.map(async (read) => {
        const text = await Promise.race([
          read,
          new Promise<string>((r) => setTimeout(() => r("still open"), 800)),
        ]);
        if (text.startsWith("HTTP/1.1 503")) refused.push(text);
      }));
      assert.equal(refused.length, 5, "5 connections beyond max_connections=20 refused");
      assert.match(refused[0], /too many connections.*http\.max_connections/);
      // The 20 accepted ones send nothing and are closed by the header timeout.
      const held = await Promise.all(reads);
      assert.equal(held.filter((t) => t === "").length, 20);
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }

      // A keep-alive connection idle past idle_timeout is closed by the server.
      const idle = await Deno.connect({ hostname: "127.0.0.1", port });
      await idle.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      const idleStart = Date.now();
      const answer = await readAll(idle);
      const idleMs = Date.now() - idleStart;
      idle.close();
      assert.match(answer, /^HTTP\/1.1 200/);
      assert.ok(idleMs >= 1800 && idleMs < 6000, `idle connection closed after ${idleMs} ms`);

      // Headers beyond max_header_size: 431 with a message, not a reset.
      const big = await Deno.connect({ hostname: "127.0.0.1", port });
      await big.write(
        encoder.encode(
          `GET /health HTTP/1.1\r\nHost: x\r\nbaggage: k=${"v".repeat(100_000)}\r\n\r\n`,
        ),
      ).catch(() => {});
      const bigAnswer = await readAll(big);
      big.close();
      assert.match(bigAnswer, /^HTTP\/1.1 431 /);
      assert.match(bigAnswer, /request headers larger than 16384 bytes \(http.max_header_size\)/);

      const text = await rawGet(port, "/metrics");
      assert.equal(metric(text, "header_timeout"), 30, text);
      assert.equal(metric(text, "max_connections"), 5);
      assert.equal(metric(text, "idle_timeout"), 2, "the probe's connection and ours");
      assert.equal(metric(text, "header_too_large"), 1);
      await waitFor(
        "limit log lines",
        () =>
          proxy.log().includes("refused connections beyond http.max_connections") &&
          proxy.log().includes("did not send request headers in time"),
      );
      // Rate-limited: 30 header timeouts, one line.
      assert.equal(proxy.log().split("did not send request headers in time").length - 1, 1);
    } finally {
      await group.stopAll();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
