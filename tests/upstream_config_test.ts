/**
 * Every role started from a configuration file in upstream Kraken's shapes (issue 11): files that
 * `extends:` a base file as upstream's `config/<role>/base.yaml` does, with upstream's keys
 * (`castore`, `blobserver.listener`, `cluster.static`, `metainfogen`, `trackerserver`,
 * `tagserver`, `localdb`, `peerhandoutpolicy`, `hosts.static` / `hosts.dns`, …) and its
 * nginx/zap/metrics blocks, and upstream's flags for the ports. The files are written here from
 * upstream's config structs and documented examples. A real skopeo pushes through the proxy and
 * pulls through two agents; the origin's ring, the tracker's origins and the agents' build-index
 * are DNS host lists (`localhost`), the others static.
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { makeImage, writeOciLayout } from "./harness/oci.ts";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import { exists } from "./harness/fs.ts";
import { waitFor } from "./harness/wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const TESTFS = `${ROOT}storage/backend/testfs_server.ts`;

/** The nginx, logging and metrics blocks every upstream base file has, and a unix listener. */
function base(component: string, listenerBlock: string): string {
  return `
zap:
  level: info
  encoding: console
  outputPaths: [stdout]
metrics:
  m3:
    service: ${component}
nginx:
  name: ${component}
  cache_dir: /var/cache/kraken/${component}/nginx/
  log_dir: /var/log/kraken/${component}/
${listenerBlock}:
  listener:
    net: unix
    addr: /tmp/${component}.sock
`;
}

/** A UDP socket on 127.0.0.1 that keeps the statsd lines it receives. */
async function statsdCollector(): Promise<{ port: number; lines: string[]; close(): void }> {
  const socket = dgram.createSocket("udp4");
  const lines: string[] = [];
  socket.on(
    "message",
    (msg: Uint8Array) => lines.push(...new TextDecoder().decode(msg).split("\n")),
  );
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return { port: socket.address().port, lines, close: () => socket.close() };
}

Deno.test("upstream config files start every role; skopeo pushes and pulls through them", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-upstream-config-" });
  const env = { OTEL_SDK_DISABLED: "true" };
  const cleanups: (() => void)[] = [];
  try {
    const [testfsPort, originPort, originPeer, trackerPort, biPort, proxyPort, ...agentPorts] =
      freePorts(12);
    // upstream's origin test config sends statsd; so does ours, from the same keys.
    const statsd = await statsdCollector();
    cleanups.push(() => statsd.close());
    await Deno.mkdir(`${dir}/base`);
    await Deno.mkdir(`${dir}/backend`);
    const testfs = group.spawnDeno(
      TESTFS,
      ["--root", `${dir}/backend`, "--port", `${testfsPort}`],
      {
        name: "testfs",
        logFile: `${dir}/testfs.log`,
      },
    );
    await waitForHttp(`http://127.0.0.1:${testfsPort}/health`, { process: testfs });

    const files: Record<string, string> = {
      "base/origin.yaml": base("kraken-origin", "blobserver") + `
metainfogen:
  piece_lengths:
    0: 4MB
peer_id_factory: addr_hash
scheduler:
  log:
    timeEncoder: iso8601
  torrentlog:
    disable: true
localdb:
  source: ${dir}/origin/origin.db
castore:
  upload_dir: ${dir}/origin/upload/
  cache_dir: ${dir}/origin/cache/
  memory_cache:
    enabled: true
    max_size: 1048576
`,
      "origin.yaml": `
extends: base/origin.yaml
metrics:
  backend: statsd
  statsd:
    host_port: 127.0.0.1:${statsd.port}
    prefix: kraken.origin
hashring:
  max_replica: 2
cluster:
  dns: localhost:${originPort}
metainfogen:
  piece_lengths:
    0: 64KB
backends:
  - namespace: .*
    backend:
      testfs:
        addr: 127.0.0.1:${testfsPort}
        root: blobs
        name_path: identity
writeback:
  retry_interval: 100ms
  poll_retries_interval: 250ms
`,
      "base/tracker.yaml": base("kraken-tracker", "trackerserver") + `
peerhandoutpolicy:
  priority: completeness
`,
      "tracker.yaml": `
extends: base/tracker.yaml
origin:
  hosts:
    dns: localhost:${originPort}
trackerserver:
  announce_interval: 1s
`,
      "base/build-index.yaml": base("kraken-build-index", "tagserver") + `
localdb:
  source: ${dir}/build-index/index.db
store:
  upload_dir: ${dir}/build-index/upload/
  cache_dir: ${dir}/build-index/cache/
tag_store:
  write_through: true
`,
      "build-index.yaml": `
extends: base/build-index.yaml
cluster:
  hosts:
    static: [127.0.0.1:${biPort}]
origin:
  hosts:
    static: [127.0.0.1:${originPort}]
backends:
  - namespace: .*
    backend:
      testfs:
        addr: 127.0.0.1:${testfsPort}
        root: tags
        name_path: docker_tag
tag_types:
  - namespace: .*
    type: docker
    root: tags
writeback:
  retry_interval: 100ms
  poll_retries_interval: 250ms
`,
      "base/proxy.yaml": `
castore:
  upload_dir: ${dir}/proxy/upload/
  cache_dir: ${dir}/proxy/cache/
  capacity: 1024
zap:
  level: info
metrics:
  m3:
    service: kraken-proxy
server:
  listener:
    net: unix
    addr: /tmp/kraken-proxy.sock
registry:
  docker:
    version: 0.1
    http:
      net: unix
      addr: /tmp/kraken-proxy-registry.sock
registryoverride:
  listener:
    net: unix
    addr: /tmp/kraken-proxy-registry-override.sock
nginx:
  name: kraken-proxy
`,
      // The proxy's own file names a TCP listener, so its port needs no flag.
      "proxy.yaml": `
extends: base/proxy.yaml
server:
  listener:
    net: tcp
    addr: 127.0.0.1:${proxyPort}
origin:
  hosts:
    static: [127.0.0.1:${originPort}]
build_index:
  hosts:
    static: [127.0.0.1:${biPort}]
`,
    };
    for (const i of [0, 1]) {
      files[`base/agent${i}.yaml`] = `
zap:
  level: info
metrics:
  m3:
    service: kraken-agent
scheduler:
  torrentlog:
    service_name: kraken-agent
  dispatch:
    piece_request_policy: rarest_first
  conn:
    bandwidth:
      enable: true
store:
  download_dir: ${dir}/agent${i}/download/
  cache_dir: ${dir}/agent${i}/cache/
  download_cleanup:
    ttl: 24h
  cache_cleanup:
    ttl: 24h
registry:
  docker:
    version: 0.1
    http:
      net: unix
      addr: /tmp/kraken-agent-registry.sock
peer_id_factory: addr_hash
allowed_cidrs:
  - 127.0.0.1
  - 172.17.0.1
nginx:
  name: kraken-agent
`;
      files[`agent${i}.yaml`] = `
extends: base/agent${i}.yaml
scheduler:
  connstate:
    blacklist_duration: 5s
tracker:
  hosts:
    static: [127.0.0.1:${trackerPort}]
build_index:
  hosts:
    dns: localhost:${biPort}
`;
    }
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }

    const start = async (role: string, name: string, health: string, flags: string[] = []) => {
      const process = group.spawnDeno(MAIN, [
        `--role=${role}`,
        `--config=${dir}/${name}.yaml`,
        ...flags,
      ], {
        name,
        env,
        logFile: `${dir}/${name}.log`,
      });
      await waitForHttp(`http://${health}/health`, { process });
      return process;
    };
    const origin = await start("origin", "origin", `127.0.0.1:${originPort}`, [
      `--blobserver-port=${originPort}`,
      `--peer-port=${originPeer}`,
      "--peer-ip=127.0.0.1",
    ]);
    const tracker = await start("tracker", "tracker", `127.0.0.1:${trackerPort}`, [
      `--port=${trackerPort}`,
    ]);
    const buildIndex = await start("build-index", "build-index", `127.0.0.1:${biPort}`, [
      `--port=${biPort}`,
    ]);
    const proxy = await start("proxy", "proxy", `127.0.0.1:${proxyPort}`);
    const agentRegistries: string[] = [];
    for (const i of [0, 1]) {
      const [server, registry, peer] = agentPorts.slice(3 * i, 3 * i + 3);
      await start("agent", `agent${i}`, `127.0.0.1:${server}`, [
        `--agent-server-port=${server}`,
        `--agent-registry-port=${registry}`,
        `--peer-port=${peer}`,
        "--peer-ip=127.0.0.1",
      ]);
      agentRegistries.push(`127.0.0.1:${registry}`);
    }

    // The origin's ring is the resolved DNS list: this one member, labelled 127.0.0.1:<port>.
    const metrics = await (await fetch(`http://127.0.0.1:${originPort}/metrics`)).text();
    assert.match(metrics, /^kraken_hostlist_members\{hostlist="hashring"\} 1$/m);
    assert.match(origin.log(), new RegExp(`"ring":\\["127\\.0\\.0\\.1:${originPort}"\\]`));

    // Upstream machinery keys were accepted with one warning each, naming the key.
    const warned = (log: string) =>
      log.split("\n").filter((l) => l.includes('"configuration key ignored"'))
        .map((l) => JSON.parse(l.slice(l.indexOf("{"))).key).sort();
    assert.deepEqual(warned(origin.log()), [
      "blobserver.listener",
      "castore.memory_cache",
      "metrics.m3",
      "nginx",
      "scheduler",
      "zap",
    ]);
    assert.deepEqual(warned(tracker.log()), [
      "metrics.m3",
      "nginx",
      "trackerserver.listener",
      "zap",
    ]);
    assert.deepEqual(warned(buildIndex.log()), [
      "metrics.m3",
      "nginx",
      "tag_types[0].root",
      "tagserver.listener",
      "zap",
    ]);
    assert.deepEqual(warned(proxy.log()), [
      "castore.capacity",
      "metrics.m3",
      "nginx",
      "registry.docker",
      "registryoverride",
      "zap",
    ]);

    const image = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}/image:latest`,
      `docker://127.0.0.1:${proxyPort}/upstream/app:v1`,
    ]);
    // The upstream-shaped origin wrote the blobs back to its testfs backend.
    for (const blob of image.layers) {
      await waitFor(
        `write-back of ${blob.digest}`,
        () => exists(`${dir}/backend/blobs/${blob.digest.hex}`),
      );
    }
    for (const [i, registry] of agentRegistries.entries()) {
      await skopeo([
        "copy",
        "--src-tls-verify=false",
        `docker://${registry}/upstream/app:v1`,
        `oci:${dir}/pulled${i}:v1`,
      ]);
      const index = JSON.parse(await Deno.readTextFile(`${dir}/pulled${i}/index.json`));
      assert.equal(index.manifests[0].digest, image.manifest.digest.toString());
      for (const blob of [...image.layers, image.config]) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/pulled${i}/blobs/sha256/${blob.digest.hex}`),
          blob.bytes,
        );
      }
    }
    // The agents' store is upstream's store.cache_dir parent.
    assert.ok(await exists(`${dir}/agent0/cache`));
    await waitFor(
      "statsd packets from the origin",
      () => statsd.lines.some((l) => l.startsWith("kraken.origin.")),
    );
  } finally {
    for (const cleanup of cleanups) cleanup();
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});
