/**
 * Closing what may be closed already: a file, a connection, a listener.
 *
 * @module
 */

/** Anything with a synchronous `close()`. */
export interface Closable {
  /** Releases the resource; may throw when it was released already. */
  close(): void;
}

/** Closes `resource`, ignoring that it was closed already (closing is idempotent for our purposes). */
export function closeQuietly(resource: Closable): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}
