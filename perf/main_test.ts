import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { spawnDeno } from "../tests/harness/procs.ts";
import { REPORT_MARKERS } from "./report.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

externalTest({
  name: "perf: a tiny `npm run perf` prints a report with every part measured",
  // Real processes for every part (roles, Jaeger, Redis): a few minutes on a loaded machine.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kraken-perf-smoke-" });
    try {
      const out = `${dir}/report.md`;
      const run = spawnDeno(MAIN, [
        "--size=2MiB",
        "--rounds=1",
        "--gets=30",
        "--announces=60",
        "--uploads=2",
        "--upload-size=256KB",
        "--runs=1",
        "--traces=4",
        "--inprocess-requests=500",
        `--out=${out}`,
      ], { name: "perf" });
      const status = await run.stopped;
      const log = run.log();
      assert.equal(status.code, 0, log.slice(-6000));
      const md = await Deno.readTextFile(out);
      assert.ok(log.includes(md.trim()), "the report is printed on stdout too");
      assert.ok(!md.includes("Not measured"), md);
      assert.ok(!md.includes("Parts that failed"), md);
      assert.ok(!md.includes(REPORT_MARKERS.start), md);
      assert.match(md, /Machine: .+, \d+ cores, [\d.]+ GiB memory; Deno \d+\.\d+\.\d+/);
      const number = String.raw`-?\d+(\.\d+)?`;
      // P2P 1→1 and 1→4 rows, the in-process rows, every end-to-end variant.
      assert.match(md, new RegExp(String.raw`\| 1 → 1 \| 2 MiB × 1 \| ${number} \(`));
      assert.match(md, new RegExp(String.raw`\| 1 → 4, aggregate \| 2 MiB × 1 \| ${number} \(`));
      assert.match(md, new RegExp(String.raw`\| traced, sampled \| ${number} \| ${number} \|`));
      // A sampled request allocates more than an untraced one.
      assert.match(md, /Bytes allocated per request .*: no tracing \d+, sampled \d+ \(\+\d+\)/);
      assert.match(
        md,
        /\| span start\+end sampled \| [\d.]+ (ns|µs) \| [\d.]+ (ns|µs) \| [\d.]+× \|/,
      );
      assert.match(md, /Heap held per queued 10-span trace until export .*: \d+ bytes\./);
      assert.match(
        md,
        /CPUs: (client on CPU 0, nodes under test on CPU [\d-]+|not pinned \(.+\))\./,
      );
      for (
        const title of [
          "agent GET of a cached 64 KB blob",
          "tracker announce",
          "proxy upload of 256 KiB",
        ]
      ) {
        const section = md.slice(md.indexOf(`### ${title}`));
        assert.ok(md.includes(`### ${title}`), `no section ${title}:\n${md}`);
        for (const variant of ["off", "10%", "100%"]) {
          assert.match(
            section,
            new RegExp(String.raw`\| 1 \| ${variant} \| \d+ \| ${number} (µs|ms)`),
            `${title}, ${variant}`,
          );
        }
      }
      for (const node of ["agent", "tracker", "proxy"]) {
        assert.match(
          md,
          new RegExp(String.raw`\| ${node} \| [\d.]+ \| [\d.]+ \| [\d.]+ \|`),
          // Never negative: a thread that exits in the window must not take its past CPU along.
          `idle CPU of the ${node} nodes`,
        );
      }
      assert.match(md, /\| pull \(agent GET, P2P download\) \| 4 \| \d \| \d+ \|/);
      assert.match(md, /\| push \(proxy upload\) \| 4 \| \d \| \d+ \|/);
      assert.match(
        md,
        new RegExp(String.raw`\| OTLP/protobuf bytes per exported span \| ${number} \|`),
      );
      assert.match(
        md,
        new RegExp(String.raw`\| announces/s, one tracker on Redis, 16 in flight \| ${number} \|`),
      );
      assert.match(md, /\d+ of \d+ targets met\./);
      const targets = md.slice(md.indexOf("### Targets")).split("\n").filter((l) =>
        /\| (met|\*\*not met\*\*) \|$/.test(l)
      );
      assert.equal(targets.length, 23, md);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
