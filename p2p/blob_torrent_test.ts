import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { BlobNotFoundError, BlobStore, DigestMismatchError } from "../storage/blob_store.ts";
import { FileHandlePool } from "../storage/file_handles.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { generateMetaInfo, MetaInfo } from "../storage/metainfo.ts";
import {
  cleanDownloads,
  DOWNLOADS_DIR,
  LeechingTorrent,
  METAINFO_KEY,
  readMetaInfo,
  SeedingTorrent,
  TorrentStateError,
} from "./blob_torrent.ts";
import { ManualTimers } from "../common/timers.ts";
import { prng, randomBytes } from "./_test_util.ts";
import { PieceBufferPool } from "./buffer_pool.ts";
import { exists, withTempDir } from "../tests/harness/fs.ts";

const PIECE = 1000;

async function metaInfoOf(data: Uint8Array, pieceLength = PIECE): Promise<MetaInfo> {
  return await generateMetaInfo(
    await digestOfBytes(data),
    { stream: ReadableStream.from([data]), size: data.length },
    pieceLength,
  );
}

function piece(data: Uint8Array, mi: MetaInfo, i: number): Uint8Array {
  return data.slice(i * mi.pieceLength, i * mi.pieceLength + mi.pieceLengthAt(i));
}

function withStore(fn: (store: BlobStore, root: string) => Promise<void>): Promise<void> {
  return withTempDir(async (root) => fn(await BlobStore.open({ root }), root), {
    prefix: "blob-torrent-",
  });
}

Deno.test("seeding torrent serves the cached blob's pieces and refuses writes", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(1), 3500);
    const mi = await metaInfoOf(data);
    await store.putBlob(mi.digest, data);
    assert.equal(await SeedingTorrent.open(store, mi.digest), null, "no metainfo yet");
    await store.setMetadata(mi.digest, METAINFO_KEY, new TextEncoder().encode(mi.serialize()));
    const seed = await SeedingTorrent.open(store, mi.digest);
    assert.ok(seed);
    assert.equal(seed.infoHash, mi.infoHash.hex);
    assert.equal(seed.digestHex, mi.digest.hex);
    assert.equal(seed.numPieces, 4);
    assert.ok(seed.complete());
    assert.equal(seed.bitfield().count(), 4);
    assert.equal(seed.pieceLength(3), 500);
    for (let i = 0; i < 4; i++) assert.deepEqual(await seed.readPiece(i), piece(data, mi, i));
    await assert.rejects(seed.writePiece(0, piece(data, mi, 0)), TorrentStateError);
    assert.ok((await readMetaInfo(store, mi.digest))?.infoHash.equals(mi.infoHash));
  });
});

Deno.test("seeding torrent with a handle pool opens the blob once; close and delete let it go", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(7), 3500);
    const mi = await metaInfoOf(data);
    await store.putBlob(mi.digest, data);
    await store.setMetadata(mi.digest, METAINFO_KEY, new TextEncoder().encode(mi.serialize()));
    const files = new FileHandlePool();
    try {
      const seed = await SeedingTorrent.open(store, mi.digest, files);
      assert.ok(seed);
      const buf = new Uint8Array(PIECE);
      for (const i of [0, 1, 2, 3, 1]) {
        assert.deepEqual(await seed.readPiece(i, buf), piece(data, mi, i));
      }
      const all = await Promise.all([0, 1, 2, 3].map((i) => seed.readPiece(i)));
      all.forEach((got, i) => assert.deepEqual(got, piece(data, mi, i)));
      assert.ok(files.openHandles >= 1 && files.openHandles <= 4, `${files.openHandles} open`);
      seed.close();
      assert.equal(files.openHandles, 0);
      assert.deepEqual(await seed.readPiece(2), piece(data, mi, 2), "reopened on demand");
      assert.equal(files.openHandles, 1);
      await store.delete(mi.digest);
      seed.close();
      await assert.rejects(seed.readPiece(0), BlobNotFoundError);
      assert.equal(files.openHandles, 0);
    } finally {
      files.close();
    }
  });
});

Deno.test("leeching torrent: pieces in any order, commit verifies and caches", async () => {
  await withStore(async (store, root) => {
    const data = randomBytes(prng(2), 4200);
    const mi = await metaInfoOf(data);
    const t = await LeechingTorrent.open(store, mi);
    assert.equal(t.resumedPieces, 0);
    assert.equal(t.bitfield().count(), 0);
    await assert.rejects(t.readPiece(1), TorrentStateError);
    await assert.rejects(t.commit(), TorrentStateError);
    for (const i of [4, 0, 2, 3, 1]) await t.writePiece(i, piece(data, mi, i));
    assert.ok(t.complete());
    assert.deepEqual(await t.readPiece(4), piece(data, mi, 4));
    assert.equal(await store.has(mi.digest), false, "nothing enters the cache before commit");
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: false });
    assert.ok(t.committed);
    const blob = await store.open(mi.digest);
    assert.deepEqual(new Uint8Array(await new Response(blob.stream).arrayBuffer()), data);
    assert.ok((await readMetaInfo(store, mi.digest))?.infoHash.equals(mi.infoHash));
    assert.equal(await exists(`${root}/${DOWNLOADS_DIR}/${mi.digest.hex}`), false);
    // Seeding continues from the cache after the commit.
    assert.deepEqual(await t.readPiece(2), piece(data, mi, 2));
  });
});

Deno.test("leeching torrent: pieces stored concurrently reach the file one write at a time", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(8), 6500);
    const mi = await metaInfoOf(data);
    const t = await LeechingTorrent.open(store, mi);
    let inFlight = 0, most = 0, opened = 0, closed = 0;
    const openUploadWriter = store.openUploadWriter.bind(store);
    store.openUploadWriter = async (uid) => {
      opened++;
      const writer = await openUploadWriter(uid);
      return {
        ...writer,
        async write(offset, bytes) {
          most = Math.max(most, ++inFlight);
          try {
            await writer.write(offset, bytes);
          } finally {
            inFlight--;
          }
        },
        close() {
          closed++;
          writer.close();
        },
      };
    };
    store.writeChunk = () => Promise.reject(new Error("pieces go through the kept writer"));
    const failing = piece(data, mi, 6).slice(0, 10); // wrong length: refused, queues nothing
    await Promise.all([
      ...[3, 0, 5, 1, 2, 4, 6].map((i) => t.writePiece(i, piece(data, mi, i))),
      assert.rejects(t.writePiece(6, failing), TorrentStateError),
    ]);
    assert.equal(
      most,
      1,
      "one piece write at a time: the file's inode lock serialises them anyway",
    );
    assert.ok(t.complete());
    assert.equal(opened, 1, "the download file is opened once for all its pieces");
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: false });
    assert.equal(closed, 1, "the commit closes it");
    assert.deepEqual(
      await Deno.readFile(`${store.root}/cache/${mi.digest.hex.slice(0, 2)}/${mi.digest.hex}`),
      data,
    );
  });
});

Deno.test("leeching torrent hashes pieces as they land, catching up on early ones", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(12), 6500);
    const mi = await metaInfoOf(data);
    const t = await LeechingTorrent.open(store, mi);
    // Pieces ahead of the frontier wait; piece 0 is hashed from the bytes written.
    for (const i of [2, 3]) await t.writePiece(i, piece(data, mi, i));
    assert.equal(t.hashedPieces, 0);
    // The caller may reuse its buffer at once: the torrent must have hashed it already.
    const reused = piece(data, mi, 0);
    await t.writePiece(0, reused);
    reused.fill(0);
    assert.ok(t.hashedPieces >= 1);
    await t.writePiece(1, piece(data, mi, 1));
    for (const i of [4, 5, 6]) await t.writePiece(i, piece(data, mi, i));
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: false });
    assert.equal(t.hashedPieces, 7);
    const blob = await store.open(mi.digest);
    assert.deepEqual(new Uint8Array(await new Response(blob.stream).arrayBuffer()), data);
  });
});

Deno.test("leeching torrent reads early pieces back into a buffer from its pool, then gives it back", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(13), 4500);
    const mi = await metaInfoOf(data);
    const pool = new PieceBufferPool({ timers: new ManualTimers() });
    const taken: Uint8Array[] = [];
    const source = {
      take: (n: number) => {
        const buf = pool.take(n);
        taken.push(buf);
        return buf;
      },
      give: (buf: Uint8Array) => pool.give(buf),
    };
    const t = await LeechingTorrent.open(store, mi, undefined, source);
    for (const i of [2, 3, 0, 1]) await t.writePiece(i, piece(data, mi, i));
    await t.writePiece(4, piece(data, mi, 4));
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: false });
    assert.equal(t.hashedPieces, 5);
    assert.ok(taken.length >= 1, "the catch-up over pieces 2 and 3 took a buffer");
    assert.equal(new Set(taken).size, 1, "a later catch-up took the one given back");
    assert.ok(taken[0].length >= PIECE);
    assert.equal(pool.idleBytes, taken[0].length, "given back once the hash caught up");
    pool.close();
  });
});

Deno.test("leeching torrent resumes after a restart and re-checks written pieces", async () => {
  await withStore(async (store, root) => {
    const data = randomBytes(prng(3), 5000);
    const mi = await metaInfoOf(data);
    const first = await LeechingTorrent.open(store, mi);
    for (const i of [0, 1, 3]) await first.writePiece(i, piece(data, mi, i));
    // Piece 1's bytes go bad on disk while its status still says written.
    await store.writeChunk(first.uid, PIECE, PIECE + 4, new Uint8Array(4));

    const reopened = await BlobStore.open({ root });
    assert.deepEqual(await LeechingTorrent.resumableMetaInfo(reopened, mi.digest), mi);
    const second = await LeechingTorrent.open(reopened, mi);
    assert.equal(second.uid, first.uid);
    assert.equal(second.resumedPieces, 2);
    const have = second.bitfield();
    assert.deepEqual([0, 1, 2, 3, 4].map((i) => have.get(i)), [true, false, false, true, false]);
    for (const i of [1, 2, 4]) await second.writePiece(i, piece(data, mi, i));
    assert.deepEqual(await second.commit(), { verified: true, cacheHit: false });
    assert.ok(await reopened.has(mi.digest));
  });
});

Deno.test("leeching torrent: state for another torrent of the same blob is replaced", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(4), 3000);
    const small = await metaInfoOf(data, 1000);
    const big = await metaInfoOf(data, 1500);
    const first = await LeechingTorrent.open(store, small);
    await first.writePiece(0, piece(data, small, 0));
    const second = await LeechingTorrent.open(store, big);
    assert.notEqual(second.uid, first.uid);
    assert.equal(second.resumedPieces, 0);
    assert.equal(second.numPieces, 2);
  });
});

Deno.test("commit of CRC-valid pieces with the wrong SHA-256 fails and caches nothing", async () => {
  await withStore(async (store, root) => {
    const data = randomBytes(prng(5), 2500);
    const other = await digestOfBytes(new TextEncoder().encode("something else"));
    const sums = [0, 1, 2].map((i) => crc32(data.subarray(i * PIECE, (i + 1) * PIECE)) >>> 0);
    const mi = MetaInfo.create({
      digest: other,
      pieceLength: PIECE,
      pieceSums: sums,
      length: 2500,
    });
    const t = await LeechingTorrent.open(store, mi);
    for (let i = 0; i < 3; i++) await t.writePiece(i, piece(data, mi, i));
    await assert.rejects(t.commit(), DigestMismatchError);
    assert.equal(await store.has(other), false);
    assert.equal(await exists(`${root}/${DOWNLOADS_DIR}/${other.hex}`), false);
  });
});

Deno.test("empty blob: no pieces, complete at once, commits", async () => {
  await withStore(async (store) => {
    const mi = await metaInfoOf(new Uint8Array(0));
    const t = await LeechingTorrent.open(store, mi);
    assert.equal(t.numPieces, 0);
    assert.ok(t.complete());
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: false });
    assert.equal((await store.stat(mi.digest))?.size, 0);
  });
});

Deno.test("a blob cached meanwhile makes the commit a cache hit", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(6), 1500);
    const mi = await metaInfoOf(data);
    const t = await LeechingTorrent.open(store, mi);
    for (let i = 0; i < 2; i++) await t.writePiece(i, piece(data, mi, i));
    await store.putBlob(mi.digest, data);
    assert.deepEqual(await t.commit(), { verified: true, cacheHit: true });
    assert.ok(await readMetaInfo(store, mi.digest));
  });
});

Deno.test("abort drops the partial download", async () => {
  await withStore(async (store, root) => {
    const data = randomBytes(prng(7), 1500);
    const mi = await metaInfoOf(data);
    const t = await LeechingTorrent.open(store, mi);
    await t.writePiece(0, piece(data, mi, 0));
    await t.abort();
    assert.equal(await exists(`${root}/${DOWNLOADS_DIR}/${mi.digest.hex}`), false);
    assert.equal(await exists(`${root}/uploads/${t.uid}`), false);
    assert.equal(await LeechingTorrent.resumableMetaInfo(store, mi.digest), null);
  });
});

Deno.test("leeching torrent: abort and close let go of the download's open file", async () => {
  await withStore(async (store) => {
    const data = randomBytes(prng(9), 1500);
    const mi = await metaInfoOf(data);
    const closes: string[] = [];
    const openUploadWriter = store.openUploadWriter.bind(store);
    store.openUploadWriter = async (uid) => {
      const writer = await openUploadWriter(uid);
      return { ...writer, close: () => (closes.push(uid), writer.close()) };
    };
    const aborted = await LeechingTorrent.open(store, mi);
    await aborted.writePiece(0, piece(data, mi, 0));
    await aborted.abort();
    assert.deepEqual(closes, [aborted.uid], "abort closes the file before the upload goes");
    await assert.rejects(aborted.writePiece(1, piece(data, mi, 1)), TorrentStateError);
    assert.deepEqual(closes, [aborted.uid], "an aborted download opens nothing again");

    const dropped = await LeechingTorrent.open(store, mi);
    await dropped.writePiece(1, piece(data, mi, 1));
    dropped.close(); // the scheduler drops the torrent; its state stays for a restart
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(closes, [aborted.uid, dropped.uid]);
    const resumed = await LeechingTorrent.open(store, mi);
    assert.equal(resumed.resumedPieces, 1, "the status byte written through the kept file");
    await resumed.abort();
  });
});

Deno.test("cleanDownloads removes staging dirs and state of cached blobs", async () => {
  await withStore(async (store, root) => {
    const data = randomBytes(prng(8), 1500);
    const mi = await metaInfoOf(data);
    await LeechingTorrent.open(store, mi);
    // A crash right after the commit: blob cached, metainfo not yet set, state still there.
    await store.putBlob(mi.digest, data);
    await Deno.mkdir(`${root}/${DOWNLOADS_DIR}/.new-leftover`);
    const pending = await metaInfoOf(randomBytes(prng(9), 10));
    await LeechingTorrent.open(store, pending);
    await cleanDownloads(store);
    const left = (await Array.fromAsync(Deno.readDir(`${root}/${DOWNLOADS_DIR}`))).map((e) =>
      e.name
    );
    assert.deepEqual(left, [pending.digest.hex]);
    assert.ok((await readMetaInfo(store, mi.digest))?.infoHash.equals(mi.infoHash));
  });
});
