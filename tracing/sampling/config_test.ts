import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { BUILTIN_RULES, parseSafeguardsConfig, parseSamplingConfig } from "./config.ts";

function throwsKey(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.equal(error.message, message);
    assert.equal(error.key, message.slice(0, message.indexOf(": ")));
    return true;
  });
}

Deno.test("sampling defaults", () => {
  const cfg = parseSamplingConfig(undefined);
  assert.equal(cfg.defaultRate, 0.1);
  assert.deepEqual(cfg.rules, BUILTIN_RULES);
  assert.equal(cfg.parentBased, true);
  assert.equal(cfg.maxTracesPerSecond, 0);
  assert.equal(cfg.trust.trustedNetworks.size, 0);
  assert.equal(cfg.trust.clientSampledRateLimit, 10);
  assert.deepEqual(cfg.adaptive, {
    enabled: false,
    targetTracesPerSecond: 1,
    floorPerInterval: 1,
    intervalMs: 60_000,
    maxIncreaseFactor: 2,
    loadSource: "event_loop_delay",
    loadThreshold: 0.7,
    maxOperations: 2000,
  });
});

Deno.test("sampling block in the ERD Appendix B shape", () => {
  const cfg = parseSamplingConfig({
    default_rate: 0.25,
    rules: [
      { match: { path_prefix: "/health" }, rate: 0.5 },
      { match: { path_prefix: "/namespace/*/blobs/*" }, rate: 0.2 },
      { match: { operation: "scheduler.download" }, rate: 0.5 },
    ],
    parent_based: false,
    max_traces_per_second: 50,
    trust: { trusted_networks: ["10.0.0.0/8", "::1/128"], client_sampled_rate_limit: 2 },
    adaptive: { enabled: true, interval: "30s", target_traces_per_second: 0.5 },
  });
  assert.equal(cfg.defaultRate, 0.25);
  // The user's /health rule replaces the built-in one; /readiness and /metrics stay first.
  assert.deepEqual(cfg.rules.map((r) => [r.match.kind, r.match.pattern, r.rate]), [
    ["path_prefix", "/readiness", 0],
    ["path_prefix", "/metrics", 0],
    ["path_prefix", "/health", 0.5],
    ["path_prefix", "/namespace/*/blobs/*", 0.2],
    ["operation", "scheduler.download", 0.5],
  ]);
  assert.equal(cfg.parentBased, false);
  assert.equal(cfg.maxTracesPerSecond, 50);
  assert.equal(cfg.trust.trustedNetworks.contains("10.1.1.1"), true);
  assert.equal(cfg.trust.clientSampledRateLimit, 2);
  assert.equal(cfg.adaptive.enabled, true);
  assert.equal(cfg.adaptive.intervalMs, 30_000);
  assert.equal(cfg.adaptive.targetTracesPerSecond, 0.5);
});

Deno.test("sampling validation names the key", () => {
  const p = "tracing.sampling";
  throwsKey(
    () =>
      parseSamplingConfig({
        rules: [{ match: { path: "/a" }, rate: 0 }, { match: { path: "/b" }, rate: 2 }],
      }),
    `${p}.rules[1].rate: must be a number between 0 and 1`,
  );
  throwsKey(
    () => parseSamplingConfig({ default_rate: "0.5" }),
    `${p}.default_rate: must be a number between 0 and 1`,
  );
  throwsKey(
    () => parseSamplingConfig({ rules: [{ match: { path: "/a", operation: "x" }, rate: 1 }] }),
    `${p}.rules[0].match: must have exactly one of path_prefix, path, operation`,
  );
  throwsKey(
    () => parseSamplingConfig({ rules: [{ match: { route: "/a" }, rate: 1 }] }),
    `${p}.rules[0].match.route: unknown key (allowed: path_prefix, path, operation)`,
  );
  throwsKey(
    () => parseSamplingConfig({ rules: [{ rate: 1 }] }),
    `${p}.rules[0].match: is required`,
  );
  throwsKey(
    () => parseSamplingConfig({ rules: [{ match: { path: "/a" } }] }),
    `${p}.rules[0].rate: is required`,
  );
  throwsKey(
    () => parseSamplingConfig({ rules: [{ match: { path_prefix: "health" }, rate: 0 }] }),
    `${p}.rules[0].match.path_prefix: must start with / (it matches url.path)`,
  );
  throwsKey(() => parseSamplingConfig({ rules: {} }), `${p}.rules: must be a list of rules`);
  throwsKey(
    () => parseSamplingConfig({ defualt_rate: 1 }),
    `${p}.defualt_rate: unknown key (allowed: default_rate, rules, parent_based, max_traces_per_second, trust, adaptive, remote)`,
  );
  throwsKey(
    () => parseSamplingConfig({ parent_based: "yes" }),
    `${p}.parent_based: must be true or false`,
  );
  throwsKey(
    () => parseSamplingConfig({ max_traces_per_second: -1 }),
    `${p}.max_traces_per_second: must be a number >= 0`,
  );
  throwsKey(
    () => parseSamplingConfig({ trust: { trusted_networks: ["10.0.0.0/8", "10.0.0.0/99"] } }),
    `${p}.trust.trusted_networks[1]: must be a CIDR such as 10.0.0.0/8`,
  );
  throwsKey(
    () => parseSamplingConfig({ trust: { trusted_networks: "10.0.0.0/8" } }),
    `${p}.trust.trusted_networks: must be a list of CIDR strings`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { interval: "soon" } }),
    `${p}.adaptive.interval: must be a duration like 500ms, 5s, 1m or 1h (got "soon")`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { interval: "0s" } }),
    `${p}.adaptive.interval: must be longer than 0`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { load_source: "cpu" } }),
    `${p}.adaptive.load_source: must be event_loop_delay or in_flight`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { floor_per_interval: 1.5 } }),
    `${p}.adaptive.floor_per_interval: must be an integer >= 0`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { max_increase_factor: 0.5 } }),
    `${p}.adaptive.max_increase_factor: must be a number >= 1`,
  );
  throwsKey(
    () => parseSamplingConfig({ adaptive: { target_traces_per_second: 0 } }),
    `${p}.adaptive.target_traces_per_second: must be a number > 0`,
  );
  throwsKey(() => parseSamplingConfig([]), `${p}: must be a mapping`);
  throwsKey(
    () => parseSamplingConfig({ default_rate: 2 }, "x.s"),
    "x.s.default_rate: must be a number between 0 and 1",
  );
});

Deno.test("safeguards defaults and parsing", () => {
  assert.deepEqual(parseSafeguardsConfig(null), {
    circuitBreakerEnabled: true,
    loadThreshold: 0.9,
    cooldownMs: 30_000,
    exportFailureThreshold: 5,
    exportTimeoutThreshold: 3,
    queueFullThreshold: 3,
    loadSource: "event_loop_delay",
    loadPollIntervalMs: 1000,
    maxEventLoopDelayMs: 100,
    maxInFlight: 256,
  });
  const cfg = parseSafeguardsConfig({
    circuit_breaker_enabled: false,
    load_threshold: 0.8,
    cooldown_duration: "1m",
    export_failure_threshold: 2,
    queue_full_threshold: 1,
    load_source: "in_flight",
    load_poll_interval: "250ms",
    max_event_loop_delay: "200ms",
    max_in_flight: 64,
  });
  assert.equal(cfg.circuitBreakerEnabled, false);
  assert.equal(cfg.cooldownMs, 60_000);
  assert.equal(cfg.loadSource, "in_flight");
  assert.equal(cfg.loadPollIntervalMs, 250);
  assert.equal(cfg.maxEventLoopDelayMs, 200);
  assert.equal(cfg.maxInFlight, 64);
});

Deno.test("safeguards validation names the key", () => {
  const p = "tracing.safeguards";
  throwsKey(
    () => parseSafeguardsConfig({ load_threshold: 1.5 }),
    `${p}.load_threshold: must be a number between 0 and 1`,
  );
  throwsKey(
    () => parseSafeguardsConfig({ load_threshold: 0 }),
    `${p}.load_threshold: must be above 0 (0 would never let tracing run)`,
  );
  throwsKey(
    () => parseSafeguardsConfig({ cooldown_duration: 30 }),
    `${p}.cooldown_duration: must be a duration like 500ms, 5s, 1m or 1h (got 30)`,
  );
  throwsKey(
    () => parseSafeguardsConfig({ export_failure_threshold: 0 }),
    `${p}.export_failure_threshold: must be an integer >= 1`,
  );
  throwsKey(
    () => parseSafeguardsConfig({ circuit_breaker: true }),
    `${p}.circuit_breaker: unknown key (allowed: circuit_breaker_enabled, load_threshold, cooldown_duration, export_failure_threshold, export_timeout_threshold, queue_full_threshold, load_source, load_poll_interval, max_event_loop_delay, max_in_flight)`,
  );
});
