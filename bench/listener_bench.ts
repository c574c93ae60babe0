/**
 * A 64 MiB blob GET over loopback through the role listener (`http/serve.ts`, `node:http` with the
 * listener limits) against `Deno.serve`, the listener the roles used before it; both stream the
 * same file, 10 rounds alternating the two; prints the median and the fastest round of each.
 * Numbers in docs/performance.md.
 *
 *     deno run -A bench/listener_bench.ts
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

async function get(port: number): Promise<number> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/blob`);
  let bytes = 0;
  for await (const chunk of res.body!) bytes += chunk.length;
  if (bytes !== SIZE) throw new Error(`got ${bytes} of ${SIZE} bytes`);
  return performance.now() - started;
}

const times: Record<string, number[]> = { "Deno.serve": [], "http/serve.ts": [] };
await get(deno.addr.port);
await get(role.addr.port);
for (let round = 0; round < 10; round++) {
  times["Deno.serve"].push(await get(deno.addr.port));
  times["http/serve.ts"].push(await get(role.addr.port));
}
for (const [name, ms] of Object.entries(times)) {
  ms.sort((x, y) => x - y);
  console.log(
    `${name}: median ${ms[5].toFixed(0)} ms, fastest ${ms[0].toFixed(0)} ms ` +
      `(${(SIZE / 2 ** 20 / (ms[5] / 1000)).toFixed(0)} MiB/s at the median)`,
  );
}
await deno.shutdown();
await role.shutdown();
await Deno.remove(path);
