/**
 * Certificates and keys from the files a `tls:` block names: {@linkcode loadKeyPair} reads a
 * certificate and its key (decrypting an encrypted PEM key with its passphrase file) and refuses,
 * with a message naming the key and file, a missing file, a wrong passphrase, a key that is not the
 * certificate's, or a certificate outside its validity period; {@linkcode loadCas} reads CA
 * bundles. {@linkcode TlsFileWatcher} calls back when any of the files changes or on SIGHUP, so a
 * role swaps certificates without a restart.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import type { KeyPairPaths } from "./tls_config.ts";

export type { KeyPairPaths } from "./tls_config.ts";

/** A certificate with its decrypted key, ready for `node:tls`. */
export interface KeyPair {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, unencrypted PKCS#8 PEM. */
  key: string;
  /** End of the leaf certificate's validity. */
  notAfter: Date;
  /** Subject of the leaf certificate (`CN=…`). */
  subject: string;
}

/** A certificate, key or CA file that cannot be used; the message names the key and the file. */
export class TlsFileError extends Error {
  /**
   * @param key dotted config key of the file (`tls.server.key.path`)
   * @param message what is wrong
   */
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = "TlsFileError";
  }
}

// Synchronous on purpose: the files are small, and backends are built during the (synchronous)
// configuration parse, where a bad file is a start-up error naming its key.
function readText(path: string, key: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new TlsFileError(key, `cannot read ${path}: ${(error as Error).message}`);
  }
}

function parseCertificate(pem: string, path: string, key: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsFileError(key, `${path} is not a PEM certificate: ${(error as Error).message}`);
  }
}

/**
 * Reads and checks a certificate and its key. `key` is the dotted key of the pair
 * (`tls.server`), used in messages.
 * @throws {TlsFileError} for an unreadable file, a key that does not decrypt or does not match, or
 *   a certificate not valid at `now`
 */
export function loadKeyPair(
  paths: KeyPairPaths,
  key: string,
  now: Date = new Date(),
): KeyPair {
  const certPem = readText(paths.cert, `${key}.cert.path`);
  const keyPem = readText(paths.key, `${key}.key.path`);
  const passphrase = paths.passphrase === undefined
    ? undefined
    : readText(paths.passphrase, `${key}.passphrase.path`).replace(/\r?\n$/, "");
  const cert = parseCertificate(certPem, paths.cert, `${key}.cert.path`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: keyPem, format: "pem", passphrase });
  } catch (error) {
    const encrypted = /ENCRYPTED/.test(keyPem);
    throw new TlsFileError(
      `${key}.key.path`,
      encrypted && passphrase === undefined
        ? `${paths.key} is encrypted and ${key}.passphrase.path is not set`
        : encrypted
        ? `cannot decrypt ${paths.key} with the passphrase in ${paths.passphrase} (wrong passphrase?)`
        : `${paths.key} is not a PEM private key: ${(error as Error).message}`,
    );
  }
  if (!cert.checkPrivateKey(privateKey)) {
    throw new TlsFileError(
      `${key}.key.path`,
      `${paths.key} is not the private key of the certificate in ${paths.cert}`,
    );
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore || now > notAfter) {
    throw new TlsFileError(
      `${key}.cert.path`,
      `the certificate in ${paths.cert} (${cert.subject}) is valid from ` +
        `${notBefore.toISOString()} to ${notAfter.toISOString()}, not now`,
    );
  }
  return {
    cert: certPem,
    key: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    notAfter,
    subject: cert.subject,
  };
}

/**
 * Reads CA bundles (PEM, one or more certificates each).
 * @throws {TlsFileError} for an unreadable file or one with no certificate
 */
export function loadCas(paths: readonly string[], key: string): string[] {
  const out: string[] = [];
  for (const [i, path] of paths.entries()) {
    const pem = readText(path, `${key}[${i}].path`);
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new TlsFileError(`${key}[${i}].path`, `${path} holds no PEM certificate`);
    }
    parseCertificate(pem, path, `${key}[${i}].path`);
    out.push(pem);
  }
  return out;
}

/** Options of {@linkcode TlsFileWatcher}. */
export interface TlsFileWatcherOptions {
  /** The files to watch (certificates, keys, passphrases, CAs). */
  files: readonly string[];
  /** Called after a file changed (size, modification time or inode) or on SIGHUP. */
  onChange: (reason: "file_changed" | "sighup") => Promise<void> | void;
  /** How often the files are looked at (default {@linkcode TLS_POLL_INTERVAL_MS}). */
  intervalMs?: number;
}

/** How often {@linkcode TlsFileWatcher} looks at the files by default. */
export const TLS_POLL_INTERVAL_MS = 1000;

function stamp(info: Deno.FileInfo | undefined): string {
  return info ? `${info.ino}:${info.size}:${info.mtime?.getTime()}` : "missing";
}

/**
 * Watches certificate files by polling their metadata (a rename onto the path, as secret managers
 * do, is seen too) and listens for SIGHUP; each change calls `onChange` once, never two at a time.
 */
export class TlsFileWatcher {
  readonly #options: TlsFileWatcherOptions;
  #stamps = new Map<string, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> = Promise.resolve();
  readonly #onSighup = () => this.#fire("sighup");

  /** Use {@linkcode TlsFileWatcher.start}. */
  private constructor(options: TlsFileWatcherOptions) {
    this.#options = options;
  }

  /** Records the files' current state and starts watching. */
  static async start(options: TlsFileWatcherOptions): Promise<TlsFileWatcher> {
    const watcher = new TlsFileWatcher(options);
    watcher.#stamps = await watcher.#read();
    watcher.#timer = setInterval(
      () => void watcher.#poll(),
      options.intervalMs ?? TLS_POLL_INTERVAL_MS,
    );
    Deno.addSignalListener("SIGHUP", watcher.#onSighup);
    return watcher;
  }

  async #read(): Promise<Map<string, string>> {
    const stamps = new Map<string, string>();
    for (const file of new Set(this.#options.files)) {
      stamps.set(file, stamp(await Deno.stat(file).catch(() => undefined)));
    }
    return stamps;
  }

  async #poll(): Promise<void> {
    const next = await this.#read();
    const changed = [...next].some(([file, s]) => this.#stamps.get(file) !== s);
    this.#stamps = next;
    if (changed) this.#fire("file_changed");
  }

  #fire(reason: "file_changed" | "sighup"): void {
    this.#running = this.#running.then(() => this.#options.onChange(reason)).catch(() => {});
  }

  /** Stops watching; waits for a reload under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    Deno.removeSignalListener("SIGHUP", this.#onSighup);
    await this.#running;
  }
}
