/**
 * `kraken` — one program for every role of a Kraken cluster, with distributed tracing built in.
 *
 *     kraken --role=agent|tracker|origin|proxy|build-index --config=<file.yaml> [--key=value ...]
 *     kraken trace <trace-id> | --service <name> ...   (cli/trace.ts: traces from Jaeger)
 *
 * Reads the role's YAML (its `tracing:` block configures tracing), starts the role, and on SIGTERM or
 * SIGINT stops it and flushes pending spans before exiting.
 *
 * @module
 */

import { runTrace } from "./cli/trace.ts";
import { createLogger, LOG_LEVELS } from "./common/log.ts";
import { ConfigError, loadYamlFile, mergeYaml } from "./common/config.ts";
import { oneOf } from "./common/schema.ts";
import { VERSION } from "./common/version.ts";
import { ROLE_NAMES, type RoleName, ROLES } from "./roles/mod.ts";
import { translateUpstreamKeys } from "./roles/upstream_keys.ts";
import type { KeyWarning } from "./common/key_map.ts";
import { initTracing, parseTracingConfig, traceLogFields } from "./tracing/mod.ts";

const USAGE = `kraken ${VERSION} — a Kraken P2P Docker registry node with distributed tracing

Usage:
  kraken --role=<role> --config=<file.yaml> [--secrets=<file.yaml>] [--key=value ...]
  kraken trace <trace-id> | --service <name> [...]   (kraken trace --help)
  kraken --help | --version

Roles:
  origin        stores blobs on a hash ring, writes them back to a storage backend
  build-index   maps repo:tag to manifest digests
  proxy         takes docker push (Registry v2 write API)
  tracker       hands out peers for a blob's torrent
  agent         serves docker pull on every host, downloading blobs peer to peer

The YAML's tracing: block configures tracing (see docs/configuration.md); the OTEL_* environment
variables (OTEL_SDK_DISABLED, OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER,
OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_TIMEOUT) override it. Extra --key=value flags override top-level config keys of the
role, e.g. --port=15002. --secrets=<file> is laid over the config file, as upstream Kraken's flag; a
config file written for a Go Kraken node of the same role works (docs/interop.md).
`;

/** `KRAKEN_LOG_LEVEL`: a bad value stops start-up like any bad setting. */
const logLevelSchema = oneOf(LOG_LEVELS).default("info");

/** Parsed command line. */
export interface CliArgs {
  /** `--help` given. */
  help: boolean;
  /** `--version` given. */
  version: boolean;
  /** `--role` value. */
  role?: string;
  /** `--config` value. */
  config?: string;
  /** `--secrets` value: a YAML file laid over the config file (upstream's flag). */
  secrets?: string;
  /** Every other `--key=value`. */
  flags: Record<string, string>;
}

/** Parses `--key=value` and `--key value` arguments; a bare word is an error. */
export function parseArgs(args: string[]): CliArgs {
  const out: CliArgs = { help: false, version: false, flags: {} };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") out.help = true;
    else if (arg === "--version") out.version = true;
    else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      let key: string, value: string;
      if (eq >= 0) {
        key = arg.slice(2, eq);
        value = arg.slice(eq + 1);
      } else {
        key = arg.slice(2);
        if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
          throw new ConfigError(`--${key}`, "needs a value");
        }
        value = args[++i];
      }
      if (key === "role") out.role = value;
      else if (key === "config") out.config = value;
      else if (key === "secrets") out.secrets = value;
      else out.flags[key] = value;
    } else {
      throw new ConfigError(arg, "unexpected argument (flags are --key=value)");
    }
  }
  return out;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "trace") return await runTrace(args.slice(1));
  let cli: CliArgs;
  try {
    cli = parseArgs(args);
  } catch (error) {
    console.error(`kraken: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  if (cli.version) {
    console.log(`kraken ${VERSION}`);
    return 0;
  }
  if (!cli.role) {
    console.error(`kraken: --role is required (one of ${ROLE_NAMES.join(", ")})`);
    return 2;
  }
  if (!(ROLE_NAMES as readonly string[]).includes(cli.role)) {
    console.error(`kraken: unknown role "${cli.role}" (one of ${ROLE_NAMES.join(", ")})`);
    return 2;
  }
  const role = cli.role as RoleName;
  if (!cli.config) {
    console.error("kraken: --config=<file.yaml> is required");
    return 2;
  }
  let tracingConfig, roleConfig: unknown, level, warnings: KeyWarning[];
  const definition = ROLES[role];
  try {
    level = logLevelSchema.parse(Deno.env.get("KRAKEN_LOG_LEVEL") || undefined, "KRAKEN_LOG_LEVEL");
    // A file written for a Go Kraken node of this role: upstream's keys become ours first.
    let file = await loadYamlFile(cli.config);
    if (cli.secrets) file = mergeYaml(file, await loadYamlFile(cli.secrets, "--secrets"));
    const translated = translateUpstreamKeys(role, file);
    warnings = translated.warnings;
    const { tracing: tracingRaw, ...rest } = translated.raw;
    tracingConfig = parseTracingConfig(tracingRaw, role);
    roleConfig = definition.parseConfig(rest, cli.flags, { configPath: cli.config });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`kraken: invalid configuration: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ role, level, contextFields: traceLogFields });
  for (const { key, reason } of warnings) {
    logger.warn("configuration key ignored", { key, reason });
  }
  const tracing = initTracing(tracingConfig, { role, logger });
  let running;
  try {
    running = await definition.start(roleConfig, { logger, tracing, flags: cli.flags });
  } catch (error) {
    logger.error("start-up failed", { error });
    await tracing.shutdown();
    return 1;
  }
  logger.info("started", { version: VERSION, tracing: tracingConfig.enabled });
  const signal = await new Promise<Deno.Signal>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  logger.info("stopping", { signal });
  try {
    await running.stop();
  } finally {
    await tracing.shutdown();
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
