/**
 * What tracing adds to one HTTP request in a role, under `deno bench`: the stacks of
 * `perf/inprocess.ts` (the agent's router with its tracing runtime's middleware and one `withSpan`
 * child), tracing off, on at 100% and on at 0% sampling. `perf/inprocess.ts` measures
 * the same stacks interleaved (the figures in docs/performance.md and the CI gate's ratio).
 *
 * @module
 */

import {
  inProcessStacks,
  serveOne,
  type Stack,
  YIELD_EVERY,
  yieldToEventLoop,
} from "../perf/inprocess.ts";

const stacks = inProcessStacks();
const RUN = { n: 50_000, warmup: 20_000 };
let served = 0;

const BENCHES: [string, Stack][] = [
  ["tracing off", stacks.untraced],
  ["traced, sampled", stacks.sampled],
  ["traced, not sampled", stacks.unsampled],
];
for (const [name, stack] of BENCHES) {
  Deno.bench(
    `http: request, ${name}`,
    { ...RUN, group: "http", baseline: stack === stacks.untraced },
    async () => {
      stacks.activate(stack);
      await serveOne(stack.router);
      // As in perf/inprocess.ts: let the batch processor's timers run, as they do between a role's
      // requests.
      if (++served % YIELD_EVERY === 0) await yieldToEventLoop();
    },
  );
}
