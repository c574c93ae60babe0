/**
 * Host lists, as upstream Kraken configures the members of another cluster: a fixed list of
 * `host:port` addresses, or a DNS name whose addresses (with the configured port) are the members,
 * re-resolved every `ttl`. A failed re-resolution keeps the last good list and is logged at a
 * bounded rate; the first resolution must succeed, so a node never starts with no members.
 *
 * Clients take a {@linkcode HostSource}: a plain array (tests, fixed lists) or a
 * {@linkcode HostList}, and read {@linkcode currentHosts} on each call. A list's `hosts` array keeps
 * its identity until the membership changes, so a client can rebuild derived state (a hash ring, a
 * pool of per-host clients) only when `hosts !== last`.
 *
 * @example
 * ```ts
 * import { openHostList } from "./hostlist.ts";
 * const trackers = await openHostList({ kind: "dns", hostname: "trackers.example", port: 15003,
 *   record: "trackers.example:15003", ttlMs: 5000 });
 * trackers.hosts; // ["10.0.0.7:15003", "10.0.0.8:15003"]
 * trackers.stop();
 * ```
 *
 * @module
 */

import { isIP } from "node:net";
import { type Logger, rateLimited } from "../common/log.ts";
import { systemTimers, type Timers } from "../common/timers.ts";
import type { MetricsRegistry } from "../tracing/mod.ts";

/** A host list as configured (`cluster/hostlist_config.ts` parses it). */
export type HostListConfig =
  | {
    /** Fixed members. */
    kind: "static";
    /** `host:port` each, as written. */
    hosts: string[];
  }
  | {
    /** Members are the addresses of a DNS name. */
    kind: "dns";
    /** The name resolved. */
    hostname: string;
    /** Port attached to each address. */
    port: number;
    /** The `name:port` record as written (what a "stable address" of the cluster is). */
    record: string;
    /** Time between re-resolutions. */
    ttlMs: number;
  };

/** Resolves a name to its IP addresses (IPv4 and IPv6, no port). */
export type Resolver = (hostname: string) => Promise<string[]>;

/** The lookup {@linkcode dnsResolver} asks (`Deno.resolveDns`'s shape for A and AAAA). */
export type AddressLookup = (hostname: string, type: "A" | "AAAA") => Promise<string[]>;

/**
 * A resolver over `lookup`: an IP literal is itself; otherwise the name's A records, or its AAAA
 * records when it has no A record (a failed A lookup is a failure, not a reason to use AAAA).
 * A dual-stack host is listed once (a ring must not hold one
 * node under two labels), and IPv4 is what Go nodes can use (upstream's list cannot attach a port
 * to an IPv6 address).
 */
export function dnsResolver(lookup: AddressLookup = (name, type) => Deno.resolveDns(name, type)) {
  return async (hostname: string): Promise<string[]> => {
    if (isIP(hostname)) return [hostname];
    let failure: unknown;
    for (const type of ["A", "AAAA"] as const) {
      try {
        const found = await lookup(hostname, type);
        if (found.length > 0) return found;
      } catch (error) {
        // Only "no such record" moves on to AAAA: a failed A lookup must not swap a dual-stack
        // cluster's labels for its IPv6 ones.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        failure ??= error;
      }
    }
    throw failure ?? new Error(`no A or AAAA records for ${hostname}`);
  };
}

/** {@linkcode dnsResolver} over `Deno.resolveDns` (which also reads the hosts file). */
export const systemResolver: Resolver = dnsResolver();

/** A live list of `host:port` members. */
export interface HostList {
  /**
   * The current members (a static list as written, a resolved one sorted); the same array until
   * the membership changes.
   */
  readonly hosts: readonly string[];
  /** What the list was configured as: the static members joined by `,`, or the DNS record. */
  readonly source: string;
  /** The DNS `name:port` record, or undefined for a static list. */
  readonly record: string | undefined;
  /** Stops re-resolving (a static list has nothing to stop). */
  stop(): void;
}

/** What a client accepts as its members: a fixed array or a {@linkcode HostList}. */
export type HostSource = readonly string[] | HostList;

/** The members of `source` now. */
export function currentHosts(source: HostSource): readonly string[] {
  return isHostList(source) ? source.hosts : source;
}

function isHostList(source: HostSource): source is HostList {
  return !Array.isArray(source);
}

/** Options of {@linkcode openHostList}. */
export interface OpenHostListOptions {
  /** Name resolution (default {@linkcode systemResolver}). */
  resolve?: Resolver;
  /** Where failed re-resolutions and membership changes are logged. */
  logger?: Logger;
  /** Timers of the refresh (default {@linkcode systemTimers}). */
  timers?: Timers;
  /** Least time between two logged re-resolution failures (default 60 s). */
  failureLogIntervalMs?: number;
  /** Called after every membership change (a re-resolution that found other addresses). */
  onChange?: (hosts: readonly string[]) => void;
  /**
   * Where `kraken_hostlist_members{hostlist}` and (DNS lists)
   * `kraken_hostlist_resolution_failures_total{hostlist}` are registered, labelled with `name`.
   */
  metrics?: MetricsRegistry;
  /** The list's name in metrics (default `hosts`); {@linkcode openHostLists} passes its key. */
  name?: string;
}

function registerMembers(list: HostList, options: OpenHostListOptions): void {
  options.metrics?.gauge(
    "kraken_hostlist_members",
    "Members of a host list now (a DNS list: addresses of its last good resolution).",
    () => list.hosts.length,
    { hostlist: options.name ?? "hosts" },
  );
}

/** A fixed list. */
export function staticHostList(hosts: readonly string[]): HostList {
  return { hosts: [...new Set(hosts)], source: hosts.join(","), record: undefined, stop() {} };
}

/**
 * Opens a host list: a static one at once; a DNS one after its first resolution, which must
 * succeed with at least one address.
 * @throws {Error} naming the record when the first resolution fails or finds nothing
 */
export async function openHostList(
  config: HostListConfig,
  options: OpenHostListOptions = {},
): Promise<HostList> {
  if (config.kind === "static") {
    const list = staticHostList(config.hosts);
    registerMembers(list, options);
    return list;
  }
  const list = new DnsHostList(config, options);
  await list.refresh({ initial: true });
  registerMembers(list, options);
  list.start();
  return list;
}

function withPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((h, i) => h === b[i]);
}

class DnsHostList implements HostList {
  readonly #config: Extract<HostListConfig, { kind: "dns" }>;
  readonly #resolve: Resolver;
  readonly #logger?: Logger;
  readonly #timers: Timers;
  readonly #onChange?: (hosts: readonly string[]) => void;
  readonly #logFailure: (msg: string, fields?: Record<string, unknown>) => void;
  readonly #failures?: { inc(by?: number): void };
  #hosts: readonly string[] = [];
  #timer: number | undefined;
  #inFlight = false;

  constructor(config: Extract<HostListConfig, { kind: "dns" }>, options: OpenHostListOptions) {
    this.#config = config;
    this.#resolve = options.resolve ?? systemResolver;
    this.#logger = options.logger;
    this.#timers = options.timers ?? systemTimers;
    this.#onChange = options.onChange;
    this.#logFailure = rateLimited(
      options.failureLogIntervalMs ?? 60_000,
      (msg, fields) => this.#logger?.warn(msg, fields),
      () => this.#timers.now(),
    );
    this.#failures = options.metrics?.counter(
      "kraken_hostlist_resolution_failures_total",
      "Re-resolutions of a DNS host list that failed or found no address (the last members stay).",
      { hostlist: options.name ?? "hosts" },
    );
  }

  get hosts(): readonly string[] {
    return this.#hosts;
  }

  get source(): string {
    return this.#config.record;
  }

  get record(): string {
    return this.#config.record;
  }

  start(): void {
    this.#timer = this.#timers.setInterval(() => void this.refresh(), this.#config.ttlMs);
  }

  stop(): void {
    if (this.#timer !== undefined) this.#timers.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Resolves once; a failure keeps the last list (and throws only for the first resolution). */
  async refresh(options: { initial?: boolean } = {}): Promise<void> {
    if (this.#inFlight) return; // a slow resolver is never asked twice at once
    this.#inFlight = true;
    try {
      const { hostname, port, record } = this.#config;
      let found: string[];
      try {
        found = await this.#resolve(hostname);
        if (found.length === 0) throw new Error("the record has no addresses");
      } catch (error) {
        const message = (error as Error).message ?? String(error);
        if (options.initial) throw new Error(`cannot resolve host list ${record}: ${message}`);
        this.#failures?.inc();
        this.#logFailure("host list resolution failed; keeping the last members", {
          record,
          error: message,
          hosts: this.#hosts,
        });
        return;
      }
      const next = [...new Set(found.map((a) => withPort(a, port)))].sort();
      if (sameMembers(next, this.#hosts)) return;
      const previous = this.#hosts;
      this.#hosts = next;
      if (!options.initial) {
        this.#logger?.info("host list changed", { record, hosts: next, previous });
        this.#onChange?.(next);
      }
    } finally {
      this.#inFlight = false;
    }
  }
}

/** Several opened host lists by name, stopped together. */
export interface HostLists<K extends string> {
  /** The opened lists. */
  readonly lists: Record<K, HostList>;
  /** Stops every list. */
  stop(): void;
}

/**
 * Opens each configured list of a role (`{tracker: …, buildIndex: …}`); the logger of each carries
 * `hostlist: <name>`. If one fails, those already opened are stopped.
 * @throws {Error} naming the record whose first resolution failed
 */
export async function openHostLists<K extends string>(
  configs: Record<K, HostListConfig>,
  options: OpenHostListOptions = {},
): Promise<HostLists<K>> {
  const lists = {} as Record<K, HostList>;
  const stop = () => {
    for (const list of Object.values<HostList>(lists)) list.stop();
  };
  try {
    for (const name of Object.keys(configs) as K[]) {
      lists[name] = await openHostList(configs[name], {
        ...options,
        name,
        logger: options.logger?.with({ hostlist: name }),
      });
    }
  } catch (error) {
    stop();
    throw error;
  }
  return { lists, stop };
}
