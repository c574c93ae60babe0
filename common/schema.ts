/**
 * The configuration schema: one small set of combinators every config block is written with
 * (roles, `tracing:`, `backends:`). A schema validates a raw YAML value, applies the default written
 * beside each key, and produces the typed value; TypeScript types come from the schema with
 * {@linkcode Infer}. Errors are {@linkcode ConfigError}s naming the dotted key
 * (`backends[1].backend.testfs.addr: must be host:port, got "x"`), unknown keys are refused, and
 * every key carries a description that {@linkcode docRows} turns into the documentation tables.
 *
 * This is an in-house module rather than an npm schema library: the project's error messages are
 * part of its tests and its operators' scripts, durations/sizes/host:port need custom types anyway,
 * and the docs generator needs the defaults in YAML spelling, all of which a library would need
 * adapters for (see docs/configuration.md).
 *
 * @example
 * ```ts
 * const schema = object({
 *   port: port().default(15002).describe("Listen port."),
 *   ttl: duration({ positive: true }).default("5m").describe("Idle time before eviction."),
 * }, { rename: { ttl: "ttlMs" } });
 * type Config = Infer<typeof schema>; // { port: number; ttlMs: number }
 * schema.parse({ ttl: "1m" }, ""); // { port: 15002, ttlMs: 60000 }
 * ```
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { stringify as yamlStringify } from "yaml";
import { ConfigError, isMap, parseHostPort, parsePort } from "./config.ts";
import { parseByteSize } from "./byte_size.ts";
import { parseDuration } from "./duration.ts";

export { ConfigError, parseHostPort, parsePort };

/** What a parse may need beyond the raw value. */
export interface ParseContext {
  /** Directory relative {@linkcode path} values resolve against (default: the working directory). */
  baseDir?: string;
}

/** The type a schema produces. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** The dotted key of `name` inside the value at `key` (`""` is the top level). */
export function childKey(key: string, name: string): string {
  return key ? `${key}.${name}` : name;
}

type Parser<T> = (raw: unknown, key: string, ctx: ParseContext) => T;

/** One nested entry of a schema, for the docs: the key suffix (`.name`, `[]`) and its schema. */
export interface SchemaChild {
  /** Appended to the parent's key: `.name` for a mapping key, `[]` for list items. */
  readonly suffix: string;
  /** The nested schema. */
  readonly schema: Schema<unknown>;
  /** Replaces the child's default in the docs (the cases of a {@linkcode variant}). */
  readonly note?: string;
}

interface SchemaSpec<T> {
  parse: Parser<T>;
  type: string;
  description: string;
  /** What a missing (absent or `null`) value does. */
  missing: "required" | "default" | "optional";
  defaultRaw?: unknown;
  defaultText?: string;
  children: readonly SchemaChild[];
  /** True for a mapping whose keys are documented one row each. */
  expand: boolean;
}

/** A validator for one configuration value; build it with the functions of this module. */
export class Schema<T> {
  readonly #spec: SchemaSpec<T>;

  /** Wraps a spec; use the factory functions ({@linkcode object}, {@linkcode int}, …) instead. */
  constructor(spec: SchemaSpec<T>) {
    this.#spec = spec;
  }

  /** Short type name for the docs, e.g. `duration`, `integer ≥ 1`. */
  get type(): string {
    return this.#spec.type;
  }

  /** The key's description for the docs. */
  get description(): string {
    return this.#spec.description;
  }

  /** The docs' default column: the default in YAML spelling, `required`, or a label. */
  get defaultText(): string {
    const s = this.#spec;
    if (s.defaultText !== undefined) return s.defaultText;
    return s.missing === "required" ? "required" : "—";
  }

  /** Nested entries documented as rows of their own. */
  get children(): readonly SchemaChild[] {
    return this.#spec.expand ? this.#spec.children : [];
  }

  /**
   * Validates `raw`, the value at dotted `key`; a missing value (absent or `null`) takes the
   * default, is `undefined` for an optional key, or is refused with `is required`.
   * @throws {ConfigError} naming the first offending key
   */
  parse(raw: unknown, key: string, ctx: ParseContext = {}): T {
    const s = this.#spec;
    if (raw === undefined || raw === null) {
      if (s.missing === "default") return s.parse(s.defaultRaw, key, ctx);
      if (s.missing === "optional") return undefined as T;
      throw new ConfigError(key, "is required");
    }
    return s.parse(raw, key, ctx);
  }

  /** The same schema with a description (shown in the docs). */
  describe(description: string): Schema<T> {
    return new Schema({ ...this.#spec, description });
  }

  /**
   * The same schema with a default, written as it would be in YAML (`"5m"`, `4MB`, `[]`); it goes
   * through the same validation. `text` replaces the docs' rendering of it.
   */
  default(raw: unknown, text?: string): Schema<T> {
    return new Schema({
      ...this.#spec,
      missing: "default",
      defaultRaw: raw,
      defaultText: text ?? `\`${yamlText(raw)}\``,
    });
  }

  /** The same schema, `undefined` when missing; `text` says in the docs what that means. */
  optional(text?: string): Schema<T | undefined> {
    return new Schema<T | undefined>({ ...this.#spec, missing: "optional", defaultText: text });
  }

  /** The same schema, required even if it had a default; `text` replaces `required` in the docs. */
  required(text?: string): Schema<T> {
    return new Schema({ ...this.#spec, missing: "required", defaultText: text });
  }

  /** Adds a check; `problem` returns the message for a bad value, or undefined when it is fine. */
  check(problem: (value: T) => string | undefined): Schema<T> {
    const inner = this.#spec.parse;
    return new Schema({
      ...this.#spec,
      parse: (raw, key, ctx) => {
        const value = inner(raw, key, ctx);
        const message = problem(value);
        if (message !== undefined) throw new ConfigError(key, message);
        return value;
      },
    });
  }

  /**
   * Turns the validated value into another; `fn` may throw a {@linkcode ConfigError} (for a cross-key
   * rule) or any other error, whose message is then reported against this key.
   */
  map<U>(fn: (value: T, key: string, ctx: ParseContext) => U): Schema<U> {
    const inner = this.#spec.parse;
    return new Schema<U>({
      ...this.#spec,
      parse: (raw, key, ctx) => {
        const value = inner(raw, key, ctx);
        try {
          return fn(value, key, ctx);
        } catch (error) {
          if (error instanceof ConfigError) throw error;
          throw new ConfigError(key, (error as Error).message);
        }
      },
    } as SchemaSpec<U>);
  }

  /**
   * The same schema, also accepting a list, which `asList` validates at the same key (a plain host
   * list in place of `{static: [...]}`); the docs show this schema's rows, with `type` as its type.
   */
  orList(asList: Schema<T>, type = `list or ${this.#spec.type}`): Schema<T> {
    const inner = this.#spec.parse;
    return new Schema({
      ...this.#spec,
      type,
      parse: (raw, key, ctx) =>
        Array.isArray(raw) ? asList.parse(raw, key, ctx) : inner(raw, key, ctx),
    });
  }

  /** Rewrites the raw value before validation (e.g. an older spelling into the current one). */
  before(fn: (raw: unknown) => unknown): Schema<T> {
    const inner = this.#spec.parse;
    return new Schema({ ...this.#spec, parse: (raw, key, ctx) => inner(fn(raw), key, ctx) });
  }
}

function yamlText(value: unknown): string {
  return yamlStringify(value, { flowCollectionPadding: false, collectionStyle: "flow" }).trim();
}

function leaf<T>(type: string, parse: Parser<T>): Schema<T> {
  return new Schema({
    parse,
    type,
    description: "",
    missing: "required",
    children: [],
    expand: false,
  });
}

/** A one-off value type: `parse` gets a present value and throws a message (any error) if bad. */
export function custom<T>(type: string, parse: (raw: unknown, ctx: ParseContext) => T): Schema<T> {
  return leaf(type, (raw, key, ctx) => {
    try {
      return parse(raw, ctx);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(key, (error as Error).message);
    }
  });
}

/** `true` or `false`. */
export function bool(): Schema<boolean> {
  return leaf("boolean", (raw, key) => {
    if (typeof raw !== "boolean") throw new ConfigError(key, "must be true or false");
    return raw;
  });
}

/** An integer not below `min` (default 0). */
export function int(options: { min?: number } = {}): Schema<number> {
  const min = options.min ?? 0;
  return leaf(`integer ≥ ${min}`, (raw, key) => {
    if (typeof raw !== "number" || !Number.isInteger(raw) || raw < min) {
      throw new ConfigError(key, `must be an integer >= ${min}`);
    }
    return raw;
  });
}

/** A finite number: in `[min, max]` when both are given, else `>= min` or `> above`. */
export function number(
  options: { min?: number; max?: number; above?: number } = {},
): Schema<number> {
  const { min, max, above } = options;
  const [type, message] = max !== undefined
    ? [`number ${min ?? "-∞"}–${max}`, `must be a number between ${min} and ${max}`]
    : above !== undefined
    ? [`number > ${above}`, `must be a number > ${above}`]
    : [`number ≥ ${min ?? "-∞"}`, `must be a number >= ${min}`];
  return leaf(type, (raw, key) => {
    const ok = typeof raw === "number" && Number.isFinite(raw) &&
      (min === undefined || raw >= min) && (max === undefined || raw <= max) &&
      (above === undefined || raw > above);
    if (!ok) throw new ConfigError(key, message);
    return raw as number;
  });
}

/** A probability: a number between 0 and 1. */
export function rate(): Schema<number> {
  return number({ min: 0, max: 1 });
}

/** A non-empty string. */
export function string(): Schema<string> {
  return leaf("string", (raw, key) => {
    if (typeof raw !== "string" || raw === "") {
      throw new ConfigError(key, "must be a non-empty string");
    }
    return raw;
  });
}

/** One of the listed strings. */
export function oneOf<const V extends string>(values: readonly V[]): Schema<V> {
  const list = values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(", ")}`;
  return leaf(values.map((v) => `\`${v}\``).join(" | "), (raw, key) => {
    if (!(values as readonly unknown[]).includes(raw)) {
      throw new ConfigError(key, `must be ${list}`);
    }
    return raw as V;
  });
}

/** A duration (`500ms`, `5s`, `1m30s`, `0`) in milliseconds; `positive` refuses 0. */
export function duration(options: { positive?: boolean } = {}): Schema<number> {
  return leaf(options.positive ? "duration > 0" : "duration", (raw, key) => {
    let ms: number;
    try {
      ms = parseDuration(raw as string | number);
    } catch (error) {
      throw new ConfigError(key, (error as Error).message);
    }
    if (options.positive && ms <= 0) throw new ConfigError(key, "must be longer than 0");
    return ms;
  });
}

/** A byte size (`4MB` = 4 MiB, `512KB`, `100B`, or a plain number of bytes); `positive` refuses 0. */
export function byteSize(options: { positive?: boolean } = {}): Schema<number> {
  return leaf("size", (raw, key) => {
    let bytes: number;
    try {
      bytes = parseByteSize(raw as string | number);
    } catch (error) {
      throw new ConfigError(key, (error as Error).message);
    }
    if (options.positive && bytes === 0) throw new ConfigError(key, "must be > 0");
    return bytes;
  });
}

/** A port number 0–65535 (0 picks a free one); a string of digits (a `--flag`) is accepted. */
export function port(): Schema<number> {
  return leaf("port", (raw, key) => parsePort(raw, key));
}

/** A `host:port` string (IPv6 in brackets, port 1–65535). */
export function hostPort(): Schema<string> {
  return leaf("host:port", (raw, key) => {
    parseHostPort(raw, key);
    return raw as string;
  });
}

/** A filesystem path; a relative one is resolved against the config file's directory. */
export function path(): Schema<string> {
  return leaf("path", (raw, key, ctx) => {
    if (typeof raw !== "string" || raw === "") {
      throw new ConfigError(key, "must be a non-empty string");
    }
    return isAbsolute(raw) ? raw : resolve(ctx.baseDir ?? Deno.cwd(), raw);
  });
}

/** A regular expression's source, checked to compile. */
export function regex(): Schema<string> {
  return string().check((source) => {
    try {
      new RegExp(source);
      return undefined;
    } catch (error) {
      return `invalid regular expression: ${(error as Error).message}`;
    }
  });
}

/** A role's `listen: {host, port}` block, which the `--host` and `--port` flags override. */
export function listen(defaults: { host: string; port: number }) {
  return object({
    host: string().default(defaults.host).describe("Listen interface. `--host` overrides it."),
    port: port().default(defaults.port)
      .describe("Listen port. `--port` overrides it. `0` picks a free port."),
  });
}

/** The flags every role with a {@linkcode listen} block accepts. */
export const LISTEN_FLAGS = { host: "listen.host", port: "listen.port" } as const;

/**
 * A list of `item`s, each validated under `key[i]`. `of` names the items in the message for a
 * non-list (`must be a list of rules`); `nonEmpty` refuses `[]` (with that message if a string).
 */
export function list<T>(
  item: Schema<T>,
  options: { of?: string; nonEmpty?: boolean | string } = {},
): Schema<T[]> {
  const message = options.of ? `must be a list of ${options.of}` : "must be a list";
  const empty = typeof options.nonEmpty === "string" ? options.nonEmpty : "must not be empty";
  return new Schema<T[]>({
    parse: (raw, key, ctx) => {
      if (!Array.isArray(raw)) throw new ConfigError(key, message);
      if (options.nonEmpty && raw.length === 0) throw new ConfigError(key, empty);
      return raw.map((v, i) => item.parse(v, `${key}[${i}]`, ctx));
    },
    type: `list of ${item.children.length ? "mappings" : item.type}`,
    description: "",
    missing: "required",
    children: [{ suffix: "[]", schema: item as Schema<unknown> }],
    expand: item.children.length > 0,
  });
}

/** A mapping with free keys, each value validated by `value` under `key.name`. */
export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  return leaf(`mapping of ${value.type}`, (raw, key, ctx) => {
    if (!isMap(raw)) throw new ConfigError(key, "must be a mapping");
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(raw)) out[k] = value.parse(v, childKey(key, k), ctx);
    return out;
  });
}

/** A record of schemas, one per YAML key of a mapping. */
export type Shape = Record<string, Schema<unknown>>;

type Renames<F> = { readonly [K in keyof F]?: string };

/** The output of {@linkcode object}: each key's value, under its new name where renamed. */
export type ObjectOutput<F extends Shape, R extends Renames<F>> = {
  -readonly [K in keyof F as K extends keyof R ? R[K] extends string ? R[K] : K : K]: Infer<
    F[K]
  >;
};

/** A mapping schema; {@linkcode ObjectSchema.extend} adds keys. */
export class ObjectSchema<F extends Shape, R extends Renames<F>>
  extends Schema<ObjectOutput<F, R>> {
  /** The keys' schemas. */
  readonly shape: F;
  /** YAML key → output name, for the renamed keys. */
  readonly rename: R;

  /** Use {@linkcode object}. */
  constructor(shape: F, rename: R) {
    const names = Object.keys(shape);
    super({
      parse: (raw, key, ctx) => {
        if (!isMap(raw)) throw new ConfigError(key, "must be a mapping");
        for (const k of Object.keys(raw)) {
          if (!(k in shape)) {
            throw new ConfigError(childKey(key, k), `unknown key (allowed: ${names.join(", ")})`);
          }
        }
        const out: Record<string, unknown> = {};
        for (const name of names) {
          const renamed = (rename as Record<string, string | undefined>)[name] ?? name;
          out[renamed] = shape[name].parse(raw[name], childKey(key, name), ctx);
        }
        return out as ObjectOutput<F, R>;
      },
      type: "mapping",
      description: "",
      missing: "default",
      defaultRaw: {},
      children: names.map((name) => ({ suffix: `.${name}`, schema: shape[name] })),
      expand: true,
    });
    this.shape = shape;
    this.rename = rename;
  }

  /** A mapping with this one's keys and `more` (renames of `more` in `rename`). */
  extend<G extends Shape, const S extends Renames<G> = Record<never, never>>(
    more: G,
    options: { rename?: S } = {},
  ): ObjectSchema<F & G, R & S> {
    return new ObjectSchema(
      { ...this.shape, ...more },
      { ...this.rename, ...(options.rename ?? {}) } as R & S,
    );
  }
}

/**
 * A mapping with exactly the keys of `shape` (others are refused naming the key and the allowed
 * ones). A missing mapping reads as `{}`, so its required keys are reported by their own name.
 * `rename` gives output names to YAML keys (`seeder_tti` → `seederTtiMs`).
 */
export function object<F extends Shape, const R extends Renames<F> = Record<never, never>>(
  shape: F,
  options: { rename?: R } = {},
): ObjectSchema<F, R> {
  return new ObjectSchema(shape, (options.rename ?? {}) as R);
}

/** The output of {@linkcode variant}: which case was given and its value. */
export type VariantOutput<C extends Shape> = {
  [K in keyof C & string]: { kind: K; value: Infer<C[K]> };
}[keyof C & string];

/** A mapping with exactly one of the keys of `cases` (`backend: {testfs: {...}}`). */
export function variant<C extends Shape>(cases: C): Schema<VariantOutput<C>> {
  const names = Object.keys(cases);
  return new Schema<VariantOutput<C>>({
    parse: (raw, key, ctx) => {
      if (!isMap(raw)) throw new ConfigError(key, "must be a mapping");
      for (const k of Object.keys(raw)) {
        if (!(k in cases)) {
          throw new ConfigError(childKey(key, k), `unknown key (allowed: ${names.join(", ")})`);
        }
      }
      const given = names.filter((k) => raw[k] !== undefined && raw[k] !== null);
      if (given.length !== 1) {
        throw new ConfigError(key, `must have exactly one of ${names.join(", ")}`);
      }
      const kind = given[0];
      return {
        kind,
        value: cases[kind].parse(raw[kind], childKey(key, kind), ctx),
      } as VariantOutput<
        C
      >;
    },
    type: `one of ${names.join(", ")}`,
    description: "",
    missing: "required",
    children: names.map((name) => ({
      suffix: `.${name}`,
      schema: cases[name],
      note: `exactly one of ${names.map((n) => `\`${n}\``).join(", ")}`,
    })),
    expand: true,
  });
}

/** One row of a generated key table. */
export interface DocRow {
  /** Dotted key, `[]` marking list items. */
  key: string;
  /** Type name. */
  type: string;
  /** Default in YAML spelling, `required`, or a label. */
  default: string;
  /** What the key does. */
  description: string;
}

/** The documentation rows of a schema: one per key that is not itself a documented mapping. */
export function docRows(schema: Schema<unknown>, key = "", note?: string): DocRow[] {
  const children = schema.children;
  const own = {
    key,
    type: schema.type,
    default: note ?? schema.defaultText,
    description: schema.description,
  };
  if (children.length === 0) return [own];
  const rows: DocRow[] = key && (schema.description || note) ? [own] : [];
  for (const child of children) {
    const childPath = key === "" ? child.suffix.replace(/^\./, "") : key + child.suffix;
    rows.push(...docRows(child.schema, childPath, child.note));
  }
  return rows;
}

/**
 * Applies `--flag=value` overrides to the raw YAML of `schema`: `flagKeys` maps each accepted flag
 * to the dotted key it overrides (`{ port: "listen.port" }`). Returns the raw value to parse. An
 * unknown flag, or a flag value the key's schema refuses, fails naming the flag.
 * @throws {ConfigError} naming the offending flag
 */
export function applyFlags<F extends Shape, R extends Renames<F>>(
  schema: ObjectSchema<F, R>,
  raw: unknown,
  flags: Record<string, string>,
  flagKeys: Readonly<Record<string, string>>,
): unknown {
  const accepted = Object.keys(flagKeys);
  let merged = raw;
  for (const [flag, value] of Object.entries(flags)) {
    const target = flagKeys[flag];
    if (target === undefined) {
      const allowed = accepted.map((f) => `--${f}`).join(", ");
      throw new ConfigError(`--${flag}`, `unknown flag (allowed: ${allowed})`);
    }
    schemaAt(schema as Schema<unknown>, target).parse(value, `--${flag}`);
    merged = setAt(merged, target.split("."), value);
  }
  return merged;
}

function schemaAt(schema: Schema<unknown>, dotted: string): Schema<unknown> {
  let current = schema;
  for (const part of dotted.split(".")) {
    if (!(current instanceof ObjectSchema) || !(part in current.shape)) {
      throw new Error(`flag target ${dotted} is not a key of the schema`);
    }
    current = (current.shape as Shape)[part];
  }
  return current;
}

function setAt(raw: unknown, parts: string[], value: unknown): unknown {
  // A non-mapping stays as it is so the schema reports it.
  if (raw !== undefined && raw !== null && !isMap(raw)) return raw;
  const obj = { ...(raw ?? {}) as Record<string, unknown> };
  const [head, ...rest] = parts;
  obj[head] = rest.length ? setAt(obj[head], rest, value) : value;
  return obj;
}
