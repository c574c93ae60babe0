import assert from "node:assert/strict";
import { ConfigError, Fields } from "./config.ts";

Deno.test("Fields.hostList checks every host:port and names the offending entry", () => {
  const f = new Fields({ hosts: ["a:1", "[::1]:2"], bad: ["a:1", "nope"], none: [] }, "origin");
  assert.deepEqual(f.hostList("hosts", true), ["a:1", "[::1]:2"]);
  assert.throws(
    () => f.hostList("bad", false),
    (e: unknown) => e instanceof ConfigError && /origin\.bad\[1\]/.test(e.message),
  );
  assert.deepEqual(f.hostList("none", false), []);
  assert.deepEqual(f.hostList("missing", false), []);
  assert.throws(() => f.hostList("none", true), /origin\.none.*at least one/);
  assert.throws(() => f.hostList("missing", true), /origin\.missing/);
});
