import assert from "node:assert/strict";
import { ROLE_NAMES, ROLES } from "./mod.ts";

/** `build-index` → `BuildIndex`. */
function pascal(role: string): string {
  return role.split("-").map((w) => w[0].toUpperCase() + w.slice(1)).join("");
}

Deno.test("roles: every role has the same shape (mod.ts, config.ts, server.ts; start<Role>, create…Router)", async () => {
  for (const role of ROLE_NAMES) {
    const definition = ROLES[role];
    assert.equal(typeof definition.parseConfig, "function", role);
    assert.equal(typeof definition.start, "function", role);
    for (const file of ["mod.ts", "config.ts", "server.ts"]) {
      await Deno.stat(new URL(`./${role}/${file}`, import.meta.url));
    }
    const mod = await import(`./${role}/mod.ts`);
    assert.equal(
      typeof mod[`start${pascal(role)}`],
      "function",
      `${role}/mod.ts: start${pascal(role)}`,
    );
    const server = await import(`./${role}/server.ts`);
    assert.equal(
      typeof server[`create${pascal(role)}Router`],
      "function",
      `${role}/server.ts: create${pascal(role)}Router`,
    );
  }
});
