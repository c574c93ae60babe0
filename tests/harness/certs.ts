/**
 * Test certificates made at test time with `openssl` (from apt, see scripts/setup.sh): a CA and
 * the server and client certificates it signs, as PEM files in a directory. Keys are ECDSA P-256
 * (fast to make); a key may be encrypted with a passphrase (PKCS#8, or the legacy
 * `Proc-Type: 4,ENCRYPTED` form upstream's Go code reads). A certificate may be made already
 * expired. Tests using it start processes, so they are `externalTest`s.
 *
 * ```ts
 * const ca = await createTestCa(`${dir}/ca`);
 * const server = await ca.issue("server", { dns: ["localhost"], ips: ["127.0.0.1"] });
 * const client = await ca.issue("client", { client: true, passphrase: "secret" });
 * ```
 *
 * @module
 */

/** Files of one issued certificate. */
export interface IssuedCert {
  /** Certificate (PEM). */
  cert: string;
  /** Private key (PEM; encrypted when a passphrase was given). */
  key: string;
  /** File holding the passphrase, when the key is encrypted. */
  passphrase?: string;
}

/** Options of {@linkcode TestCa.issue}. */
export interface IssueOptions {
  /** DNS names of the subjectAltName. Default `["localhost"]` for server certificates. */
  dns?: string[];
  /** IP addresses of the subjectAltName. Default `["127.0.0.1", "127.0.0.2"]` for servers. */
  ips?: string[];
  /** A client certificate (clientAuth usage, no names). */
  client?: boolean;
  /** Encrypt the key with this passphrase. */
  passphrase?: string;
  /** Encryption format of the key: `pkcs8` (default) or `legacy` (`Proc-Type: 4,ENCRYPTED`). */
  keyFormat?: "pkcs8" | "legacy";
  /** Validity in days; a negative number makes a certificate that already expired. Default 2. */
  days?: number;
}

/** A test CA in a directory. */
export interface TestCa {
  /** The CA certificate (PEM). */
  readonly cert: string;
  /** Issues a certificate named `name` (files `<name>.crt`, `<name>.key` in the CA's directory). */
  issue(name: string, options?: IssueOptions): Promise<IssuedCert>;
}

async function openssl(args: string[], stdin?: string): Promise<void> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Makes a self-signed CA named `name` in `dir` (created). */
export async function createTestCa(dir: string, name = "kraken-test-ca"): Promise<TestCa> {
  await Deno.mkdir(dir, { recursive: true });
  const cert = `${dir}/ca.crt`;
  const key = `${dir}/ca.key`;
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "3",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  ]); // deno-fmt-ignore
  return {
    cert,
    async issue(certName, options = {}) {
      const base = `${dir}/${certName}`;
      const ext = `${base}.ext`;
      const lines = ["basicConstraints=CA:FALSE"];
      if (options.client) {
        lines.push("extendedKeyUsage=clientAuth");
      } else {
        const dns = options.dns ?? ["localhost"];
        const ips = options.ips ?? ["127.0.0.1", "127.0.0.2"];
        const names = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)];
        lines.push("extendedKeyUsage=serverAuth");
        if (names.length > 0) lines.push(`subjectAltName=${names.join(",")}`);
      }
      await Deno.writeTextFile(ext, lines.join("\n") + "\n");
      const plainKey = `${base}.plain.key`;
      await openssl([
        "req", ...EC, "-keyout", plainKey, "-out", `${base}.csr`, "-subj", `/CN=${certName}`,
      ]); // deno-fmt-ignore
      await openssl([
        "x509", "-req", "-in", `${base}.csr`, "-CA", cert, "-CAkey", key, "-CAcreateserial",
        "-out", `${base}.crt`, "-days", String(options.days ?? 2), "-extfile", ext,
      ]); // deno-fmt-ignore
      const out: IssuedCert = { cert: `${base}.crt`, key: `${base}.key` };
      if (options.passphrase === undefined) {
        await Deno.rename(plainKey, out.key);
        return out;
      }
      out.passphrase = `${base}.pass`;
      await Deno.writeTextFile(out.passphrase, `${options.passphrase}\n`);
      await openssl(
        options.keyFormat === "legacy"
          ? ["ec", "-in", plainKey, "-aes256", "-passout", `file:${out.passphrase}`, "-out", out.key]
          : ["pkey", "-in", plainKey, "-aes256", "-passout", `file:${out.passphrase}`, "-out", out.key],
      );
      await Deno.remove(plainKey);
      return out;
    },
  };
}
