import assert from "node:assert/strict";
import tls from "node:tls";
import { createTestCa, type IssuedCert, type TestCa } from "../tests/harness/certs.ts";
import { externalTest } from "../tests/harness/external.ts";
import { createLogger } from "../common/log.ts";
import { type HttpServer, serveHttp, type ServeTlsOptions } from "./serve.ts";
import { loadKeyPair } from "./tls.ts";
import { startTlsClient, type TlsClient } from "./tls_client.ts";

const logger = createLogger({ role: "test", level: "error" });

interface Fixture {
  dir: string;
  ca: TestCa;
  server: IssuedCert;
  client: IssuedCert;
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-" });
  const ca = await createTestCa(`${dir}/ca`);
  return {
    dir,
    ca,
    server: await ca.issue("server"),
    client: await ca.issue("client", { client: true, passphrase: "s3cret" }),
  };
}

async function serverTls(f: Fixture, cert = f.server, verifyLoopback = false) {
  const pair = loadKeyPair(cert, "tls.server");
  return {
    cert: pair.cert,
    key: pair.key,
    ca: [await Deno.readTextFile(f.ca.cert)],
    verifyLoopback,
  } satisfies ServeTlsOptions;
}

/** A TLS listener answering `<method> <bytes received>`. */
function echo(tlsOptions: ServeTlsOptions | undefined): Promise<HttpServer> {
  return serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    tls: tlsOptions,
    handler: async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      return new Response(`${req.method} ${body.length}`);
    },
  });
}

const url = (server: HttpServer, path = "/x") => `http://127.0.0.1:${server.addr.port}${path}`;

async function text(res: Response): Promise<string> {
  return `${res.status} ${await res.text()}`;
}

externalTest("tls: GETs need no certificate; other methods need one that verifies", async () => {
  const f = await fixture();
  const server = await echo(await serverTls(f, f.server, true));
  const anonymous = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  const other = await createTestCa(`${f.dir}/other`, "other-ca");
  const stranger = await startTlsClient({
    cas: [f.ca.cert],
    identity: await other.issue("stranger", { client: true }),
  }, { logger });
  const member = await startTlsClient({ cas: [f.ca.cert], identity: f.client }, { logger });
  try {
    assert.equal(await text(await anonymous.transport(new URL(url(server)), {})), "200 GET 0");
    const refused = await anonymous.transport(new URL(url(server)), { method: "PUT", body: "x" });
    assert.equal(refused.status, 403);
    assert.match(
      await refused.text(),
      /needs a verified client certificate: no client certificate/,
    );
    const foreign = await stranger.transport(new URL(url(server)), { method: "POST", body: "x" });
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /CN=stranger does not verify against tls\.cas/);
    assert.equal(
      await text(await member.transport(new URL(url(server)), { method: "POST", body: "abc" })),
      "200 POST 3",
    );
  } finally {
    await Promise.all([anonymous.close(), stranger.close(), member.close()]);
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: loopback callers are exempt from client certificates, as upstream", async () => {
  const f = await fixture();
  const server = await echo(await serverTls(f));
  const anonymous = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  try {
    const res = await anonymous.transport(new URL(url(server)), { method: "DELETE" });
    assert.equal(await text(res), "200 DELETE 0");
  } finally {
    await anonymous.close();
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest(
  "tls: only 127.0.0.1 is exempt, as upstream: a ::1 caller needs a certificate",
  async () => {
    const f = await fixture();
    const server = await serveHttp({
      hostname: "::1",
      port: 0,
      tls: await serverTls(f),
      handler: (req) => Promise.resolve(new Response(`${req.method} ok`)),
    });
    // The server certificate names localhost; the URL's host is the IPv6 literal.
    const anonymous = await startTlsClient({ cas: [f.ca.cert], name: "localhost" }, { logger });
    const identified = await startTlsClient(
      { cas: [f.ca.cert], name: "localhost", identity: f.client },
      { logger },
    );
    try {
      const at = new URL(`https://[::1]:${server.addr.port}/x`);
      const refused = await anonymous.transport(at, { method: "DELETE" });
      assert.equal(refused.status, 403);
      assert.match(await refused.text(), /no client certificate presented/);
      assert.equal(await text(await anonymous.transport(at, {})), "200 GET ok");
      assert.equal(
        await text(await identified.transport(at, { method: "DELETE" })),
        "200 DELETE ok",
      );
    } finally {
      await anonymous.close();
      await identified.close();
      await server.shutdown();
      await Deno.remove(f.dir, { recursive: true });
    }
  },
);

externalTest("tls: the client verifies the server against tls.name, else the host", async () => {
  const f = await fixture();
  const named = await f.ca.issue("named", { dns: ["kraken"], ips: [] });
  const server = await echo(await serverTls(f, named));
  const byName = await startTlsClient({ name: "kraken", cas: [f.ca.cert] }, { logger });
  const byHost = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  const wrongName = await startTlsClient({ name: "registry", cas: [f.ca.cert] }, { logger });
  try {
    assert.equal(await text(await byName.transport(new URL(url(server)), {})), "200 GET 0");
    await assert.rejects(
      () => byHost.transport(new URL(url(server)), {}),
      /IP: 127\.0\.0\.1 is not in the cert's list|does not match|altnames/,
    );
    await assert.rejects(
      () => wrongName.transport(new URL(url(server)), {}),
      /Host: registry\. is not in the cert's altnames/,
    );
  } finally {
    await Promise.all([byName.close(), byHost.close(), wrongName.close()]);
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: an expired server certificate and an unknown CA are refused", async () => {
  const f = await fixture();
  const expired = await f.ca.issue("expired", { days: -1 });
  const pem = {
    cert: await Deno.readTextFile(expired.cert),
    key: await Deno.readTextFile(expired.key),
    ca: [],
  };
  const server = await echo(pem);
  const other = await createTestCa(`${f.dir}/other`, "other-ca");
  const client = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  const otherClient = await startTlsClient({ cas: [other.cert] }, { logger });
  const good = await echo(await serverTls(f));
  try {
    await assert.rejects(() => client.transport(new URL(url(server)), {}), /expired/);
    await assert.rejects(
      () => otherClient.transport(new URL(url(good)), {}),
      /unable to (get|verify)|self.signed|UnknownIssuer|certificate/i,
    );
    // The listener keeps serving others after refusing one.
    assert.equal(await text(await client.transport(new URL(url(good)), {})), "200 GET 0");
  } finally {
    await Promise.all([client.close(), otherClient.close()]);
    await server.shutdown();
    await good.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: a plaintext request to a TLS port is refused and counted", async () => {
  const f = await fixture();
  const reasons: string[] = [];
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    tls: await serverTls(f),
    handler: () => Promise.resolve(new Response("ok")),
    onLimit: (reason) => reasons.push(reason),
  });
  const client = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  try {
    await assert.rejects(() => fetch(url(server)));
    assert.equal(server.stats.closed.tls_handshake, 1);
    assert.deepEqual(reasons, ["tls_handshake"]);
    assert.equal(await text(await client.transport(new URL(url(server)), {})), "200 ok");
  } finally {
    await client.close();
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: the client never falls back to plaintext", async () => {
  const f = await fixture();
  const plain = await echo(undefined);
  const client = await startTlsClient({ cas: [f.ca.cert] }, { logger });
  try {
    await assert.rejects(() => client.transport(new URL(url(plain)), {}));
  } finally {
    await client.close();
    await plain.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: streamed request bodies, response streams and aborts", async () => {
  const f = await fixture();
  const server = await echo(await serverTls(f));
  const client: TlsClient = await startTlsClient({ cas: [f.ca.cert], identity: f.client }, {
    logger,
  });
  try {
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 64) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const res = await client.transport(new URL(url(server)), { method: "PATCH", body });
    assert.equal(await text(res), `200 PATCH ${64 * chunk.length}`);
    const head = await client.transport(new URL(url(server)), { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    const controller = new AbortController();
    controller.abort(new Error("gave up"));
    await assert.rejects(
      () => client.transport(new URL(url(server)), { signal: controller.signal }),
      /gave up/,
    );
  } finally {
    await client.close();
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: setTls swaps the certificate for new connections", async () => {
  const f = await fixture();
  const server = await echo(await serverTls(f));
  const next = await f.ca.issue("next");
  const subject = () =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: server.addr.port,
        ca: Deno.readTextFileSync(f.ca.cert),
      }, () => {
        resolve(String(socket.getPeerCertificate().subject.CN));
        socket.end();
      });
      socket.once("error", reject);
    });
  try {
    assert.equal(await subject(), "server");
    server.setTls(await serverTls(f, next));
    assert.equal(await subject(), "next");
  } finally {
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

externalTest("tls: replaced client certificate files are used for new connections", async () => {
  const f = await fixture();
  const server = await echo(await serverTls(f, f.server, true));
  const other = await createTestCa(`${f.dir}/other`, "other-ca");
  const foreign = await other.issue("foreign", { client: true });
  const live = { cert: `${f.dir}/live.crt`, key: `${f.dir}/live.key` };
  await Deno.copyFile(foreign.cert, live.cert);
  await Deno.copyFile(foreign.key, live.key);
  const client = await startTlsClient({ cas: [f.ca.cert], identity: live }, { logger });
  const put = async () => {
    const res = await client.transport(new URL(url(server)), { method: "PUT", body: "x" });
    await res.body?.cancel();
    return res.status;
  };
  try {
    assert.equal(await put(), 403);
    const member = await f.ca.issue("member", { client: true });
    await Deno.copyFile(member.key, `${live.key}.tmp`);
    await Deno.copyFile(member.cert, `${live.cert}.tmp`);
    await Deno.rename(`${live.key}.tmp`, live.key);
    await Deno.rename(`${live.cert}.tmp`, live.cert);
    const deadline = Date.now() + 10_000;
    let status = 403;
    while (status === 403 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      status = await put();
    }
    assert.equal(status, 200);
  } finally {
    await client.close();
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});
