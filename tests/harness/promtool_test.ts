import assert from "node:assert/strict";
import { stampOpenMetrics } from "./promtool.ts";

Deno.test("stampOpenMetrics puts the timestamp after the value, before the exemplar", () => {
  const text = [
    "# TYPE x histogram",
    'x_bucket{route="/v2/{name+}/blobs/{digest}",le="0.5"} 3 # {trace_id="ab"} 0.3 17.5',
    'x_bucket{a="q\\"}",le="+Inf"} 4',
    "x_count 4",
    "# EOF",
    "",
  ].join("\n");
  assert.equal(
    stampOpenMetrics(text, 100),
    [
      "# TYPE x histogram",
      'x_bucket{route="/v2/{name+}/blobs/{digest}",le="0.5"} 3 100 # {trace_id="ab"} 0.3 17.5',
      'x_bucket{a="q\\"}",le="+Inf"} 4 100',
      "x_count 4 100",
      "# EOF",
      "",
    ].join("\n"),
  );
});
