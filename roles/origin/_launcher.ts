/**
 * Runs one origin process from a config file, the way `main.ts --role=origin` will once the role
 * is registered there; the multi-process tests spawn it.
 *
 *     deno run --allow-all roles/origin/_launcher.ts --config=<file.yaml> [--port=N] [--host=H]
 *
 * Stops on SIGTERM or SIGINT, flushing the write-back queue state and pending spans.
 *
 * @module
 */

import { ConfigError, loadYamlFile } from "../../common/config.ts";
import { createLogger, initTracing, parseTracingConfig } from "../../tracing/mod.ts";
import { originRole, startOrigin } from "./mod.ts";

async function run(args: string[]): Promise<number> {
  const flags: Record<string, string> = {};
  let configPath: string | undefined;
  for (const arg of args) {
    const m = /^--([^=]+)=(.*)$/.exec(arg);
    if (!m) {
      console.error(`origin launcher: unexpected argument ${arg} (use --key=value)`);
      return 2;
    }
    if (m[1] === "config") configPath = m[2];
    else flags[m[1]] = m[2];
  }
  if (!configPath) {
    console.error("origin launcher: --config=<file.yaml> is required");
    return 2;
  }
  const logger = createLogger({ role: "origin" });
  let config, tracingConfig;
  try {
    const { tracing, ...rest } = await loadYamlFile(configPath);
    tracingConfig = parseTracingConfig(tracing, "origin");
    config = originRole.parseConfig(rest, flags, { configPath });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`origin launcher: invalid configuration: ${error.message}`);
    return 2;
  }
  const tracing = initTracing(tracingConfig, { role: "origin", logger });
  const running = await startOrigin(config, { logger, tracing, flags });
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => resolve());
  });
  try {
    await running.stop();
  } finally {
    await tracing.shutdown();
  }
  return 0;
}

if (import.meta.main) Deno.exit(await run(Deno.args));
