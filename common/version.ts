/**
 * The program version, reported by `--version` and as `service.version` on every span.
 *
 * @module
 */

/** Semantic version of this kraken build. */
export const VERSION = "0.1.0";
