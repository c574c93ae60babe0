import assert from "node:assert/strict";
import { HttpStatusError } from "./status_error.ts";

Deno.test("HttpStatusError keeps status and body and names the request in its message", () => {
  const withBody = new HttpStatusError("GET", "http://o:1/blobs/x", 500, "disk full");
  assert.equal(withBody.message, "GET http://o:1/blobs/x: status 500: disk full");
  assert.equal(withBody.status, 500);
  assert.equal(withBody.body, "disk full");
  assert.equal(withBody.name, "HttpStatusError");
  assert.ok(withBody instanceof Error);

  const statusOnly = new HttpStatusError("HEAD", "http://o:1/blobs/x", 404, "");
  assert.equal(statusOnly.message, "HEAD http://o:1/blobs/x: status 404");
  assert.equal(statusOnly.body, "");
});
