/**
 * The origin's write-back executor: copies a committed blob from the cache to the backend that
 * serves its namespace (kraken-wire.md §6.3), for the persisted queue in `storage/writeback.ts`.
 *
 * Each execution is a real `backend.upload` span whose parent is the trace context stored with the
 * task, i.e. the upload commit that queued it, so the backend copy shows up in the push trace even
 * when it happens minutes later or after a restart.
 *
 * Upstream's rules: no backend for the namespace → drop the task; the backend already has the blob
 * → done; the blob left the cache → drop; otherwise upload it and clear the `persist` marker.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { type BackendManager, objectKeyOf } from "../../storage/backend/backend.ts";
import { BlobNotFoundError, type BlobStore } from "../../storage/blob_store.ts";
import { Digest, DigestError } from "../../storage/digest.ts";
import type { WriteBackExecutor } from "../../storage/writeback.ts";
import { ATTR, contextFromStored, SPAN, withSpan } from "../../tracing/mod.ts";

/** Metadata key marking a blob that must reach the backend before it may be evicted. */
export const PERSIST_KEY = "persist";

/** Options of {@linkcode createWriteBackExecutor}. */
export interface WriteBackExecutorOptions {
  /** The origin's cache. */
  store: BlobStore;
  /** Namespace → backend mapping. */
  backends: BackendManager;
  /** Logger for dropped tasks. */
  logger: Logger;
}

/** Builds the executor the origin's write-back queue runs for every task. */
export function createWriteBackExecutor(options: WriteBackExecutorOptions): WriteBackExecutor {
  const { store, backends, logger } = options;
  return async (task) => {
    const fields = { namespace: task.namespace, name: task.name };
    let digest: Digest;
    try {
      digest = Digest.fromHex(task.name);
    } catch (error) {
      if (!(error instanceof DigestError)) throw error;
      logger.warn("write-back task dropped: name is not a digest", fields);
      return;
    }
    const backend = backends.find(task.namespace);
    if (backend === undefined) {
      logger.warn("write-back task dropped: no backend for namespace", fields);
      return;
    }
    // The task carries the trace context of the request that queued it.
    const parent = contextFromStored(task);
    const key = objectKeyOf(backend, digest.hex);
    await withSpan(SPAN.backendUpload, {
      [ATTR.backendType]: backend.type,
      [ATTR.bucket]: backend.bucket ?? "",
      ...(key === undefined ? {} : { [ATTR.backendKey]: key }),
      [ATTR.namespace]: task.namespace,
      [ATTR.digest]: digest.toString(),
      [ATTR.writebackFailures]: task.failures,
    }, async (span) => {
      const started = performance.now();
      const existing = await withSpan(SPAN.backendStat, {
        [ATTR.backendType]: backend.type,
        [ATTR.bucket]: backend.bucket ?? "",
        ...(key === undefined ? {} : { [ATTR.backendKey]: key }),
        [ATTR.namespace]: task.namespace,
        [ATTR.digest]: digest.toString(),
      }, () => backend.stat(task.namespace, digest.hex));
      if (existing) {
        span.setAttributes({
          [ATTR.writebackResult]: "already_in_backend",
          [ATTR.size]: existing.size,
        });
        await store.deleteMetadata(digest, PERSIST_KEY);
        return;
      }
      let blob;
      try {
        // A re-openable source: an object store resumes or retries from an offset.
        blob = await store.source(digest);
      } catch (error) {
        if (!(error instanceof BlobNotFoundError)) throw error;
        span.setAttribute(ATTR.writebackResult, "not_in_cache");
        logger.warn("write-back task dropped: blob no longer cached", fields);
        return;
      }
      span.setAttribute(ATTR.size, blob.size);
      const result = await backend.upload(task.namespace, digest.hex, blob);
      await store.deleteMetadata(digest, PERSIST_KEY);
      span.setAttributes({
        ...(result?.parts === undefined ? {} : { [ATTR.backendParts]: result.parts }),
        ...(result?.partsSent === undefined ? {} : { [ATTR.backendPartsSent]: result.partsSent }),
        ...(result?.partsResumed === undefined
          ? {}
          : { [ATTR.backendPartsResumed]: result.partsResumed }),
        [ATTR.writebackResult]: "uploaded",
        [ATTR.durationMs]: Math.round(performance.now() - started),
      });
      logger.info("written back", { ...fields, backend: backend.type, size: blob.size });
    }, { parent });
  };
}
