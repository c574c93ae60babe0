/**
 * A small Redis client: RESP2 over `Deno.connect`, with a connection pool shaped like the one
 * upstream's tracker configures (dial/read/write timeouts, max idle, max active with waiting, idle
 * timeout). It speaks only what the peer store needs: single commands and pipelines of commands
 * whose replies are read in order.
 *
 * Replies map to JavaScript as: simple and bulk strings → `string` (UTF-8), integers → `number`,
 * nil bulk strings and nil arrays → `null`, arrays → arrays. An error reply is a
 * {@linkcode RedisReplyError}: it fails that command only, the connection stays usable. Any I/O
 * failure or timeout closes the connection, since its reply stream can no longer be trusted.
 *
 * @example
 * ```ts
 * import { RedisClient } from "./redis.ts";
 *
 * const redis = new RedisClient({ addr: "127.0.0.1:6379" });
 * await redis.command("SADD", "k", "member");
 * const [added, expiry] = await redis.pipeline([["SADD", "k", "m2"], ["EXPIREAT", "k", 2e9]]);
 * await redis.close();
 * ```
 *
 * @module
 */

import { concatBytes } from "../../common/bytes.ts";

/** A decoded RESP2 reply; error elements inside arrays stay in place as errors. */
export type RedisReply = string | number | null | Array<RedisReply | RedisReplyError>;

/** An error reply from the server (`-ERR ...`). */
export class RedisReplyError extends Error {
  /** @param message the server's error text */
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
  }
}

/** A connection, protocol or timeout failure talking to Redis. */
export class RedisConnectionError extends Error {
  /**
   * @param message what failed
   * @param cause the underlying error, if any
   */
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "RedisConnectionError";
  }
}

/** Options for {@linkcode RedisClient}; defaults are upstream's peer store defaults. */
export interface RedisClientOptions {
  /** Server address, `host:port`. */
  addr: string;
  /** Connect timeout (default 5 s). */
  dialTimeoutMs?: number;
  /** Timeout waiting for each reply (default 30 s). */
  readTimeoutMs?: number;
  /** Timeout writing one command or pipeline (default 30 s). */
  writeTimeoutMs?: number;
  /** Idle connections kept for reuse (default 10). */
  maxIdle?: number;
  /** Connections open at once; further callers wait for one (default 500). */
  maxActive?: number;
  /** Idle connections older than this are closed instead of reused (default 60 s). */
  idleTimeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
const LF = 10;

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | number)[]): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = encoder.encode(String(arg));
    parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, encoder.encode("\r\n"));
  }
  return concatBytes(parts);
}

/** Races `promise` against a timer; on timeout runs `onTimeout` and rejects. */
async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new RedisConnectionError(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One TCP connection with a read buffer and a RESP2 reply parser. */
class Connection {
  readonly #conn: Deno.TcpConn;
  #buf = new Uint8Array(0);
  #closed = false;
  /** When the connection was last returned to the pool. */
  idleSince = 0;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or a timed-out operation.
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Reads more bytes into the buffer; throws at end of stream. */
  async #fill(): Promise<void> {
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new RedisConnectionError("connection closed by server");
    this.#buf = concatBytes([this.#buf, chunk.subarray(0, n)]);
  }

  async #line(): Promise<string> {
    for (;;) {
      for (let i = 0; i + 1 < this.#buf.length; i++) {
        if (this.#buf[i] === CR && this.#buf[i + 1] === LF) {
          const line = decoder.decode(this.#buf.subarray(0, i));
          this.#buf = this.#buf.subarray(i + 2);
          return line;
        }
      }
      await this.#fill();
    }
  }

  async #exact(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n + 2) await this.#fill();
    if (this.#buf[n] !== CR || this.#buf[n + 1] !== LF) {
      throw new RedisConnectionError("protocol error: bulk string not terminated by CRLF");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n + 2);
    return out;
  }

  /** Reads one reply; an error reply is returned (not thrown) so pipelines stay in step. */
  async read(): Promise<RedisReply | RedisReplyError> {
    const line = await this.#line();
    const type = line[0];
    const rest = line.slice(1);
    switch (type) {
      case "+":
        return rest;
      case "-":
        return new RedisReplyError(rest);
      case ":":
        return Number(rest);
      case "$": {
        const n = Number(rest);
        if (n === -1) return null;
        if (!Number.isInteger(n) || n < 0) {
          throw new RedisConnectionError(`protocol error: bad bulk length ${rest}`);
        }
        return decoder.decode(await this.#exact(n));
      }
      case "*": {
        const n = Number(rest);
        if (n === -1) return null;
        if (!Number.isInteger(n) || n < 0) {
          throw new RedisConnectionError(`protocol error: bad array length ${rest}`);
        }
        const items: Array<RedisReply | RedisReplyError> = [];
        for (let i = 0; i < n; i++) items.push(await this.read());
        return items;
      }
      default:
        throw new RedisConnectionError(`protocol error: unexpected reply ${JSON.stringify(line)}`);
    }
  }
}

/** A pooled Redis client. */
export class RedisClient {
  readonly #hostname: string;
  readonly #port: number;
  readonly #dialTimeoutMs: number;
  readonly #readTimeoutMs: number;
  readonly #writeTimeoutMs: number;
  readonly #maxIdle: number;
  readonly #maxActive: number;
  readonly #idleTimeoutMs: number;
  readonly #idle: Connection[] = [];
  readonly #waiters: Array<() => void> = [];
  #active = 0;
  #closed = false;

  /** @param options see {@linkcode RedisClientOptions} */
  constructor(options: RedisClientOptions) {
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(options.addr);
    if (!m) throw new TypeError(`redis address must be host:port, got ${options.addr}`);
    this.#hostname = m[1].replace(/^\[|\]$/g, "");
    this.#port = Number(m[2]);
    this.#dialTimeoutMs = options.dialTimeoutMs ?? 5_000;
    this.#readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 30_000;
    this.#maxIdle = options.maxIdle ?? 10;
    this.#maxActive = options.maxActive ?? 500;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    if (this.#maxActive < 1) throw new RangeError("maxActive must be at least 1");
  }

  /**
   * Sends one command and returns its reply.
   * @throws {RedisReplyError} on an error reply
   * @throws {RedisConnectionError} on connection failures and timeouts
   */
  async command(...args: (string | number)[]): Promise<RedisReply> {
    const [reply] = await this.pipeline([args]);
    if (reply instanceof RedisReplyError) throw reply;
    return reply;
  }

  /**
   * Sends several commands in one write and reads their replies in order. Error replies are
   * returned in place, so the caller sees which command failed.
   * @throws {RedisConnectionError} on connection failures and timeouts
   */
  async pipeline(
    commands: readonly (readonly (string | number)[])[],
  ): Promise<(RedisReply | RedisReplyError)[]> {
    const conn = await this.#acquire();
    let healthy = false;
    try {
      const bytes = concatBytes(commands.map(encodeCommand));
      await withTimeout(conn.write(bytes), this.#writeTimeoutMs, "redis write", () => conn.close());
      const replies: (RedisReply | RedisReplyError)[] = [];
      for (let i = 0; i < commands.length; i++) {
        replies.push(
          await withTimeout(conn.read(), this.#readTimeoutMs, "redis read", () => conn.close()),
        );
      }
      healthy = true;
      return replies;
    } catch (error) {
      if (error instanceof RedisConnectionError) throw error;
      throw new RedisConnectionError(`redis ${this.#addr()}: ${(error as Error).message}`, error);
    } finally {
      this.#release(conn, healthy);
    }
  }

  /** Closes idle connections now and in-use ones when they are released; later calls fail. */
  close(): Promise<void> {
    this.#closed = true;
    for (const conn of this.#idle.splice(0)) {
      conn.close();
      this.#active--;
    }
    for (const wake of this.#waiters.splice(0)) wake();
    return Promise.resolve();
  }

  #addr(): string {
    return `${this.#hostname}:${this.#port}`;
  }

  async #acquire(): Promise<Connection> {
    for (;;) {
      if (this.#closed) throw new RedisConnectionError("redis client is closed");
      const now = Date.now();
      while (this.#idle.length > 0) {
        const conn = this.#idle.pop()!;
        if (!conn.closed && now - conn.idleSince < this.#idleTimeoutMs) {
          return conn;
        }
        conn.close();
        this.#active--;
      }
      if (this.#active < this.#maxActive) break;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#active++;
    try {
      const dial = Deno.connect({ hostname: this.#hostname, port: this.#port });
      const tcp = await withTimeout(dial, this.#dialTimeoutMs, "redis dial", () => {
        // A connect that completes after the timeout must not leak its socket.
        dial.then((c) => c.close(), () => {});
      });
      return new Connection(tcp);
    } catch (error) {
      this.#active--;
      this.#waiters.shift()?.();
      if (error instanceof RedisConnectionError) throw error;
      throw new RedisConnectionError(
        `redis dial ${this.#addr()}: ${(error as Error).message}`,
        error,
      );
    }
  }

  #release(conn: Connection, healthy: boolean): void {
    if (healthy && !this.#closed && !conn.closed && this.#idle.length < this.#maxIdle) {
      conn.idleSince = Date.now();
      this.#idle.push(conn);
    } else {
      conn.close();
      this.#active--;
    }
    this.#waiters.shift()?.();
  }
}
