import assert from "node:assert/strict";
import { createTestCa } from "../tests/harness/certs.ts";
import { externalTest } from "../tests/harness/external.ts";
import { loadCas, loadKeyPair, TlsFileError, TlsFileWatcher } from "./tls.ts";

externalTest("loadKeyPair: plain, PKCS#8-encrypted and legacy-encrypted keys load", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-" });
  try {
    const ca = await createTestCa(dir);
    for (
      const issued of [
        await ca.issue("plain"),
        await ca.issue("pkcs8", { passphrase: "pw" }),
        await ca.issue("legacy", { passphrase: "pw", keyFormat: "legacy" }),
      ]
    ) {
      const pair = loadKeyPair(issued, "tls.server");
      assert.match(pair.key, /^-----BEGIN PRIVATE KEY-----/);
      assert.ok(pair.notAfter.getTime() > Date.now());
    }
    assert.equal((loadCas([ca.cert], "tls.cas")).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

externalTest("loadKeyPair: bad files are refused naming the key and the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-" });
  try {
    const ca = await createTestCa(dir);
    const locked = await ca.issue("locked", { passphrase: "right" });
    const other = await ca.issue("other");
    const expired = await ca.issue("expired", { days: -1 });
    await Deno.writeTextFile(`${dir}/wrong.pass`, "wrong\n");
    const refused = (paths: Parameters<typeof loadKeyPair>[0], pattern: RegExp) => {
      assert.throws(
        () => loadKeyPair(paths, "tls.server"),
        (e: unknown) => e instanceof TlsFileError && pattern.test(e.message),
      );
    };
    refused(
      { ...locked, passphrase: `${dir}/wrong.pass` },
      /^tls\.server\.key\.path: cannot decrypt .*locked\.key with the passphrase in .*wrong\.pass \(wrong passphrase\?\)/,
    );
    refused(
      { cert: locked.cert, key: locked.key },
      /tls\.server\.key\.path: .*locked\.key is encrypted and tls\.server\.passphrase\.path is not set/,
    );
    refused(
      { cert: locked.cert, key: other.key },
      /tls\.server\.key\.path: .*other\.key is not the private key of the certificate in .*locked\.crt/,
    );
    refused(
      expired,
      /tls\.server\.cert\.path: the certificate in .*expired\.crt \(CN=expired\) is valid from .* not now/,
    );
    refused(
      { cert: `${dir}/missing.crt`, key: other.key },
      /tls\.server\.cert\.path: cannot read .*missing\.crt/,
    );
    assert.throws(
      () => loadCas([other.key], "tls.cas"),
      /tls\.cas\[0\]\.path: .* holds no PEM certificate/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TlsFileWatcher: a replaced file and SIGHUP each call back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-tls-" });
  const file = `${dir}/cert.pem`;
  await Deno.writeTextFile(file, "one");
  const reasons: string[] = [];
  const watcher = await TlsFileWatcher.start({
    files: [file],
    intervalMs: 20,
    onChange: (reason) => {
      reasons.push(reason);
    },
  });
  try {
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(reasons, []);
    // A rename onto the path, as secret managers swap files.
    await Deno.writeTextFile(`${file}.new`, "two, longer");
    await Deno.rename(`${file}.new`, file);
    const deadline = Date.now() + 2000;
    while (reasons.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(reasons, ["file_changed"]);
    Deno.kill(Deno.pid, "SIGHUP");
    while (reasons.length === 1 && Date.now() < deadline + 2000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(reasons, ["file_changed", "sighup"]);
  } finally {
    await watcher.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
