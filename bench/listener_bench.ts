/**
 * A 64 MiB blob GET over loopback through the role listener (`http/serve.ts`, `node:http` with the
 * listener limits) against `Deno.serve`, the listener the roles used before it; both stream the
 * same file. Numbers in docs/performance.md.
 *
 * @module
 */

import { serveHttp } from "../http/serve.ts";

const SIZE = 64 << 20;
const path = await Deno.makeTempFile({ prefix: "kraken-bench-blob-" });
{
  const file = await Deno.open(path, { write: true });
  const chunk = crypto.getRandomValues(new Uint8Array(65536));
  for (let written = 0; written < SIZE; written += chunk.length) await file.write(chunk);
  file.close();
}

const handler = async (): Promise<Response> => {
  const file = await Deno.open(path);
  return new Response(file.readable, { headers: { "content-length": String(SIZE) } });
};
const deno = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
const role = await serveHttp({ hostname: "127.0.0.1", port: 0, handler });

async function get(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/blob`);
  let bytes = 0;
  for await (const chunk of res.body!) bytes += chunk.length;
  if (bytes !== SIZE) throw new Error(`got ${bytes} of ${SIZE} bytes`);
}

const RUN = { n: 20, warmup: 3, group: "blob GET 64 MiB" };
Deno.bench("listener: Deno.serve", { ...RUN, baseline: true }, () => get(deno.addr.port));
Deno.bench("listener: http/serve.ts (node:http + limits)", RUN, () => get(role.addr.port));

globalThis.addEventListener("unload", () => {
  Deno.removeSync(path);
});
