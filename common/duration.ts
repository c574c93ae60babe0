/**
 * Duration strings as written in YAML configuration: `500ms`, `5s`, `1m`, `1h`, and sums of them
 * such as `1m30s` (Go's `time.ParseDuration` spelling, which upstream Kraken configs use).
 *
 * @module
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/**
 * Parses a duration into milliseconds. A bare number is refused (its unit would be a guess) except
 * `0`. Throws a `RangeError` whose message suits a {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * parseDuration("1m30s"); // 90000
 * ```
 */
export function parseDuration(value: string | number): number {
  if (value === 0 || value === "0") return 0;
  if (typeof value !== "string" || !WHOLE.test(value)) {
    throw new RangeError(
      `must be a duration like 500ms, 5s, 1m or 1h (got ${JSON.stringify(value)})`,
    );
  }
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(PART)) ms += Number(amount) * UNIT_MS[unit];
  return ms;
}
