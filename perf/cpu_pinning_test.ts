import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { allowedCpus, pinForMeasurement, pinProcess, withPinning } from "./cpu_pinning.ts";

function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
}

externalTest("pinForMeasurement: client on CPU 0, nodes on the rest, client restored", async () => {
  const client = sleeper();
  const node = sleeper();
  try {
    const before = await allowedCpus(client.pid);
    const pinning = await pinForMeasurement([node.pid], { cpuCount: 2, clientPid: client.pid });
    if (navigator.hardwareConcurrency < 2) {
      // taskset refuses a CPU the machine lacks: nothing pinned, and the reason given.
      assert.match(pinning.description, /^not pinned/);
      return;
    }
    assert.equal(pinning.description, "client on CPU 0, nodes under test on CPU 1");
    assert.equal(await allowedCpus(client.pid), "0");
    assert.equal(await allowedCpus(node.pid), "1");
    await pinning.restore();
    assert.equal(await allowedCpus(client.pid), before);
  } finally {
    client.kill();
    node.kill();
    await client.status;
    await node.status;
  }
});

externalTest("pinForMeasurement: one CPU pins nothing", async () => {
  const node = sleeper();
  try {
    const before = await allowedCpus(node.pid);
    const pinning = await pinForMeasurement([node.pid], { cpuCount: 1 });
    assert.equal(pinning.description, "not pinned (one CPU)");
    assert.equal(await allowedCpus(node.pid), before);
  } finally {
    node.kill();
    await node.status;
  }
});

externalTest(
  "pinProcess: a CPU the machine lacks is an error naming taskset's message",
  async () => {
    const node = sleeper();
    try {
      await assert.rejects(pinProcess(node.pid, "4095"), /taskset -c 4095 \d+: .+/);
    } finally {
      node.kill();
      await node.status;
    }
  },
);

externalTest(
  "withPinning: the measurement sees the placement; the client is restored after a throw",
  async () => {
    const client = sleeper();
    const node = sleeper();
    try {
      const before = await allowedCpus(client.pid);
      const options = { cpuCount: 1, clientPid: client.pid };
      assert.equal(
        await withPinning([node.pid], (p) => Promise.resolve(p), options),
        "not pinned (one CPU)",
      );
      await assert.rejects(
        withPinning([node.pid], () => Promise.reject(new Error("run failed")), {
          ...options,
          cpuCount: 2,
        }),
        /run failed/,
      );
      assert.equal(await allowedCpus(client.pid), before);
    } finally {
      client.kill();
      node.kill();
      await client.status;
      await node.status;
    }
  },
);
