/**
 * A TCP relay on 127.0.0.1 that forwards to a real server and throttles or stalls one direction:
 * the slow or hung storage backend of the timeout tests, with real sockets on both sides.
 *
 * ```ts
 * const relay = startSlowRelay(testfsAddr, { toServer: { bytesPerTick: 65536, tickMs: 50 } });
 * // point the client at relay.addr; relay.connections counts connections (one per attempt)
 * await relay.close();
 * ```
 *
 * @module
 */

/** How one direction of the relay moves bytes. */
export interface Throttle {
  /** Bytes forwarded per tick at most. */
  bytesPerTick: number;
  /** Time between ticks, ms. */
  tickMs: number;
  /** After this many bytes the direction stops reading for good (a stalled peer). */
  stallAfterBytes?: number;
}

/** Options of {@linkcode startSlowRelay}. */
export interface SlowRelayOptions {
  /** Client → server direction (request bodies). Default: unthrottled. */
  toServer?: Throttle;
  /** Server → client direction (responses). Default: unthrottled. */
  toClient?: Throttle;
  /**
   * Drops the connection that carries the client → server byte number `cutAfterBytes` (counted
   * over all connections), once: a server that goes away mid-upload. Later connections pass.
   */
  cutAfterBytes?: number;
}

/** A running relay. */
export interface SlowRelay {
  /** `127.0.0.1:<port>` to point clients at. */
  readonly addr: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Epoch ms of each accepted connection. */
  readonly acceptedAt: readonly number[];
  /** Bytes forwarded client → server so far, over all connections. */
  readonly bytesToServer: number;
  /** Whether the {@linkcode SlowRelayOptions.cutAfterBytes} cut happened. */
  readonly cut: boolean;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  throttle: Throttle | undefined,
  closed: () => boolean,
  /** Told of each read; returns how many of the `n` bytes to forward before dropping (or `n`). */
  meter: (n: number) => number = (n) => n,
): Promise<void> {
  const buffer = new Uint8Array(throttle?.bytesPerTick ?? 64 * 1024);
  let moved = 0;
  while (!closed()) {
    if (throttle?.stallAfterBytes !== undefined && moved >= throttle.stallAfterBytes) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const limit = throttle?.stallAfterBytes === undefined
      ? buffer.length
      : Math.min(buffer.length, throttle.stallAfterBytes - moved);
    const n = await from.read(buffer.subarray(0, limit));
    if (n === null) break;
    const pass = meter(n);
    let written = 0;
    while (written < pass) written += await to.write(buffer.subarray(written, pass));
    if (pass < n) throw new Error("connection cut by the relay");
    moved += n;
    if (throttle) await new Promise((r) => setTimeout(r, throttle.tickMs));
  }
}

/** Starts a relay to `target` (`host:port`). */
export function startSlowRelay(target: string, options: SlowRelayOptions = {}): SlowRelay {
  const [hostname, port] = [target.slice(0, target.lastIndexOf(":")), target.split(":").pop()];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const acceptedAt: number[] = [];
  let closed = false;
  let bytesToServer = 0;
  let cut = false;
  const meterToServer = (n: number): number => {
    const budget = options.cutAfterBytes;
    if (!cut && budget !== undefined && bytesToServer + n > budget) {
      cut = true;
      const pass = budget - bytesToServer;
      bytesToServer = budget;
      return pass;
    }
    bytesToServer += n;
    return n;
  };
  const isClosed = () => closed;
  const serve = async (client: Deno.Conn) => {
    conns.add(client);
    let server: Deno.Conn | undefined;
    try {
      server = await Deno.connect({ hostname, port: Number(port) });
      conns.add(server);
      let ended = false;
      const over = () => ended || isClosed();
      const up = pump(client, server, options.toServer, over, meterToServer);
      const down = pump(server, client, options.toClient, over);
      await Promise.race([up, down]).catch(() => {});
      ended = true;
      for (const c of [client, server]) {
        if (conns.delete(c)) {
          try {
            c.close();
          } catch {
            // already closed
          }
        }
      }
      await Promise.allSettled([up, down]);
    } catch {
      // A side closed: the relay's connection ends too.
    } finally {
      for (const c of [client, server]) {
        if (c && conns.delete(c)) {
          try {
            c.close();
          } catch {
            // already closed
          }
        }
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        acceptedAt.push(Date.now());
        const task = serve(client).finally(() => tasks.delete(task));
        tasks.add(task);
      }
    } catch {
      // listener closed
    }
  })();
  return {
    addr: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get connections() {
      return acceptedAt.length;
    },
    get bytesToServer() {
      return bytesToServer;
    },
    get cut() {
      return cut;
    },
    acceptedAt,
    async close() {
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      conns.clear();
      await accepting;
      await Promise.allSettled([...tasks]);
    },
  };
}
