/**
 * Upload sessions of the proxy's registry API: which repository an upload id belongs to, and the
 * trace context of its `proxy.upload` span.
 *
 * A docker push spreads one blob upload over several HTTP requests (POST, PATCH…, PUT). The
 * session carries the `proxy.upload` span so that every request of the upload joins one trace:
 * the live span object is kept in memory (so it can be ended when the session commits, is aborted
 * or expires) and its context is also written next to the staged bytes, in `<root>/<uid>.json`,
 * so a proxy restarted mid-push still parents the later requests' spans on the same span id.
 * The bytes themselves are staged by the `BlobStore`; this module keeps only the bookkeeping.
 *
 * ```ts
 * import { UploadSessions } from "./upload_sessions.ts";
 * const sessions = await UploadSessions.open({ root: "/var/cache/kraken/kraken-proxy/sessions" });
 * await sessions.add({ uid, name: "library/ubuntu", trace: storeTraceContext(), span });
 * const session = await sessions.get(uid, "library/ubuntu"); // null if unknown or another repo's
 * sessions.end(session, "committed");
 * ```
 *
 * @module
 */

import { removeTempFiles, writeFileAtomic } from "../../common/atomic_file.ts";
import { resolveInside } from "../../storage/paths.ts";
import { ATTR, type Span, type StoredTraceContext } from "../../tracing/mod.ts";

/** One upload session. */
export interface UploadSession {
  /** Upload id (the `BlobStore` upload uid). */
  readonly uid: string;
  /** Repository the upload was started for. */
  readonly name: string;
  /** Context of the session's `proxy.upload` span (absent when tracing is off). */
  readonly trace?: StoredTraceContext;
  /** Creation time, epoch ms. */
  readonly createdAt: number;
  /** The live `proxy.upload` span; absent for a session restored after a restart. */
  span?: Span;
  /** Last request of the session, epoch ms (for expiry). */
  lastActivity: number;
}

/** How a session ended, recorded on its `proxy.upload` span. */
export type SessionOutcome = "committed" | "aborted" | "expired" | "digest_mismatch" | "failed";

/** Options of {@linkcode UploadSessions.open}. */
export interface UploadSessionsOptions {
  /** Directory of the session files; created if missing. */
  root: string;
  /** Clock (default `Date.now`). */
  now?: () => number;
}

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Session bookkeeping: in memory, mirrored to small JSON files for restarts. */
export class UploadSessions {
  readonly #root: string;
  readonly #now: () => number;
  readonly #live = new Map<string, UploadSession>();

  private constructor(root: string, now: () => number) {
    this.#root = resolveInside(root);
    this.#now = now;
  }

  /** Opens (creating if needed) the session directory and drops temp files a crash left. */
  static async open(options: UploadSessionsOptions): Promise<UploadSessions> {
    const sessions = new UploadSessions(options.root, options.now ?? Date.now);
    await Deno.mkdir(sessions.#root, { recursive: true });
    await removeTempFiles(sessions.#root);
    return sessions;
  }

  /** Number of sessions held in memory. */
  get size(): number {
    return this.#live.size;
  }

  #file(uid: string): string {
    return resolveInside(this.#root, `${uid}.json`);
  }

  /** Records a new session (atomically on disk, then in memory). */
  async add(
    input: { uid: string; name: string; trace?: StoredTraceContext; span?: Span },
  ): Promise<UploadSession> {
    if (!UID.test(input.uid)) throw new TypeError(`invalid upload id ${input.uid}`);
    const now = this.#now();
    const session: UploadSession = { ...input, createdAt: now, lastActivity: now };
    const record = { name: input.name, trace: input.trace ?? null, createdAt: now };
    await writeFileAtomic(this.#file(input.uid), JSON.stringify(record));
    this.#live.set(input.uid, session);
    return session;
  }

  /**
   * The session `uid` of repository `name`, from memory or, after a restart, from its file; null
   * when unknown, malformed, or started for another repository.
   */
  async get(uid: string, name: string): Promise<UploadSession | null> {
    if (!UID.test(uid)) return null;
    let session = this.#live.get(uid);
    if (!session) {
      let record;
      try {
        record = JSON.parse(await Deno.readTextFile(this.#file(uid)));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) return null;
        throw error;
      }
      if (typeof record?.name !== "string") return null;
      session = {
        uid,
        name: record.name,
        trace: record.trace ?? undefined,
        createdAt: Number(record.createdAt) || this.#now(),
        lastActivity: this.#now(),
      };
      this.#live.set(uid, session);
    }
    if (session.name !== name) return null;
    session.lastActivity = this.#now();
    return session;
  }

  /** Marks a session active now (after a long request, so it is not taken for idle). */
  touch(session: UploadSession): void {
    session.lastActivity = this.#now();
  }

  /**
   * Ends a session: forgets it, removes its file, and ends its `proxy.upload` span with the
   * outcome. Ending twice is harmless.
   */
  async end(session: UploadSession, outcome: SessionOutcome): Promise<void> {
    if (this.#live.get(session.uid) === session) this.#live.delete(session.uid);
    await Deno.remove(this.#file(session.uid)).catch(() => {});
    const span = session.span;
    session.span = undefined;
    if (span) {
      span.setAttribute(ATTR.uploadOutcome, outcome);
      span.end();
    }
  }

  /**
   * Sessions idle for longer than `ttlMs`: those in memory, and session files untouched for that
   * long whose session is not in memory (left by an earlier process). The caller aborts and ends
   * them.
   */
  async idle(ttlMs: number): Promise<UploadSession[]> {
    const cutoff = this.#now() - ttlMs;
    const out = [...this.#live.values()].filter((s) => s.lastActivity < cutoff);
    for await (const entry of Deno.readDir(this.#root)) {
      const uid = entry.name.endsWith(".json") ? entry.name.slice(0, -5) : "";
      if (!UID.test(uid) || this.#live.has(uid)) continue;
      const info = await Deno.stat(this.#file(uid)).catch(() => null);
      if (info?.mtime && info.mtime.getTime() < cutoff) {
        out.push({ uid, name: "", createdAt: info.mtime.getTime(), lastActivity: 0 });
      }
    }
    return out;
  }

  /**
   * Ends every live `proxy.upload` span with outcome `interrupted`, keeping the files so the
   * uploads can continue after a restart (process shutdown).
   */
  closeSpans(): void {
    for (const session of this.#live.values()) {
      session.span?.setAttribute(ATTR.uploadOutcome, "interrupted");
      session.span?.end();
      session.span = undefined;
    }
  }
}
