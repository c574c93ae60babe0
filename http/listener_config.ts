/**
 * The `http:` block every role's configuration has: the limits of its HTTP listeners (header and
 * idle timeouts, concurrent connections, request header size). Each listener of the role applies
 * them on its own (the agent's server and registry each get `max_connections`).
 *
 * ```yaml
 * http:
 *   header_timeout: 10s      # a connection must finish sending its request headers within this
 *   idle_timeout: 60s        # a keep-alive connection with no request in flight is closed after this
 *   max_connections: 1024    # per listener; more are answered 503 and closed
 *   max_header_size: 32KB    # request line + headers; larger gets 431
 * ```
 *
 * @module
 */

import { custom, duration, type Infer, int, object } from "../common/schema.ts";
import { parseByteSize } from "../common/byte_size.ts";

const headerSize = custom("size", (raw) => {
  const bytes = parseByteSize(raw as string | number);
  if (bytes < 1024) throw new RangeError("must be at least 1KB");
  return bytes;
});

/** The schema of the `http:` block. */
export const listenerLimitsSchema = object({
  header_timeout: duration({ positive: true }).default("10s").describe(
    "A connection must finish sending a request's headers within this, counted from when it " +
      "opened or from the first byte after an idle keep-alive wait; else it is closed (slow " +
      "header senders, slowloris). Counted in `kraken_http_connections_closed_total" +
      '{reason="header_timeout"}`.',
  ),
  idle_timeout: duration({ positive: true }).default("60s").describe(
    "A keep-alive connection with no request in flight is closed this long after its last " +
      "response, unless the next request's headers are complete by then " +
      '(`kraken_http_connections_closed_total{reason="idle_timeout"}`).',
  ),
  max_connections: int({ min: 1 }).default(1024).describe(
    "Concurrent connections per listener. A connection beyond it is answered 503 and closed " +
      '(`kraken_http_connections_closed_total{reason="max_connections"}`); others keep being ' +
      "served.",
  ),
  max_header_size: headerSize.default("32KB").describe(
    "Largest request line plus headers (binary units). A larger request is answered 431 with a " +
      'message and the connection closed (`kraken_http_connections_closed_total{reason="' +
      'header_too_large"}`).',
  ),
}, {
  rename: {
    header_timeout: "headerTimeoutMs",
    idle_timeout: "idleTimeoutMs",
    max_connections: "maxConnections",
    max_header_size: "maxHeaderBytes",
  },
});

/** The validated `http:` block: limits of each HTTP listener of a role. */
export type ListenerLimits = Infer<typeof listenerLimitsSchema>;

/** The defaults of {@linkcode ListenerLimits}. */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = listenerLimitsSchema.parse({}, "http");
