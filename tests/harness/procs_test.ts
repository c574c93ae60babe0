/**
 * Tests of the process helpers with small Deno child scripts.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  childPids,
  FREE_PORT_RANGE,
  freePorts,
  PORT_RESERVATION_WINDOW_MS,
  ProcessGroup,
  reservePort,
  spawnDeno,
  spawnProcess,
  stoppingChildren,
  waitForHttp,
  waitForTcp,
} from "./procs.ts";
import { externalTest } from "./external.ts";

/** Writes a child script to a temporary file and returns its path and directory. */
async function script(source: string): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-procs-test-" });
  const path = `${dir}/child.ts`;
  await Deno.writeTextFile(path, source);
  return { dir, path };
}

Deno.test("freePorts returns distinct bindable loopback ports outside the ephemeral range", () => {
  const ports = freePorts(5);
  assert.equal(new Set(ports).size, 5);
  for (const port of ports) {
    assert.ok(port >= FREE_PORT_RANGE.first && port <= FREE_PORT_RANGE.last, `${port}`);
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  }
});

Deno.test("reservePort: a port is handed out once per window, to one of two racing callers", () => {
  const dir = Deno.makeTempDirSync({ prefix: "kraken-ports-test-" });
  try {
    const window = PORT_RESERVATION_WINDOW_MS;
    const now = 100 * window + 1;
    assert.equal(reservePort(20_001, { dir, now }), true);
    assert.equal(reservePort(20_001, { dir, now }), false);
    assert.equal(reservePort(20_002, { dir, now }), true);
    // The next window still sees the reservation; the one after does not.
    assert.equal(reservePort(20_001, { dir, now: now + window }), false);
    assert.equal(reservePort(20_001, { dir, now: now + 2 * window }), true);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("freePorts never returns a port reserved by another caller", () => {
  const first = freePorts(20);
  const second = freePorts(20);
  assert.equal(new Set([...first, ...second]).size, 40);
  for (const port of first) assert.equal(reservePort(port), false);
});

externalTest("spawnDeno serves, logs to memory and file, and the group stops it", async () => {
  const { dir, path } = await script(`
    const port = Number(Deno.args[0]);
    console.log("hello " + Deno.env.get("GREETING"));
    console.error("to stderr");
    Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, () => new Response("ok"));
  `);
  const group = new ProcessGroup(2000);
  try {
    const [port] = freePorts(1);
    const child = group.spawnDeno(path, [String(port)], {
      env: { GREETING: "world" },
      logFile: `${dir}/child.log`,
    });
    await waitForHttp(`http://127.0.0.1:${port}/`, { process: child, timeoutMs: 20_000 });
    await waitForTcp("127.0.0.1", port, { process: child });
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
    await group.stopAll();
    const status = await child.stopped;
    assert.equal(status.signal, "SIGTERM");
    assert.equal(child.exited, true);
    assert.match(child.log(), /hello world/);
    assert.match(child.log(), /to stderr/);
    assert.match(
      await Deno.readTextFile(`${dir}/child.log`),
      /hello world[\s\S]*to stderr|to stderr[\s\S]*hello world/,
    );
    assert.equal(group.processes.length, 0);
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});

externalTest("stop escalates to SIGKILL when SIGTERM is ignored", async () => {
  const { dir, path } = await script(`
    Deno.addSignalListener("SIGTERM", () => console.log("ignoring SIGTERM"));
    console.log("ready");
    setInterval(() => {}, 1000);
  `);
  const child = spawnDeno(path);
  try {
    while (!child.log().includes("ready")) await new Promise((r) => setTimeout(r, 20));
    const status = await child.stop(300);
    assert.equal(status.signal, "SIGKILL");
    assert.match(child.log(), /ignoring SIGTERM/);
  } finally {
    await child.stop(0);
    await Deno.remove(dir, { recursive: true });
  }
});

externalTest("waitForHttp fails fast with the log when the process exits", async () => {
  const { dir, path } = await script(`console.error("bad config: port"); Deno.exit(3);`);
  const child = spawnDeno(path);
  try {
    const [port] = freePorts(1);
    await assert.rejects(
      waitForHttp(`http://127.0.0.1:${port}/`, { process: child, timeoutMs: 20_000 }),
      /child\.ts exited while waiting for http:\/\/127\.0\.0\.1:\d+\/[\s\S]*bad config: port/,
    );
    assert.equal((await child.stopped).code, 3);
  } finally {
    await child.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("waitForTcp times out naming the address", async () => {
  const [port] = freePorts(1);
  await assert.rejects(
    waitForTcp("127.0.0.1", port, { timeoutMs: 100 }),
    new RegExp(`timed out after 100 ms waiting for tcp 127\\.0\\.0\\.1:${port}`),
  );
});

externalTest(
  "stoppingChildren: stopping the parent also stops the children it left running",
  async () => {
    // A shell stopped with SIGTERM leaves its background sleeps running, reparented.
    const parent = stoppingChildren(
      spawnProcess("sh", ["-c", "sleep 300 & sleep 300 & echo started; wait"]),
      "sleep",
    );
    const deadline = Date.now() + 10_000;
    let children = childPids(parent.pid, "sleep");
    while (children.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      children = childPids(parent.pid, "sleep");
    }
    assert.equal(children.length, 2, "two sleeps under the shell");
    assert.deepEqual(childPids(parent.pid, "other"), []);
    await parent.stop(2000);
    assert.ok(parent.exited);
    for (const pid of children) {
      let alive = true;
      try {
        const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
        alive = stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
      } catch {
        alive = false;
      }
      assert.equal(alive, false, `sleep ${pid} still running`);
    }
  },
);
