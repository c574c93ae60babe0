/**
 * Names shared across the tracing module.
 *
 * @module
 */

/** Instrumentation scope name of every kraken span. */
export const TRACER_NAME = "kraken";
