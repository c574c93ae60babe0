/**
 * The router's dispatch of one blob route, given the URL the listener has already parsed
 * (`ListenerInfo.url`, what `http/serve.ts` passes) against parsing `req.url` again (what a request
 * handled in-process without a listener costs). Numbers in docs/performance.md.
 *
 *     deno bench -A bench/router_bench.ts
 *
 * @module
 */

import { Router } from "../http/router.ts";

const router = new Router();
router.get("/namespace/{namespace}/blobs/{digest}", () => new Response(null, { status: 204 }));
const url = new URL(
  `http://127.0.0.1:8080/namespace/library%2Fubuntu/blobs/sha256:${"ab".repeat(32)}`,
);
const req = new Request(url);

Deno.bench("router: parses req.url", { group: "router", baseline: true }, async () => {
  await router.handle(req);
});

Deno.bench("router: the listener's URL", { group: "router" }, async () => {
  await router.handle(req, { url });
});
