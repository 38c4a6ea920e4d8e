/**
 * Upload pipeline benchmark: source -> chunker -> framer -> backpressure sink over an instantly
 * draining in-memory channel. Measures throughput (MiB/s of file bytes) and peak RSS growth.
 *
 *   pnpm --filter @vidrtc/protocol build
 *   pnpm --filter @vidrtc/e2e exec tsx src/bench/pipeline.ts [--mib N]
 *
 * Size: `--mib N` or env `VIDRTC_BENCH_MIB` (default 1024). Exits 1 when a target is missed.
 * The source emits file-like reads (mostly 64 KiB, with odd sizes mixed in) from a pre-filled pool;
 * `--fresh` allocates and fills a new buffer for every read instead, as a file reader does (this doubles
 * the garbage per byte, so its RSS peak depends more on GC timing; the targets are set for the pool).
 */

import { availableParallelism, loadavg } from "node:os";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type ChannelEventMap,
  createChannelSink,
  createUploadStream,
  type DataChannelLike,
  type SinkProgress,
  type Unsubscribe,
  UPLOAD_CHUNK_SIZE,
  UPLOAD_HEADER_SIZE,
} from "@vidrtc/protocol";

const TARGET_MIB_PER_S = 800;
const TARGET_RSS_GROWTH_MIB = 32;
const MiB = 1024 * 1024;

function parseMib(): number {
  const i = process.argv.indexOf("--mib");
  const raw = i >= 0 ? process.argv[i + 1] : process.env.VIDRTC_BENCH_MIB;
  const mib = raw === undefined ? 1024 : Number(raw);
  if (!(mib > 0)) throw new Error(`invalid size: ${raw}`);
  return mib;
}

/** A global `gc()`: from --expose-gc, or enabled at run time. */
function getGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === "function") return existing;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

/** File-like read sizes: mostly 64 KiB, with the odd sizes real readers produce. */
const PIECE_SIZES = [
  65_536, 65_536, 65_536, 65_536, 131_072, 65_536, 12_345, 65_536, 4_096, 100_000, 65_536, 1,
];

const FRESH = process.argv.includes("--fresh");

function createSource(totalBytes: number): ReadableStream<Uint8Array> {
  const pool = new Map<number, Uint8Array>();
  for (const size of PIECE_SIZES) {
    const buf = new Uint8Array(size);
    for (let i = 0; i < size; i++) buf[i] = (i * 31 + size) & 0xff;
    pool.set(size, buf);
  }
  let offset = 0;
  let k = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const remaining = totalBytes - offset;
        if (remaining <= 0) {
          controller.close();
          return;
        }
        const size = PIECE_SIZES[k++ % PIECE_SIZES.length]!;
        const piece = pool.get(size)!;
        const take = Math.min(size, remaining);
        if (FRESH) {
          const fresh = new Uint8Array(take);
          fresh.set(take === size ? piece : piece.subarray(0, take));
          controller.enqueue(fresh);
        } else {
          controller.enqueue(take === size ? piece : piece.subarray(0, take));
        }
        offset += take;
      },
    },
    { highWaterMark: 1 },
  );
}

/** Instantly draining channel that checks every header and counts payload bytes. */
class InstantChannel implements DataChannelLike {
  readonly label = "video_upload";
  readonly readyState = "open" as const;
  readonly bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  readonly maxMessageSize = 65_536;
  messages = 0;
  payloadBytes = 0;
  constructor(
    private readonly total: number,
    private readonly onEvery64: () => void,
  ) {}
  send(data: Uint8Array | string): void {
    if (typeof data === "string") throw new Error("unexpected text message");
    const index = data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24);
    const total = (data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! << 24)) >>> 0;
    if (index !== this.messages || total !== this.total) {
      throw new Error(
        `bad header: index ${index} (want ${this.messages}), total ${total} (want ${this.total})`,
      );
    }
    this.messages++;
    this.payloadBytes += data.byteLength - UPLOAD_HEADER_SIZE;
    if ((this.messages & 63) === 0) this.onEvery64();
  }
  close(): void {}
  on<K extends keyof ChannelEventMap>(_type: K, _listener: (event: ChannelEventMap[K]) => void): Unsubscribe {
    return () => {};
  }
}

async function run(
  totalBytes: number,
  sampleRss: () => void,
): Promise<{ seconds: number; last?: SinkProgress }> {
  const total = Math.ceil(totalBytes / UPLOAD_CHUNK_SIZE);
  const channel = new InstantChannel(total, sampleRss);
  let last: SinkProgress | undefined;
  const t0 = performance.now();
  await createUploadStream(createSource(totalBytes), totalBytes, { maxBytes: totalBytes }).pipeTo(
    createChannelSink(channel, { onProgress: (p) => (last = p) }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (channel.messages !== total || channel.payloadBytes !== totalBytes) {
    throw new Error(
      `delivered ${channel.messages} messages / ${channel.payloadBytes} bytes, want ${total} / ${totalBytes}`,
    );
  }
  return { seconds, last };
}

async function main(): Promise<void> {
  const mib = parseMib();
  const totalBytes = Math.round(mib * MiB);
  const gc = getGc();

  // Warm-up: JIT the hot paths, then settle the heap before taking the baseline.
  await run(Math.min(64 * MiB, totalBytes), () => {});
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const sampleRss = (): void => {
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  };
  const sampler = setInterval(sampleRss, 5);
  const cpu0 = process.cpuUsage();
  const { seconds, last } = await run(totalBytes, sampleRss);
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  sampleRss();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;

  const mibPerS = totalBytes / MiB / seconds;
  const growthMib = (peak - baseline) / MiB;
  const rows: Array<[string, string, string, boolean]> = [
    [
      "throughput",
      `${mibPerS.toFixed(1)} MiB/s`,
      `>= ${TARGET_MIB_PER_S} MiB/s`,
      mibPerS >= TARGET_MIB_PER_S,
    ],
    [
      "peak RSS growth",
      `${growthMib.toFixed(1)} MiB`,
      `<= ${TARGET_RSS_GROWTH_MIB} MiB`,
      growthMib <= TARGET_RSS_GROWTH_MIB,
    ],
  ];
  console.log(
    `upload pipeline (${FRESH ? "fresh source buffers" : "pooled source buffers"}): ${mib} MiB, ${Math.ceil(totalBytes / UPLOAD_CHUNK_SIZE)} messages in ${seconds.toFixed(2)} s ` +
      `(node ${process.version}, gc ${gc ? "available" : "unavailable"}, baseline RSS ${(baseline / MiB).toFixed(1)} MiB, ` +
      `sink saw ${last?.messagesSent ?? 0} messages)`,
  );
  // Wall-clock throughput is what the target checks; CPU time shows whether a miss is load from elsewhere.
  console.log(
    `cpu: ${cpuSeconds.toFixed(2)} s (${(totalBytes / MiB / cpuSeconds).toFixed(1)} MiB per CPU-second), ` +
      `load average ${loadavg()[0]?.toFixed(2)} on ${availableParallelism()} cores`,
  );
  const widths = [16, 14, 16];
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 6)).join("  ");
  console.log(line(["metric", "value", "target", "result"]));
  for (const [name, value, target, ok] of rows)
    console.log(line([name, value, target, ok ? "PASS" : "FAIL"]));
  if (rows.some((r) => !r[3])) process.exitCode = 1;
}

await main();
