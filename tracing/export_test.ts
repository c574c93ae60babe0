import assert from "node:assert/strict";
import { ExportResultCode } from "@opentelemetry/core";
import type { ExportResult } from "@opentelemetry/core";
import { ExportTimeoutError, OtlpHttpExporter } from "./export.ts";

/** A TCP listener that accepts connections and never answers (a hung collector). */
function hungCollector() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/v1/traces`,
    get connections() {
      return conns.length;
    },
    async close() {
      listener.close();
      for (const c of conns) c.close();
      await accepting;
    },
  };
}

function exportOnce(exporter: OtlpHttpExporter): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export([], resolve));
}

Deno.test("exporter: a collector that never answers fails the export within one timeout, retries included", async () => {
  const collector = hungCollector();
  const exporter = new OtlpHttpExporter({ url: collector.url, timeoutMs: 300, maxAttempts: 3 });
  try {
    const started = performance.now();
    const result = await exportOnce(exporter);
    const ms = performance.now() - started;
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(result.error instanceof ExportTimeoutError, String(result.error));
    assert.equal(result.error.message, "export timed out after 300 ms");
    // One timeout bounds the whole export, not each of the three attempts.
    assert.ok(ms >= 290 && ms < 800, `export took ${ms.toFixed(0)} ms`);
  } finally {
    await exporter.shutdown();
    await collector.close();
  }
});

Deno.test("exporter: fast failures are retried within the timeout and are not timeouts", async () => {
  let attempts = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    attempts++;
    return new Response("busy", { status: 503 });
  });
  const exporter = new OtlpHttpExporter({
    url: `http://127.0.0.1:${server.addr.port}/v1/traces`,
    timeoutMs: 5000,
    maxAttempts: 3,
    backoffMs: 10,
  });
  try {
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(!(result.error instanceof ExportTimeoutError));
    assert.match(String(result.error?.message), /collector answered 503/);
    assert.equal(attempts, 3);
  } finally {
    await exporter.shutdown();
    await server.shutdown();
  }
});
