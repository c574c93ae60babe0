/**
 * An upstream Go Kraken agent (v0.1.4) as a process beside our cluster, for `perf/p2p.ts
 * --go-agent=<binary>`: the same origin and tracker serve it and our agent in one run, so the two
 * agents are compared on one machine state (the "our origin → Go agent" row).
 *
 * The binary is built from the Go module proxy, never vendored (see docs/performance.md):
 *
 * ```sh
 * GOFLAGS=-mod=mod bash scripts/install-go-tool.sh kraken-agent github.com/uber/kraken v0.1.4 ./agent -help
 * ```
 *
 * Upstream's agent runs nginx in front of its registry port and exits when nginx is missing, so
 * `nginx` must be on PATH (Debian: `apt-get install nginx`; its service need not run); stopping the
 * agent through its process group stops that nginx too (the agent leaves it running). The
 * configuration written here uses upstream's keys (`agent/cmd/config.go` of v0.1.4): plain HTTP,
 * bandwidth limits off, metrics off, logs in the agent's directory.
 *
 * @module
 */

import type { ManagedProcess, ProcessGroup } from "../tests/harness/procs.ts";
import { freePorts, spawnProcess, stoppingChildren, waitForHttp } from "../tests/harness/procs.ts";

/** Options of {@linkcode startGoAgent}. */
export interface GoAgentOptions {
  /** The Go Kraken agent binary. */
  binary: string;
  /** Directory for its configuration, cache and logs. */
  dir: string;
  /** Owns the process. */
  group: ProcessGroup;
  /** The tracker's `host:port`. */
  tracker: string;
  /** The build-index's `host:port`. */
  buildIndex: string;
  /** Label in messages (default `go-agent`). */
  name?: string;
}

/** A running Go agent. */
export interface GoAgent {
  /** Its agent server (`GET /namespace/{ns}/blobs/{digest}`, `DELETE /blobs/{digest}`). */
  url: string;
  /** The process. */
  process: ManagedProcess;
}

/** Whether `command` is an executable on PATH. */
function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/**
 * Writes the agent's configuration into `dir`, starts it and waits for its `/health`.
 * @throws {Error} when nginx is not on PATH, or the agent does not come up (its log attached)
 */
export async function startGoAgent(options: GoAgentOptions): Promise<GoAgent> {
  const { binary, dir, group } = options;
  if (!onPath("nginx")) {
    throw new Error(
      "the Go Kraken agent runs nginx for its registry port: install it (apt-get install nginx)",
    );
  }
  const [server, registry, peer] = freePorts(3);
  await Deno.mkdir(`${dir}/log`, { recursive: true });
  const config = {
    zap: {
      level: "info",
      encoding: "console",
      outputPaths: [`${dir}/log/agent.log`],
      errorOutputPaths: [`${dir}/log/agent.log`],
      encoderConfig: { messageKey: "message", levelKey: "level", timeKey: "ts" },
    },
    scheduler: {
      dispatch: { piece_request_policy: "rarest_first" },
      conn: { bandwidth: { enable: false } },
    },
    store: { download_dir: `${dir}/download/`, cache_dir: `${dir}/cache/` },
    registry: {
      docker: {
        version: 0.1,
        log: { level: "error" },
        http: { net: "unix", addr: `${dir}/registry.sock` },
      },
    },
    peer_id_factory: "addr_hash",
    allowed_cidrs: ["127.0.0.1"],
    nginx: { name: "kraken-agent", cache_dir: `${dir}/nginx/`, log_dir: `${dir}/log/` },
    tracker: { hosts: { static: [options.tracker] } },
    build_index: { hosts: { static: [options.buildIndex] } },
    tls: { server: { disabled: true }, client: { disabled: true } },
  };
  const configPath = `${dir}/agent.yaml`;
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
  // The agent does not stop the nginx it started when it is stopped itself: the group stops both.
  const process = group.add(stoppingChildren(
    spawnProcess(binary, [
      `--config=${configPath}`,
      "--peer-ip=127.0.0.1",
      `--peer-port=${peer}`,
      `--agent-server-port=${server}`,
      `--agent-registry-port=${registry}`,
    ], { name: options.name ?? "go-agent", logFile: `${dir}/log/process.log` }),
    "nginx",
  ));
  const url = `http://127.0.0.1:${server}`;
  await waitForHttp(`${url}/health`, { process });
  return { url, process };
}
