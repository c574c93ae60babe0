import assert from "node:assert/strict";
import { createLogger } from "../common/log.ts";
import { logServerErrors } from "./middleware.ts";
import { HttpError, Router } from "./router.ts";

Deno.test("logServerErrors: a 5xx is logged once with route, status and the error's stack", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ role: "test", write: (l) => lines.push(JSON.parse(l)) });
  const router = new Router().use(logServerErrors(logger));
  router.get("/blobs/{digest}", () => {
    throw new Error("disk on fire");
  });
  router.get("/missing", () => {
    throw new HttpError(404, "no such blob");
  });
  const failed = await router.handle(new Request("http://h/blobs/sha256:abc"));
  assert.equal(failed.status, 500);
  const missing = await router.handle(new Request("http://h/missing"));
  assert.equal(missing.status, 404);
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line.msg, "request failed");
  assert.equal(line.method, "GET");
  assert.equal(line.route, "/blobs/{digest}");
  assert.equal(line.status, 500);
  const error = line.error as Record<string, string>;
  assert.equal(error.message, "disk on fire");
  assert.match(error.stack, /disk on fire\n\s+at /);
  assert.match(error.stack, /middleware_test\.ts/);
});
