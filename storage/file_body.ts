/**
 * A byte range of an open file as a response body that can be sent two ways: read into the
 * sender's own buffers ({@linkcode FileBody.read}, what `http/serve.ts` does with a file response:
 * no allocation per chunk and no stream layers), or as a web stream ({@linkcode FileBody.stream},
 * for in-process readers). Either way the file is closed once the body is done, and whoever
 * waits on {@linkcode FileBody.onDone} learns how it ended and how many bytes went out.
 *
 * @module
 */

/** Chunk size of {@linkcode FileBody.stream}: per chunk, the stream and the HTTP response
 * machinery cost more than the bytes (a file's own `readable` yields 64 KiB). */
export const FILE_STREAM_CHUNK = 1 << 20;

/** What {@linkcode FileBody.onDone} calls: `error` when the body failed or was cut short. */
export type FileBodyDone = (error: unknown, bytes: number) => void;

/** `length` bytes of `file` from its current position; the body owns (and closes) the file. */
export class FileBody {
  /** Bytes the body holds. */
  readonly length: number;
  readonly #file: Deno.FsFile;
  #left: number;
  #sent = 0;
  #callbacks: FileBodyDone[] = [];
  #outcome: { error: unknown; bytes: number } | undefined;
  #stream: ReadableStream<Uint8Array> | undefined;

  /**
   * @param file open for reading, positioned at the body's first byte
   * @param length bytes from there
   */
  constructor(file: Deno.FsFile, length: number) {
    this.#file = file;
    this.length = length;
    this.#left = length;
  }

  /** Bytes read from the body so far. */
  get sent(): number {
    return this.#sent;
  }

  /** True once the body has ended (sent, failed or cancelled) and the file is closed. */
  get done(): boolean {
    return this.#outcome !== undefined;
  }

  /**
   * Reads the next bytes of the body into `into` (at most its length) and counts them as sent;
   * null at the end of the body, or when the file turns out shorter (the caller knows the length
   * it expected).
   */
  async read(into: Uint8Array): Promise<number | null> {
    if (this.#outcome !== undefined) throw new Error("file body already ended");
    if (this.#left === 0) return null;
    const n = await this.#file.read(
      into.length > this.#left ? into.subarray(0, this.#left) : into,
    );
    if (n === null) return null;
    this.#left -= n;
    this.#sent += n;
    return n;
  }

  /**
   * Ends the body: closes the file and tells every {@linkcode FileBody.onDone} waiter, once.
   * Without `error` a body that did not send all its bytes still ends as a failure.
   */
  finish(error?: unknown): void {
    if (this.#outcome !== undefined) return;
    if (error === undefined && this.#sent !== this.length) {
      error = new Error(`body ended after ${this.#sent} of ${this.length} bytes`);
    }
    this.#outcome = { error, bytes: this.#sent };
    this.#file.close();
    for (const callback of this.#callbacks) callback(error, this.#sent);
    this.#callbacks = [];
  }

  /** Runs `callback` once the body has ended (at once if it has). */
  onDone(callback: FileBodyDone): void {
    if (this.#outcome !== undefined) callback(this.#outcome.error, this.#outcome.bytes);
    else this.#callbacks.push(callback);
  }

  /**
   * The body as a web stream of fresh chunks of up to {@linkcode FILE_STREAM_CHUNK} bytes (made
   * once); reading it to the end, an error or a cancel ends the body.
   */
  get stream(): ReadableStream<Uint8Array> {
    this.#stream ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let n: number | null = null;
        const buf = new Uint8Array(Math.min(FILE_STREAM_CHUNK, this.#left));
        try {
          if (this.#outcome === undefined) n = await this.read(buf);
        } catch (error) {
          this.finish(error);
          throw error;
        }
        if (n !== null) controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
        if (n === null || this.#left === 0) {
          this.finish();
          controller.close();
        }
      },
      // A reader may stop once it has every byte instead of reading the end.
      cancel: (reason) =>
        this.finish(
          this.#sent === this.length ? undefined : reason ?? new Error("response body cancelled"),
        ),
      // No read ahead: a body sent from the file (`FileBody.read`) must find every byte there.
    }, { highWaterMark: 0 });
    return this.#stream;
  }
}
