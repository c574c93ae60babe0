/**
 * Generates the configuration key tables of the docs from the schemas: the `tracing:` table of
 * `docs/configuration.md` and, from each role's `RoleDefinition.configSchema`, the key table of its
 * page `docs/<role>.md`; and from `roles/upstream_keys.ts` the table of upstream Kraken's keys in
 * `docs/interop.md`. Only the text
 * between `<!-- generated:config:begin -->` and `<!-- generated:config:end -->` is replaced; the
 * prose around it is hand-written. `deno task docs:config` rewrites the files;
 * `scripts/docs_config_test.ts` fails when the committed docs differ from what this generates.
 *
 * @module
 */

import { type DocRow, docRows, type Schema } from "../common/schema.ts";
import { ROLE_NAMES, ROLES } from "../roles/mod.ts";
import { UPSTREAM_KEYS } from "../roles/upstream_keys.ts";
import type { KeyRule } from "../common/key_map.ts";
import { tracingSchema } from "../tracing/config.ts";

/** The markers around a generated table. */
export const BEGIN = "<!-- generated:config:begin -->";
/** See {@linkcode BEGIN}. */
export const END = "<!-- generated:config:end -->";

const TRACING_ROW: DocRow = {
  key: "tracing",
  type: "mapping",
  default: "see [configuration.md](configuration.md)",
  description: "Shared by all roles.",
};

/** A page's key table: the schema's rows and any extra ones. */
function keyTable(schema: Schema<unknown>, extra: DocRow[] = []): () => string {
  return () => renderTable([...docRows(schema), ...extra]);
}

/** Each generated docs page, relative to the repository root, and its table. */
export const PAGES: readonly { file: string; table: () => string }[] = [
  { file: "docs/configuration.md", table: keyTable(tracingSchema) },
  ...ROLE_NAMES.map((role) => ({
    file: `docs/${role}.md`,
    table: keyTable(ROLES[role].configSchema, [TRACING_ROW]),
  })),
  { file: "docs/interop.md", table: () => renderUpstreamTable(UPSTREAM_KEYS) },
];

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/** The Markdown key table of `rows` (before `deno fmt` aligns it). */
export function renderTable(rows: readonly DocRow[]): string {
  const lines = ["| Key | Type | Default | Meaning |", "| --- | --- | --- | --- |"];
  for (const row of rows) {
    const meaning = row.description || "";
    lines.push(
      `| \`${cell(row.key)}\` | ${cell(row.type)} | ${cell(row.default)} | ${cell(meaning)} |`,
    );
  }
  return lines.join("\n");
}

/** What a row of `roles/upstream_keys.ts` does, for the docs. */
function upstreamOutcome(rule: KeyRule): string {
  if ("to" in rule) return `read as ${rule.note ?? `\`${rule.to}\``}`;
  if ("ignore" in rule) {
    return `accepted with a warning: ${rule.ignore}`;
  }
  const accepted = rule.accepted ? `; accepted silently: ${rule.accepted}` : "";
  return `**refused**: ${rule.refuse}${accepted}`;
}

/** The Markdown table of upstream's keys, one row per role and key (before `deno fmt`). */
export function renderUpstreamTable(tables: Readonly<Record<string, readonly KeyRule[]>>): string {
  const lines = ["| Role | Upstream key | Here |", "| --- | --- | --- |"];
  for (const [role, rules] of Object.entries(tables)) {
    for (const rule of rules) {
      lines.push(`| ${role} | \`${cell(rule.key)}\` | ${cell(upstreamOutcome(rule))} |`);
    }
  }
  return lines.join("\n");
}

/** `text` with the part between the markers replaced by `table`; throws when markers are missing. */
export function replaceGenerated(text: string, table: string, file: string): string {
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`${file}: no ${BEGIN} … ${END} section`);
  return `${text.slice(0, begin + BEGIN.length)}\n\n${table}\n\n${text.slice(end)}`;
}

/** Formats Markdown the way `deno fmt` does for the committed files. */
export async function formatMarkdown(text: string, root: URL): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    cwd: root.pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`deno fmt failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** Each page's path and its content with freshly generated, formatted tables. */
export async function generate(root: URL): Promise<Map<string, string>> {
  const pages = new Map<string, string>();
  for (const page of PAGES) {
    const path = new URL(page.file, root);
    const current = await Deno.readTextFile(path);
    const table = page.table();
    pages.set(
      path.pathname,
      await formatMarkdown(replaceGenerated(current, table, page.file), root),
    );
  }
  return pages;
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  for (const [path, text] of await generate(root)) {
    if (text !== await Deno.readTextFile(path)) {
      await Deno.writeTextFile(path, text);
      console.log(`updated ${path}`);
    }
  }
}
