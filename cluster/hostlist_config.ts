/**
 * The schema of a host list in any role's configuration, in upstream Kraken's shapes plus the
 * plain list this project always accepted:
 *
 * ```yaml
 * hosts: [origin1:15002, origin2:15002]            # a plain list (static)
 * hosts: { static: [origin1:15002, origin2:15002] } # upstream's static list
 * hosts: { dns: origins.example:15002, ttl: 5s }    # upstream's DNS list, re-resolved every ttl
 * ```
 *
 * The parsed value is a {@linkcode HostListConfig}; the role opens it with `openHostList` at
 * start-up (`cluster/hostlist.ts`).
 *
 * @module
 */

import { ConfigError, parseHostPort } from "../common/config.ts";
import { duration, hostPort, list, object, type Schema } from "../common/schema.ts";
import type { HostListConfig } from "./hostlist.ts";

export type { HostListConfig };

/** Upstream's default `ttl` of a DNS host list. */
export const DEFAULT_HOSTLIST_TTL = "5s";

const hostPorts = list(hostPort(), { nonEmpty: "needs at least one host:port" });

const shape = object({
  static: hostPorts.optional("—")
    .describe("Fixed members, `host:port` each (a plain list in place of the mapping means this)."),
  dns: hostPort().optional("—").describe(
    "`name:port`: the members are the name's A addresses (AAAA when it has none) with this " +
      "port. The first " +
      "resolution must succeed; a failed re-resolution keeps the last members (logged at most " +
      "once a minute).",
  ),
  ttl: duration({ positive: true }).default(DEFAULT_HOSTLIST_TTL)
    .describe("How often a `dns` list is re-resolved."),
}, { rename: { ttl: "ttlMs" } });

/**
 * A host list: a list of `host:port`, `{static: [...]}` or `{dns: name:port, ttl}`. Required; call
 * `.optional(text)` on it for a list that may be left out.
 */
export function hostListSchema(): Schema<HostListConfig> {
  return shape
    .map((c, key): HostListConfig => {
      if (c.static !== undefined && c.dns !== undefined) {
        throw new ConfigError(key, "has both static and dns; give one");
      }
      if (c.dns !== undefined) {
        const { hostname, port } = parseHostPort(c.dns, `${key}.dns`);
        return { kind: "dns", hostname, port, record: c.dns, ttlMs: c.ttlMs };
      }
      if (c.static === undefined) {
        throw new ConfigError(
          key,
          "needs a list of host:port, static: [host:port, ...] or dns: name:port",
        );
      }
      return { kind: "static", hosts: c.static };
    })
    .orList(hostPorts.map((hosts): HostListConfig => ({ kind: "static", hosts })), "host list")
    .required();
}

/** The members of a static list, or undefined for a DNS list (known only once resolved). */
export function staticHosts(config: HostListConfig): string[] | undefined {
  return config.kind === "static" ? config.hosts : undefined;
}
