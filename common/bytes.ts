/**
 * Byte-array helpers shared by the roles and subsystems that gather data in pieces (request bodies,
 * wire frames) before using it whole, {@linkcode bytesToHex}, and {@linkcode sliceStream}, which
 * cuts a byte range out of a stream (ranged blob reads).
 *
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 * concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */

/** `bytes` as lowercase hex, two digits a byte (V8's native `Uint8Array.prototype.toHex`). */
export function bytesToHex(bytes: Uint8Array): string {
  return (bytes as Uint8Array & { toHex(): string }).toHex();
}

/** The parts joined, in order, into one new array (an empty list gives an empty array). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The bytes `[start, start + length)` of `source` as a stream: bytes before `start` are dropped, and
 * once `length` bytes went out the source is cancelled (releasing a file or a connection). A source
 * that ends early ends the slice early; the caller knows the size it expected.
 */
export function sliceStream(
  source: ReadableStream<Uint8Array>,
  start: number,
  length: number,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let skip = start;
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (left > 0) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = value;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        if (chunk.length > left) chunk = chunk.subarray(0, left);
        left -= chunk.length;
        controller.enqueue(chunk);
        if (left > 0) return;
      }
      controller.close();
      await reader.cancel().catch(() => {});
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
}
