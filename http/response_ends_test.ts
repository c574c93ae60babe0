import assert from "node:assert/strict";
import { ResponseEnds } from "./response_ends.ts";

Deno.test("ResponseEnds: a watcher runs once, on its own response's report", () => {
  const ends = new ResponseEnds();
  const watched = new Response("abc");
  const other = new Response("x");
  const seen: [unknown, number][] = [];
  ends.watch(watched, (error, bytes) => seen.push([error, bytes]));
  ends.report(other, undefined, 1);
  assert.deepEqual(seen, []);
  ends.report(watched, undefined, 3);
  ends.report(watched, new Error("again"), 0);
  assert.deepEqual(seen, [[undefined, 3]]);
});

Deno.test("ResponseEnds: a report of a failure passes the error and the bytes written", () => {
  const ends = new ResponseEnds();
  const response = new Response("abcdef");
  const failure = new Error("client went away");
  let seen: [unknown, number] | undefined;
  ends.watch(response, (error, bytes) => seen = [error, bytes]);
  ends.report(response, failure, 2);
  assert.deepEqual(seen, [failure, 2]);
});
