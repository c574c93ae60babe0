import assert from "node:assert/strict";
import { compileTemplate, type Ctx, HttpError, Router } from "./router.ts";
import { ResponseEnds } from "./response_ends.ts";

Deno.test("router: templates match raw segments and decode parameters once", async () => {
  const router = new Router();
  router.get("/namespace/{namespace}/blobs/{digest}", (ctx) => Response.json(ctx.params));
  router.get("/v2/{name+}/manifests/{reference}", (ctx) => Response.json(ctx.params));
  const a = await router.handle(
    new Request("http://x/namespace/library%2Fubuntu/blobs/sha256:abc"),
  );
  assert.deepEqual(await a.json(), { namespace: "library/ubuntu", digest: "sha256:abc" });
  // A literal slash splits the segment: no route.
  const b = await router.handle(new Request("http://x/namespace/library/ubuntu/blobs/sha256:abc"));
  assert.equal(b.status, 404);
  assert.equal(await b.text(), "");
  const c = await router.handle(new Request("http://x/v2/a/b/c/manifests/latest"));
  assert.deepEqual(await c.json(), { name: "a/b/c", reference: "latest" });
  // `+` is not a space, as in Go's PathUnescape.
  const d = await router.handle(new Request("http://x/namespace/a+b/blobs/d"));
  assert.equal((await d.json()).namespace, "a+b");
});

Deno.test("router: errors follow upstream's form; 405 lists allowed methods; HEAD falls back", async () => {
  const router = new Router();
  router.get("/x", () => {
    throw new HttpError(409);
  });
  router.put("/y", () => {
    throw new HttpError(400, "bad thing");
  });
  router.get("/z", () => {
    throw new Error("boom");
  });
  const conflict = await router.handle(new Request("http://h/x"));
  assert.equal(conflict.status, 409);
  assert.equal(await conflict.text(), "");
  const bad = await router.handle(new Request("http://h/y", { method: "PUT" }));
  assert.equal(bad.status, 400);
  assert.equal(await bad.text(), "bad thing");
  const boom = await router.handle(new Request("http://h/z"));
  assert.equal(boom.status, 500);
  assert.equal(await boom.text(), "boom");
  const wrong = await router.handle(new Request("http://h/y", { method: "DELETE" }));
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "PUT");
  const head = await router.handle(new Request("http://h/x", { method: "HEAD" }));
  assert.equal(head.status, 409);
  const malformed = await router.handle(new Request("http://h/namespace/%zz"));
  assert.equal(malformed.status, 404);
});

Deno.test("router: middleware wraps handlers, sees the route template and the error", async () => {
  const seen: string[] = [];
  const router = new Router();
  router.use(async (ctx, next) => {
    const res = await next();
    seen.push(`${ctx.route} ${res.status} ${(ctx.state.error as Error | undefined)?.message}`);
    return res;
  });
  router.get("/tags/{tag}", (ctx) => {
    if (ctx.params.tag === "bad") throw new HttpError(400, "bad tag");
    return new Response("ok");
  });
  await (await router.handle(new Request("http://h/tags/a"))).text();
  await (await router.handle(new Request("http://h/tags/bad"))).text();
  await (await router.handle(new Request("http://h/nothing"))).text();
  assert.deepEqual(seen, [
    "/tags/{tag} 200 undefined",
    "/tags/{tag} 400 bad tag",
    "undefined 404 ",
  ]);
});

Deno.test("router: template compilation", () => {
  assert.deepEqual(compileTemplate("/a/{b}/c").names, ["b"]);
  assert.ok(compileTemplate("/list/{prefix+}").regex.test("/list/a/b"));
  assert.ok(!compileTemplate("/a/{b}").regex.test("/a/b/c"));
  assert.throws(() => compileTemplate("/a/{b"), /unclosed/);
});

Deno.test("router: a middleware calling next() twice gets a clear error; the handler runs once", async () => {
  let calls = 0;
  let second: unknown;
  const router = new Router().use(async (_ctx, next) => {
    await next();
    try {
      return await next();
    } catch (error) {
      second = error;
      throw error;
    }
  });
  router.get("/x", () => {
    calls++;
    return new Response("ok");
  });
  const res = await router.handle(new Request("http://h/x"));
  assert.equal(calls, 1);
  assert.ok(second instanceof Error);
  assert.match(second.message, /next\(\) called multiple times/);
  assert.equal(res.status, 500);
  assert.match(await res.text(), /next\(\) called multiple times/);
});

Deno.test("router: the listener's parsed URL, client address and response ends reach the context as they are", async () => {
  const router = new Router();
  let seen: Ctx | undefined;
  router.get("/blobs/{digest}", (ctx) => {
    seen = ctx;
    return new Response("ok");
  });
  const url = new URL("http://agent:8080/blobs/sha256:abc");
  const remote: Deno.NetAddr = { transport: "tcp", hostname: "10.0.0.1", port: 5000 };
  const responseEnds = new ResponseEnds();
  const res = await router.handle(new Request(url), { url, remote, responseEnds });
  assert.equal(await res.text(), "ok");
  assert.equal(seen?.url, url, "the listener's URL is not parsed again");
  assert.equal(seen?.remote, remote);
  assert.equal(seen?.responseEnds, responseEnds);
  assert.equal(seen?.params.digest, "sha256:abc");
  // In-process, without a listener: the URL comes from the request.
  await router.handle(new Request("http://h/blobs/sha256:def"));
  assert.equal(seen?.url.href, "http://h/blobs/sha256:def");
  assert.equal(seen?.remote, undefined);
  assert.equal(seen?.responseEnds, undefined);
});
