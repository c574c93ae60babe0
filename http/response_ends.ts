/**
 * The listener's word on when a response ended. `http/serve.ts` reports each response once it has
 * written the body to the socket (or failed to, or the client went away), with the bytes it wrote.
 * Whoever times a response (the request metrics and the server span, through `tracing/http.ts`'s
 * `whenResponseDone`) then waits for that report instead of reading a small body first and making
 * a new response of it, or passing a large one through a stream of its own to see its end.
 *
 * A request served by such a listener carries its {@linkcode ResponseEnds} in the router's context
 * (`Ctx.responseEnds`); a request handled in-process without one (tests calling `Router.handle`)
 * has none, and its body is tracked by reading it as before.
 *
 * ```ts
 * import { ResponseEnds } from "./response_ends.ts";
 *
 * const ends = new ResponseEnds();
 * const response = new Response("ok");
 * ends.watch(response, (error, bytes) => console.log(error ?? `sent ${bytes} bytes`));
 * // ... the listener writes the body, then:
 * ends.report(response, undefined, 2);
 * ```
 *
 * @module
 */

/** Told once that a response ended: `error` when it failed or was cut short, and bytes written. */
export type ResponseEndCallback = (error: unknown, bytes: number) => void;

/** The responses of one listener whose end somebody waits for. */
export class ResponseEnds {
  // Keyed weakly: a response the listener never got (replaced on the way out) leaves nothing behind.
  readonly #waiting = new WeakMap<Response, ResponseEndCallback>();

  /**
   * Runs `callback` once, when the listener reports `response` ended. One watcher per response:
   * `whenResponseDone` keeps one per request and fans out to its own callbacks.
   */
  watch(response: Response, callback: ResponseEndCallback): void {
    this.#waiting.set(response, callback);
  }

  /** The listener is done with `response`: runs its watcher, if it has one, exactly once. */
  report(response: Response, error: unknown, bytes: number): void {
    const callback = this.#waiting.get(response);
    if (callback === undefined) return;
    this.#waiting.delete(response);
    callback(error, bytes);
  }
}
