/**
 * How the agent gets a blob to a client, shared by the blob API and the registry: look in the
 * cache, download over P2P on a miss, stream from the cache.
 *
 * Spans (design §3, ERD §5.1): `agent.download_blob` (namespace, digest, size) with children
 * `agent.cache_lookup` (hit), `scheduler.download` on a miss (made by the scheduler), and
 * `agent.stream_response` (size, bytes), which ends — like `agent.download_blob` — only when the body has
 * been sent or the client went away.
 *
 * @module
 */

import { fileResponse } from "../../http/file_response.ts";
import type { Ctx } from "../../http/router.ts";
import { type ByteRange, partialContentHeaders, rangeLength } from "../../registry/range.ts";
import { BlobNotFoundError, type BlobStore, type OpenBlob } from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { FileBody } from "../../storage/file_body.ts";
import {
  activeContext,
  ATTR,
  type Attributes,
  type Context,
  contextOfSpan,
  markError,
  runWithContext,
  SPAN,
  type Span,
  startSpan,
  whenResponseDone,
  withSpan,
} from "../../tracing/mod.ts";

/** The download side of the scheduler. */
export interface BlobDownloader {
  /** Resolves once `digest` is in the cache. */
  download(namespace: string, digest: Digest): Promise<unknown>;
}

/** A manifest larger than the agent reads into memory. */
export class BlobTooLargeError extends Error {
  /**
   * @param digest the blob
   * @param size its size
   * @param max the limit
   */
  constructor(readonly digest: Digest, size: number, max: number) {
    super(`blob ${digest} has ${size} bytes, more than the ${max} allowed for a manifest`);
    this.name = "BlobTooLargeError";
  }
}

/**
 * The `namespace` and `digest` attributes of a blob's spans. Built with keyed stores: a literal
 * with computed keys costs a running agent about 0.7 µs a key (docs/performance.md).
 */
export function blobAttributes(namespace: string, digest: Digest): Attributes {
  const attributes: Attributes = {};
  attributes[ATTR.namespace] = namespace;
  attributes[ATTR.digest] = digest.toString();
  return attributes;
}

/** Options of {@linkcode AgentBlobs.serve}. */
export interface ServeOptions {
  /** A HEAD request: headers only, no body (the blob is still downloaded). */
  head?: boolean;
  /** Response headers, given the blob's size (Content-Length is added). */
  headers?: (size: number) => HeadersInit;
  /**
   * The part of the blob to send, given its size (null: all of it, 200); a part is a 206 with
   * `Content-Range`. What it throws (an unsatisfiable range) is the client's error: it ends the
   * download span without marking it failed.
   */
  range?: (size: number) => ByteRange | null;
}

/** A client's mistake found while serving, which is passed on without failing the span. */
class ClientRefusal {
  constructor(readonly error: unknown) {}
}

/** Cache-or-P2P access to blobs, traced. */
export class AgentBlobs {
  readonly #store: BlobStore;
  readonly #scheduler: BlobDownloader;

  /**
   * @param store the agent's blob cache
   * @param scheduler downloads missing blobs
   */
  constructor(store: BlobStore, scheduler: BlobDownloader) {
    this.#store = store;
    this.#scheduler = scheduler;
  }

  /**
   * A 200 response streaming the blob (downloading it first on a cache miss) to the request of
   * `ctx`.
   * @throws whatever the download throws (`TorrentNotFoundError` for an unknown blob)
   */
  async serve(
    ctx: Ctx,
    namespace: string,
    digest: Digest,
    options: ServeOptions = {},
  ): Promise<Response> {
    const span = startSpan(SPAN.agentDownloadBlob, blobAttributes(namespace, digest));
    // Its children get it as their parent; it is active only for a download (a cache hit then
    // makes no context switch for it).
    const parent = contextOfSpan(span);
    try {
      if (options.head) {
        const stat = await this.#cached(namespace, digest, parent, () => this.#store.stat(digest));
        span.setAttribute(ATTR.size, stat.size);
        span.end();
        return new Response(null, {
          headers: withLength(options.headers?.(stat.size), stat.size),
        });
      }
      // The cache lookup is the open: its handle gives the size and the bytes.
      const blob = await this.#cached(namespace, digest, parent, () => this.#openCached(digest));
      span.setAttribute(ATTR.size, blob.size);
      let range: ByteRange | null;
      try {
        range = options.range?.(blob.size) ?? null;
      } catch (error) {
        blob.body.finish(error);
        throw new ClientRefusal(error);
      }
      if (range === null) {
        return await streamResponse(
          ctx,
          blob.body,
          { headers: withLength(options.headers?.(blob.size), blob.size) },
          blob.size,
          () => span.end(),
          parent,
        );
      }
      // A ranged GET (rare: the registry's `Range`) opens the blob again at the range.
      const length = rangeLength(range);
      blob.body.finish(new Error("replaced by a ranged body"));
      const part = await this.#store.open(digest, { offset: range.start, length });
      const headers = new Headers(options.headers?.(blob.size));
      for (const [k, v] of Object.entries(partialContentHeaders(range, blob.size))) {
        headers.set(k, v);
      }
      return await streamResponse(
        ctx,
        part.body,
        { status: 206, headers },
        length,
        () => span.end(),
        parent,
      );
    } catch (error) {
      if (error instanceof ClientRefusal) {
        span.end();
        throw error.error;
      }
      markError(span, error);
      span.end();
      throw error;
    }
  }

  /**
   * The whole blob in memory (manifests), downloading it first on a cache miss.
   * @throws {BlobTooLargeError} when it is larger than `maxBytes`
   */
  read(namespace: string, digest: Digest, maxBytes: number): Promise<Uint8Array> {
    return withSpan(
      SPAN.agentDownloadBlob,
      blobAttributes(namespace, digest),
      async (span) => {
        const blob = await this.#cached(
          namespace,
          digest,
          activeContext(),
          () => this.#openCached(digest),
        );
        span.setAttribute(ATTR.size, blob.size);
        if (blob.size > maxBytes) {
          await blob.stream.cancel();
          throw new BlobTooLargeError(digest, blob.size, maxBytes);
        }
        return new Uint8Array(await new Response(blob.stream).arrayBuffer());
      },
    );
  }

  /**
   * What `probe` finds in the cache (span `agent.cache_lookup`), downloading the blob over P2P
   * first when it finds nothing (null); both are children of `parent`.
   */
  async #cached<T>(
    namespace: string,
    digest: Digest,
    parent: Context,
    probe: () => Promise<T | null>,
  ): Promise<T> {
    const found = await withSpan(SPAN.agentCacheLookup, {}, async (span) => {
      const found = await probe();
      span.setAttribute(ATTR.cacheHit, found !== null);
      return found;
    }, { parent, leaf: true });
    if (found !== null) return found;
    await runWithContext(parent, () => this.#scheduler.download(namespace, digest));
    const downloaded = await probe();
    if (downloaded === null) throw new Error(`blob ${digest} vanished from the cache`);
    return downloaded;
  }

  /** The cached blob, open, or null when it is not cached. */
  async #openCached(digest: Digest): Promise<OpenBlob | null> {
    try {
      return await this.#store.open(digest);
    } catch (error) {
      if (error instanceof BlobNotFoundError) return null;
      throw error;
    }
  }
}

/**
 * A response to the request of `ctx` whose body is sent inside span `agent.stream_response`
 * (attribute `kraken.bytes_sent`: what was handed to the server); a file body is sent by the
 * listener straight from the file (`http/file_response.ts`). `onDone` runs once the body is
 * finished, failed or cancelled; the body counts as finished once `size` bytes went out. The end
 * is seen by the request's one body tracker (`whenResponseDone`), which the server span and the
 * request metrics share. The span's parent is `parent`, by default the active context.
 */
export function streamResponse(
  ctx: Ctx,
  body: FileBody | Uint8Array,
  init: ResponseInit,
  size: number,
  onDone?: () => void,
  parent?: Context,
): Response | Promise<Response> {
  const attributes: Attributes = {};
  attributes[ATTR.size] = size;
  const span: Span = startSpan(SPAN.agentStreamResponse, attributes, { parent });
  const response = body instanceof FileBody
    ? fileResponse(body, init, ctx)
    : new Response(body as Uint8Array<ArrayBuffer>, init);
  return whenResponseDone(ctx, response, (error, bytes) => {
    span.setAttribute(ATTR.bytesSent, bytes);
    // A server may cancel a body once its Content-Length is out instead of reading its end.
    if (bytes < size) {
      markError(span, error ?? new Error(`body ended after ${bytes} of ${size} bytes`));
    } else if (bytes > size) markError(span, new Error(`body sent ${bytes} of ${size} bytes`));
    span.end();
    onDone?.();
  });
}

function withLength(headers: HeadersInit | undefined, size: number): Headers {
  const h = new Headers(headers);
  h.set("content-length", String(size));
  return h;
}
