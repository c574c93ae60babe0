import assert from "node:assert/strict";
import { ManualTimers } from "../common/timers.ts";
import { withTempDir } from "../tests/harness/fs.ts";
import { FileHandlePool } from "./file_handles.ts";

const SIZE = 64 * 1024;

function bytes(seed: number, n = SIZE): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
}

// Files `a`, `b`, `c` in a temp dir, and an opener per file that counts its opens.
async function withFiles(
  fn: (
    files: Record<string, Uint8Array>,
    open: (name: string) => () => Promise<Deno.FsFile>,
    opens: Map<string, number>,
    dir: string,
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const files: Record<string, Uint8Array> = { a: bytes(1), b: bytes(2), c: bytes(3) };
    for (const [name, data] of Object.entries(files)) await Deno.writeFile(`${dir}/${name}`, data);
    const opens = new Map<string, number>();
    const open = (name: string) => () => {
      opens.set(name, (opens.get(name) ?? 0) + 1);
      return Deno.open(`${dir}/${name}`, { read: true });
    };
    await fn(files, open, opens, dir);
  }, { prefix: "file-handles-" });
}

Deno.test("file handles: sequential reads of a file share one handle, opened once", async () => {
  await withFiles(async (files, open, opens) => {
    const pool = new FileHandlePool();
    try {
      const buf = new Uint8Array(4096);
      for (let off = 0; off < SIZE; off += 4096) {
        const got = await pool.readAt("a", open("a"), off, 4096, buf);
        assert.equal(got.buffer, buf.buffer, "read into the caller's buffer");
        assert.deepEqual(got, files.a.subarray(off, off + 4096));
      }
      // Out of order too: the handle seeks.
      assert.deepEqual(await pool.readAt("a", open("a"), 100, 50), files.a.subarray(100, 150));
      assert.deepEqual(await pool.readAt("a", open("a"), 0, 10), files.a.subarray(0, 10));
      assert.equal(opens.get("a"), 1);
      assert.equal(pool.openHandles, 1);
    } finally {
      pool.close();
    }
    assert.equal(pool.openHandles, 0);
  });
});

Deno.test("file handles: concurrent reads of one file get their own handles and the right bytes", async () => {
  await withFiles(async (files, open, opens) => {
    const pool = new FileHandlePool();
    try {
      const reads = Array.from({ length: 16 }, (_, i) => {
        const off = (i * 3989) % (SIZE - 1000);
        return pool.readAt("b", open("b"), off, 1000).then((got) => ({ off, got }));
      });
      for (const { off, got } of await Promise.all(reads)) {
        assert.deepEqual(got, files.b.subarray(off, off + 1000));
      }
      const opened = opens.get("b")!;
      assert.ok(opened >= 1 && opened <= 16, `${opened} opens`);
      assert.equal(pool.openHandles, opened, "every handle went back to the pool");
      // A second round needs no new handle.
      await Promise.all(reads.map((_, i) => pool.readAt("b", open("b"), i * 100, 100)));
      assert.ok(opens.get("b")! <= 16);
    } finally {
      pool.close();
    }
  });
});

Deno.test("file handles: at most maxOpen stay open; the least recently used idle one goes first", async () => {
  await withFiles(async (files, open, opens) => {
    const pool = new FileHandlePool({ maxOpen: 2 });
    try {
      await pool.readAt("a", open("a"), 0, 10);
      await pool.readAt("b", open("b"), 0, 10);
      assert.equal(pool.openHandles, 2);
      await pool.readAt("a", open("a"), 10, 10); // b is now the least recently used
      await pool.readAt("c", open("c"), 0, 10);
      assert.equal(pool.openHandles, 2);
      await pool.readAt("a", open("a"), 20, 10);
      assert.equal(opens.get("a"), 1, "a stayed open");
      await pool.readAt("b", open("b"), 0, 10);
      assert.equal(opens.get("b"), 2, "b was closed for c and opened again");
      assert.equal(pool.openHandles, 2);
      // Every handle busy at the bound: the read goes through a handle of its own, closed after.
      const reads = ["a", "b", "c", "a"].map((k, i) => pool.readAt(k, open(k), i, 100));
      const got = await Promise.all(reads);
      ["a", "b", "c", "a"].forEach((k, i) =>
        assert.deepEqual(got[i], files[k].subarray(i, i + 100))
      );
      assert.ok(pool.openHandles <= 2, `${pool.openHandles} open`);
    } finally {
      pool.close();
    }
  });
});

Deno.test("file handles: forget closes a file's handles, busy ones after their read", async () => {
  await withFiles(async (files, open, _opens, dir) => {
    const pool = new FileHandlePool();
    try {
      await pool.readAt("a", open("a"), 0, 10);
      await pool.readAt("b", open("b"), 0, 10);
      assert.equal(pool.openHandles, 2);
      await Deno.remove(`${dir}/a`);
      // The open handle still reads the unlinked file, as an open stream would.
      assert.deepEqual(await pool.readAt("a", open("a"), 5, 5), files.a.subarray(5, 10));
      pool.forget("a");
      assert.equal(pool.openHandles, 1);
      await assert.rejects(pool.readAt("a", open("a"), 0, 10), Deno.errors.NotFound);
      assert.equal(pool.openHandles, 1, "a failed open leaves nothing open");
      // Forgotten mid-read: the read completes, then its handle closes.
      const reading = pool.readAt("b", open("b"), 0, SIZE);
      pool.forget("b");
      assert.deepEqual(await reading, files.b);
      assert.equal(pool.openHandles, 0);
    } finally {
      pool.close();
    }
  });
});

Deno.test("file handles: an idle handle closes after idleMs; the sweep stops with it", async () => {
  await withFiles(async (_files, open, opens) => {
    const timers = new ManualTimers();
    const pool = new FileHandlePool({ idleMs: 1000, timers });
    try {
      await pool.readAt("a", open("a"), 0, 10);
      timers.advance(600);
      await pool.readAt("b", open("b"), 0, 10);
      assert.equal(pool.openHandles, 2);
      assert.equal(timers.pending, 1, "one sweep for the pool");
      timers.advance(500); // a idle 1100 ms, b 500 ms
      assert.equal(pool.openHandles, 1);
      await pool.readAt("b", open("b"), 10, 10);
      timers.advance(999);
      assert.equal(pool.openHandles, 1, "b was used 999 ms ago");
      timers.advance(500);
      assert.equal(pool.openHandles, 0);
      assert.equal(timers.pending, 0, "no sweep without idle handles");
      await pool.readAt("a", open("a"), 0, 10);
      assert.equal(opens.get("a"), 2);
      assert.equal(opens.get("b"), 1);
    } finally {
      pool.close();
    }
    assert.equal(timers.pending, 0);
  });
});

Deno.test("file handles: bad ranges are refused and leave the handle usable; close ends pooling", async () => {
  await withFiles(async (files, open, opens) => {
    const pool = new FileHandlePool();
    await assert.rejects(pool.readAt("a", open("a"), -1, 10), RangeError);
    await assert.rejects(pool.readAt("a", open("a"), 0, 10, new Uint8Array(5)), RangeError);
    await assert.rejects(pool.readAt("a", open("a"), SIZE - 5, 10), /extends past end/);
    assert.equal(pool.openHandles, 1);
    assert.deepEqual(await pool.readAt("a", open("a"), SIZE - 5, 5), files.a.subarray(SIZE - 5));
    assert.equal(opens.get("a"), 1);
    pool.close();
    assert.equal(pool.openHandles, 0);
    // Still readable after close, without keeping anything open.
    assert.deepEqual(await pool.readAt("c", open("c"), 0, 10), files.c.subarray(0, 10));
    assert.equal(pool.openHandles, 0);
  });
});
