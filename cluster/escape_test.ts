import assert from "node:assert/strict";
import { pathEscape } from "./escape.ts";

Deno.test("pathEscape: Go url.PathEscape rules", () => {
  assert.equal(pathEscape("library/ubuntu"), "library%2Fubuntu");
  assert.equal(pathEscape("library/ubuntu:latest"), "library%2Fubuntu:latest");
  assert.equal(pathEscape("TODO"), "TODO");
  // Kept: unreserved marks and the reserved characters a segment may carry.
  assert.equal(pathEscape("a-b_c.d~e$f&g+h:i=j@k"), "a-b_c.d~e$f&g+h:i=j@k");
  // Escaped with uppercase hex: separators, space, percent, and non-ASCII as UTF-8 bytes.
  assert.equal(pathEscape("a;b,c?d e%f"), "a%3Bb%2Cc%3Fd%20e%25f");
  assert.equal(pathEscape("../..%2Fetc"), "..%2F..%252Fetc");
  assert.equal(pathEscape("é#"), "%C3%A9%23");
  assert.equal(pathEscape(""), "");
});
