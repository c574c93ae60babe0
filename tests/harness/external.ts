/**
 * The line between unit tests and the rest. `deno task test:unit` runs every test file except the
 * flows (`tests/*_test.ts`) with `--deny-run`: a unit test cannot start a process, so it cannot
 * need Redis, skopeo, Jaeger or a role process. A test beside a module that does need one declares
 * it with {@linkcode externalTest}: `deno task test` (and `npm test`) runs it, `test:unit` reports
 * it as ignored. A test that starts a process without saying so fails `test:unit` at once, and
 * `unit_task_test.ts` fails `deno task test` when a file starts processes without this module.
 *
 * ```ts
 * import { externalTest } from "../../tests/harness/external.ts";
 * externalTest("redis: replies against a real redis-server", async () => {
 *   const redis = await startRedis();
 *   // ...
 * });
 * ```
 *
 * @module
 */

/** Whether this run may start processes: `deno task test` may, `deno task test:unit` may not. */
export const canStartProcesses: boolean =
  Deno.permissions.querySync({ name: "run" }).state === "granted";

/** A test that needs a real process (a server, a CLI, a role), given by name and function. */
export function externalTest(name: string, fn: () => void | Promise<void>): void;
/** A test that needs a real process; `ignore` in the definition still applies. */
export function externalTest(definition: Deno.TestDefinition): void;
export function externalTest(
  nameOrDefinition: string | Deno.TestDefinition,
  fn?: () => void | Promise<void>,
): void {
  const definition = typeof nameOrDefinition === "string"
    ? { name: nameOrDefinition, fn: fn! }
    : nameOrDefinition;
  Deno.test({ ...definition, ignore: !canStartProcesses || definition.ignore === true });
}
