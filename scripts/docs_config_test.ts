import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { BEGIN, END, generate, renderTable, replaceGenerated } from "./docs_config.ts";

const ROOT = new URL("../", import.meta.url);

// Formatting the generated Markdown runs `deno fmt`, a process.
externalTest(
  "docs: the committed key tables are what the schemas generate (run `deno task docs:config`)",
  async () => {
    for (const [path, expected] of await generate(ROOT)) {
      assert.equal(await Deno.readTextFile(path), expected, `${path} is stale`);
    }
  },
);

Deno.test("docs: only the marked section is replaced, and a page without markers is refused", () => {
  const table = renderTable([{ key: "a.b", type: "x | y", default: "`1`", description: "D." }]);
  assert.equal(table.split("\n")[2], "| `a.b` | x \\| y | `1` | D. |");
  const page = `# T\n\nprose\n\n${BEGIN}\nold\n${END}\n\nmore prose\n`;
  assert.equal(
    replaceGenerated(page, "NEW", "p.md"),
    `# T\n\nprose\n\n${BEGIN}\n\nNEW\n\n${END}\n\nmore prose\n`,
  );
  assert.throws(() => replaceGenerated("# no markers\n", "NEW", "p.md"), /p\.md: no <!--/);
});
