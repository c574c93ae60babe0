/**
 * OTLP export over TLS to a real Jaeger whose receivers use a test CA (made with `openssl`): the
 * files named by `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_CLIENT_CERTIFICATE` and `…_CLIENT_KEY`
 * reach both transports; gRPC with mTLS is refused without the client pair, and the test CA is
 * not trusted unless named.
 */

import assert from "node:assert/strict";
import { ExportResultCode } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, type SpanExporter } from "@opentelemetry/sdk-trace";
import { parseTracingConfig } from "../tracing/config.ts";
import type { PartialExportResult } from "../tracing/export.ts";
import { otlpExporter } from "../tracing/setup.ts";
import type { RecordingSpan } from "../tracing/span.ts";
import { KrakenTracerProvider } from "../tracing/tracer.ts";
import { startJaeger } from "./harness/jaeger.ts";

const tracer = new KrakenTracerProvider({
  resource: resourceFromAttributes({ "service.name": "kraken-tls" }),
  sampler: new AlwaysOnSampler(),
  sink: { onEnd() {} },
}).getTracer("tls-test");

/** Exports one fresh span; resolves with the result and the span's trace id. */
async function exportOne(exporter: SpanExporter, name: string) {
  const span = tracer.startSpan(name) as RecordingSpan;
  span.end();
  const result = await new Promise<PartialExportResult>((resolve) =>
    exporter.export([span], resolve)
  );
  await exporter.shutdown();
  return { result, traceId: span.spanContext().traceId };
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped", stdout: "null" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, in `dir`. */
async function testPki(dir: string) {
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=kraken test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  );
  await Deno.writeTextFile(`${dir}/server.ext`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  // Any extension makes an X.509 v3 certificate; rustls (under fetch) refuses v1.
  await Deno.writeTextFile(`${dir}/client.ext`, "extendedKeyUsage=clientAuth\n");
  for (const name of ["server", "client"]) {
    await openssl(
      dir,
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    );
    await openssl(
      dir,
      ...["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key"],
      ...["-CAcreateserial", "-days", "1", "-out", `${name}.pem`],
      ...["-extfile", `${name}.ext`],
    );
  }
  return { ca: `${dir}/ca.pem`, dir };
}

Deno.test("OTLP over TLS: gRPC with mTLS and HTTP with the test CA reach a TLS Jaeger", async () => {
  const pki = await testPki(await Deno.makeTempDir({ prefix: "kraken-otlp-tls-" }));
  try {
    await using jaeger = await startJaeger({
      tls: {
        certFile: `${pki.dir}/server.pem`,
        keyFile: `${pki.dir}/server.key`,
        clientCaFile: pki.ca,
      },
    });
    const exporter = (env: Record<string, string>) =>
      otlpExporter(
        parseTracingConfig({ export: { retry_max_attempts: 1, timeout: "5s" } }, "a", env),
      );
    const client = {
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: `${pki.dir}/client.pem`,
      OTEL_EXPORTER_OTLP_CLIENT_KEY: `${pki.dir}/client.key`,
    };
    // A host name: Deno's node:tls (under grpc-js) refuses an IP address as the server name.
    const grpcEnv = {
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_ENDPOINT: `https://localhost:${jaeger.ports.otlpGrpc}`,
      OTEL_EXPORTER_OTLP_CERTIFICATE: pki.ca,
    };
    const httpEnv = {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${jaeger.otlpHttpEndpoint}/v1/traces`,
      OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: pki.ca,
    };

    const grpc = await exportOne(exporter({ ...grpcEnv, ...client }), "tls.grpc");
    assert.equal(grpc.result.code, ExportResultCode.SUCCESS, String(grpc.result.error));
    const http = await exportOne(exporter({ ...httpEnv, ...client }), "tls.http");
    assert.equal(http.result.code, ExportResultCode.SUCCESS, String(http.result.error));
    for (const { traceId } of [grpc, http]) {
      const tree = await jaeger.waitForTrace(traceId, { timeoutMs: 15_000 });
      assert.equal(tree.spans[0].service, "kraken-tls");
    }

    const noClientPair = await exportOne(exporter(grpcEnv), "tls.anonymous");
    assert.equal(noClientPair.result.code, ExportResultCode.FAILED);
    assert.match(String(noClientPair.result.error), /UNAVAILABLE/);
    const untrustedCa = await exportOne(
      exporter({
        ...client,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpEnv.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
      }),
      "tls.untrusted",
    );
    assert.equal(untrustedCa.result.code, ExportResultCode.FAILED, "the test CA is no system root");
    assert.equal(await jaeger.getTrace(noClientPair.traceId), undefined);
    assert.equal(await jaeger.getTrace(untrustedCa.traceId), undefined);

    // An unreadable file fails start-up naming the setting.
    assert.throws(
      () =>
        exporter({ ...httpEnv, OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: `${pki.dir}/missing.pem` }),
      /OTEL_EXPORTER_OTLP_CERTIFICATE .*cannot read/,
    );
  } finally {
    await Deno.remove(pki.dir, { recursive: true });
  }
});
