import assert from "node:assert/strict";
import { createLogger, errorFields, rateLimited } from "./log.ts";

function capture(options: Partial<Parameters<typeof createLogger>[0]> = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    role: "test",
    level: "debug",
    write: (l) => lines.push(JSON.parse(l)),
    ...options,
  });
  return { logger, lines };
}

Deno.test("log: an error field keeps its name, message and stack", () => {
  const { logger, lines } = capture();
  const error = new TypeError("boom");
  logger.error("request failed", { error });
  const logged = lines[0].error as Record<string, unknown>;
  assert.equal(logged.name, "TypeError");
  assert.equal(logged.message, "boom");
  assert.equal(logged.stack, error.stack);
  assert.match(String(logged.stack), /log_test\.ts/);
});

Deno.test("log: an error's cause chain is logged, bounded for cycles", () => {
  const inner = new Error("disk full");
  const outer = new Error("write failed", { cause: inner });
  const { logger, lines } = capture();
  logger.warn("x", { error: outer });
  const logged = lines[0].error as { cause: { message: string } };
  assert.equal(logged.cause.message, "disk full");
  const a = new Error("a");
  const b = new Error("b", { cause: a });
  a.cause = b;
  const fields = JSON.stringify(errorFields(a));
  assert.ok(fields.length < 10_000);
});

Deno.test("log: contextFields are read for every line, bound fields win over them", () => {
  let n = 0;
  const { logger, lines } = capture({ contextFields: () => ({ trace_id: `t${++n}` }) });
  logger.info("one");
  logger.with({ conn: 7 }).info("two", { digest: "sha256:x" });
  assert.equal(lines[0].trace_id, "t1");
  assert.equal(lines[1].trace_id, "t2");
  assert.equal(lines[1].conn, 7);
  assert.equal(lines[1].digest, "sha256:x");
  assert.equal(lines[1].role, "test");
  assert.equal(lines[1].level, "info");
  assert.equal(lines[1].msg, "two");
});

Deno.test("log: lines below the level are dropped", () => {
  const { logger, lines } = capture({ level: "warn" });
  logger.info("quiet");
  logger.warn("loud");
  assert.deepEqual(lines.map((l) => l.msg), ["loud"]);
});

Deno.test("log: rateLimited counts the suppressed calls", () => {
  let t = 0;
  const out: [string, Record<string, unknown>][] = [];
  const log = rateLimited(1000, (m, f) => out.push([m, f]), () => t);
  log("a");
  log("b");
  log("c");
  t = 1000;
  log("d", { x: 1 });
  assert.deepEqual(out, [["a", {}], ["d", { x: 1, suppressed: 2 }]]);
});
