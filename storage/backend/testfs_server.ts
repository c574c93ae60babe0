/**
 * A testfs-compatible storage server over a directory, so tests and the demo
 * can run a real HTTP storage backend in its own process (upstream
 * `tools/bin/testfs`).
 *
 * Routes (kraken-wire §1.7): `GET /health`, `HEAD|GET|POST /files/<path>`,
 * `GET /list/<path>`. Every `:` in `<path>` becomes `/` on disk, which lets
 * `identity` paths of `repo:tag` names be listed per repository. Paths that
 * would leave the root are refused with 400. Unlike upstream, uploads are
 * atomic (temporary file + rename) and listing a missing directory returns
 * `[]` instead of an error.
 *
 * With `tls` (`--tls-cert <pem> --tls-key <pem>`) it serves HTTPS only, TLS 1.2 or later, for
 * testing backends over TLS (upstream's testfs has no TLS); it asks for no client certificate.
 *
 * Run it: `deno run --allow-net --allow-read --allow-write testfs_server.ts --root <dir> [--port N] [--hostname H] [--tls-cert F --tls-key F]`
 *
 * ```ts
 * import { serveTestfs } from "./testfs_server.ts";
 * const server = serveTestfs({ root: "/tmp/testfs" });
 * console.log(server.addr); // "127.0.0.1:<port>"
 * await server.shutdown();
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkRelativePath, FileBackend, InvalidPathError } from "./fs.ts";

/** Options for {@linkcode serveTestfs}. */
export interface TestfsServerOptions {
  /** Directory served; created on first upload. */
  root: string;
  /** Interface to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port to listen on (default 0: an ephemeral port). */
  port?: number;
  /** Serve HTTPS with this certificate chain and unencrypted key (PEM text). */
  tls?: { cert: string; key: string };
}

/** A running testfs server. */
export interface TestfsServer {
  /** `host:port` the server listens on, ready for a testfs backend's `addr`. */
  addr: string;
  /** Stops accepting requests and waits for the ones in flight. */
  shutdown(): Promise<void>;
}

const text = (body: string, status: number) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

/** Decodes the path parameter once and maps `:` to `/`, as upstream's server. */
function fileParam(pathname: string, prefix: string): string {
  return decodeURIComponent(pathname.slice(prefix.length)).replaceAll(":", "/");
}

/**
 * Builds the request handler serving `root`.
 *
 * @param root directory served
 */
export function createTestfsHandler(root: string): (req: Request) => Promise<Response> {
  const store = new FileBackend({ root });
  return async (req) => {
    const { pathname } = new URL(req.url);
    try {
      if (pathname === "/health") {
        return req.method === "GET" ? text("OK", 200) : text("method not allowed", 405);
      }
      if (pathname.startsWith("/files/")) {
        const path = checkRelativePath(fileParam(pathname, "/files/"));
        switch (req.method) {
          case "HEAD": {
            const info = await store.stat("", path);
            return info
              ? new Response(null, { headers: { Size: String(info.size) } })
              : new Response(null, { status: 404 });
          }
          case "GET": {
            const body = await store.download("", path);
            return body
              ? new Response(body, { headers: { "content-type": "application/octet-stream" } })
              : new Response(null, { status: 404 });
          }
          case "POST":
            await store.upload("", path, req.body ?? new Uint8Array());
            return new Response(null, { status: 200 });
          default:
            return text("method not allowed", 405);
        }
      }
      if (pathname.startsWith("/list/")) {
        if (req.method !== "GET") return text("method not allowed", 405);
        const dir = checkRelativePath(fileParam(pathname, "/list/").replace(/\/+$/, ""), true);
        return new Response(JSON.stringify((await store.list(dir)).names) + "\n", {
          headers: { "content-type": "application/json" },
        });
      }
      return new Response(null, { status: 404 });
    } catch (err) {
      if (err instanceof InvalidPathError || err instanceof URIError) return text(err.message, 400);
      return text(err instanceof Error ? err.message : String(err), 500);
    }
  };
}

/**
 * Starts a testfs server.
 *
 * @param options see {@linkcode TestfsServerOptions}
 */
export function serveTestfs(options: TestfsServerOptions): TestfsServer {
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
    onListen() {},
  }, createTestfsHandler(options.root));
  const { hostname, port } = server.addr;
  return {
    addr: `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    shutdown: () => server.shutdown(),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      root: { type: "string" },
      port: { type: "string", default: "0" },
      hostname: { type: "string", default: "127.0.0.1" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
  });
  const port = Number(values.port);
  if (!values.root) {
    console.error("testfs: --root is required");
    Deno.exit(2);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`testfs: --port must be an integer 0-65535, got ${values.port}`);
    Deno.exit(2);
  }
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    console.error("testfs: --tls-cert and --tls-key go together");
    Deno.exit(2);
  }
  let tls: { cert: string; key: string } | undefined;
  try {
    tls = values["tls-cert"] === undefined ? undefined : {
      cert: Deno.readTextFileSync(values["tls-cert"]),
      key: Deno.readTextFileSync(values["tls-key"]!),
    };
  } catch (error) {
    console.error(`testfs: cannot read the TLS files: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const server = serveTestfs({ root: values.root, hostname: values.hostname, port, tls });
  // One line on stdout so a parent process can read the bound address.
  console.log(`testfs listening on ${server.addr}${tls ? " (TLS)" : ""}`);
  const stop = () => server.shutdown().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
