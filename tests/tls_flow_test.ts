/**
 * TLS on every hop (issue 11): real processes for testfs, two origins, build-index, proxy, tracker
 * and two agents, each serving TLS and calling the others over mutual TLS, with the client
 * certificate rule applied to loopback callers too (`tls.server.verify_loopback`), so every
 * upload, announce, replication and tag write between the roles had to present a verified client
 * certificate. skopeo pushes through the proxy and pulls through the agents' registries over TLS
 * with the test CA; Jaeger gets one trace per pull and per blob push. Then bad input: a plaintext
 * request to a TLS port, no client certificate, one from another CA, a server certificate for
 * another name; start-up with a wrong passphrase and with an expired certificate; and rotation of
 * a running origin's certificate.
 */

import assert from "node:assert/strict";
import tls from "node:tls";
import { createTestCa, type IssuedCert, type TestCa } from "./harness/certs.ts";
import { startDownloadCluster } from "./harness/cluster.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { makeImage, writeOciLayout } from "./harness/oci.ts";
import { freePorts, ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import { findSpans, formatTree } from "./harness/trace_tree.ts";
import { waitFor, type WaitForOptions } from "./harness/wait.ts";
import { SPAN } from "../tracing/names.ts";

const JAEGER_WAIT: WaitForOptions = { timeoutMs: 30_000, intervalMs: 250 };
const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Pki {
  ca: TestCa;
  server: IssuedCert;
  client: IssuedCert;
  /** A directory in containers' certs.d layout: the CA and skopeo's own client certificate. */
  skopeoCerts: string;
  /** The testfs backend's server certificate. */
  testfs: IssuedCert;
}

async function makePki(dir: string): Promise<Pki> {
  const ca = await createTestCa(`${dir}/pki`);
  const server = await ca.issue("server", { passphrase: "server-pass" });
  const client = await ca.issue("role-client", {
    client: true,
    passphrase: "client-pass",
    keyFormat: "legacy",
  });
  const skopeoClient = await ca.issue("skopeo", { client: true });
  const skopeoCerts = `${dir}/skopeo-certs`;
  await Deno.mkdir(skopeoCerts);
  await Deno.copyFile(ca.cert, `${skopeoCerts}/ca.crt`);
  await Deno.copyFile(skopeoClient.cert, `${skopeoCerts}/client.cert`);
  await Deno.copyFile(skopeoClient.key, `${skopeoCerts}/client.key`);
  return { ca, server, client, skopeoCerts, testfs: await ca.issue("testfs") };
}

function tlsBlock(pki: Pki, server: IssuedCert = pki.server) {
  return {
    cas: [{ path: pki.ca.cert }],
    server: {
      cert: { path: server.cert },
      key: { path: server.key },
      ...(server.passphrase ? { passphrase: { path: server.passphrase } } : {}),
      verify_loopback: true,
    },
    client: {
      cert: { path: pki.client.cert },
      key: { path: pki.client.key },
      passphrase: { path: pki.client.passphrase },
    },
  };
}

/** A fetch client trusting the test CA, optionally presenting a client certificate. */
function httpsClient(pki: Pki, identity?: IssuedCert): Deno.HttpClient {
  const caCerts = [Deno.readTextFileSync(pki.ca.cert)];
  if (!identity) return Deno.createHttpClient({ caCerts });
  return Deno.createHttpClient({
    caCerts,
    cert: Deno.readTextFileSync(identity.cert),
    key: Deno.readTextFileSync(identity.key),
  });
}

async function metric(url: string, client: Deno.HttpClient, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { client })).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("tls: push and pull with TLS and client certificates on every hop", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-flow-" });
  const pki = await makePki(dir);
  const trusted = httpsClient(pki);
  try {
    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      tls: {
        block: tlsBlock(pki),
        ca: pki.ca.cert,
        backend: { cert: pki.testfs.cert, key: pki.testfs.key },
      },
    });
    assert.ok(cluster.testfs.url.startsWith("https://"), cluster.testfs.url);
    const image = await makeImage({ layers: 2, layerSize: 512 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--retry-times=0",
      `--dest-cert-dir=${pki.skopeoCerts}`,
      `oci:${dir}/image:latest`,
      `docker://${cluster.proxy.addr}/demo/app:v1`,
    ]);
    for (const [i, agent] of cluster.agents.entries()) {
      await skopeo([
        "copy",
        "--retry-times=0",
        `--src-cert-dir=${pki.skopeoCerts}`,
        `docker://${agent.registry}/demo/app:v1`,
        `oci:${dir}/pulled${i}:v1`,
      ]);
      for (const blob of [...image.layers, image.config]) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/pulled${i}/blobs/sha256/${blob.digest.hex}`),
          blob.bytes,
        );
      }
    }

    // The write-back reached the testfs backend over TLS: the blobs and the tag are stored.
    const backendDir = cluster.testfs.dataDir;
    for (const blob of [...image.layers, image.config]) {
      await waitFor(`${blob.digest} written back to testfs over TLS`, async () => {
        const stored = await Deno.readFile(`${backendDir}/blobs/${blob.digest.hex}`).catch(() =>
          undefined
        );
        return stored?.length === blob.bytes.length ? stored : undefined;
      }, JAEGER_WAIT);
    }
    const link = `${backendDir}/tags/docker/registry/v2/repositories/demo/app/_manifests/tags/v1/` +
      "current/link";
    const written = await waitFor("the tag written back to testfs over TLS", async () => {
      return await Deno.readTextFile(link).catch(() => undefined);
    }, JAEGER_WAIT);
    assert.ok(written.includes(image.manifest.digest.hex), written);

    // One trace per blob push: proxy → origin (upload, then replication to the other origin).
    for (const blob of image.layers) {
      const digest = blob.digest.toString();
      const id = await waitFor(`the push trace of ${digest}`, async () => {
        const traces = await jaeger.findTraces({
          service: "kraken-proxy",
          operation: SPAN.proxyCommitUpload,
          limit: 100,
        });
        return traces.flatMap((t) => t.spans).find((s) =>
          s.name === SPAN.proxyCommitUpload && s.attributes.digest === digest
        )?.traceId;
      }, JAEGER_WAIT);
      await waitFor(`origin spans in push trace ${id}`, async () => {
        const tree = await jaeger.getTrace(id);
        return tree &&
            findSpans(tree, (s) =>
                s.service === "kraken-origin" && s.kind === "server" &&
                s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}").length > 0
          ? tree
          : undefined;
      }, JAEGER_WAIT);
    }
    // One trace per pull: agent registry → scheduler → tracker (announce over mutual TLS).
    const layer = image.layers[0].digest.toString();
    for (const agent of cluster.agents) {
      const id = await waitFor(`the pull trace of ${layer} on ${agent.addr}`, async () => {
        const traces = await jaeger.findTraces({
          service: "kraken-agent",
          operation: SPAN.schedulerDownload,
          limit: 100,
        });
        return traces.flatMap((t) => t.spans).find((s) =>
          s.name === SPAN.schedulerDownload && s.attributes.digest === layer &&
          s.resource["process.pid"] === agent.process.pid
        )?.traceId;
      }, JAEGER_WAIT);
      const tree = await waitFor(`tracker spans in pull trace ${id}`, async () => {
        const tree = await jaeger.getTrace(id);
        return tree &&
            findSpans(
                tree,
                (s) => s.service === "kraken-tracker" && s.name === "POST /announce/{infohash}",
              ).length > 0
          ? tree
          : undefined;
      }, JAEGER_WAIT);
      const roots = tree.roots.map((r) => r.name);
      assert.deepEqual(roots, ["GET /v2/{name+}/blobs/{digest}"], formatTree(tree));
    }

    // Every readiness probe between the roles works over TLS.
    for (const node of [cluster.proxy, cluster.buildIndex, cluster.tracker, ...cluster.agents]) {
      const ready = await fetch(`${node.url}/readiness`, { client: trusted });
      assert.equal(ready.status, 200, `${node.addr}: ${await ready.text()}`);
    }

    // Every write between the roles presented a verified certificate: none was refused.
    const origin = cluster.origins[0].url;
    for (const node of [...cluster.origins, cluster.buildIndex, cluster.tracker, cluster.proxy]) {
      assert.equal(
        await metric(node.url, trusted, "kraken_http_requests_refused_total"),
        0,
        `${node.addr} refused a request of another role`,
      );
    }

    // Bad input, each refused with a reason while the listener keeps serving the others.
    const blobUrl = `${origin}/namespace/demo%2Fapp/blobs/sha256:${"0f".repeat(32)}/uploads`;
    const anonymous = await fetch(blobUrl, { method: "POST", client: trusted });
    assert.equal(anonymous.status, 403);
    assert.match(await anonymous.text(), /needs a verified client certificate: no client cert/);
    const other = await createTestCa(`${dir}/other-ca`, "other-ca");
    const stranger = httpsClient(pki, await other.issue("stranger", { client: true }));
    const foreign = await fetch(blobUrl, { method: "POST", client: stranger });
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /CN=stranger does not verify against tls\.cas/);
    stranger.close();
    await assert.rejects(() => fetch(`http://${cluster.origins[0].addr}/health`));
    assert.equal(await metric(origin, trusted, "kraken_http_requests_refused_total"), 2);
    assert.ok(
      await metric(
        origin,
        trusted,
        'kraken_http_connections_closed_total{listener="server",' +
          'reason="tls_handshake"}',
      ) >= 1,
    );
    const expiry = await metric(origin, trusted, "kraken_tls_server_certificate_expiry_timestamp");
    const notAfter = new Date(
      new (await import("node:crypto")).X509Certificate(await Deno.readTextFile(pki.server.cert))
        .validTo,
    );
    assert.equal(expiry, Math.floor(notAfter.getTime() / 1000));
    const health = await fetch(`${origin}/health`, { client: trusted });
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const log = await Deno.readTextFile(`${dir}/origin1.log`);
    assert.match(log, /refused a request without a verified client certificate \(403\)/);
    assert.match(log, /TLS handshakes failed/);

    // An agent told to expect another server name refuses the tracker and build-index: its
    // readiness says why.
    const [server, registry, peer] = freePorts(3);
    const misnamed = await cluster.startRole("agent", "agent-misnamed", server, {
      tls: { ...tlsBlock(pki), name: "registry.example" },
      server: { host: "127.0.0.1", port: server },
      registry: { host: "127.0.0.1", port: registry },
      peer: { ip: "127.0.0.1", port: peer },
      tracker: { hosts: [cluster.tracker.addr] },
      build_index: { hosts: [cluster.buildIndex.addr] },
      storage: { root: "agent-misnamed/store" },
    });
    const ready = await fetch(`${misnamed.url}/readiness`, { client: trusted });
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /registry\.example.*altnames/);
  } finally {
    trusted.close();
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

async function startOrigin(
  group: ProcessGroup,
  dir: string,
  name: string,
  tlsConfig: Record<string, unknown>,
) {
  const [port, peer] = freePorts(2);
  const configPath = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      tls: tlsConfig,
      listen: { host: "127.0.0.1", port },
      storage: { root: `${dir}/${name}/store` },
      peer: { host: "127.0.0.1", port: peer },
      tracing: { enabled: false },
    }),
  );
  const process = group.spawnDeno(MAIN, ["--role=origin", `--config=${configPath}`], {
    name,
    logFile: `${dir}/${name}.log`,
  });
  return { port, process, log: `${dir}/${name}.log` };
}

Deno.test("tls: bad certificate configuration fails start-up with the key and file named", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-start-" });
  try {
    const pki = await makePki(dir);
    await Deno.writeTextFile(`${dir}/wrong.pass`, "not-the-passphrase\n");
    const expired = await pki.ca.issue("expired", { days: -1 });
    const cases: [string, IssuedCert, RegExp][] = [
      [
        "wrong-pass",
        { ...pki.server, passphrase: `${dir}/wrong.pass` },
        /tls\.server\.key\.path: cannot decrypt .*server\.key with the passphrase in .*wrong\.pass/,
      ],
      [
        "expired",
        expired,
        /tls\.server\.cert\.path: the certificate in .*expired\.crt \(CN=expired\) is valid from/,
      ],
    ];
    for (const [name, server, message] of cases) {
      const origin = await startOrigin(group, dir, name, tlsBlock(pki, server));
      const status = await origin.process.stopped;
      assert.equal(status.code, 1, `${name} exit code`);
      const log = await Deno.readTextFile(origin.log);
      assert.match(log, /start-up failed/, name);
      assert.match(log, message, name);
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("tls: replacing the certificate files of a running origin serves the new one", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-rotate-" });
  try {
    const pki = await makePki(dir);
    const live = { cert: `${dir}/live.crt`, key: `${dir}/live.key` };
    const first = await pki.ca.issue("first");
    await Deno.copyFile(first.cert, live.cert);
    await Deno.copyFile(first.key, live.key);
    const origin = await startOrigin(group, dir, "origin", tlsBlock(pki, live));
    const ca = await Deno.readTextFile(pki.ca.cert);
    const servedCn = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port: origin.port, ca }, () => {
          resolve(String(socket.getPeerCertificate().subject.CN));
          socket.end();
        });
        socket.once("error", reject);
      });
    await waitFor("the origin serving TLS", () => servedCn().catch(() => undefined));
    assert.equal(await servedCn(), "first");

    // Swap both files by rename, as a secret manager does: new connections get the new one.
    const second = await pki.ca.issue("second", { days: 1 });
    await Deno.copyFile(second.key, `${live.key}.tmp`);
    await Deno.copyFile(second.cert, `${live.cert}.tmp`);
    await Deno.rename(`${live.key}.tmp`, live.key);
    await Deno.rename(`${live.cert}.tmp`, live.cert);
    await waitFor(
      "the rotated certificate",
      async () => (await servedCn()) === "second" || undefined,
    );
    await waitFor(
      "the reload log line",
      async () => /TLS certificate reloaded/.test(await Deno.readTextFile(origin.log)) || undefined,
    );

    // An expired replacement is refused and logged; the previous certificate keeps serving.
    const expired = await pki.ca.issue("expired", { days: -1 });
    await Deno.copyFile(expired.key, live.key);
    await Deno.copyFile(expired.cert, live.cert);
    await waitFor(
      "the failed reload log line",
      async () =>
        /TLS certificate reload failed; the previous certificate stays/.test(
          await Deno.readTextFile(origin.log),
        ) || undefined,
    );
    assert.equal(await servedCn(), "second");
    const health = await fetch(`https://127.0.0.1:${origin.port}/health`, {
      client: httpsClient(pki),
    });
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
