/**
 * The agent's download store path alone: a {@linkcode LeechingTorrent} receives every piece of a
 * blob from memory (three reused buffers, three writes in flight, as the dispatcher stores them),
 * flushes in the background and commits. It prints the process CPU time (every thread: the
 * runtime's blocking pool does the file operations) per piece and the wall time, the median of
 * the rounds. Small pieces make the per-piece cost (file operations, status bytes, flushes) show
 * over the bytes' copy into the page cache.
 *
 * With `--baseline=<checkout>` the same rounds run, alternating, through that checkout's modules
 * loaded into the same process: a before/after in one run. Numbers in docs/performance.md.
 *
 *     deno run -A bench/download_store_bench.ts --piece=32KiB --size=32MiB --rounds=7 \
 *       --baseline=/tmp/kraken-before
 *
 * @module
 */

import process from "node:process";
import { parseByteSize } from "../common/byte_size.ts";

const args = new Map(
  Deno.args.map((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    return [m[1], m[2]] as const;
  }),
);
const pieceLength = parseByteSize(args.get("piece") ?? "32KiB");
const size = parseByteSize(args.get("size") ?? "32MiB");
const rounds = Number(args.get("rounds") ?? 7);
const baseline = args.get("baseline");

/** One checkout's modules of the store path. */
interface Tree {
  name: string;
  BlobStore: typeof import("../storage/blob_store.ts").BlobStore;
  LeechingTorrent: typeof import("../p2p/blob_torrent.ts").LeechingTorrent;
  generateMetaInfo: typeof import("../storage/metainfo.ts").generateMetaInfo;
  digestOfBytes: typeof import("../storage/digest.ts").digestOfBytes;
  cpuMicrosPerPiece: number[];
  wallMs: number[];
}

async function loadTree(name: string, base: URL): Promise<Tree> {
  return {
    name,
    BlobStore: (await import(new URL("storage/blob_store.ts", base).href)).BlobStore,
    LeechingTorrent: (await import(new URL("p2p/blob_torrent.ts", base).href)).LeechingTorrent,
    generateMetaInfo: (await import(new URL("storage/metainfo.ts", base).href)).generateMetaInfo,
    digestOfBytes: (await import(new URL("storage/digest.ts", base).href)).digestOfBytes,
    cpuMicrosPerPiece: [],
    wallMs: [],
  };
}

const trees = [await loadTree("this checkout", new URL("../", import.meta.url))];
if (baseline) {
  trees.push(await loadTree(baseline, new URL(`file://${Deno.realPathSync(baseline)}/`)));
}

const data = new Uint8Array(size);
for (let o = 0; o < size; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));
const scratch = await Deno.makeTempDir({ prefix: "kraken-bench-store-" });

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

async function round(tree: Tree): Promise<void> {
  // Each checkout's own digest type: its metainfo checks what it is given.
  const metaInfo = await tree.generateMetaInfo(
    await tree.digestOfBytes(data),
    { stream: ReadableStream.from([data]), size },
    pieceLength,
  );
  const root = await Deno.makeTempDir({ dir: scratch });
  const store = await tree.BlobStore.open({ root });
  const cpu = cpuMicros();
  const started = performance.now();
  const torrent = await tree.LeechingTorrent.open(store, metaInfo);
  const buffers = [0, 1, 2].map(() => new Uint8Array(pieceLength));
  const storing: Promise<void>[] = [];
  for (let i = 0; i < metaInfo.numPieces; i++) {
    const piece = buffers[i % buffers.length].subarray(0, metaInfo.pieceLengthAt(i));
    piece.set(data.subarray(i * pieceLength, i * pieceLength + piece.length));
    storing.push(torrent.writePiece(i, piece));
    if (storing.length === buffers.length) await storing.shift();
  }
  await Promise.all(storing);
  await torrent.commit();
  tree.wallMs.push(performance.now() - started);
  tree.cpuMicrosPerPiece.push((cpuMicros() - cpu) / metaInfo.numPieces);
  torrent.close();
  await Deno.remove(root, { recursive: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

try {
  for (const tree of trees) await round(tree); // warm-up, not counted
  for (const tree of trees) tree.cpuMicrosPerPiece.length = tree.wallMs.length = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < trees.length; k++) await round(trees[(r + k) % trees.length]);
  }
} finally {
  await Deno.remove(scratch, { recursive: true });
}
console.log(
  `${size} bytes in ${Math.ceil(size / pieceLength)} pieces of ${pieceLength} bytes, ` +
    `${rounds} rounds, medians:`,
);
for (const tree of trees) {
  console.log(
    `  ${tree.name}: ${median(tree.cpuMicrosPerPiece).toFixed(0)} µs CPU per piece, ` +
      `${median(tree.wallMs).toFixed(0)} ms wall`,
  );
}
