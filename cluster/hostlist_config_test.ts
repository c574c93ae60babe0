import assert from "node:assert/strict";
import { ConfigError } from "../common/config.ts";
import { docRows } from "../common/schema.ts";
import { hostListSchema, staticHosts } from "./hostlist_config.ts";

function refused(raw: unknown, message: string): void {
  assert.throws(() => hostListSchema().parse(raw, "tracker.hosts"), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("host list: a plain list and upstream's static: are the same static list", () => {
  const schema = hostListSchema();
  const expected = { kind: "static", hosts: ["a:1", "[::1]:2"] };
  assert.deepEqual(schema.parse(["a:1", "[::1]:2"], "k"), expected);
  assert.deepEqual(schema.parse({ static: ["a:1", "[::1]:2"] }, "k"), expected);
  assert.deepEqual(staticHosts(schema.parse(["a:1"], "k")), ["a:1"]);
});

Deno.test("host list: dns: name:port with upstream's 5s ttl default, or a given ttl", () => {
  const schema = hostListSchema();
  assert.deepEqual(schema.parse({ dns: "trackers.example:15003" }, "k"), {
    kind: "dns",
    hostname: "trackers.example",
    port: 15003,
    record: "trackers.example:15003",
    ttlMs: 5000,
  });
  const parsed = schema.parse({ dns: "o.example:15002", ttl: "30s" }, "k");
  assert.equal(parsed.kind === "dns" && parsed.ttlMs, 30_000);
  assert.equal(staticHosts(parsed), undefined);
});

Deno.test("host list: bad shapes are refused naming the key", () => {
  refused(["a:1", "nope"], 'tracker.hosts[1]: must be host:port, got "nope"');
  refused([], "tracker.hosts: needs at least one host:port");
  refused({ static: [] }, "tracker.hosts.static: needs at least one host:port");
  refused({ static: ["x"] }, 'tracker.hosts.static[0]: must be host:port, got "x"');
  refused(
    { dns: "no-port.example" },
    'tracker.hosts.dns: must be host:port, got "no-port.example"',
  );
  refused(
    { dns: "a.example:1", static: ["a:1"] },
    "tracker.hosts: has both static and dns; give one",
  );
  refused(
    {},
    "tracker.hosts: needs a list of host:port, static: [host:port, ...] or dns: name:port",
  );
  refused({ dns: "a.example:1", ttl: "0s" }, "tracker.hosts.ttl: must be longer than 0");
  refused({ dsn: "a.example:1" }, "tracker.hosts.dsn: unknown key (allowed: static, dns, ttl)");
  refused(undefined, "tracker.hosts: is required");
  assert.equal(hostListSchema().optional().parse(undefined, "k"), undefined);
});

Deno.test("host list: the docs show the static, dns and ttl rows", () => {
  assert.deepEqual(docRows(hostListSchema(), "tracker.hosts").map((r) => [r.key, r.default]), [
    ["tracker.hosts.static", "—"],
    ["tracker.hosts.dns", "—"],
    ["tracker.hosts.ttl", "`5s`"],
  ]);
});
