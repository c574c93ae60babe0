/**
 * The configuration error of the tracing parsers: the project-wide {@linkcode ConfigError}, which
 * names the offending key (e.g. `tracing.sampling.rules[1].rate: must be a number between 0 and 1`).
 *
 * @module
 */

export { ConfigError } from "../common/config.ts";
