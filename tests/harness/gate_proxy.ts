/**
 * An HTTP forwarder on 127.0.0.1 in front of a real server that can hold chosen requests: the
 * fault tests use it to stop a replication at a known step (the remote tag put) while they kill or
 * restart a process. Held requests are forwarded when released, or dropped (answered 503, never
 * forwarded) when their client was killed meanwhile; a server that cannot be reached is answered
 * 502, as the nginx in front of upstream's nodes does.
 *
 * ```ts
 * const gate = startGateProxy("127.0.0.1:15004", (req) => req.method === "PUT");
 * await waitFor("a held put", () => gate.held > 0);
 * gate.release(); // forwards what is held, and passes everything from now on
 * await gate.close();
 * ```
 *
 * @module
 */

/** A running forwarder. */
export interface GateProxy {
  /** `127.0.0.1:<port>` to point clients at. */
  readonly addr: string;
  /** Requests held right now. */
  readonly held: number;
  /** Requests answered 502 because the server could not be reached. */
  readonly unreachable: number;
  /** Lets future requests through, and the held ones unless `forwardHeld` is false. */
  release(options?: { forwardHeld?: boolean }): void;
  /** Stops the listener. */
  close(): Promise<void>;
}

/** Starts a forwarder to `target` (`host:port`) that holds requests `hold` picks until released. */
export function startGateProxy(target: string, hold: (req: Request) => boolean): GateProxy {
  let open = false;
  let held = 0;
  let unreachable = 0;
  let releaseAll!: (forward: boolean) => void;
  const released = new Promise<boolean>((resolve) => releaseAll = resolve);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    if (!open && hold(req)) {
      held++;
      const forward = await released;
      held--;
      if (!forward) return new Response("gate proxy: dropped", { status: 503 });
    }
    const url = new URL(req.url);
    try {
      const res = await fetch(`http://${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body,
        redirect: "manual",
      });
      return new Response(req.method === "HEAD" ? null : await res.arrayBuffer(), {
        status: res.status,
        headers: res.headers,
      });
    } catch (error) {
      unreachable++;
      return new Response(`gate proxy: ${target} unreachable: ${error}`, { status: 502 });
    }
  });
  return {
    addr: `127.0.0.1:${server.addr.port}`,
    get held() {
      return held;
    },
    get unreachable() {
      return unreachable;
    },
    release(options = {}) {
      open = true;
      releaseAll(options.forwardHeld ?? true);
    },
    close: () => server.shutdown(),
  };
}
