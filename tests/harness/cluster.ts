/**
 * Starts a local Kraken cluster of real processes for flow tests and the demo: a testfs storage
 * backend, origins on one hash ring, build-index and proxy (the upload path), each `main.ts
 * --role=...` with a generated YAML file, on free loopback ports, data under one directory.
 *
 * Several clusters run side by side when each has its own `dir` and `name`: a named cluster's
 * processes are labelled `<name>/<role>` and its build-index reports the name as `src_cluster`;
 * `remotes` makes its build-index replicate matching tags to another cluster's build-index.
 *
 * @module
 */

import { freePorts, type ManagedProcess, type ProcessGroup, waitForHttp } from "./procs.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const TESTFS = `${ROOT}storage/backend/testfs_server.ts`;

/** Options of {@linkcode startUploadCluster}. */
export interface ClusterOptions {
  /** Directory for configs, stores and the backend. */
  dir: string;
  /** Owns every process started. */
  group: ProcessGroup;
  /** OTLP/HTTP base URL the roles export to; tracing is off without it. */
  otlpEndpoint?: string;
  /** OTLP encoding. Default `http/protobuf`. */
  otlpProtocol?: "http/protobuf" | "http/json";
  /** Number of origins on the ring. Default 2. */
  origins?: number;
  /** Write-back poll and retry interval. Default `1s`. */
  writebackInterval?: string;
  /** Extra environment of every role process (it wins over the inherited one). */
  env?: Record<string, string>;
  /**
   * The origins' `backend:` block (one entry for every namespace) instead of testfs
   * `{root: blobs, name_path: identity}`; `testfsAddr` is the cluster's testfs server.
   */
  originBackend?: (testfsAddr: string) => Record<string, unknown>;
  /** The build-index's `backend:` block instead of testfs `{root: tags, name_path: docker_tag}`. */
  buildIndexBackend?: (testfsAddr: string) => Record<string, unknown>;
  /** Top-level keys added to every origin's config (`auth:` for backend credentials). */
  originExtra?: Record<string, unknown>;
  /** Top-level keys added to the build-index's config. */
  buildIndexExtra?: Record<string, unknown>;
  /** Cluster name: build-index `cluster.name` and the prefix of process labels. */
  name?: string;
  /** Build-index `remotes:` (remote build-index `host:port` → tag regexes). */
  remotes?: Record<string, string[]>;
  /** TLS on every role: the `tls:` block each role gets, and the CA the harness trusts. */
  tls?: ClusterTls;
}

/** TLS for every role of a cluster (certificates from `tests/harness/certs.ts`). */
export interface ClusterTls {
  /** The `tls:` block of every role's YAML (a role's own `tls` in `startRole` wins). */
  block: Record<string, unknown>;
  /** CA certificate file the harness verifies the roles with. */
  ca: string;
  /**
   * The testfs server serves HTTPS with this certificate (signed by `ca`), and the default testfs
   * backends of the origins and the build-index trust `ca` (their `tls.cas`).
   */
  backend?: { cert: string; key: string };
}

/** A started process of the cluster. */
export interface Node {
  /** `127.0.0.1:<port>`. */
  addr: string;
  /** `http://<addr>`, or `https://<addr>` in a TLS cluster. */
  url: string;
  /** The process. */
  process: ManagedProcess;
  /** Its YAML file. */
  configPath: string;
  /** Its data directory. */
  dataDir: string;
}

/** The running cluster. */
export interface UploadCluster {
  /**
   * Starts one more role process with a generated YAML: the cluster's tracing block unless
   * `config` has its own `tracing`.
   */
  startRole(
    role: string,
    name: string,
    port: number,
    config: Record<string, unknown>,
  ): Promise<Node>;
  /** The testfs backend (HTTPS with `tls.backend`); blobs are under `<dataDir>/blobs/<hex>`, tags under `tags/`. */
  testfs: Node;
  /** Origins, in ring order of their configuration. */
  origins: Node[];
  /** The build-index. */
  buildIndex: Node;
  /** The proxy (Registry v2 push endpoint). */
  proxy: Node;
  /** Starts origin `i` again on the same port, config and data (after a stop or a crash). */
  restartOrigin(i: number): Promise<Node>;
  /** Starts the testfs backend again on the same port and root. */
  restartTestfs(): Promise<Node>;
  /** Starts the build-index again on the same port, config and data (after a stop or a crash). */
  restartBuildIndex(): Promise<Node>;
  /**
   * Stores tag `repo:tag` → `digest` in the testfs backend, in the registry layout the
   * build-index reads (`tags/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/…`):
   * a tag only the backend knows.
   */
  putTestfsTag(repo: string, tag: string, digest: string): Promise<void>;
}

function tracingBlock(options: ClusterOptions): Record<string, unknown> {
  if (!options.otlpEndpoint) return { enabled: false };
  return {
    enabled: true,
    endpoint: options.otlpEndpoint,
    sampling: { default_rate: 1 },
    export: { batch_timeout: "100ms", protocol: options.otlpProtocol ?? "http/protobuf" },
    // Tests must not lose spans to a busy CI machine: only exporter failures may open the breaker.
    safeguards: { load_threshold: 1 },
  };
}

/** Starts testfs, the origins, build-index and proxy, and waits until each answers `/health`. */
export async function startUploadCluster(options: ClusterOptions): Promise<UploadCluster> {
  const { dir, group } = options;
  const originCount = options.origins ?? 2;
  // Every port is chosen up front, so no process binding port 0 can take one before its owner.
  const ports = freePorts(2 * originCount + 3);
  const [testfsPort, biPort, proxyPort] = ports;
  const originPorts = ports.slice(3, 3 + originCount);
  const originPeerPorts = ports.slice(3 + originCount);
  const originHosts = originPorts.map((p) => `127.0.0.1:${p}`);
  const interval = options.writebackInterval ?? "1s";
  const testfsAddr = `127.0.0.1:${testfsPort}`;
  const testfsTls = options.tls?.backend;
  const backendTls = testfsTls ? { tls: { cas: [{ path: options.tls!.ca }] } } : {};
  const originBackend = options.originBackend?.(testfsAddr) ??
    { testfs: { addr: testfsAddr, root: "blobs", name_path: "identity", ...backendTls } };
  const buildIndexBackend = options.buildIndexBackend?.(testfsAddr) ??
    { testfs: { addr: testfsAddr, root: "tags", name_path: "docker_tag", ...backendTls } };
  const tracing = tracingBlock(options);
  const label = (name: string) => options.name ? `${options.name}/${name}` : name;
  const scheme = options.tls ? "https" : "http";
  const client = options.tls
    ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(options.tls.ca)] })
    : undefined;

  const startTestfs = async (): Promise<Node> => {
    const dataDir = `${dir}/backend`;
    await Deno.mkdir(dataDir, { recursive: true });
    const args = ["--root", dataDir, "--port", String(testfsPort)];
    if (testfsTls) args.push("--tls-cert", testfsTls.cert, "--tls-key", testfsTls.key);
    const process = group.spawnDeno(TESTFS, args, {
      name: label("testfs"),
      logFile: `${dir}/testfs.log`,
    });
    const addr = testfsAddr;
    const url = `${testfsTls ? "https" : "http"}://${addr}`;
    const node = { addr, url, process, configPath: "", dataDir };
    await waitForHttp(`${node.url}/health`, { process, client: testfsTls ? client : undefined });
    return node;
  };

  const startRole = async (
    role: string,
    name: string,
    port: number,
    config: Record<string, unknown>,
  ): Promise<Node> => {
    const dataDir = `${dir}/${name}`;
    await Deno.mkdir(dataDir, { recursive: true });
    const configPath = `${dir}/${name}.yaml`;
    const tls = options.tls ? { tls: options.tls.block } : {};
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({ ...tls, tracing, ...config }, null, 2),
    );
    const process = group.spawnDeno(MAIN, [`--role=${role}`, `--config=${configPath}`], {
      name: label(name),
      logFile: `${dir}/${name}.log`,
      env: options.env,
    });
    const addr = `127.0.0.1:${port}`;
    const node = { addr, url: `${scheme}://${addr}`, process, configPath, dataDir };
    await waitForHttp(`${node.url}/health`, { process, client });
    return node;
  };

  const originConfig = (i: number) => ({
    listen: { host: "127.0.0.1", port: originPorts[i] },
    advertise: originHosts[i],
    hashring: { hosts: originHosts, max_replica: 2, refresh_interval: "1s" },
    storage: { root: `origin${i + 1}/store` },
    peer: { host: "127.0.0.1", port: originPeerPorts[i] },
    metainfo: { piece_lengths: { 0: "64KB" } },
    backends: [{ namespace: ".*", backend: originBackend }],
    writeback: { retry_interval: interval, poll_interval: interval },
    ...options.originExtra,
  });
  const startOriginAt = (i: number) =>
    startRole("origin", `origin${i + 1}`, originPorts[i], originConfig(i));

  const testfs = await startTestfs();
  const origins = await Promise.all(originPorts.map((_, i) => startOriginAt(i)));
  const startBuildIndex = () =>
    startRole("build-index", "build-index", biPort, {
      listen: { host: "127.0.0.1", port: biPort },
      storage: { root: "build-index/store" },
      cluster: {
        hosts: [`127.0.0.1:${biPort}`],
        self: `127.0.0.1:${biPort}`,
        ...(options.name ? { name: options.name } : {}),
      },
      origin: { hosts: originHosts },
      tag_store: { write_through: true },
      remotes: options.remotes ?? {},
      tag_replication: { retry_interval: interval, poll_interval: interval },
      backends: [{ namespace: ".*", backend: buildIndexBackend }],
      ...options.buildIndexExtra,
    });
  const buildIndex = await startBuildIndex();
  const proxy = await startRole("proxy", "proxy", proxyPort, {
    listen: { host: "127.0.0.1", port: proxyPort },
    storage: { root: "proxy/store" },
    origin: { hosts: originHosts },
    build_index: { hosts: [`127.0.0.1:${biPort}`] },
  });
  const cluster: UploadCluster = {
    startRole,
    testfs,
    origins,
    buildIndex,
    proxy,
    async restartOrigin(i) {
      origins[i] = await startOriginAt(i);
      return origins[i];
    },
    async restartTestfs() {
      cluster.testfs = await startTestfs();
      return cluster.testfs;
    },
    async restartBuildIndex() {
      cluster.buildIndex = await startBuildIndex();
      return cluster.buildIndex;
    },
    async putTestfsTag(repo, tag, digest) {
      const link = `${cluster.testfs.dataDir}/tags/docker/registry/v2/repositories/${repo}/` +
        `_manifests/tags/${tag}/current`;
      await Deno.mkdir(link, { recursive: true });
      await Deno.writeTextFile(`${link}/link`, digest);
    },
  };
  return cluster;
}

/** Options of {@linkcode runLoneOrigin}. */
export interface LoneOriginOptions {
  /** Directory for its config and store. */
  dir: string;
  /** Owns the process. */
  group: ProcessGroup;
  /** Its name (process label, config file and store directory). */
  name: string;
  /** Its one `backends:` entry's `backend:` block (for every namespace, `must_ready: true`). */
  backend: Record<string, unknown>;
  /** Its top-level `auth:` block (backend credentials). */
  auth?: Record<string, unknown>;
  /** Extra environment (`AWS_*` credentials). */
  env?: Record<string, string>;
}

/**
 * Starts one origin alone (a ring of itself, tracing off) whose backend must be ready, and waits
 * for it to exit: the start-up checks of a backend that is not ready. Returns its exit code and log.
 */
export async function runLoneOrigin(
  options: LoneOriginOptions,
): Promise<{ code: number; log: string }> {
  const { dir, name } = options;
  const [port, peer] = freePorts(2);
  const config = {
    listen: { host: "127.0.0.1", port },
    advertise: `127.0.0.1:${port}`,
    hashring: { hosts: [`127.0.0.1:${port}`] },
    storage: { root: `${name}/store` },
    peer: { host: "127.0.0.1", port: peer },
    backends: [{ namespace: ".*", backend: options.backend, must_ready: true }],
    ...(options.auth ? { auth: options.auth } : {}),
    tracing: { enabled: false },
  };
  const configPath = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(configPath, JSON.stringify(config));
  const process = options.group.spawnDeno(MAIN, ["--role=origin", `--config=${configPath}`], {
    name,
    env: options.env,
  });
  const status = await process.stopped;
  return { code: status.code, log: process.log() };
}

/** A started agent. */
export interface AgentNode extends Node {
  /** `127.0.0.1:<port>` of its Docker registry (pull) listener. */
  registry: string;
  /** Its P2P port. */
  peerPort: number;
}

/** The upload cluster plus a tracker and agents: the download path. */
export interface DownloadCluster extends UploadCluster {
  /** The tracker. */
  tracker: Node;
  /** Agents (their `addr` is the agent server; `registry` the pull endpoint). */
  agents: AgentNode[];
}

/** Starts {@linkcode startUploadCluster}'s roles, a tracker and `agents` agents (default 2). */
export async function startDownloadCluster(
  options: ClusterOptions & { agents?: number },
): Promise<DownloadCluster> {
  const agentCount = options.agents ?? 2;
  const [trackerPort, ...agentPorts] = freePorts(1 + 3 * agentCount);
  const up = await startUploadCluster(options);
  const originHosts = up.origins.map((o) => o.addr);
  const tracker = await up.startRole("tracker", "tracker", trackerPort, {
    listen: { host: "127.0.0.1", port: trackerPort },
    origins: { hosts: originHosts },
    announce_interval: "1s",
    peerstore: { type: "memory" },
  });
  const agents: AgentNode[] = [];
  for (let i = 0; i < agentCount; i++) {
    const [server, registry, peer] = agentPorts.slice(3 * i, 3 * i + 3);
    const node = await up.startRole("agent", `agent${i + 1}`, server, {
      server: { host: "127.0.0.1", port: server },
      registry: { host: "127.0.0.1", port: registry },
      peer: { ip: "127.0.0.1", port: peer },
      tracker: { hosts: [tracker.addr] },
      build_index: { hosts: [up.buildIndex.addr] },
      storage: { root: `agent${i + 1}/store` },
      scheduler: { announce_interval: "1s" },
    });
    agents.push({ ...node, registry: `127.0.0.1:${registry}`, peerPort: peer });
  }
  // The same object, so restart… keeps updating the nodes callers read.
  return Object.assign(up, { tracker, agents });
}
