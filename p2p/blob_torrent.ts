/**
 * {@linkcode TorrentStorage} over a {@linkcode BlobStore}: what the dispatcher reads pieces from
 * and writes pieces to on agents and origins.
 *
 * - {@linkcode SeedingTorrent}: a verified blob in the cache plus its metainfo (kept as the blob's
 *   `metainfo` metadata, {@linkcode METAINFO_KEY}, by origins and agents alike). Every piece is
 *   present; writes are refused.
 * - {@linkcode LeechingTorrent}: a download in progress. Pieces go into an upload session of the
 *   store (`uploads/<uid>`, allocated to `Length` bytes); which pieces are in is recorded in a side
 *   directory `downloads/<hex>/` under the store root:
 *
 *   | File | Content |
 *   |---|---|
 *   | `upload` | the upload session's uid |
 *   | `metainfo` | the torrent's serialized metainfo |
 *   | `pieces` | one byte per piece: 0 = missing, 1 = written (upstream's piece-status array) |
 *
 *   A restart resumes the download from that state, but only after re-checking the CRC-32 of every
 *   piece marked written: the status byte is written after the piece without an fsync between, so
 *   after a crash it may claim a piece whose bytes never reached the disk. A piece that fails the
 *   check is downloaded again, so the torrent never serves bad data. When every piece is in,
 *   {@linkcode LeechingTorrent.commit} runs the store's SHA-256-verifying commit, which moves the
 *   file into the cache atomically; then the side directory goes away.
 *
 *   The blob's SHA-256 is computed as the pieces land, not by reading the file back at the commit:
 *   a piece arriving at the hash's frontier is hashed from its bytes as its write starts, and
 *   pieces that arrived ahead of it are read back from the file (page cache) once the frontier
 *   reaches them, by one background task. A failed write makes the commit hash the file itself.
 *   Pieces stored concurrently reach the file one write at a time, in arrival order (concurrent
 *   writes to one file only contend for its inode lock), each with its status byte, through the
 *   download file and the status file kept open from the first write to the commit, abort or close
 *   (an open per piece was a round trip through the runtime's blocking pool). Written pieces are
 *   flushed to disk in the background too, so the commit's fsync finds little left to write. The
 *   commit hands the digest to the store, which refuses a mismatch as before.
 *
 * Only these two classes write under `downloads/`; {@linkcode cleanDownloads} tidies it at start-up.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { closeQuietly } from "../common/close.ts";
import {
  BlobExistsError,
  BlobNotFoundError,
  type BlobStore,
  DigestMismatchError,
  UploadNotFoundError,
  type UploadWriter,
} from "../storage/blob_store.ts";
import { Digest, DigestHasher } from "../storage/digest.ts";
import type { FileHandlePool } from "../storage/file_handles.ts";
import { MetaInfo } from "../storage/metainfo.ts";
import { resolveInside } from "../storage/paths.ts";
import { Bitfield } from "./bitfield.ts";
import type { PieceBufferSource } from "./buffer_pool.ts";
import type { TorrentStorage } from "./torrent.ts";

/** Metadata key of a cached blob's serialized metainfo (the origin role uses the same key). */
export const METAINFO_KEY = "metainfo";

/** Name of the side directory under the store root that holds download state. */
export const DOWNLOADS_DIR = "downloads";

const HEX64 = /^[0-9a-f]{64}$/;
const STAGING_PREFIX = ".new-";

/** A torrent operation that cannot be done in the torrent's state (write to a seed, early commit). */
export class TorrentStateError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "TorrentStateError";
  }
}

/**
 * The metainfo stored beside a cached blob, or null when the blob or its metainfo is missing.
 * @throws {MetaInfoError} when the stored metainfo is corrupt
 */
export async function readMetaInfo(store: BlobStore, digest: Digest): Promise<MetaInfo | null> {
  const bytes = await store.getMetadata(digest, METAINFO_KEY);
  if (bytes === null || !await store.has(digest)) return null;
  return MetaInfo.deserialize(bytes);
}

// Shared piece geometry of both torrent kinds.
abstract class BlobTorrent implements TorrentStorage {
  readonly infoHash: string;
  readonly digestHex: string;
  readonly numPieces: number;
  /** The torrent's metainfo. */
  readonly metaInfo: MetaInfo;
  protected readonly store: BlobStore;
  readonly #files?: FileHandlePool;

  constructor(store: BlobStore, metaInfo: MetaInfo, files?: FileHandlePool) {
    this.store = store;
    this.#files = files;
    this.metaInfo = metaInfo;
    this.infoHash = metaInfo.infoHash.hex;
    this.digestHex = metaInfo.digest.hex;
    this.numPieces = metaInfo.numPieces;
  }

  /** The blob's digest. */
  get digest(): Digest {
    return this.metaInfo.digest;
  }

  pieceLength(i: number): number {
    return this.metaInfo.pieceLengthAt(i);
  }

  pieceSum(i: number): number {
    return this.metaInfo.pieceSums[i];
  }

  protected offset(i: number): number {
    return i * this.metaInfo.pieceLength;
  }

  /**
   * Reads a range of the cached blob: through the handle pool when the torrent has one (the
   * file is opened once, not per piece), else by opening the file for this read.
   */
  protected readCached(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.#files === undefined) {
      return this.store.readRange(this.digest, offset, length, into);
    }
    return this.#files.readAt(
      this.digestHex,
      () => this.store.openFile(this.digest),
      offset,
      length,
      into,
    );
  }

  /**
   * Lets go of the torrent's pooled handles of the cached blob (the scheduler drops the torrent:
   * idle, evicted, removed or closing). Reads after it open the file again.
   */
  close(): void {
    this.#files?.forget(this.digestHex);
  }

  abstract bitfield(): Bitfield;
  abstract readPiece(i: number, into?: Uint8Array): Promise<Uint8Array>;
  abstract writePiece(i: number, bytes: Uint8Array): Promise<void>;
  abstract complete(): boolean;
}

/** A complete blob in the cache, served piece by piece. */
export class SeedingTorrent extends BlobTorrent {
  /**
   * Opens the cached blob `digest` with its stored metainfo; null when either is missing or the
   * metainfo's length disagrees with the file (such a torrent could only serve bad pieces).
   */
  static async open(
    store: BlobStore,
    digest: Digest,
    files?: FileHandlePool,
  ): Promise<SeedingTorrent | null> {
    const metaInfo = await readMetaInfo(store, digest);
    if (metaInfo === null) return null;
    const stat = await store.stat(digest);
    if (stat === null || stat.size !== metaInfo.length) return null;
    return new SeedingTorrent(store, metaInfo, files);
  }

  /**
   * Wraps a cached blob whose metainfo the caller already has; pieces are read through `files`
   * when given.
   */
  constructor(store: BlobStore, metaInfo: MetaInfo, files?: FileHandlePool) {
    super(store, metaInfo, files);
  }

  bitfield(): Bitfield {
    return Bitfield.allSet(this.numPieces);
  }

  readPiece(i: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.readCached(this.offset(i), this.pieceLength(i), into);
  }

  writePiece(i: number, _bytes: Uint8Array): Promise<void> {
    return Promise.reject(new TorrentStateError(`piece ${i}: a seeding torrent is read-only`));
  }

  complete(): boolean {
    return true;
  }
}

/** Outcome of {@linkcode LeechingTorrent.commit}. */
export interface CommitResult {
  /** The blob in the cache has the expected SHA-256 (ours was verified, or it was there already). */
  verified: boolean;
  /** The blob was already in the cache; the downloaded copy was discarded. */
  cacheHit: boolean;
}

/** A download in progress: pieces land in an upload session; the status is kept on disk. */
export class LeechingTorrent extends BlobTorrent {
  /** Upload session uid of the download file. */
  readonly uid: string;
  /** Pieces carried over from an earlier run (verified), 0 for a fresh download. */
  readonly resumedPieces: number;
  readonly #dir: string;
  readonly #have: Bitfield;
  #count: number;
  #committed = false;
  // The blob's SHA-256 over pieces [0, #hashed); #catchUp extends it over pieces written early.
  #hasher = new DigestHasher();
  #hashed = 0;
  #catchUp?: Promise<void>;
  #hashFailed = false;
  #digestOfPieces?: Digest;
  // The piece writes to the download file, and their status bytes, each chained: one at a time
  // (see writePiece), through the two files kept open while the torrent downloads.
  #writes: Promise<unknown> = Promise.resolve();
  #statusWrites: Promise<unknown> = Promise.resolve();
  #files?: Promise<DownloadFiles>;
  // Set by close() and abort(): the files are not opened again.
  #filesShut = false;
  // A background fdatasync of the download file, and whether writes came in since it started.
  #syncing?: Promise<void>;
  #dirty = false;
  readonly #buffers: PieceBufferSource | undefined;

  private constructor(
    store: BlobStore,
    metaInfo: MetaInfo,
    uid: string,
    dir: string,
    have: Bitfield,
    files: FileHandlePool | undefined,
    buffers: PieceBufferSource | undefined,
  ) {
    super(store, metaInfo, files);
    this.#buffers = buffers;
    this.uid = uid;
    this.#dir = dir;
    this.#have = have;
    this.#count = have.count();
    this.resumedPieces = this.#count;
  }

  /**
   * The metainfo of a partial download of `digest` left on disk, or null. Lets a restarted agent
   * resume without asking the tracker again.
   */
  static async resumableMetaInfo(store: BlobStore, digest: Digest): Promise<MetaInfo | null> {
    try {
      return MetaInfo.deserialize(
        await Deno.readFile(resolveInside(downloadDir(store, digest), "metainfo")),
      );
    } catch {
      return null;
    }
  }

  /**
   * Creates the download file and its state for `metaInfo`, or resumes the one on disk when it is
   * for the same torrent (pieces marked written are re-verified). Broken or foreign state is
   * discarded and the download starts over. Once committed, pieces are read from the cached blob
   * through `files` when given. Pieces hashed after they were written are read back into a buffer
   * from `buffers` when given.
   */
  static async open(
    store: BlobStore,
    metaInfo: MetaInfo,
    files?: FileHandlePool,
    buffers?: PieceBufferSource,
  ): Promise<LeechingTorrent> {
    const resumed = await LeechingTorrent.#resume(store, metaInfo, files, buffers);
    if (resumed) return resumed;
    await removeDownload(store, metaInfo.digest);
    const uid = await store.createUpload();
    try {
      // Allocate the whole file up front, as upstream does, so the commit's hash sees `Length`
      // bytes even if the final state were reached through some other writer.
      if (metaInfo.length > 0) {
        await store.writeChunk(uid, metaInfo.length - 1, metaInfo.length, new Uint8Array(1));
      }
      const parent = resolveInside(store.root, DOWNLOADS_DIR);
      await Deno.mkdir(parent, { recursive: true });
      // Build the state in a staging directory and rename it into place, so a crash never
      // leaves a state directory without its files.
      const staging = resolveInside(parent, `${STAGING_PREFIX}${crypto.randomUUID()}`);
      await Deno.mkdir(staging);
      try {
        await Deno.writeTextFile(resolveInside(staging, "upload"), uid);
        await Deno.writeTextFile(resolveInside(staging, "metainfo"), metaInfo.serialize());
        await Deno.writeFile(resolveInside(staging, "pieces"), new Uint8Array(metaInfo.numPieces));
        await Deno.rename(staging, downloadDir(store, metaInfo.digest));
      } catch (err) {
        await Deno.remove(staging, { recursive: true }).catch(() => {});
        throw err;
      }
    } catch (err) {
      await store.abortUpload(uid).catch(() => {});
      throw err;
    }
    return new LeechingTorrent(
      store,
      metaInfo,
      uid,
      downloadDir(store, metaInfo.digest),
      new Bitfield(metaInfo.numPieces),
      files,
      buffers,
    );
  }

  static async #resume(
    store: BlobStore,
    metaInfo: MetaInfo,
    files: FileHandlePool | undefined,
    buffers: PieceBufferSource | undefined,
  ): Promise<LeechingTorrent | null> {
    const dir = downloadDir(store, metaInfo.digest);
    let uid: string, stored: MetaInfo, status: Uint8Array;
    try {
      uid = (await Deno.readTextFile(resolveInside(dir, "upload"))).trim();
      stored = MetaInfo.deserialize(await Deno.readFile(resolveInside(dir, "metainfo")));
      status = await Deno.readFile(resolveInside(dir, "pieces"));
      if ((await store.statUpload(uid)).size !== metaInfo.length) return null;
    } catch {
      return null;
    }
    if (!stored.infoHash.equals(metaInfo.infoHash) || status.length !== metaInfo.numPieces) {
      return null;
    }
    const have = new Bitfield(metaInfo.numPieces);
    for (let i = 0; i < status.length; i++) {
      if (status[i] !== 1) continue;
      const len = metaInfo.pieceLengthAt(i);
      const bytes = await store.readUploadRange(uid, i * metaInfo.pieceLength, len);
      if (crc32(bytes) >>> 0 === metaInfo.pieceSums[i]) have.set(i);
    }
    const torrent = new LeechingTorrent(store, metaInfo, uid, dir, have, files, buffers);
    // Record the re-check, so pieces that failed it are not trusted after another restart.
    for (let i = 0; i < status.length; i++) {
      if (status[i] === 1 && !have.get(i)) await torrent.#writeStatus(i, 0);
    }
    return torrent;
  }

  bitfield(): Bitfield {
    return this.#have.clone();
  }

  complete(): boolean {
    return this.#count === this.numPieces;
  }

  /** Lets go of the pooled handles, and of the files kept open for the download's writes. */
  override close(): void {
    super.close();
    this.#filesShut = true;
    void this.#closeFiles();
  }

  /** Whether {@linkcode commit} has moved the blob into the cache. */
  get committed(): boolean {
    return this.#committed;
  }

  async readPiece(i: number, into?: Uint8Array): Promise<Uint8Array> {
    if (!this.#have.get(i)) throw new TorrentStateError(`piece ${i} not present`);
    const offset = this.offset(i);
    const length = this.pieceLength(i);
    if (!this.#committed) {
      try {
        return await this.store.readUploadRange(this.uid, offset, length, into);
      } catch (err) {
        // The commit moved the file into the cache under our feet: read it there.
        if (!(err instanceof UploadNotFoundError)) throw err;
      }
    }
    return await this.readCached(offset, length, into);
  }

  async writePiece(i: number, bytes: Uint8Array): Promise<void> {
    if (this.#committed) throw new TorrentStateError(`piece ${i}: torrent already committed`);
    if (bytes.length !== this.pieceLength(i)) {
      throw new TorrentStateError(
        `piece ${i} has ${bytes.length} bytes, want ${this.pieceLength(i)}`,
      );
    }
    if (this.#have.get(i)) return;
    // Hashed before the write starts, so pieces stored concurrently are hashed in arrival order
    // (and `bytes`, possibly the caller's reused buffer, is hashed before it can change).
    if (this.#catchUp === undefined && !this.#hashFailed && i === this.#hashed) {
      this.#hasher.update(bytes);
      this.#hashed++;
    }
    const offset = this.offset(i);
    // One piece write to the file at a time, in arrival order: concurrent writes to one file
    // serialise on its inode lock anyway, and the waiting writer spins on it (on this VM ~5% of an
    // agent's CPU in `rwsem_spin_on_owner`). The caller still overlaps the writes with its reads.
    const write = this.#writes.then(async () => {
      await (await this.#openFiles()).upload.write(offset, bytes);
    });
    this.#writes = write.catch(() => {});
    try {
      await write;
      // The status bytes have a chain of their own, so the next piece's write need not wait.
      const status = this.#statusWrites.then(async () => {
        await writeStatusByte((await this.#openFiles()).status, i, 1);
      });
      this.#statusWrites = status.catch(() => {});
      await status;
    } catch (err) {
      // The hash may cover bytes that never reached the file: the commit hashes the file instead.
      this.#hashFailed = true;
      throw err;
    }
    if (!this.#have.get(i)) {
      this.#have.set(i);
      this.#count++;
      this.#advanceHash();
    }
    this.#flushLater();
  }

  /** Pieces hashed so far, in order from piece 0 (for tests and diagnostics). */
  get hashedPieces(): number {
    return this.#hashed;
  }

  // Hashes the pieces already written at the frontier, reading them back from the file.
  #advanceHash(): void {
    if (this.#catchUp !== undefined || this.#hashFailed) return;
    if (this.#hashed >= this.numPieces || !this.#have.get(this.#hashed)) return;
    this.#catchUp = (async () => {
      const scratch = this.#buffers?.take(this.pieceLength(0)) ??
        new Uint8Array(this.pieceLength(0));
      try {
        while (this.#hashed < this.numPieces && this.#have.get(this.#hashed)) {
          const i = this.#hashed;
          const len = this.pieceLength(i);
          this.#hasher.update(
            await this.store.readUploadRange(this.uid, this.offset(i), len, scratch),
          );
          this.#hashed++;
        }
      } catch {
        // The commit then lets the store hash the whole file itself.
        this.#hashFailed = true;
      } finally {
        this.#buffers?.give(scratch);
        this.#catchUp = undefined;
      }
    })();
  }

  // Keeps one fdatasync of the download file running while pieces come in.
  #flushLater(): void {
    this.#dirty = true;
    if (this.#syncing !== undefined) return;
    this.#dirty = false;
    this.#syncing = this.#openFiles().then((files) => files.upload.sync()).catch(() => {
      // Only an optimisation: the commit flushes the file anyway.
    }).finally(() => {
      this.#syncing = undefined;
      if (this.#dirty && !this.#committed && !this.complete()) this.#flushLater();
    });
  }

  /**
   * Moves the finished download into the cache through the store's digest-verifying commit and
   * stores the metainfo beside it, then removes the download state.
   * @throws {TorrentStateError} when pieces are missing
   * @throws {DigestMismatchError} when the pieces passed their CRC-32 checks but the blob's
   *   SHA-256 differs; the download state is gone then and nothing entered the cache
   */
  async commit(): Promise<CommitResult> {
    if (!this.complete()) {
      throw new TorrentStateError(`${this.numPieces - this.#count} pieces still missing`);
    }
    let cacheHit = false;
    await this.#syncing;
    await this.#closeFiles();
    this.#advanceHash();
    while (this.#catchUp !== undefined) {
      await this.#catchUp;
      this.#advanceHash();
    }
    if (!this.#hashFailed && this.#hashed === this.numPieces) {
      this.#digestOfPieces ??= this.#hasher.digest();
    }
    const hashed = this.#digestOfPieces;
    try {
      await this.store.commitUpload(this.uid, this.digest, { hashed });
    } catch (err) {
      if (!(err instanceof BlobExistsError)) {
        // Those two end the upload session; after an I/O error the store keeps it for a retry.
        if (err instanceof DigestMismatchError || err instanceof UploadNotFoundError) {
          await this.#removeState();
        }
        throw err;
      }
      cacheHit = true;
    }
    this.#committed = true;
    if (await this.store.getMetadata(this.digest, METAINFO_KEY) === null) {
      try {
        await this.store.setMetadata(
          this.digest,
          METAINFO_KEY,
          new TextEncoder().encode(this.metaInfo.serialize()),
        );
      } catch (err) {
        // Deleted between the commit and now (a concurrent DELETE): nothing left to describe.
        if (!(err instanceof BlobNotFoundError)) throw err;
      }
    }
    await this.#removeState();
    return { verified: true, cacheHit };
  }

  /** Discards the partial download: its upload session and state. */
  async abort(): Promise<void> {
    if (this.#committed) return;
    this.#filesShut = true;
    await this.#closeFiles();
    await this.store.abortUpload(this.uid).catch((err) => {
      if (!(err instanceof UploadNotFoundError)) throw err;
    });
    await this.#removeState();
  }

  // The download file and the status file, opened on the first piece write.
  #openFiles(): Promise<DownloadFiles> {
    if (this.#filesShut) {
      return Promise.reject(
        new TorrentStateError("download closed or aborted: its files are shut"),
      );
    }
    this.#files ??= (async () => {
      const upload = await this.store.openUploadWriter(this.uid);
      try {
        return {
          upload,
          status: await Deno.open(resolveInside(this.#dir, "pieces"), { write: true }),
        };
      } catch (err) {
        upload.close();
        throw err;
      }
    })();
    // A failed open is tried again by the next write.
    this.#files.catch(() => this.#files = undefined);
    return this.#files;
  }

  // Closes the files kept open for writes, once the writes in flight are done.
  async #closeFiles(): Promise<void> {
    const files = this.#files;
    if (files === undefined) return;
    this.#files = undefined;
    await Promise.all([this.#writes, this.#statusWrites]);
    const open = await files.catch(() => undefined);
    if (open === undefined) return;
    open.upload.close();
    closeQuietly(open.status);
  }

  // A status byte through a file of its own (a resume's re-check, before any piece write).
  async #writeStatus(i: number, value: number): Promise<void> {
    const file = await Deno.open(resolveInside(this.#dir, "pieces"), { write: true });
    try {
      await writeStatusByte(file, i, value);
    } finally {
      file.close();
    }
  }

  async #removeState(): Promise<void> {
    await Deno.remove(this.#dir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

// The files a downloading torrent keeps open.
interface DownloadFiles {
  upload: UploadWriter;
  status: Deno.FsFile;
}

// One status byte in place: a single-byte write cannot tear. The caller serialises the writes
// (the handle's position is shared).
async function writeStatusByte(status: Deno.FsFile, i: number, value: number): Promise<void> {
  status.seekSync(i, Deno.SeekMode.Start);
  await status.write(Uint8Array.of(value));
}

/** Deletes the download state of `digest` and its upload session, if any. */
export async function removeDownload(store: BlobStore, digest: Digest): Promise<void> {
  const dir = downloadDir(store, digest);
  const uid = await Deno.readTextFile(resolveInside(dir, "upload")).catch(() => null);
  if (uid !== null) {
    await store.abortUpload(uid.trim()).catch(() => {});
  }
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/**
 * Tidies `downloads/` at start-up: removes staging directories of interrupted creations, and the
 * state of downloads whose blob is already cached (a crash after the commit), first giving the
 * cached blob the download's metainfo if it has none.
 */
export async function cleanDownloads(store: BlobStore): Promise<void> {
  const parent = resolveInside(store.root, DOWNLOADS_DIR);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  for (const entry of entries) {
    const path = resolveInside(parent, entry.name);
    if (entry.name.startsWith(STAGING_PREFIX)) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
      continue;
    }
    if (!HEX64.test(entry.name)) continue;
    const digest = Digest.fromHex(entry.name);
    if (!await store.has(digest)) continue;
    if (await store.getMetadata(digest, METAINFO_KEY) === null) {
      const metaInfo = await LeechingTorrent.resumableMetaInfo(store, digest);
      if (metaInfo !== null) {
        await store.setMetadata(
          digest,
          METAINFO_KEY,
          new TextEncoder().encode(metaInfo.serialize()),
        )
          .catch(() => {});
      }
    }
    await removeDownload(store, digest);
  }
}

function downloadDir(store: BlobStore, digest: Digest): string {
  return resolveInside(store.root, DOWNLOADS_DIR, digest.hex);
}
