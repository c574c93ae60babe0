/**
 * Rewrites a raw configuration tree by a table of keys before the schema validates it: a key is
 * moved to another place (optionally converted), accepted and dropped with a warning, or refused.
 * This is how a configuration file written for another program's key names (upstream Kraken's)
 * reaches this program's schema: the schema stays the only validator, and the table says in one
 * place what happens to each foreign key.
 *
 * Keys are dotted paths; `[]` stands for every item of a list (`backends[].bandwidth`). The rules
 * run in table order, so a rule for `store.cache_cleanup` placed before one for `store` sees the
 * key first. A mapping left empty by the rewrite is removed.
 *
 * @example
 * ```ts
 * const rules: KeyRule[] = [
 *   { key: "nginx", ignore: "no nginx: the node terminates HTTP itself" },
 *   { key: "metainfogen", to: "metainfo" },
 * ];
 * const { raw, warnings } = applyKeyRules(rules, { nginx: {}, metainfogen: { piece_lengths: {} } });
 * // raw: { metainfo: { piece_lengths: {} } }, warnings: [{ key: "nginx", reason: "no nginx…" }]
 * ```
 *
 * @module
 */

import { ConfigError, isMap, type RawMap } from "./config.ts";

/** Moves the value of `key` to `to`, through `convert` when given. */
export interface MoveRule {
  /** The foreign key. */
  key: string;
  /** Our key (dotted, no `[]`). */
  to: string;
  /**
   * Turns the foreign value into ours; may throw a {@linkcode ConfigError} (or any error, then
   * reported against `key`) for a value that cannot be honoured.
   */
  convert?: (value: unknown, key: string) => unknown;
  /** Only applies when this returns true (another rule may handle the other values). */
  when?: (value: unknown) => boolean;
  /** What the docs say about the mapping (default: the target key). */
  note?: string;
}

/** Accepts `key` and drops it, with a warning that gives `ignore` as the reason. */
export interface IgnoreRule {
  /** The foreign key. */
  key: string;
  /** Why it does not matter here (written in the warning and the docs). */
  ignore: string;
  /** Only applies when this returns true. */
  when?: (value: unknown) => boolean;
}

/** Refuses `key` (start-up fails naming it) unless `accept` says the value is what we do anyway. */
export interface RefuseRule {
  /** The foreign key. */
  key: string;
  /** Why it cannot be honoured (the error message and the docs). */
  refuse: string;
  /** Values that match this program's behaviour; they are dropped silently. */
  accept?: (value: unknown) => boolean;
  /** What the docs say is accepted (with `accept`). */
  accepted?: string;
}

/** One row of a key table. */
export type KeyRule = MoveRule | IgnoreRule | RefuseRule;

/** A key that was accepted and dropped. */
export interface KeyWarning {
  /** The concrete key (`backends[0].bandwidth`). */
  key: string;
  /** The rule's reason. */
  reason: string;
}

/** The rewritten tree and the warnings to log. */
export interface KeyRulesResult {
  /** The tree in this program's keys. */
  raw: RawMap;
  /** One per dropped key, in table order. */
  warnings: KeyWarning[];
}

type Step = string | "[]";

function parsePath(key: string): Step[] {
  return key.split(".").flatMap((part) =>
    part.endsWith("[]") ? [part.slice(0, -2), "[]" as const] : [part]
  );
}

/** Every concrete `[path, dotted key]` where `steps` exists in `tree`. */
function find(tree: unknown, steps: Step[]): { path: (string | number)[]; key: string }[] {
  const out: { path: (string | number)[]; key: string }[] = [];
  const walk = (node: unknown, i: number, path: (string | number)[], key: string) => {
    if (i === steps.length) {
      out.push({ path, key });
      return;
    }
    const step = steps[i];
    if (step === "[]") {
      if (!Array.isArray(node)) return;
      node.forEach((item, n) => walk(item, i + 1, [...path, n], `${key}[${n}]`));
      return;
    }
    if (!isMap(node) || !(step in node)) return;
    walk(node[step], i + 1, [...path, step], key ? `${key}.${step}` : step);
  };
  walk(tree, 0, [], "");
  return out;
}

function getAt(tree: unknown, path: (string | number)[]): unknown {
  let node = tree;
  for (const step of path) node = (node as Record<string | number, unknown>)[step];
  return node;
}

/** Deletes the value at `path`, then each ancestor mapping the deletion left empty. */
function deleteAt(tree: RawMap, path: (string | number)[]): void {
  for (let end = path.length; end > 0; end--) {
    const parent = getAt(tree, path.slice(0, end - 1)) as Record<string | number, unknown>;
    const step = path[end - 1];
    if (end < path.length) {
      const child = parent[step];
      if (!isMap(child) || Object.keys(child).length > 0) return;
    }
    if (Array.isArray(parent)) return; // list items are never removed, only their keys
    delete parent[step];
  }
}

function setAt(tree: RawMap, dotted: string, value: unknown, from: string): void {
  const parts = dotted.split(".");
  let node: RawMap = tree;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined || next === null) node = node[part] = {};
    else if (isMap(next)) node = next;
    else throw new ConfigError(from, `cannot be moved to ${dotted}: ${part} is not a mapping`);
  }
  const last = parts[parts.length - 1];
  if (node[last] !== undefined && node[last] !== null) {
    throw new ConfigError(from, `given together with ${dotted}, which it maps to; give one`);
  }
  node[last] = value;
}

/**
 * Rewrites `raw` by `rules` (see the module doc). The input is not modified.
 * @throws {ConfigError} naming the key of a refused value or a failed conversion
 */
export function applyKeyRules(rules: readonly KeyRule[], raw: RawMap): KeyRulesResult {
  const tree = structuredClone(raw);
  const warnings: KeyWarning[] = [];
  for (const rule of rules) {
    for (const { path, key } of find(tree, parsePath(rule.key))) {
      const value = getAt(tree, path);
      if ("refuse" in rule) {
        if (rule.accept?.(value)) {
          deleteAt(tree, path);
          continue;
        }
        throw new ConfigError(key, rule.refuse);
      }
      if (rule.when && !rule.when(value)) continue;
      deleteAt(tree, path);
      if ("ignore" in rule) {
        warnings.push({ key, reason: rule.ignore });
        continue;
      }
      let converted = value;
      if (rule.convert) {
        try {
          converted = rule.convert(value, key);
        } catch (error) {
          if (error instanceof ConfigError) throw error;
          throw new ConfigError(key, (error as Error).message);
        }
      }
      setAt(tree, rule.to, converted, key);
    }
  }
  return { raw: tree, warnings };
}
