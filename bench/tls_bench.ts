/**
 * What TLS costs on the two hot calls between roles, TLS against plaintext in the same run:
 *
 * - a 64 MiB blob GET over loopback from the role listener (`http/serve.ts`): plaintext with
 *   `fetch`, TLS with the roles' client (`http/tls_client.ts`, `node:https`), and TLS with
 *   `Deno.createHttpClient` (the alternative the client was chosen against); 10 alternating rounds;
 * - an announce to a real tracker (`startTracker` in this process, memory peer store) through the
 *   agent's `AnnounceClient`, plaintext and mutual TLS on kept-alive connections, and mutual TLS
 *   with a new connection (full handshake) per announce.
 *
 * Certificates come from `tests/harness/certs.ts` (openssl). Numbers in docs/performance.md.
 *
 *     deno run -A bench/tls_bench.ts
 *
 * @module
 */

import https from "node:https";
import { AnnounceClient } from "../cluster/announce_client.ts";
import { concatBytes } from "../common/bytes.ts";
import { createLogger } from "../common/log.ts";
import { serveHttp } from "../http/serve.ts";
import { loadKeyPair } from "../http/tls.ts";
import { startTlsClient } from "../http/tls_client.ts";
import { resolveTlsConfig, tlsConfigSchema } from "../http/tls_config.ts";
import { testRoleContext } from "../roles/_test_util.ts";
import { parseTrackerConfig, startTracker } from "../roles/tracker/mod.ts";
import { Digest } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { createTestCa } from "../tests/harness/certs.ts";
import { tracedFetch } from "../tracing/mod.ts";

const SIZE = 64 << 20;
const ROUNDS = 10;
const ANNOUNCES = 2000;
const logger = createLogger({ role: "bench", level: "error" });
const dir = await Deno.makeTempDir({ prefix: "kraken-tls-bench-" });
const ca = await createTestCa(`${dir}/ca`);
const serverCert = await ca.issue("server");
const clientCert = await ca.issue("client", { client: true });
const pair = loadKeyPair(serverCert, "tls.server");
const caPem = await Deno.readTextFile(ca.cert);
const serverTls = { cert: pair.cert, key: pair.key, ca: [caPem], verifyLoopback: true };

const median = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)];
const fastest = (ms: number[]) => Math.min(...ms);

// --- 64 MiB GET -------------------------------------------------------------------------------
const blob = `${dir}/blob`;
{
  const file = await Deno.open(blob, { write: true, create: true });
  const chunk = crypto.getRandomValues(new Uint8Array(65536));
  for (let written = 0; written < SIZE; written += chunk.length) await file.write(chunk);
  file.close();
}
const handler = async (): Promise<Response> => {
  const file = await Deno.open(blob);
  return new Response(file.readable, { headers: { "content-length": String(SIZE) } });
};
const plain = await serveHttp({ hostname: "127.0.0.1", port: 0, handler });
const secure = await serveHttp({ hostname: "127.0.0.1", port: 0, handler, tls: serverTls });
const roleClient = await startTlsClient({
  cas: [ca.cert],
  identity: { cert: clientCert.cert, key: clientCert.key },
}, { logger });
const denoClient = Deno.createHttpClient({
  caCerts: [caPem],
  cert: await Deno.readTextFile(clientCert.cert),
  key: await Deno.readTextFile(clientCert.key),
});

async function drain(res: Response): Promise<void> {
  let bytes = 0;
  for await (const chunk of res.body!) bytes += chunk.length;
  if (bytes !== SIZE) throw new Error(`got ${bytes} of ${SIZE} bytes`);
}
const gets: Record<string, () => Promise<void>> = {
  "plaintext (fetch)": async () =>
    await drain(await fetch(`http://127.0.0.1:${plain.addr.port}/b`)),
  "TLS (roles' client, node:https)": async () =>
    await drain(await roleClient.transport(new URL(`http://127.0.0.1:${secure.addr.port}/b`), {})),
  "TLS (Deno.createHttpClient)": async () =>
    await drain(await fetch(`https://127.0.0.1:${secure.addr.port}/b`, { client: denoClient })),
};
const getTimes: Record<string, number[]> = {};
for (const [name, get] of Object.entries(gets)) {
  await get();
  getTimes[name] = [];
}
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, get] of Object.entries(gets)) {
    const started = performance.now();
    await get();
    getTimes[name].push(performance.now() - started);
  }
}
console.log(`64 MiB GET, ${ROUNDS} rounds:`);
for (const [name, ms] of Object.entries(getTimes)) {
  const m = median(ms);
  console.log(
    `  ${name}: median ${m.toFixed(0)} ms, fastest ${fastest(ms).toFixed(0)} ms ` +
      `(${(SIZE / 2 ** 20 / (m / 1000)).toFixed(0)} MiB/s at the median)`,
  );
}
denoClient.close();
await plain.shutdown();
await secure.shutdown();

// --- announce ---------------------------------------------------------------------------------
const tlsBlock = resolveTlsConfig(
  tlsConfigSchema.parse({
    cas: [{ path: ca.cert }],
    server: {
      cert: { path: serverCert.cert },
      key: { path: serverCert.key },
      verify_loopback: true,
    },
  }, "tls"),
);
const origins = { getOrigins: () => Promise.resolve([]) };
const trackers = {
  plaintext: await startTracker(
    parseTrackerConfig({
      listen: { host: "127.0.0.1", port: 0 },
      origins: { hosts: ["127.0.0.1:1"] },
    }, {}),
    testRoleContext("tracker", { logger }),
    { originStore: origins },
  ),
  tls: await startTracker(
    {
      ...parseTrackerConfig({
        listen: { host: "127.0.0.1", port: 0 },
        origins: { hosts: ["127.0.0.1:1"] },
      }, {}),
      tls: tlsBlock,
    },
    testRoleContext("tracker", { logger }),
    { originStore: origins },
  ),
};
const freshAgent = () =>
  new https.Agent({
    keepAlive: false,
    ca: caPem,
    cert: Deno.readTextFileSync(clientCert.cert),
    key: Deno.readTextFileSync(clientCert.key),
  });
const clients = {
  "plaintext": new AnnounceClient({ trackers: [`127.0.0.1:${trackers.plaintext.port}`] }),
  "mutual TLS, kept-alive connection": new AnnounceClient({
    trackers: [`127.0.0.1:${trackers.tls.port}`],
    fetch: roleClient.wrap(tracedFetch),
  }),
  "mutual TLS, new connection each": new AnnounceClient({
    trackers: [`127.0.0.1:${trackers.tls.port}`],
    fetch: (url, init) =>
      tracedFetch(url.replace(/^http:/, "https:"), {
        ...init,
        transport: (u, i) => {
          const agent = freshAgent();
          return new Promise((resolve, reject) => {
            const req = https.request(u, {
              method: i.method,
              headers: Object.fromEntries(new Headers(i.headers)),
              agent,
            }, (res) => {
              const chunks: Uint8Array[] = [];
              res.on("data", (c: Uint8Array) => chunks.push(c));
              res.on("end", () =>
                resolve(new Response(concatBytes(chunks), { status: res.statusCode })));
            });
            req.once("error", reject);
            req.end(i.body as string);
          });
        },
      }),
  }),
};
const digest = Digest.fromHex("ab".repeat(32));
const infoHash = InfoHash.fromHex("cd".repeat(20));
console.log(`announce to a tracker, ${ANNOUNCES} sequential:`);
for (const [name, client] of Object.entries(clients)) {
  const announce = () =>
    client.announce({
      digest,
      infoHash,
      peer: { peerId: "ef".repeat(20), ip: "127.0.0.1", port: 16001 },
      complete: false,
    });
  for (let i = 0; i < 50; i++) await announce();
  const n = name.includes("new connection") ? ANNOUNCES / 4 : ANNOUNCES;
  const started = performance.now();
  for (let i = 0; i < n; i++) await announce();
  const us = (performance.now() - started) * 1000 / n;
  console.log(`  ${name}: ${us.toFixed(0)} µs per announce (${n} announces)`);
}
await roleClient.close();
await trackers.plaintext.stop();
await trackers.tls.stop();
await Deno.remove(dir, { recursive: true });
