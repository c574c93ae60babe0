import assert from "node:assert/strict";
import { NetworkList, parseAddress, parseCidr } from "./cidr.ts";

Deno.test("parseCidr parses IPv4 and IPv6 networks and masks host bits", () => {
  assert.deepEqual(parseCidr("10.1.2.3/8"), { family: 4, words: [0x0a000000], prefix: 8 });
  assert.deepEqual(parseCidr("192.168.0.1"), { family: 4, words: [0xc0a80001], prefix: 32 });
  assert.deepEqual(parseCidr("::1/128"), { family: 6, words: [0, 0, 0, 1], prefix: 128 });
  assert.deepEqual(parseCidr("fd00::/8"), { family: 6, words: [0xfd000000, 0, 0, 0], prefix: 8 });
  assert.deepEqual(parseCidr("::ffff:10.0.0.0/104"), { family: 4, words: [0x0a000000], prefix: 8 });
  for (
    const bad of ["10.0.0.0/33", "256.0.0.1", "10.0.0/8", "::1/129", "1::2::3", "x", "10.0.0.1/"]
  ) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

Deno.test("parseAddress treats IPv4-mapped IPv6 as IPv4 and strips brackets and zones", () => {
  assert.deepEqual(parseAddress("::ffff:127.0.0.1"), { family: 4, words: [0x7f000001] });
  assert.deepEqual(parseAddress("[::1]"), { family: 6, words: [0, 0, 0, 1] });
  assert.deepEqual(parseAddress("fe80::1%eth0"), { family: 6, words: [0xfe800000, 0, 0, 1] });
  assert.equal(parseAddress("example.com"), undefined);
});

Deno.test("NetworkList.contains matches by prefix and family", () => {
  const list = NetworkList.parse(["10.0.0.0/8", "fd00::/8", "192.168.1.7"]);
  assert.equal(list.size, 3);
  assert.equal(list.contains("10.200.3.4"), true);
  assert.equal(list.contains("10.200.3.4"), true, "repeat answer from the one-entry cache");
  assert.equal(list.contains("11.0.0.1"), false);
  assert.equal(list.contains("::ffff:10.9.9.9"), true);
  assert.equal(list.contains("fd12::5"), true);
  assert.equal(list.contains("fe80::1"), false);
  assert.equal(list.contains("192.168.1.7"), true);
  assert.equal(list.contains("192.168.1.8"), false);
  assert.equal(list.contains("not-an-ip"), false);
  assert.equal(new NetworkList([]).contains("127.0.0.1"), false);
  assert.equal(NetworkList.parse(["0.0.0.0/0"]).contains("8.8.8.8"), true);
  assert.throws(
    () => NetworkList.parse(["10.0.0.0/8", "bogus"]),
    /not a valid CIDR network: "bogus"/,
  );
});
