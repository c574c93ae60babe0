/**
 * The catalogue of kraken's span names ({@linkcode SPAN}) and span attribute keys
 * ({@linkcode ATTR}): every operation span a role starts and every attribute key it sets is named
 * here, and code, tests and `docs/tracing.md` use these constants (`names_test.ts` checks they agree).
 *
 * Span names follow the ERD's span schema (§5) where it names the operation; the others use its
 * convention, `<component>.<operation>` in lower snake case. HTTP server and client spans are not
 * here: they are named `{METHOD} {route}` after the route template.
 *
 * This module has no imports, so test harnesses and scripts can use it without pulling in
 * OpenTelemetry.
 *
 * @module
 */

/** Instrumentation scope name of every kraken span. */
export const TRACER_NAME = "kraken";

/** Operation span names, by component. */
export const SPAN = {
  /** Agent: one blob served to a client, from the cache or downloaded first (ERD §5.1 root). */
  agentDownloadBlob: "agent.download_blob",
  /** Agent: is the blob in the local cache (ERD §5.4). */
  agentCacheLookup: "agent.cache_lookup",
  /** Agent: streaming the blob body to the client (ERD §5.4). */
  agentStreamResponse: "agent.stream_response",
  /** Agent: a tag resolved to a digest through the build-index. */
  agentResolveTag: "agent.resolve_tag",
  /** Scheduler: one P2P download, with the P2P summary as attributes (ERD §5.1). */
  schedulerDownload: "scheduler.download",
  /** Scheduler: the torrent's on-disk storage opened or resumed (ERD §5.1). */
  storageCreateTorrent: "storage.create_torrent",
  /** Scheduler: the assembled blob verified and moved into the cache (ERD §5.1). */
  storageCommit: "storage.commit",
  /** Announce client: one announce to a tracker (ERD §5.1). */
  announceRequest: "announce.request",
  /** Announce client: a blob's metainfo fetched from a tracker. */
  metainfoRequest: "metainfo.request",
  /** Tracker: one announce handled (ERD §5.1). */
  trackerAnnounce: "tracker.announce",
  /** Tracker: the announcing peer recorded in the peer store. */
  peerstoreUpdatePeer: "peerstore.update_peer",
  /** Tracker: peers of a torrent read from the peer store (ERD §5.4). */
  peerstoreGetPeers: "peerstore.get_peers",
  /** Tracker: the handout policy ordering the peers (ERD §5.4). */
  policySortPeers: "policy.sort_peers",
  /** Tracker: the origins that hold a blob, asked for their peer context. */
  originstoreGetOrigins: "originstore.get_origins",
  /** Proxy: one whole Docker blob upload, over its several requests (ERD §5.4 root). */
  proxyUpload: "proxy.upload",
  /** Proxy: an upload session opened (ERD §5.2). */
  proxyStartUpload: "proxy.start_upload",
  /** Proxy: one chunk of an upload received (ERD §5.2). */
  proxyUploadChunk: "proxy.upload_chunk",
  /** Proxy: the upload verified, cached and pushed to the origins (ERD §5.2). */
  proxyCommitUpload: "proxy.commit_upload",
  /** Proxy: a manifest pushed (verified, stored in the origins, tagged). */
  proxyPutManifest: "proxy.put_manifest",
  /** Cluster client: a blob uploaded to the origin cluster (ERD §5.2). */
  originStoreBlob: "origin.store_blob",
  /** Origin: an uploaded blob verified and written to the cache (ERD §5.4). */
  originCacheWrite: "origin.cache_write",
  /** Origin: a blob duplicated or transferred to one ring peer. */
  originReplicate: "origin.replicate",
  /** Origin: a blob's metainfo computed. */
  originGenerateMetainfo: "origin.generate_metainfo",
  /** Origin: is a blob in the storage backend. */
  backendStat: "backend.stat",
  /** Origin: a blob fetched from the storage backend into the cache. */
  backendDownload: "backend.download",
  /** Origin and build-index: one write-back task uploading to the storage backend (ERD §5.2). */
  backendUpload: "backend.upload",
  /** Build-index: names listed from the storage backend (tag and repository listings). */
  backendList: "backend.list",
  /** Build-index (server) and its client: a tag stored (ERD §5.3). */
  buildIndexPutTag: "build_index.put_tag",
  /** Build-index: the blobs a tagged manifest references, found before storing the tag. */
  buildIndexResolveDependencies: "build_index.resolve_dependencies",
  /** Build-index: a replication task's tag read back as a digest on the source (ERD §5.3). */
  buildIndexResolveTag: "build_index.resolve_tag",
  /** Build-index: one replication task of a tag to one remote cluster (ERD §5.3 root). */
  replicationTrigger: "replication.trigger",
  /** Build-index: does the destination origin cluster have a blob (ERD §5.3). */
  originStatBlob: "origin.stat_blob",
  /** Build-index: one blob sent to the destination through the local origins (ERD §5.3). */
  replicationTransfer: "replication.transfer",
} as const;

/** One operation span name from {@linkcode SPAN}. */
export type SpanName = typeof SPAN[keyof typeof SPAN];

/**
 * Span attribute keys. The ERD's key where the ERD names the attribute (§5, bare like `digest`
 * or dotted like `torrent.infohash`), the OpenTelemetry semantic-convention key where one exists
 * (`server.address`, `error.type`), and `kraken.<area>.<name>` (dotted, lower snake case) for
 * everything else, so kraken's own keys never collide with a future convention.
 */
export const ATTR = {
  // ---- ERD §5 ----
  /** Blob namespace (origin namespace, selects the backend). */
  namespace: "namespace",
  /** Blob digest, `sha256:<hex>`. */
  digest: "digest",
  /** Blob size in bytes. */
  size: "size",
  /** Docker repository of a push. */
  repo: "repo",
  /** Tag, `<repo>:<tag>`. */
  tag: "tag",
  /** Upload session id. */
  uploadId: "upload_id",
  /** First byte of an upload chunk. */
  rangeStart: "range_start",
  /** End of an upload chunk (exclusive). */
  rangeEnd: "range_end",
  /** Bytes in an upload chunk. */
  chunkSize: "chunk_size",
  /** Bytes of a committed upload. */
  totalSize: "total_size",
  /** Whether the receiver replicates further (origins, build-index neighbours). */
  replicate: "replicate",
  /** Storage backend type (`file`, `testfs`, ...). */
  backendType: "backend_type",
  /** Storage backend bucket, empty when it has none. */
  bucket: "bucket",
  /** Object key of a backend operation (the name path under the root). */
  backendKey: "kraken.backend.key",
  /** Parts of an object a backend upload wrote (1 for a single request). */
  backendParts: "kraken.backend.parts",
  /** Parts a backend upload sent in this attempt. */
  backendPartsSent: "kraken.backend.parts_sent",
  /** Parts a resumed backend upload found already stored. */
  backendPartsResumed: "kraken.backend.parts_resumed",
  /** Prefix a backend listing was asked for (relative to the backend's root). */
  backendPrefix: "kraken.backend.prefix",
  /** Names a backend listing returned. */
  backendNames: "kraken.backend.names",
  /** OTel semconv: the remote-call system of an S3 request (`aws-api`). */
  rpcSystem: "rpc.system",
  /** OTel semconv: the service of a remote call (`S3`). */
  rpcService: "rpc.service",
  /** OTel semconv: the operation of a remote call (`PutObject`, `UploadPart`, …). */
  rpcMethod: "rpc.method",
  /** OTel semconv: S3 bucket of the request. */
  awsS3Bucket: "aws.s3.bucket",
  /** OTel semconv: S3 object key of the request. */
  awsS3Key: "aws.s3.key",
  /** OTel semconv: multipart upload id. */
  awsS3UploadId: "aws.s3.upload_id",
  /** OTel semconv: part number of an `UploadPart`. */
  awsS3PartNumber: "aws.s3.part_number",
  /** Duration of the operation's main step, ms. */
  durationMs: "duration_ms",
  /** Whether the thing looked up exists (backend stat, tag). */
  exists: "exists",
  /** Whether the blob was already in the cache. */
  cacheHit: "cache_hit",
  /** Whether the assembled blob matched its digest. */
  verified: "verified",
  /** Torrent info hash, hex. */
  torrentInfohash: "torrent.infohash",
  /** Torrent length in bytes. */
  torrentSize: "torrent.size",
  /** Info hash of an announce, hex. */
  infohash: "infohash",
  /** Peer id, hex. */
  peerId: "peer.id",
  /** Pieces of a torrent. */
  pieces: "pieces",
  /** Piece length of a torrent, bytes. */
  pieceLength: "piece_length",
  /** Tracker asked, `host:port`. */
  trackerAddr: "tracker.addr",
  /** Whether the announcing peer has the whole blob. */
  complete: "complete",
  /** Peers returned or handled. */
  peerCount: "peer_count",
  /** Origins returned or tried. */
  originCount: "origin_count",
  /** Tracker handout policy. */
  handoutPolicy: "handout_policy",
  /** Cluster a replication starts from. */
  srcCluster: "src_cluster",
  /** Cluster a replication goes to. */
  dstCluster: "dst_cluster",

  // ---- OpenTelemetry semantic conventions (HTTP spans, errors) ----
  /** HTTP method, `_OTHER` for unknown ones. */
  httpRequestMethod: "http.request.method",
  /** Route template of a server span. */
  httpRoute: "http.route",
  /** HTTP status code. */
  httpResponseStatusCode: "http.response.status_code",
  /** Response body size from `Content-Length`. */
  httpResponseBodySize: "http.response.body.size",
  /** Request path of a server span. */
  urlPath: "url.path",
  /** `http` or `https`. */
  urlScheme: "url.scheme",
  /** URL a client span calls, without its query string. */
  urlFull: "url.full",
  /** Route template a client span calls. */
  urlTemplate: "url.template",
  /** Host of the server (server spans: the one addressed; client spans: the one called). */
  serverAddress: "server.address",
  /** Port of that server. */
  serverPort: "server.port",
  /** Address of the client. */
  clientAddress: "client.address",
  /** Address of the connection's peer. */
  networkPeerAddress: "network.peer.address",
  /** Port of the connection's peer. */
  networkPeerPort: "network.peer.port",
  /** `User-Agent` header. */
  userAgentOriginal: "user_agent.original",
  /** Class of the error that failed a span. */
  errorType: "error.type",
  /** Google Cloud service a client span calls (`storage` for GCS). */
  gcpClientService: "gcp.client.service",

  // ---- Jaeger's sampling conventions (its adaptive sampling reads them) ----
  /** Sampler that decided a root span: `probabilistic`, `ratelimiting` or `lowerbound`. */
  samplerType: "sampler.type",
  /** That sampler's parameter (probability or traces per second). */
  samplerParam: "sampler.param",

  // ---- kraken's own ----
  /** Resource attribute: the role of the process (`agent`, `origin`, ...). */
  role: "kraken.role",
  /** Whether a request came in on an edge listener (trust boundary). */
  edge: "kraken.edge",
  /** Whether a client's sampled flag was honoured on an edge listener. */
  samplingClientForced: "kraken.sampling.client_forced",
  /** A client's `jaeger-debug-id` header (it asks for the trace to be sampled). */
  samplingDebugId: "kraken.sampling.debug_id",
  /** Bytes sent of a response body. */
  bytesSent: "kraken.bytes_sent",
  /** Whether a download joined one already in progress. */
  schedulerJoined: "kraken.scheduler.joined",
  /** Pieces found on disk when a torrent was opened (a resumed download). */
  torrentResumedPieces: "kraken.torrent.resumed_pieces",
  /** P2P summary of a download: pieces of the torrent. */
  p2pPiecesTotal: "kraken.p2p.pieces_total",
  /** P2P summary: pieces already on disk at the start. */
  p2pPiecesAtStart: "kraken.p2p.pieces_at_start",
  /** P2P summary: pieces received from origins. */
  p2pPiecesFromOrigins: "kraken.p2p.pieces_from_origins",
  /** P2P summary: pieces received from agents. */
  p2pPiecesFromAgents: "kraken.p2p.pieces_from_agents",
  /** P2P summary: pieces received twice. */
  p2pPiecesDuplicate: "kraken.p2p.pieces_duplicate",
  /** P2P summary: pieces that failed verification. */
  p2pPiecesInvalid: "kraken.p2p.pieces_invalid",
  /** P2P summary: peers connected. */
  p2pPeersConnected: "kraken.p2p.peers_connected",
  /** P2P summary: payload bytes received. */
  p2pBytesReceived: "kraken.p2p.bytes_received",
  /** P2P summary: payload bytes served to other peers. */
  p2pBytesServed: "kraken.p2p.bytes_served",
  /** P2P summary: time from start to complete, ms. */
  p2pDurationMs: "kraken.p2p.duration_ms",
  /** P2P summary: download throughput, Mbit/s. */
  p2pThroughputMbps: "kraken.p2p.throughput_mbps",
  /** Announce interval the tracker asked for, ms. */
  announceIntervalMs: "kraken.announce.interval_ms",
  /** Requests sent before the tracker answered (metainfo polls). */
  trackerAttempts: "kraken.tracker.attempts",
  /** Peer store implementation (`memory`, `redis`). */
  peerstoreType: "kraken.peerstore.type",
  /** Most peers asked of the peer store. */
  peerstoreLimit: "kraken.peerstore.limit",
  /** Whether the origins' locations came from the tracker's cache. */
  originstoreCached: "kraken.originstore.cached",
  /** Origins that did not answer for their peer context. */
  originstoreUnavailable: "kraken.originstore.unavailable",
  /** Upload start attempt that succeeded, 1-based. */
  clusterAttempt: "kraken.cluster.attempt",
  /** Origin that took an upload, `host:port`. */
  clusterOrigin: "kraken.cluster.origin",
  /** How an upload session ended (`committed`, `cancelled`, `expired`, ...). */
  uploadOutcome: "kraken.upload.outcome",
  /** `exists` when an upload's blob was already cached. */
  cacheStatus: "kraken.cache.status",
  /** Manifest media type. */
  manifestMediaType: "kraken.manifest.media_type",
  /** Blobs a manifest references. */
  manifestReferences: "kraken.manifest.references",
  /** Manifest reference of a push: a tag or a digest. */
  manifestReference: "kraken.manifest.reference",
  /** Blobs a tagged manifest depends on. */
  buildIndexDependencies: "kraken.build_index.dependencies",
  /** Whether a tag was stored. */
  buildIndexSuccess: "kraken.build_index.success",
  /** Tag type rule that matched (`docker`, `default`). */
  tagType: "kraken.tag.type",
  /** Ring peer a blob is replicated to, `host:port`. */
  replicationReplica: "kraken.replication.replica",
  /** Delay the replica waits before its own write-back, ms. */
  replicationDelayMs: "kraken.replication.delay_ms",
  /** `transfer` when a fetched blob is pushed to a ring peer (no write-back there). */
  replicationMode: "kraken.replication.mode",
  /** Time to replicate to every ring peer, ms. */
  replicationDurationMs: "kraken.replication.duration_ms",
  /** Ring peers replicated to. */
  replicationReplicas: "kraken.replication.replicas",
  /** Failed replicas and their errors. */
  replicationError: "kraken.replication.error",
  /** Remote origin cluster a blob is sent to, `host:port`. */
  replicationRemote: "kraken.replication.remote",
  /** Outcome of a replication task (`replicated`, `already_replicated`). */
  replicationResult: "kraken.replication.result",
  /** Blobs of a replication task found on the destination already. */
  replicationBlobsPresent: "kraken.replication.blobs_present",
  /** Blobs a replication task sent. */
  replicationBlobsSent: "kraken.replication.blobs_sent",
  /** Earlier failed attempts of a write-back task. */
  writebackFailures: "kraken.writeback.failures",
  /** Outcome of a write-back (`uploaded`, `already_in_backend`, `not_in_cache`). */
  writebackResult: "kraken.writeback.result",
} as const;

/** One attribute key from {@linkcode ATTR}. */
export type AttrKey = typeof ATTR[keyof typeof ATTR];

/** Key of `policy.sort_peers`' count of peers handed out at one priority (`origin`, ...). */
export function policyCountAttr(label: string): string {
  return `kraken.policy.${label}_count`;
}
