/**
 * The P2P scheduler (kraken-wire.md §5): it owns a node's torrents, one {@linkcode Dispatcher}
 * each, and connects them to the world — announcing to trackers, dialing handed-out peers and
 * accepting incoming connections on the peer port.
 *
 * Agents and origins run the same scheduler:
 *
 * - **Agent** (an `announcer` is given): {@linkcode Scheduler.download} fetches the metainfo
 *   through the tracker, creates a {@linkcode LeechingTorrent}, announces at once, dials the peers
 *   the tracker hands out (skipping itself and blacklisted peers) and resolves once the blob has
 *   been verified and committed to the cache. Concurrent calls for one blob share one download.
 *   After completion the torrent seeds, and a final `complete=true` announce is sent.
 * - **Origin** (no `announcer`): never announces, never dials, and downloads nothing. Incoming
 *   handshakes for any cached blob with stored metainfo load a {@linkcode SeedingTorrent}; for
 *   other blobs `onMissingTorrent` may start a backend fetch, and the connection is refused.
 *
 * Announcing follows upstream's queue: one timer per scheduler announces the next torrent of a
 * round-robin queue on every tick (skipping torrents whose connections are saturated); the tick
 * period is the tracker's interval, with 0 or anything above `maxAnnounceIntervalMs` meaning the
 * default. A new torrent announces immediately.
 *
 * Timers: a complete torrent without traffic for `seederTtiMs` is dropped from memory (its file
 * stays, and an incoming connection loads it again); an incomplete one without traffic for
 * `leecherTtiMs` is cancelled, failing its download with "torrent timed out".
 *
 * Tracing (the P2P layer itself is never traced, ERD NG1–NG3): {@linkcode Scheduler.download}
 * runs in span `scheduler.download` (namespace, digest, `peer.id`, `torrent.infohash`,
 * `torrent.size`) whose children are the metainfo request, `storage.create_torrent` (pieces,
 * piece_length), the `announce.request` spans made while the download runs, and `storage.commit`
 * (verified, cache_hit). When the download ends, the dispatcher's summary becomes `kraken.p2p.*`
 * attributes of the span. Announces made after completion, and by seeds, run in the context the
 * scheduler was created in, so they never join a pull's trace.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import { systemTimers } from "../common/timers.ts";
import { createHash } from "node:crypto";
import { type AnnounceParams, type AnnounceResult } from "../cluster/announce_client.ts";
import { HttpStatusError } from "../http/status_error.ts";
import type { PeerInfo } from "../wire/announce.ts";
import { type BlobStore, DigestMismatchError } from "../storage/blob_store.ts";
import { Digest } from "../storage/digest.ts";
import { FileHandlePool } from "../storage/file_handles.ts";
import type { MetaInfo } from "../storage/metainfo.ts";
import {
  activeContext,
  ATTR,
  type Attributes,
  type Context,
  MetricsRegistry,
  runWithContext,
  setAttributes,
  SPAN,
  withSpan,
} from "../tracing/mod.ts";
import { Blacklist } from "./blacklist.ts";
import { PieceBufferPool } from "./buffer_pool.ts";
import { cleanDownloads, LeechingTorrent, removeDownload, SeedingTorrent } from "./blob_torrent.ts";
import {
  dialPeer,
  type LocalHandshake,
  type PeerConn,
  type PeerServer,
  type RemoteHandshake,
  servePeers,
} from "./conn.ts";
import { Dispatcher, type P2PSummary, RECEIVE_DEPTH } from "./dispatcher.ts";
import { type DownloadFailure, SchedulerMetrics } from "./scheduler_metrics.ts";
import { maxPieceLength } from "./torrent.ts";

/** The tracker side of a scheduler: {@linkcode AnnounceClient} or a stand-in. */
export interface Announcer {
  /** Announces a torrent and returns the tracker's handout. */
  announce(params: AnnounceParams): Promise<AnnounceResult>;
  /** A blob's metainfo; a {@linkcode HttpStatusError} with status 404 means "unknown blob". */
  getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo>;
}

/** The tracker and origins do not know the blob (metainfo 404): the agent answers 404. */
export class TorrentNotFoundError extends Error {
  /** @param digest the blob asked for */
  constructor(readonly digest: Digest, options?: ErrorOptions) {
    super(`torrent ${digest} not found`, options);
    this.name = "TorrentNotFoundError";
  }
}

/** A download that ended without the blob: timed out, removed, scheduler closed, disabled. */
export class DownloadError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DownloadError";
  }
}

/** A download whose torrent saw no traffic for `leecherTtiMs`. */
export class DownloadTimeoutError extends DownloadError {
  /** Creates the error with the reason. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DownloadTimeoutError";
  }
}

/** Peer id of upstream's `addr_hash` factory: SHA-1 of `"<ip>:<port>"`, 40 hex characters. */
export function addrHashPeerId(ip: string, port: number): string {
  return createHash("sha1").update(`${ip}:${port}`).digest("hex");
}

/** Peer id of upstream's `random` factory: 20 random bytes, 40 hex characters. */
export function randomPeerId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(20)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Options of {@linkcode Scheduler}. Durations are in milliseconds; defaults are upstream's. */
export interface SchedulerOptions {
  /** The node's blob store: downloads land in its cache, seeds are read from it. */
  store: BlobStore;
  /** This node's peer id, 40 hex. */
  peerId: string;
  /** The bound peer port. The scheduler accepts on it and closes it on {@linkcode Scheduler.close}. */
  listener: Deno.Listener;
  /** The P2P address announced to trackers (agents). */
  peer?: { ip: string; port: number };
  /** Trackers to announce to and fetch metainfo from; absent on origins (no announce, no dial). */
  announcer?: Announcer;
  /** Origins: told about handshakes for blobs they lack (start a backend fetch). */
  onMissingTorrent?: (namespace: string, digest: Digest) => void;
  /** Drop a complete torrent from memory after this long without traffic. Default 5 min. */
  seederTtiMs?: number;
  /** Cancel an incomplete torrent after this long without traffic. Default 5 min. */
  leecherTtiMs?: number;
  /** Announce period when the tracker sends none (0) or one above the maximum. Default 5 s. */
  announceIntervalMs?: number;
  /** Largest tracker interval honoured. Default 60 s. */
  maxAnnounceIntervalMs?: number;
  /** Dial and handshake step timeout. Default 5 s. */
  handshakeTimeoutMs?: number;
  /** How long a failed peer is not redialed for a torrent. Default 30 s. */
  blacklistDurationMs?: number;
  /** Connections per torrent, pending and active. Default 10. */
  maxOpenConn?: number;
  /** Outstanding piece requests per agent peer. Default 3. */
  pipelineLimit?: number;
  /** Outstanding piece requests per origin peer. Default 5. */
  originPipelineLimit?: number;
  /** Lower bound of the piece request timeout. Default 4 s. */
  pieceRequestMinTimeoutMs?: number;
  /** Piece request timeout per MiB of piece length. Default 4 s. */
  pieceRequestTimeoutPerMbMs?: number;
  /** Cached blob files held open to serve pieces from, over all torrents. Default 64. */
  maxOpenFiles?: number;
  /** Close such a file after this long without a piece read. Default 10 s. */
  openFileIdleMs?: number;
  /** Bytes of piece buffers kept between torrents (`buffer_pool.ts`). Default 128 MiB. */
  maxIdleBufferBytes?: number;
  /** Drop those buffers after this long without a torrent taking one. Default 30 s. */
  bufferIdleMs?: number;
  /** Logger for peer failures and announce errors. Default: silent. */
  logger?: Logger;
  /** Where the scheduler's series go (`scheduler_metrics.ts`; the role's `roleMetrics`). */
  metrics?: MetricsRegistry;
}

/** What {@linkcode Scheduler.download} resolves to. */
export interface DownloadResult {
  /** Blob size in bytes. */
  size: number;
  /** Info hash, when the blob came through a torrent. */
  infoHash?: string;
  /** The P2P exchange; absent when the blob was in the cache already. */
  summary?: P2PSummary;
}

interface Torrent {
  hex: string;
  namespace: string;
  storage: SeedingTorrent | LeechingTorrent;
  dispatcher: Dispatcher;
  // Committed to the cache (or loaded from it): seeding.
  complete: boolean;
  // Trace context for this torrent's announces while it downloads.
  ctx: Context | undefined;
  lastActive: number;
  lastBytes: number;
  // The announce in flight, if any.
  inflight: Promise<void> | undefined;
  failure: Error | undefined;
  // Its exchange was added to the metrics' totals when it left memory.
  retired: boolean;
}

const SILENT: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with: () => SILENT,
};

/** The span attributes of a P2P summary (`kraken.p2p.*`), as `scheduler.download` records them. */
export function summaryAttributes(s: P2PSummary): Attributes {
  return {
    [ATTR.p2pPiecesTotal]: s.piecesTotal,
    [ATTR.p2pPiecesAtStart]: s.piecesAtStart,
    [ATTR.p2pPiecesFromOrigins]: s.piecesFromOrigins,
    [ATTR.p2pPiecesFromAgents]: s.piecesFromAgents,
    [ATTR.p2pPiecesDuplicate]: s.piecesDuplicate,
    [ATTR.p2pPiecesInvalid]: s.piecesInvalid,
    [ATTR.p2pPeersConnected]: s.peersConnected,
    [ATTR.p2pBytesReceived]: s.bytesReceived,
    [ATTR.p2pBytesServed]: s.bytesServed,
    [ATTR.p2pDurationMs]: s.durationMs,
    [ATTR.p2pThroughputMbps]: Math.round(s.throughputBytesPerSecond * 8 / 1e4) / 100,
  };
}

/** The `reason` label of a failed download. */
function failureReason(err: unknown): DownloadFailure {
  if (err instanceof TorrentNotFoundError) return "not_found";
  if (err instanceof DigestMismatchError) return "digest_mismatch";
  if (err instanceof DownloadTimeoutError) return "timeout";
  if (err instanceof DownloadError) return "closed";
  return "error";
}

/** A node's torrents, their announces, dials and accepted connections. */
export class Scheduler {
  /** This node's peer id. */
  readonly peerId: string;
  /** The port peers connect to. */
  readonly port: number;

  readonly #store: BlobStore;
  readonly #announcer?: Announcer;
  readonly #peer?: { ip: string; port: number };
  readonly #onMissing?: (namespace: string, digest: Digest) => void;
  readonly #logger: Logger;
  readonly #seederTtiMs: number;
  readonly #leecherTtiMs: number;
  readonly #defaultIntervalMs: number;
  readonly #maxIntervalMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #maxOpenConn: number;
  readonly #dispatcherOptions: {
    pipelineLimit?: number;
    originPipelineLimit?: number;
    pieceRequestMinTimeoutMs?: number;
    pieceRequestTimeoutPerMbMs?: number;
  };
  readonly #blacklist: Blacklist;
  // Open handles of the cached blobs pieces are served from, shared by every torrent.
  readonly #files: FileHandlePool;
  // Piece buffers (receive rings, send buffers, hash read-backs), shared by every torrent.
  readonly #buffers: PieceBufferPool;
  readonly #metrics: SchedulerMetrics;
  // Background work (re-announces, seeds' announces) runs here, outside any request's trace.
  readonly #rootCtx: Context;

  readonly #torrents = new Map<string, Torrent>();
  readonly #loading = new Map<string, Promise<Torrent | null>>();
  readonly #downloads = new Map<string, Promise<DownloadResult>>();
  #queue: string[] = [];
  #intervalMs: number;
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #server: PeerServer;
  #announceTimer?: ReturnType<typeof setTimeout>;
  readonly #sweepTimer: ReturnType<typeof setInterval>;
  #closed = false;
  #closing?: Promise<void>;

  /** Starts accepting on `options.listener` (and, with an announcer, the announce timer). */
  constructor(options: SchedulerOptions) {
    if (!/^[0-9a-fA-F]{40}$/.test(options.peerId)) {
      throw new TypeError(`peer id must be 40 hex characters, got ${options.peerId}`);
    }
    if (options.announcer && !options.peer) {
      throw new TypeError("a scheduler that announces needs its peer address");
    }
    this.peerId = options.peerId.toLowerCase();
    this.port = (options.listener.addr as Deno.NetAddr).port;
    this.#store = options.store;
    this.#announcer = options.announcer;
    this.#peer = options.peer;
    this.#onMissing = options.onMissingTorrent;
    this.#logger = options.logger ?? SILENT;
    this.#seederTtiMs = options.seederTtiMs ?? 5 * 60_000;
    this.#leecherTtiMs = options.leecherTtiMs ?? 5 * 60_000;
    this.#defaultIntervalMs = options.announceIntervalMs ?? 5000;
    this.#maxIntervalMs = options.maxAnnounceIntervalMs ?? 60_000;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5000;
    this.#maxOpenConn = options.maxOpenConn ?? 10;
    this.#dispatcherOptions = {
      pipelineLimit: options.pipelineLimit,
      originPipelineLimit: options.originPipelineLimit,
      pieceRequestMinTimeoutMs: options.pieceRequestMinTimeoutMs,
      pieceRequestTimeoutPerMbMs: options.pieceRequestTimeoutPerMbMs,
    };
    this.#blacklist = new Blacklist({ durationMs: options.blacklistDurationMs });
    this.#buffers = new PieceBufferPool({
      maxIdleBytes: options.maxIdleBufferBytes,
      idleMs: options.bufferIdleMs,
    });
    this.#files = new FileHandlePool({
      maxOpen: options.maxOpenFiles,
      idleMs: options.openFileIdleMs,
    });
    this.#metrics = new SchedulerMetrics(options.metrics ?? new MetricsRegistry(), {
      liveSummaries: () => [...this.#torrents.values()].map((t) => t.dispatcher.summary()),
      torrents: () => this.#torrents.size,
      connections: () =>
        [...this.#torrents.values()].reduce((n, t) => n + t.dispatcher.peerIds.length, 0),
      blacklisted: () => this.#blacklist.size,
      openFiles: () => this.#files.openHandles,
      idleBufferBytes: () => this.#buffers.idleBytes,
    });
    this.#intervalMs = this.#defaultIntervalMs;
    this.#rootCtx = activeContext();
    this.#server = servePeers(options.listener, {
      timeoutMs: this.#handshakeTimeoutMs,
      payloadBuffers: RECEIVE_DEPTH,
      bufferPool: this.#buffers,
      lookup: (namespace, name, _infoHash, remote) => this.#lookup(namespace, name, remote),
      onConn: (conn) => this.#accept(conn),
      onError: (err) => this.#logger.debug("incoming peer connection refused", { error: err }),
    });
    if (this.#announcer) this.#armAnnounce();
    const sweepMs = Math.max(10, Math.min(30_000, this.#seederTtiMs / 2, this.#leecherTtiMs / 2));
    this.#sweepTimer = setInterval(() => this.#sweep(), sweepMs);
  }

  /**
   * Tidies download state left by a crash (see {@linkcode cleanDownloads}). Call once at start-up,
   * before the first download.
   */
  async recover(): Promise<void> {
    await cleanDownloads(this.#store);
  }

  /** Resolves while the scheduler is running; rejects once it is closed (the health probe). */
  probe(): Promise<void> {
    return this.#closed
      ? Promise.reject(new DownloadError("scheduler is closed"))
      : Promise.resolve();
  }

  /** Digest hexes of the torrents in memory (seeding or downloading). */
  get torrents(): string[] {
    return [...this.#torrents.keys()];
  }

  /**
   * Downloads a blob into the cache over P2P, in span `scheduler.download`. Resolves once the blob
   * is committed (at once when it is cached already); concurrent calls share one download.
   * @throws {TorrentNotFoundError} when the tracker and origins do not know the blob
   * @throws {DownloadError} when the torrent times out, is removed, or the scheduler closes (or
   *   downloads are disabled, on origins)
   * @throws {DigestMismatchError} when the assembled blob does not hash to `digest`
   */
  download(namespace: string, digest: Digest): Promise<DownloadResult> {
    return withSpan(SPAN.schedulerDownload, {
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      [ATTR.peerId]: this.peerId,
    }, async (span) => {
      if (!this.#announcer) throw new DownloadError("downloads are disabled (origin mode)");
      if (this.#closed) throw new DownloadError("scheduler is closed");
      let job = this.#downloads.get(digest.hex);
      span.setAttribute(ATTR.schedulerJoined, job !== undefined);
      if (!job) {
        const ended = this.#metrics.downloadStarted(systemTimers);
        const started = this.#runDownload(namespace, digest);
        job = started;
        this.#downloads.set(digest.hex, started);
        // Attached inside the span: the duration's exemplar is this download's trace.
        started.then(() => ended(), (err) => ended(failureReason(err)));
        started.catch(() => {}).finally(() => {
          if (this.#downloads.get(digest.hex) === started) this.#downloads.delete(digest.hex);
        });
      }
      const result = await job;
      span.setAttribute(ATTR.torrentSize, result.size);
      if (result.infoHash) span.setAttribute(ATTR.torrentInfohash, result.infoHash);
      if (result.summary) span.setAttributes(summaryAttributes(result.summary));
      return result;
    });
  }

  /**
   * Stops seeding or downloading `digest` and deletes it from disk (cache and partial download).
   * A download in progress fails with {@linkcode DownloadError}.
   */
  async remove(digest: Digest): Promise<void> {
    const torrent = this.#torrents.get(digest.hex);
    if (torrent) {
      await this.#teardown(torrent, new DownloadError(`torrent ${digest} removed`), true);
    }
    await removeDownload(this.#store, digest);
    await this.#store.delete(digest);
  }

  /**
   * Drops `digest`'s torrent from memory, closing its connections, without touching the disk (an
   * origin calls it when it deletes a blob). A download in progress fails; its partial file stays.
   */
  async evict(digest: Digest): Promise<void> {
    const torrent = this.#torrents.get(digest.hex);
    if (torrent) {
      await this.#teardown(torrent, new DownloadError(`torrent ${digest} evicted`), false);
    }
  }

  /**
   * Stops everything: the accept loop, timers, every torrent (downloads in progress fail and keep
   * their partial state for a restart), and waits for in-flight dials and announces.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearTimeout(this.#announceTimer);
      clearInterval(this.#sweepTimer);
      await this.#server.close();
      const err = new DownloadError("scheduler is closed");
      await Promise.all([...this.#torrents.values()].map((t) => this.#teardown(t, err, false)));
      while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
      this.#files.close();
      this.#buffers.close();
    })();
    return this.#closing;
  }

  // ---- downloading ------------------------------------------------------------------------

  async #runDownload(namespace: string, digest: Digest): Promise<DownloadResult> {
    const cached = await this.#store.stat(digest);
    if (cached) return { size: cached.size };
    const metaInfo = await this.#metaInfo(namespace, digest);
    setAttributes({
      [ATTR.torrentInfohash]: metaInfo.infoHash.hex,
      [ATTR.torrentSize]: metaInfo.length,
    });
    // A seed in memory whose file was deleted behind our back is stale.
    const stale = this.#torrents.get(digest.hex);
    if (stale) await this.#teardown(stale, new DownloadError(`torrent ${digest} replaced`), false);
    const storage = await withSpan(SPAN.storageCreateTorrent, {
      [ATTR.pieces]: metaInfo.numPieces,
      [ATTR.pieceLength]: metaInfo.pieceLength,
    }, async (span) => {
      const t = await LeechingTorrent.open(this.#store, metaInfo, this.#files, this.#buffers);
      span.setAttribute(ATTR.torrentResumedPieces, t.resumedPieces);
      return t;
    });
    if (this.#closed) throw new DownloadError("scheduler is closed");
    const torrent = this.#addTorrent(namespace, storage, false, activeContext());
    try {
      if (!torrent.dispatcher.complete) {
        this.#queue.push(torrent.hex);
        await this.#announce(torrent);
        await torrent.dispatcher.whenComplete();
      }
    } catch (err) {
      throw torrent.failure ?? err;
    }
    const summary = torrent.dispatcher.summary();
    try {
      await withSpan(SPAN.storageCommit, {}, async (span) => {
        try {
          const result = await storage.commit();
          span.setAttributes({
            [ATTR.verified]: result.verified,
            [ATTR.cacheHit]: result.cacheHit,
          });
        } catch (err) {
          if (err instanceof DigestMismatchError) span.setAttribute(ATTR.verified, false);
          throw err;
        }
      });
    } catch (err) {
      await this.#teardown(torrent, err as Error, true);
      throw torrent.failure ?? err;
    }
    torrent.complete = true;
    torrent.ctx = undefined;
    this.#dequeue(torrent.hex);
    if (this.#torrents.get(torrent.hex) === torrent) this.#announceComplete(torrent);
    return { size: metaInfo.length, infoHash: metaInfo.infoHash.hex, summary };
  }

  async #metaInfo(namespace: string, digest: Digest): Promise<MetaInfo> {
    // A restarted agent resumes from its own copy rather than asking again.
    const local = await LeechingTorrent.resumableMetaInfo(this.#store, digest);
    if (local) return local;
    try {
      return await this.#announcer!.getMetaInfo(namespace, digest);
    } catch (err) {
      if (err instanceof HttpStatusError && err.status === 404) {
        throw new TorrentNotFoundError(digest, { cause: err });
      }
      throw err;
    }
  }

  #addTorrent(
    namespace: string,
    storage: SeedingTorrent | LeechingTorrent,
    complete: boolean,
    ctx: Context | undefined,
  ): Torrent {
    const dispatcher = new Dispatcher({
      ...this.#dispatcherOptions,
      bufferPool: this.#buffers,
      storage,
      peerId: this.peerId,
      blacklist: this.#blacklist,
      maxOpenConn: this.#maxOpenConn,
      onError: (err, peerId) =>
        this.#logger.debug("peer failed", { peer: peerId, digest: storage.digestHex, error: err }),
    });
    const torrent: Torrent = {
      hex: storage.digestHex,
      namespace,
      storage,
      dispatcher,
      complete,
      ctx,
      lastActive: Date.now(),
      lastBytes: 0,
      inflight: undefined,
      failure: undefined,
      retired: false,
    };
    this.#torrents.set(torrent.hex, torrent);
    return torrent;
  }

  /** Closes a torrent; with `discard`, an unfinished download's partial file is deleted too. */
  async #teardown(torrent: Torrent, failure: Error, discard: boolean): Promise<void> {
    if (this.#torrents.get(torrent.hex) === torrent) this.#torrents.delete(torrent.hex);
    if (!torrent.retired) {
      torrent.retired = true;
      this.#metrics.retire(torrent.dispatcher.summary());
    }
    torrent.failure ??= failure;
    this.#dequeue(torrent.hex);
    await torrent.dispatcher.close();
    torrent.storage.close();
    if (discard && !torrent.complete && torrent.storage instanceof LeechingTorrent) {
      await torrent.storage.abort().catch((err) =>
        this.#logger.warn("discarding a partial download failed", {
          digest: torrent.hex,
          error: err,
        })
      );
    }
  }

  // ---- announcing -------------------------------------------------------------------------

  /**
   * Announces `torrent` and dials the peers handed out. Skipped while an announce of the torrent
   * is in flight, unless `force` (the final complete announce), which then waits its turn.
   */
  async #announce(torrent: Torrent, force = false): Promise<void> {
    if (!this.#announcer || !this.#peer) return;
    while (torrent.inflight) {
      if (!force) return;
      await torrent.inflight;
    }
    const run = this.#announceOnce(torrent, this.#announcer, this.#peer);
    torrent.inflight = run;
    try {
      await run;
    } finally {
      torrent.inflight = undefined;
    }
  }

  async #announceOnce(
    torrent: Torrent,
    announcer: Announcer,
    peer: { ip: string; port: number },
  ): Promise<void> {
    try {
      const result = await announcer.announce({
        digest: torrent.storage.digest,
        infoHash: torrent.storage.metaInfo.infoHash,
        namespace: torrent.namespace,
        peer: { peerId: this.peerId, ip: peer.ip, port: peer.port },
        complete: torrent.complete,
      });
      const ms = result.intervalMs;
      this.#intervalMs = ms > 0 && ms <= this.#maxIntervalMs ? ms : this.#defaultIntervalMs;
      if (!torrent.complete && this.#torrents.get(torrent.hex) === torrent && !this.#closed) {
        this.#dial(torrent, result.peers);
      }
    } catch (err) {
      this.#logger.warn("announce failed", { digest: torrent.hex, error: err });
    }
  }

  /** The final complete announce, outside the current request's trace. */
  #announceComplete(torrent: Torrent): void {
    if (!this.#announcer || this.#closed) return;
    this.#track(runWithContext(this.#rootCtx, () => this.#announce(torrent, true)));
  }

  #armAnnounce(): void {
    if (this.#closed) return;
    this.#announceTimer = setTimeout(() => {
      runWithContext(this.#rootCtx, () => {
        this.#tick();
        this.#armAnnounce();
      });
    }, this.#intervalMs);
  }

  // Announces the next ready torrent of the round-robin queue.
  #tick(): void {
    for (let n = this.#queue.length; n > 0; n--) {
      const hex = this.#queue.shift()!;
      const torrent = this.#torrents.get(hex);
      if (!torrent || torrent.complete) continue;
      this.#queue.push(hex);
      if (torrent.inflight) continue;
      if (torrent.dispatcher.peerIds.length >= this.#maxOpenConn) continue;
      // While it downloads, a torrent's announces belong to the download's trace.
      const ctx = torrent.ctx ?? this.#rootCtx;
      this.#track(runWithContext(ctx, () => this.#announce(torrent)));
      return;
    }
  }

  #dequeue(hex: string): void {
    this.#queue = this.#queue.filter((h) => h !== hex);
  }

  // ---- connections ------------------------------------------------------------------------

  #dial(torrent: Torrent, peers: readonly PeerInfo[]): void {
    const { dispatcher, storage } = torrent;
    for (const peer of peers) {
      if (peer.peerId === this.peerId || !dispatcher.reserve(peer.peerId)) continue;
      this.#track((async () => {
        let conn: PeerConn;
        try {
          conn = await dialPeer({
            hostname: peer.ip,
            port: peer.port,
            expectedPeerId: peer.peerId,
            handshake: dispatcher.handshake(torrent.namespace),
            timeoutMs: this.#handshakeTimeoutMs,
            maxPayloadLength: maxPieceLength(storage),
            payloadBuffers: RECEIVE_DEPTH,
            bufferPool: this.#buffers,
          });
        } catch (err) {
          dispatcher.cancelReservation(peer.peerId);
          this.#blacklist.add(peer.peerId, dispatcher.infoHash);
          this.#logger.debug("dial failed", {
            peer: peer.peerId,
            addr: `${peer.ip}:${peer.port}`,
            error: err,
          });
          return;
        }
        try {
          dispatcher.addConn(conn, { isOrigin: peer.origin });
          torrent.lastActive = Date.now();
        } catch (err) {
          // addConn closed the connection (the torrent closed or filled up meanwhile).
          this.#logger.debug("dialed connection dropped", { peer: peer.peerId, error: err });
        }
      })());
    }
  }

  async #lookup(
    namespace: string,
    nameHex: string,
    remote: RemoteHandshake,
  ): Promise<LocalHandshake | null> {
    if (this.#closed) return null;
    const torrent = this.#torrents.get(nameHex) ?? await this.#loadSeed(namespace, nameHex);
    if (!torrent) {
      this.#onMissing?.(namespace, Digest.fromHex(nameHex));
      return null;
    }
    torrent.lastActive = Date.now();
    return torrent.dispatcher.admit(remote);
  }

  #accept(conn: PeerConn): void {
    const torrent = this.#torrents.get(conn.name);
    if (!torrent) {
      conn.close();
      return;
    }
    torrent.lastActive = Date.now();
    torrent.dispatcher.addConn(conn);
  }

  // Loads a cached blob with metainfo as a seed, once even for concurrent handshakes.
  #loadSeed(namespace: string, hex: string): Promise<Torrent | null> {
    let loading = this.#loading.get(hex);
    if (!loading) {
      loading = (async () => {
        const seed = await SeedingTorrent.open(this.#store, Digest.fromHex(hex), this.#files);
        if (!seed || this.#closed) return null;
        const existing = this.#torrents.get(hex);
        if (existing) return existing;
        const torrent = this.#addTorrent(namespace, seed, true, undefined);
        // Upstream sends exactly one complete announce for a torrent loaded complete.
        this.#announceComplete(torrent);
        return torrent;
      })().finally(() => this.#loading.delete(hex));
      this.#loading.set(hex, loading);
    }
    return loading;
  }

  // ---- timers -----------------------------------------------------------------------------

  #sweep(): void {
    const now = Date.now();
    for (const torrent of [...this.#torrents.values()]) {
      const s = torrent.dispatcher.summary();
      const bytes = s.bytesReceived + s.bytesServed;
      if (bytes !== torrent.lastBytes) {
        torrent.lastBytes = bytes;
        torrent.lastActive = now;
      }
      const idle = now - torrent.lastActive;
      if (torrent.complete && idle >= this.#seederTtiMs) {
        this.#track(this.#teardown(torrent, new DownloadError("seeder idle"), false));
      } else if (!torrent.complete && !torrent.dispatcher.complete && idle >= this.#leecherTtiMs) {
        this.#track(this.#teardown(torrent, new DownloadTimeoutError("torrent timed out"), true));
      }
    }
  }

  #track(task: Promise<unknown>): void {
    const settled = task.catch((err) => this.#logger.warn("scheduler task failed", { error: err }));
    this.#tasks.add(settled);
    settled.finally(() => this.#tasks.delete(settled));
  }
}
