/**
 * Cross-cluster tag replication (kraken-wire.md §6.5, §7.3; ERD §5.3): which remote build-indexes a
 * tag goes to ({@linkcode Remotes}, from `remotes:`), the persisted task table (upstream's
 * `replicate_tag_task`, run by `storage/writeback.ts`'s queue in the write-back database), and the
 * executor of one task ({@linkcode createReplicationExecutor}).
 *
 * One task replicates one tag to one remote build-index, in a `replication.trigger` span parented
 * on the request that scheduled it (the stored trace context, also after a restart):
 * 1. the remote already has the tag (`HEAD /tags/{tag}`) → done, `already_replicated`;
 * 2. `build_index.resolve_tag`: the tag's digest here now (the task's digest if the tag is gone);
 * 3. `build_index.resolve_dependencies`: what the manifest references and, for an image index,
 *    what every child manifest references, plus the task's stored dependencies;
 * 4. the remote's origin cluster from its `GET /origin`;
 * 5. per blob, `origin.stat_blob` on that cluster (`exists`); each missing one is sent by the local
 *    origins (`POST …/remote/{remote origin}`, polled while 202) in a `replication.transfer` span
 *    (`size`, `duration_ms`), so blobs sent by an earlier attempt are not sent again;
 * 6. `PUT /tags/{tag}/digest/{digest}?replicate=true` on the remote (`build_index.put_tag`), which
 *    replicates onward; a loop ends at step 1.
 *
 * A failed step fails the task, which the queue retries with backoff. Outcomes count in
 * `kraken_replication_tasks_total{result}`, sent blobs in `kraken_replication_blobs_sent_total`
 * and `kraken_replication_bytes_sent_total`.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { type Digest, parseDigest } from "../../storage/digest.ts";
import type { TaskTable, WriteBackExecutor, WriteBackTask } from "../../storage/writeback.ts";
import {
  ATTR,
  contextFromStored,
  type MetricsRegistry,
  SPAN,
  withSpan,
} from "../../tracing/mod.ts";

/** Upstream's replication table: key `(tag, destination)`, payload `digest`, `dependencies`. */
export const REPLICATION_TABLE: TaskTable = {
  name: "replicate_tag_task",
  keyColumns: ["tag", "destination"],
  payloadColumns: ["digest", "dependencies"],
};

/** The remote build-indexes of the `remotes:` config and the tags each one takes. */
export class Remotes {
  readonly #remotes: [string, RegExp[]][];

  /** @param config remote name (upstream: its build-index `host:port`) → its tag regexes */
  constructor(config: Record<string, { tags: RegExp[] }>) {
    this.#remotes = Object.entries(config).map(([name, remote]) => [name, remote.tags]);
  }

  /** The remotes `tag` is replicated to. */
  match(tag: string): string[] {
    return this.#remotes.filter(([, res]) => res.some((re) => re.test(tag))).map(([a]) => a);
  }

  /** Whether `tag` is still replicated to `addr` (tasks for other pairs are dropped). */
  valid(tag: string, addr: string): boolean {
    return this.match(tag).includes(addr);
  }
}

/** A replication task's payload columns as stored: JSON, like upstream's `digest` and `dependencies`. */
export function taskPayload(
  digest: Digest,
  dependencies: readonly Digest[],
): Record<string, string> {
  return {
    digest: JSON.stringify(digest.toString()),
    dependencies: JSON.stringify(dependencies.map((d) => d.toString())),
  };
}

/**
 * Reads a task's payload back.
 * @throws {Error} when a column is not the JSON upstream writes
 */
export function readTaskPayload(
  task: Pick<WriteBackTask, "payload">,
): { digest: Digest; dependencies: Digest[] } {
  const digest = parseDigest(JSON.parse(task.payload.digest));
  const deps: unknown = JSON.parse(task.payload.dependencies || "null");
  if (deps !== null && !Array.isArray(deps)) throw new Error("dependencies is not a list");
  return { digest, dependencies: (deps ?? []).map((d) => parseDigest(String(d))) };
}

/** What a task needs of the local build-index and origin cluster. */
export interface ReplicationSource {
  /** The tag's digest here, or null when it is unknown. */
  resolveTag(tag: string): Promise<Digest | null>;
  /** Every blob the tagged digest needs, child manifests' references included. */
  dependencies(tag: string, digest: Digest): Promise<Digest[]>;
  /** Local origin cluster: a blob's size. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null>;
  /** Local origin cluster: send a blob to the origin cluster at `remote` (polls while 202). */
  replicateToRemote(namespace: string, digest: Digest, remote: string): Promise<void>;
}

/** The remote build-index calls of a task (a `TagClient` fits). */
export interface RemoteBuildIndex {
  /** Whether the remote's backend has the tag. */
  has(tag: string): Promise<boolean>;
  /** The remote's origin cluster address. */
  origin(): Promise<string>;
  /** Puts the tag on the remote (which checks its dependencies in its own origins). */
  put(tag: string, digest: Digest, options: { replicate: boolean }): Promise<void>;
}

/** Options of {@linkcode createReplicationExecutor}. */
export interface ReplicationExecutorOptions {
  /** The local side. */
  source: ReplicationSource;
  /** A client of the remote build-indexes named `destination` in `remotes:`. */
  remote(destination: string): RemoteBuildIndex;
  /** A stat client of the remote origin cluster at `addr`. */
  remoteOrigin(addr: string): { stat(ns: string, d: Digest): Promise<{ size: number } | null> };
  /** This cluster's name (`src_cluster`). */
  srcCluster: string;
  /** Logger. */
  logger: Logger;
  /** Where the outcome counters go (the role's metrics). */
  metrics: MetricsRegistry;
}

/** The executor of replication tasks (task `namespace` = tag, `name` = remote build-index). */
export function createReplicationExecutor(options: ReplicationExecutorOptions): WriteBackExecutor {
  const { source, logger, metrics } = options;
  const result = (name: string) =>
    metrics.counter(
      "kraken_replication_tasks_total",
      "Attempts of replication tasks, by result (replicated, already_replicated, failed).",
      { result: name },
    );
  const replicated = result("replicated");
  const already = result("already_replicated");
  const failed = result("failed");
  const blobsSent = metrics.counter(
    "kraken_replication_blobs_sent_total",
    "Blobs sent to a remote cluster by replication tasks.",
  );
  const bytesSent = metrics.counter(
    "kraken_replication_bytes_sent_total",
    "Bytes of the blobs sent to a remote cluster by replication tasks.",
  );
  return (task) => {
    const tag = task.namespace;
    const destination = task.name;
    return withSpan(SPAN.replicationTrigger, {
      [ATTR.tag]: tag,
      [ATTR.srcCluster]: options.srcCluster,
      [ATTR.dstCluster]: destination,
      [ATTR.writebackFailures]: task.failures,
    }, async (span) => {
      const stored = readTaskPayload(task);
      const remote = options.remote(destination);
      // Like upstream, a failed check is not fatal: the steps below fail on an unreachable remote.
      if (await remote.has(tag).catch(() => false)) {
        span.setAttribute(ATTR.replicationResult, "already_replicated");
        already.inc();
        return;
      }
      const digest = await withSpan(SPAN.buildIndexResolveTag, { [ATTR.tag]: tag }, async (s) => {
        const current = (await source.resolveTag(tag)) ?? stored.digest;
        s.setAttribute(ATTR.digest, current.toString());
        return current;
      });
      span.setAttribute(ATTR.digest, digest.toString());
      const blobs = unique([
        ...await source.dependencies(tag, digest),
        ...(digest.equals(stored.digest) ? stored.dependencies : []),
      ]);
      const remoteOriginAddr = await remote.origin();
      span.setAttribute(ATTR.replicationRemote, remoteOriginAddr);
      const remoteOrigin = options.remoteOrigin(remoteOriginAddr);
      let present = 0;
      for (const blob of blobs) {
        const exists = await withSpan(SPAN.originStatBlob, {
          [ATTR.namespace]: tag,
          [ATTR.digest]: blob.toString(),
          [ATTR.replicationRemote]: remoteOriginAddr,
        }, async (s) => {
          const found = (await remoteOrigin.stat(tag, blob)) !== null;
          s.setAttribute(ATTR.exists, found);
          return found;
        });
        if (exists) {
          present++;
          continue;
        }
        await withSpan(SPAN.replicationTransfer, {
          [ATTR.namespace]: tag,
          [ATTR.digest]: blob.toString(),
          [ATTR.replicationRemote]: remoteOriginAddr,
        }, async (s) => {
          const started = performance.now();
          const info = await source.stat(tag, blob);
          if (info) s.setAttribute(ATTR.size, info.size);
          await source.replicateToRemote(tag, blob, remoteOriginAddr);
          s.setAttribute(ATTR.durationMs, Math.round(performance.now() - started));
          blobsSent.inc();
          if (info) bytesSent.inc(info.size);
        });
      }
      span.setAttributes({
        [ATTR.replicationBlobsPresent]: present,
        [ATTR.replicationBlobsSent]: blobs.length - present,
      });
      try {
        await remote.put(tag, digest, { replicate: true });
      } catch (error) {
        throw new Error(
          `put tag on remote build-index ${destination}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      span.setAttribute(ATTR.replicationResult, "replicated");
      replicated.inc();
      logger.info("tag replicated", {
        tag,
        digest: digest.toString(),
        destination,
        blobs_sent: blobs.length - present,
        blobs_present: present,
      });
    }, { parent: contextFromStored(task) }).catch((error) => {
      failed.inc();
      throw error;
    });
  };
}

function unique(digests: Digest[]): Digest[] {
  const seen = new Set<string>();
  return digests.filter((d) => !seen.has(d.toString()) && !!seen.add(d.toString()));
}
