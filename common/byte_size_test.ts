import assert from "node:assert/strict";
import { parseByteSize } from "./byte_size.ts";

Deno.test("parseByteSize uses binary units", () => {
  assert.equal(parseByteSize("4MB"), 4194304);
  assert.equal(parseByteSize("4MiB"), 4194304);
  assert.equal(parseByteSize("4 mb"), 4194304);
  assert.equal(parseByteSize("1KB"), 1024);
  assert.equal(parseByteSize("2GB"), 2 * 2 ** 30);
  assert.equal(parseByteSize("1TB"), 2 ** 40);
  assert.equal(parseByteSize("0"), 0);
  assert.equal(parseByteSize("17B"), 17);
  assert.equal(parseByteSize(123), 123);
  for (const bad of ["", "MB", "-1MB", "1.5MB", "4XB", "4 M B", "9999999999PB"]) {
    assert.throws(() => parseByteSize(bad), RangeError, bad);
  }
  assert.throws(() => parseByteSize(-1), RangeError);
  assert.throws(() => parseByteSize(0.5), RangeError);
});
