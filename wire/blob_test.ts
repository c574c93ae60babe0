import assert from "node:assert/strict";
import { DuplicateCommitError, encodeDuplicateCommit, parseDuplicateCommit } from "./blob.ts";

Deno.test("the duplicate commit body is Go's Delay in integer nanoseconds", () => {
  assert.equal(encodeDuplicateCommit(1.5), '{"Delay":1500000}');
  assert.equal(parseDuplicateCommit(JSON.parse(encodeDuplicateCommit(600_000))), 600_000);
  // Go matches keys case-insensitively; absent is 0; negative counts as 0.
  assert.equal(parseDuplicateCommit({ delay: 2e6 }), 2);
  assert.equal(parseDuplicateCommit({}), 0);
  assert.equal(parseDuplicateCommit({ Delay: -5 }), 0);
  assert.throws(() => parseDuplicateCommit([]), DuplicateCommitError);
  assert.throws(() => parseDuplicateCommit({ Delay: "1s" }), /integer nanoseconds/);
  assert.throws(() => parseDuplicateCommit({ Delay: 1.5 }), /integer nanoseconds/);
});
