import assert from "node:assert/strict";
import { externalTest } from "./tests/harness/external.ts";
import { freePort } from "./tests/harness/procs.ts";
import { waitFor } from "./tests/harness/wait.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/**
 * Runs `kraken` as a real process and returns its exit code and stderr. A process still running
 * after `timeoutMs` (it started instead of refusing its configuration) is killed: code `-1`.
 */
async function runKraken(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    env: { DENO_NO_PACKAGE_JSON: "1", NO_COLOR: "1", OTEL_SDK_DISABLED: "true", ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  return { code: timedOut ? -1 : out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function trackerConfig(yaml: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-main-" });
  const path = `${dir}/tracker.yaml`;
  await Deno.writeTextFile(path, yaml);
  return path;
}

const VALID = "listen: { host: 127.0.0.1, port: 0 }\norigins: { hosts: [127.0.0.1:1] }\n";

externalTest("kraken: an invalid key exits 2 naming the dotted key", async () => {
  const path = await trackerConfig(
    VALID + "tracing:\n  sampling:\n    default_rate: 2\n",
  );
  const { code, stderr } = await runKraken(["--role=tracker", `--config=${path}`]);
  assert.equal(code, 2, stderr);
  assert.match(
    stderr,
    /kraken: invalid configuration: tracing\.sampling\.default_rate: must be a number between 0 and 1/,
  );
});

externalTest("kraken: a bad --key=value override exits 2 naming the flag", async () => {
  const path = await trackerConfig(VALID);
  const { code, stderr } = await runKraken(["--role=tracker", `--config=${path}`, "--port=x"]);
  assert.equal(code, 2, stderr);
  assert.match(stderr, /invalid configuration: --port: must be a port number 0-65535, got "x"/);
});

externalTest("kraken: KRAKEN_LOG_LEVEL=bogus exits 2 naming KRAKEN_LOG_LEVEL", async () => {
  const path = await trackerConfig(VALID);
  const { code, stderr } = await runKraken(["--role=tracker", `--config=${path}`], {
    KRAKEN_LOG_LEVEL: "bogus",
  });
  assert.equal(code, 2, stderr);
  assert.match(
    stderr,
    /invalid configuration: KRAKEN_LOG_LEVEL: must be one of debug, info, warn, error/,
  );
});

/** Starts a tracker, waits for `/health`, stops it with SIGTERM and returns its stderr. */
async function runTrackerUntilHealthy(
  env: Record<string, string>,
  yaml = VALID,
  args: string[] = [],
): Promise<string> {
  const port = freePort();
  const path = await trackerConfig(yaml);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      MAIN,
      "--role=tracker",
      `--config=${path}`,
      `--port=${port}`,
      ...args,
    ],
    env: { DENO_NO_PACKAGE_JSON: "1", NO_COLOR: "1", OTEL_SDK_DISABLED: "true", ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    await waitFor("the tracker's /health", async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000 });
  } finally {
    child.kill("SIGTERM");
  }
  const out = await output;
  return new TextDecoder().decode(out.stderr);
}

externalTest("kraken: a valid KRAKEN_LOG_LEVEL sets the level of the role's log", async () => {
  const quiet = await runTrackerUntilHealthy({ KRAKEN_LOG_LEVEL: "warn" });
  assert.doesNotMatch(quiet, /"level":"info"/);
  const normal = await runTrackerUntilHealthy({});
  assert.match(normal, /"level":"info"[^\n]*"msg":"started"/);
});

externalTest(
  "kraken: an upstream tracker file starts; each upstream-only key is one warning line",
  async () => {
    const stderr = await runTrackerUntilHealthy(
      {},
      "zap: { level: info }\nnginx: { name: kraken-tracker }\n" +
        "trackerserver: { announce_interval: 2s }\norigin: { hosts: { static: [127.0.0.1:1] } }\n",
    );
    const warned = stderr.split("\n").filter((l) => l.includes('"configuration key ignored"'))
      .map((l) => JSON.parse(l));
    assert.deepEqual(warned.map((l) => [l.level, l.key]), [["warn", "zap"], ["warn", "nginx"]]);
    assert.match(warned[1].reason, /no nginx/);
  },
);

externalTest("kraken: an upstream key that cannot be honoured exits 2 naming it", async () => {
  const path = await trackerConfig(
    "origin: { hosts: { static: [127.0.0.1:1] }, healthcheck: { fails: 5 } }\n",
  );
  const { code, stderr } = await runKraken(["--role=tracker", `--config=${path}`]);
  assert.equal(code, 2, stderr);
  assert.match(
    stderr,
    /invalid configuration: origin\.healthcheck: other health-check thresholds are not implemented/,
  );
});

externalTest(
  "kraken: --secrets lays a second file over the config, as upstream's flag",
  async () => {
    const secrets = await trackerConfig("origin: { hosts: { static: [127.0.0.1:1] } }\n");
    const stderr = await runTrackerUntilHealthy({}, "zap: { level: info }\n", [
      `--secrets=${secrets}`,
    ]);
    assert.match(stderr, /"msg":"started"/);
    const { code, stderr: refused } = await runKraken([
      "--role=tracker",
      `--config=${await trackerConfig("zap: {}\n")}`,
      `--secrets=${secrets}.missing`,
    ]);
    assert.equal(code, 2, refused);
    assert.match(refused, /invalid configuration: --secrets: file not found: .*missing/);
  },
);
