/**
 * Tests of the Go tool list reader.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cachedToolPath, readGoTools, toolBinary, toolOverrideVariable } from "./tools.ts";

Deno.test("tools: go-tools.tsv lists jaeger with a module, version and package", () => {
  const jaeger = readGoTools().find((t) => t.name === "jaeger");
  assert.equal(jaeger?.module, "github.com/jaegertracing/jaeger");
  assert.equal(jaeger?.package, "./cmd/jaeger");
});

Deno.test("tools: a malformed line is an error naming it", () => {
  assert.throws(() => readGoTools("# c\njaeger github.com/x\n"), /malformed line/);
});

Deno.test("tools: override variables and cache paths follow the install script", () => {
  assert.equal(toolOverrideVariable("fake-gcs-server"), "FAKE_GCS_SERVER_BIN");
  const { version } = readGoTools().find((t) => t.name === "jaeger")!;
  assert.equal(cachedToolPath("jaeger").endsWith(`/jaeger-${version}/jaeger`), true);
  assert.throws(() => toolBinary("jaeger", "/nonexistent/jaeger"), /scripts\/setup\.sh/);
  assert.throws(() => cachedToolPath("nope"), /lists no tool named nope/);
});
