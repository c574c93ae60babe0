/**
 * IP networks in CIDR notation and membership tests, for the trust boundary's
 * `trusted_networks`. IPv4 and IPv6 are supported; an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack listener reports for an IPv4 client) is matched as the IPv4
 * address it carries.
 *
 * @module
 */

/** A parsed network: its family, the address as 32-bit words (1 for IPv4, 4 for IPv6), prefix. */
export interface Network {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Address words, big-endian, already masked to the prefix. */
  readonly words: readonly number[];
  /** Prefix length in bits. */
  readonly prefix: number;
}

function parseIpv4Words(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return [value];
}

function parseIpv6Words(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const pieces = half.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        // An embedded IPv4 tail (::ffff:1.2.3.4) supplies the last two groups.
        const v4 = parseIpv4Words(piece);
        if (!v4) return undefined;
        out.push(Math.floor(v4[0] / 65536), v4[0] % 65536);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push(all[i] * 65536 + all[i + 1]);
  return words;
}

/**
 * Parses an IP address (IPv4, IPv6, optionally bracketed or with a `%zone`) into its family and
 * words; IPv4-mapped IPv6 addresses come back as IPv4. Returns `undefined` for anything else.
 */
export function parseAddress(text: string): { family: 4 | 6; words: number[] } | undefined {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  if (!t.includes(":")) {
    const v4 = parseIpv4Words(t);
    return v4 && { family: 4, words: v4 };
  }
  const v6 = parseIpv6Words(t);
  if (!v6) return undefined;
  if (v6[0] === 0 && v6[1] === 0 && v6[2] === 0xffff) return { family: 4, words: [v6[3]] };
  return { family: 6, words: v6 };
}

function maskWord(word: number, bits: number): number {
  if (bits >= 32) return word;
  if (bits <= 0) return 0;
  const keep = 2 ** 32 - 2 ** (32 - bits);
  // Both operands are below 2^32, so the unsigned AND via >>> 0 is exact.
  return (word & keep) >>> 0;
}

/**
 * Parses `address/prefix` (a bare address means a single host). Returns `undefined` when the text
 * is not a valid network.
 */
export function parseCidr(text: string): Network | undefined {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const parsed = parseAddress(addressText);
  if (!parsed) return undefined;
  const family: 4 | 6 = addressText.includes(":") ? 6 : 4;
  const maxBits = family === 4 ? 32 : 128;
  let prefix = maxBits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > maxBits) return undefined;
  }
  if (parsed.family === 4 && family === 6) {
    // ::ffff:a.b.c.d/n written as IPv6: express it as the IPv4 network it denotes.
    if (prefix < 96) return undefined;
    prefix -= 96;
  }
  const words = parsed.words.map((w, i) => maskWord(w, prefix - i * 32));
  return { family: parsed.family, words, prefix };
}

/** A list of networks with a membership test. */
export class NetworkList {
  readonly #networks: readonly Network[];
  #lastAddress: string | undefined;
  #lastResult = false;

  /** Creates a list from parsed networks (see {@linkcode parseCidr}). */
  constructor(networks: readonly Network[]) {
    this.#networks = networks;
  }

  /** Parses CIDR strings; throws a `RangeError` naming the first invalid one. */
  static parse(cidrs: readonly string[]): NetworkList {
    return new NetworkList(cidrs.map((text) => {
      const network = parseCidr(text);
      if (!network) throw new RangeError(`not a valid CIDR network: ${JSON.stringify(text)}`);
      return network;
    }));
  }

  /** Number of networks. */
  get size(): number {
    return this.#networks.length;
  }

  /** True when `address` lies in one of the networks; unparsable addresses are not members. */
  contains(address: string): boolean {
    if (this.#networks.length === 0) return false;
    // Requests from one client tend to come in runs; remembering the last answer skips reparsing.
    if (address === this.#lastAddress) return this.#lastResult;
    const parsed = parseAddress(address);
    let result = false;
    if (parsed) {
      for (const network of this.#networks) {
        if (network.family !== parsed.family) continue;
        let match = true;
        for (let i = 0; i < network.words.length && match; i++) {
          match = maskWord(parsed.words[i], network.prefix - i * 32) === network.words[i];
        }
        if (match) {
          result = true;
          break;
        }
      }
    }
    this.#lastAddress = address;
    this.#lastResult = result;
    return result;
  }
}
