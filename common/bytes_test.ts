import assert from "node:assert/strict";
import { bytesToHex, concatBytes, sliceStream } from "./bytes.ts";

Deno.test("concatBytes joins parts in order into a new array", () => {
  const a = new Uint8Array([1, 2]);
  const out = concatBytes([a, new Uint8Array(0), new Uint8Array([3])]);
  assert.deepEqual([...out], [1, 2, 3]);
  out[0] = 9;
  assert.equal(a[0], 1, "the result does not share memory with its parts");
  assert.equal(concatBytes([]).length, 0);
});

Deno.test("sliceStream cuts a range across chunk boundaries and cancels the rest", async () => {
  const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);
  let cancelled = false;
  const chunks = (): ReadableStream<Uint8Array> => {
    let at = 0;
    return new ReadableStream({
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at + 7));
        at += 7;
      },
      cancel() {
        cancelled = true;
      },
    });
  };
  const read = async (s: ReadableStream<Uint8Array>) =>
    new Uint8Array(await new Response(s).arrayBuffer());
  assert.deepEqual(await read(sliceStream(chunks(), 10, 25)), bytes.slice(10, 35));
  assert.ok(cancelled, "the source is released once the slice is complete");
  assert.deepEqual(await read(sliceStream(chunks(), 0, 100)), bytes);
  assert.deepEqual(await read(sliceStream(chunks(), 95, 50)), bytes.slice(95), "short source");
  assert.deepEqual(
    await read(sliceStream(chunks(), 14, 7)),
    bytes.slice(14, 21),
    "one whole chunk",
  );
});

Deno.test("bytesToHex writes two lowercase digits a byte", () => {
  assert.equal(bytesToHex(new Uint8Array([0, 1, 0x0f, 0xab, 0xff])), "00010fabff");
  assert.equal(bytesToHex(new Uint8Array(0)), "");
});
