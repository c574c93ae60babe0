/**
 * The error every HTTP client in the tree throws when a server (origin, tracker, build-index,
 * testfs) answers with a status the caller did not accept. Server-side protocol errors are
 * {@linkcode HttpError} in `router.ts`; this one describes a response received.
 *
 * ```ts
 * import { HttpStatusError } from "./status_error.ts";
 * const res = await fetch(url);
 * if (res.status !== 200) throw new HttpStatusError("GET", url, res.status, await res.text());
 * ```
 *
 * @module
 */

/** A server answered with a status the client does not accept. */
export class HttpStatusError extends Error {
  /** HTTP status received. */
  readonly status: number;
  /** Response body text (upstream sends plain-text errors; status-only errors are empty). */
  readonly body: string;

  /**
   * @param method request method
   * @param url request URL
   * @param status status received
   * @param body response body text, also put in the message when not empty
   */
  constructor(method: string, url: string, status: number, body: string) {
    super(`${method} ${url}: status ${status}${body ? `: ${body}` : ""}`);
    this.name = "HttpStatusError";
    this.status = status;
    this.body = body;
  }
}
