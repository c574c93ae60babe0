import assert from "node:assert/strict";
import { Router } from "../http/router.ts";
import { digestParam } from "./digest_param.ts";

const HEX = "a".repeat(64);

Deno.test("digestParam: strict by default, bare hex only when loose, 400 with the reason", async () => {
  const router = new Router();
  router.get("/strict/{digest}", (ctx) => new Response(digestParam(ctx).toString()));
  router.get("/loose/{digest}", (ctx) => new Response(digestParam(ctx, { loose: true }).hex));
  const ok = await router.handle(new Request(`http://h/strict/sha256:${HEX}`));
  assert.equal(await ok.text(), `sha256:${HEX}`);
  const bare = await router.handle(new Request(`http://h/strict/${HEX}`));
  assert.equal(bare.status, 400);
  assert.notEqual(await bare.text(), "");
  const loose = await router.handle(new Request(`http://h/loose/${HEX}`));
  assert.equal(await loose.text(), HEX);
  const bad = await router.handle(new Request("http://h/loose/sha256:xyz"));
  assert.equal(bad.status, 400);
  assert.notEqual(await bad.text(), "");
});
