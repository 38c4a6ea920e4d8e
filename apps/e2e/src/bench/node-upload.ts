/**
 * @vidrtc/node upload benchmarks (issue 4), measured in one run against one `@vidrtc/server` that
 * runs alone in a child process:
 *
 * 1. **Throughput ratio.** `--mib` MiB (default 256) through `@vidrtc/node`
 *    (`InferenceClient.webrtc.stream()`, i.e. VideoFileSource -> createUploadStream -> backpressure
 *    sink -> werift) against a bare werift send loop of the same bytes to the same server: the loop
 *    does its own signalling (POST /initialise_webrtc_worker, channels `inference` then
 *    `video_upload`), reads the file in large blocks, sends one fresh `frameUploadChunk` message
 *    (8 + 49152 bytes) at a time, pauses while `bufferedAmount` is above a high-water mark and
 *    resumes on `bufferedamountlow` (50 ms poll as a safety net). Both use the same werift options
 *    (loopback ICE, optional SCTP MTU) and the same 4 MiB UDP socket buffers (`createWeriftPeer`'s
 *    default). Time of one upload: from the first message handed to the channel until the server
 *    reports `upload-complete` (stored, SHA-256 checked against the file). For the binding, the
 *    first-send time is exact: the sink's first progress report is made synchronously right after its
 *    first `send()` and carries `elapsedMs` since that send. Runs alternate (bare, vidrtc, bare,
 *    vidrtc, ...) for `--rounds`; the ratio is median(vidrtc MiB/s) / median(bare MiB/s).
 * 2. **Sender peak RSS growth** for a `--rss-mib` MiB upload (default 1024): the binding runs in its
 *    own child process (`--expose-gc`) that samples `process.memoryUsage().rss` every 50 ms. Its
 *    baseline is taken after one small warm-up session (code loaded, werift/DTLS/SCTP JIT-compiled)
 *    and a GC, as the mean RSS over one idle second; the kernel's VmHWM is reported too.
 * 3. **Setup latency**: `stream()` called -> first upload message handed to the data channel, with a
 *    small file, median of `--setup-runs` (default 10) sessions. The first progress event is not
 *    subject to the 50 ms progress throttle (the throttle starts at -infinity), so it marks the first
 *    send exactly; its `elapsedMs` (time since that send) is subtracted anyway.
 *
 * Run after building the packages, inside a network namespace (nothing may leave the machine):
 *   pnpm -r --filter "./packages/*" build
 *   bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e exec tsx src/bench/node-upload.ts \
 *     [--mib 256] [--rounds 3] [--rss-mib 1024] [--setup-runs 10] [--mtu 0] \
 *     [--sink HIGH:LOW[:POLL[:READ]],...] [--bare HIGH:LOW] [--bare-block 20] [--only throughput,rss,setup]
 * Default sizes take about 7 minutes on a 2-core machine (the 1 GiB upload is most of it).
 *
 * `--sink` lists binding settings to measure: sink marks in bytes, poll in ms, and READ = the
 * `VideoFileSource` read size in upload chunks (`default` or empty fields = library defaults). Each
 * round runs the bare loop, then the binding once per setting. The first setting is the one the
 * PASS/FAIL row uses (and the RSS and setup measurements); the others are printed as tuning rows.
 * `--bare` sets the bare loop's marks (default 1048576:262144, the sink's defaults) and
 * `--bare-block` its read size in chunks. `--mtu N` sets werift's `sctp.mtu` on the sender in both
 * runs (0 = werift's default 1191; 16000 is `loopbackPeerOptions()`'s loopback-only size).
 * Per run it also prints sender CPU (ms per MiB: the least load-sensitive measure of sender
 * overhead on a shared machine), the server's CPU share (near 100 % = receiver-bound), kernel UDP
 * drops, and for the bare loop how its pauses ended.
 * Exits 1 when a target is missed.
 *
 * What the per-run numbers showed (werift 0.25.2, 2 cores shared with other work, default MTU):
 * - The sender is CPU-bound (one core at ~100 %, the server at 70-90 %): werift's SCTP/DTLS costs
 *   ~100-130 ms of CPU per MiB, the vidrtc pipeline itself < 1 ms/MiB (src/bench/pipeline.ts).
 * - Every pause of the bare loop ended on `bufferedamountlow` (never the poll) with 0 bytes still
 *   buffered: werift lowers `bufferedAmount` only when its SCTP outbound queue is empty, so the
 *   low-water mark and the poll interval make no difference on werift.
 * - The high-water mark does: each queued message is a pending `SCTP.send()` that re-subscribes
 *   to werift's `flush` event after every transmit round, so the CPU per message grows with the
 *   queue depth: ~120 ms/MiB at 256 KiB-1 MiB, ~150 at 2 MiB, ~190 at 4 MiB.
 */
import { fork } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { loadavg, release } from "node:os";
import { dirname, join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  InferenceClient,
  loopbackIceOptions,
  setWeriftSocketBuffers,
  type UploadProgress,
  VideoFileSource,
} from "@vidrtc/node";
import {
  frameUploadChunk,
  postInitialise,
  totalChunksFor,
  UPLOAD_CHUNK_SIZE,
  UPLOAD_HEADER_SIZE,
} from "@vidrtc/protocol";
import type { SessionEvent } from "@vidrtc/server";
import { type RTCDataChannel, RTCPeerConnection, type RTCPeerConnectionConfig } from "werift";
import { type ServerChild, startServerChild, wallNow } from "../support/bench-server.js";
import { largeVideo, tinyVideo } from "../support/fixtures.js";
import { assertIsolatedNetwork } from "../support/netns.js";
import { procCpuMs, procMemory } from "../support/proc-stats.js";

const MiB = 1024 * 1024;
const TARGET_RATIO = 0.95;
const TARGET_RSS_GROWTH_MIB = 64;
const TARGET_SETUP_S = 0.5;
const RSS_SAMPLE_MS = 50;
/** `createWeriftPeer`'s default socket buffer size (`DEFAULT_SOCKET_BUFFER_BYTES` in @vidrtc/node). */
const SOCKET_BUFFER_BYTES = 4 * MiB;
/** The workflow both clients ask for: cheap on the padded MP4 (30 small frames). */
const WORKFLOW = "frame-stats";
const RSS_CLIENT_FLAG = "--as-rss-client";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmtMiB = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** Settings of one binding configuration (`undefined` fields = library default). */
interface SinkSetting {
  highWaterMark?: number;
  lowWaterMark?: number;
  pollIntervalMs?: number;
  /** `VideoFileSource` read size, in upload chunks (default: the library's, 5 chunks). */
  readChunks?: number;
}

function sinkLabel(s: SinkSetting): string {
  const kib = (n: number | undefined) => (n === undefined ? "def" : `${n / 1024}K`);
  const marks =
    s.highWaterMark === undefined && s.lowWaterMark === undefined && s.pollIntervalMs === undefined
      ? "defaults"
      : `${kib(s.highWaterMark)}/${kib(s.lowWaterMark)}, poll ${s.pollIntervalMs === undefined ? "def" : `${s.pollIntervalMs} ms`}`;
  return s.readChunks === undefined ? marks : `${marks}, reads of ${s.readChunks} chunks`;
}

/** Parses `--sink HIGH:LOW[:POLL[:READ_CHUNKS]],...` (`default` or empty fields = library default). */
function parseSinkList(raw: string): SinkSetting[] {
  return raw.split(",").map((item) => {
    const t = item.trim();
    if (t === "" || t === "default") return {};
    const [h, l, p, r] = t.split(":").map((x) => (x === undefined || x === "" ? undefined : Number(x)));
    for (const v of [h, l, p, r]) {
      if (v !== undefined && !(v >= 0))
        throw new Error(`bad --sink entry "${t}" (want HIGH:LOW[:POLL[:READ_CHUNKS]])`);
    }
    return {
      ...(h === undefined ? {} : { highWaterMark: h }),
      ...(l === undefined ? {} : { lowWaterMark: l }),
      ...(p === undefined ? {} : { pollIntervalMs: p }),
      ...(r === undefined ? {} : { readChunks: r }),
    };
  });
}

/** The `sink` option of `stream()` for a setting (absent when all are defaults). */
function sinkOption(s: SinkSetting): {
  sink?: { highWaterMark?: number; lowWaterMark?: number; pollIntervalMs?: number };
} {
  const { readChunks: _r, ...sink } = s;
  return Object.keys(sink).length > 0 ? { sink } : {};
}

/** A `VideoFileSource` for a setting. */
function sourceFor(path: string, s: SinkSetting, maxBytes?: number): VideoFileSource {
  return new VideoFileSource(path, {
    ...(maxBytes === undefined ? {} : { maxBytes }),
    ...(s.readChunks === undefined ? {} : { readSize: s.readChunks * UPLOAD_CHUNK_SIZE }),
  });
}

/** werift options of the sending side, identical for the binding and the bare loop. */
function senderOptions(mtu: number): Partial<RTCPeerConnectionConfig> {
  return mtu > 0 ? { ...loopbackIceOptions(), sctp: { mtu } } : { ...loopbackIceOptions() };
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

/** UDP receive-buffer drops so far in this network namespace (`RcvbufErrors`). */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Udp:"));
    const [names, values] = lines.map((l) => l.trim().split(/\s+/));
    const index = names?.indexOf("RcvbufErrors") ?? -1;
    return index > 0 ? Number(values?.[index]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function readSysctl(name: string): string {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim();
  } catch {
    return "?";
  }
}

/** Total time this process has spent in garbage collection (ms), from `gc` performance entries. */
let gcMs = 0;
let gcObserver: PerformanceObserver | null = null;
function gcTimeMs(): number {
  if (!gcObserver) {
    gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) gcMs += entry.duration;
    });
    gcObserver.observe({ entryTypes: ["gc"] });
  }
  return gcMs;
}

// ====================================================================== child: the server

/** Costs of an upload, counted from `startCostMeter()` to `read()`. */
interface Costs {
  cpuMs: number;
  receiverCpuMs: number;
  gcMs: number;
  drops: number;
}

interface CostMeter {
  read(): Costs;
}

/** Starts counting sender CPU, receiver (server child) CPU, GC time and UDP receive-buffer drops. */
function startCostMeter(serverPid: number): CostMeter {
  const cpuStart = process.cpuUsage();
  const gcStart = gcTimeMs();
  const receiverCpuStart = procCpuMs(serverPid);
  const dropsBefore = udpRcvbufErrors();
  return {
    read: () => {
      const cpu = process.cpuUsage(cpuStart);
      return {
        cpuMs: (cpu.user + cpu.system) / 1e3,
        receiverCpuMs: procCpuMs(serverPid) - receiverCpuStart,
        gcMs: gcTimeMs() - gcStart,
        drops: udpRcvbufErrors() - dropsBefore,
      };
    },
  };
}

/** The per-run rate fields of an upload from its costs. */
function costRates(costs: Costs, bytes: number, seconds: number) {
  const mib = bytes / MiB;
  return {
    cpu: costs.cpuMs / 1000 / seconds,
    cpuMsPerMiB: costs.cpuMs / mib,
    receiverCpu: costs.receiverCpuMs / 1000 / seconds,
    gcMsPerMiB: costs.gcMs / mib,
    drops: costs.drops,
  };
}

/**
 * Waits for the server to store the upload of the session that started at event index `since`;
 * fails at once if that session ends first (rejected upload, closed peer) or `failed` rejects.
 */
function waitStored(
  server: ServerChild,
  since: number,
  timeoutMs: number,
  failed?: Promise<unknown>,
): Promise<{ event: Extract<SessionEvent, { type: "upload-complete" }>; at: number }> {
  const ended = server.waitEvent("session-end", since, timeoutMs).then((e) => {
    throw new Error(`the server ended the session before storing the upload (${e.event.reason})`);
  });
  const never = new Promise<never>(() => {});
  const failure = failed ? failed.then(() => never) : never;
  ended.catch(() => {});
  failure.catch(() => {});
  return Promise.race([server.waitEvent("upload-complete", since, timeoutMs), ended, failure]);
}

/** Fails if the server's last upload does not match the file. */
function checkStored(
  event: Extract<SessionEvent, { type: "upload-complete" }>,
  file: { bytes: number; sha256: string },
  who: string,
): void {
  if (event.bytes !== file.bytes || event.sha256 !== file.sha256) {
    throw new Error(
      `${who}: the server stored ${event.bytes} bytes sha256=${event.sha256}, expected ${file.bytes} bytes sha256=${file.sha256}`,
    );
  }
}

// ====================================================================== the two senders

/** One measured upload. */
interface UploadRun {
  /** Wall clock of the first upload message handed to the channel. */
  firstSendAt: number;
  /** Wall clock (server child) of `upload-complete`. */
  completeAt: number;
  seconds: number;
  mibPerSecond: number;
  /** Sender CPU time over wall time (this process; 1 = one core). */
  cpu: number;
  /** Sender CPU milliseconds per MiB of file (this process). */
  cpuMsPerMiB: number;
  /** Receiver (server child) CPU time over wall time: near 1 means the receiver is the bottleneck. */
  receiverCpu: number;
  /** Sender garbage-collection time per MiB of file (ms; part of `cpuMsPerMiB`). */
  gcMsPerMiB: number;
  /** Kernel UDP receive-buffer drops during the run (whole namespace). */
  drops: number;
  /** Bare loop only: how its pauses at the high-water mark ended. */
  pauses?: {
    count: number;
    /** Resumed by `bufferedamountlow` / by the 50 ms safety-net poll. */
    byEvent: number;
    byPoll: number;
    /** Largest `bufferedAmount` seen when the loop resumed sending (werift: 0 = whole queue released at once). */
    maxBufferedAtResume: number;
    /** Time spent paused, as a share of the run. */
    pausedShare: number;
  };
}

function waitGathered(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`ICE gathering did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === "complete") {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

function waitChannelOpen(dc: RTCDataChannel, timeoutMs: number): Promise<void> {
  if (dc.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`data channel ${dc.label} did not open within ${timeoutMs} ms (${dc.readyState})`));
    }, timeoutMs);
    const sub = dc.stateChanged.subscribe((state) => {
      if (state === "open") {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      } else if (state === "closed") {
        clearTimeout(timer);
        sub.unSubscribe();
        reject(new Error(`data channel ${dc.label} closed before opening`));
      }
    });
  });
}

/**
 * The baseline: werift with no vidrtc code in the upload path. Signalling, then one loop that reads
 * the file in blocks of 20 chunks, frames each chunk into a fresh message and sends it, waiting
 * for `bufferedamountlow` while `bufferedAmount` is above `high`.
 */
async function bareUpload(
  server: ServerChild,
  file: { path: string; bytes: number; sha256: string },
  opts: { mtu: number; high: number; low: number; blockChunks: number },
): Promise<UploadRun> {
  const since = server.events.length;
  const pc = new RTCPeerConnection(senderOptions(opts.mtu));
  try {
    pc.createDataChannel("inference", { ordered: true });
    const upload = pc.createDataChannel("video_upload", { ordered: true });
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathered(pc, 5_000);
    setWeriftSocketBuffers(pc, SOCKET_BUFFER_BYTES);
    const answer = await postInitialise(
      server.url,
      { type: "offer", sdp: pc.localDescription!.sdp },
      { workflow: WORKFLOW, workspace: "local", dataOutput: ["*"], streamOutput: [], realtime: false },
      { timeoutMs: 20_000 },
    );
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await waitChannelOpen(upload, 20_000);

    upload.bufferedAmountLowThreshold = opts.low;
    let wake: (() => void) | null = null;
    const lowSub = upload.bufferedAmountLow.subscribe(() => wake?.());
    const total = totalChunksFor(file.bytes);
    const block = opts.blockChunks * UPLOAD_CHUNK_SIZE;
    const handle = await open(file.path, "r");
    const meter = startCostMeter(server.pid);
    let firstSendAt = Number.NaN;
    const pauses = { count: 0, byEvent: 0, byPoll: 0, maxBufferedAtResume: 0, pausedShare: 0 };
    let pausedMs = 0;
    try {
      let index = 0;
      for (let offset = 0; offset < file.bytes; offset += block) {
        const buffer = Buffer.allocUnsafe(Math.min(block, file.bytes - offset));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead !== buffer.length) throw new Error(`short read at ${offset}`);
        for (let at = 0; at < bytesRead; at += UPLOAD_CHUNK_SIZE) {
          while (upload.bufferedAmount > opts.high) {
            pauses.count++;
            const pausedAt = performance.now();
            let lastAmount = upload.bufferedAmount;
            let lastProgress = performance.now();
            await new Promise<void>((resolve, reject) => {
              const poll = setInterval(() => {
                const amount = upload.bufferedAmount;
                if (amount <= opts.low) {
                  pauses.byPoll++;
                  return finish();
                }
                if (amount < lastAmount) lastProgress = performance.now();
                lastAmount = amount;
                if (upload.readyState !== "open") finish(new Error(`video_upload is ${upload.readyState}`));
                else if (performance.now() - lastProgress > 30_000)
                  finish(new Error("bare upload stalled 30 s"));
              }, 50);
              const finish = (error?: Error) => {
                clearInterval(poll);
                wake = null;
                if (error) reject(error);
                else resolve();
              };
              wake = () => {
                pauses.byEvent++;
                finish();
              };
            });
            pausedMs += performance.now() - pausedAt;
            pauses.maxBufferedAtResume = Math.max(pauses.maxBufferedAtResume, upload.bufferedAmount);
          }
          const message = frameUploadChunk(index, total, buffer.subarray(at, at + UPLOAD_CHUNK_SIZE));
          if (index === 0) firstSendAt = wallNow();
          upload.send(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
          index++;
        }
      }
      if (index !== total) throw new Error(`sent ${index} chunks, expected ${total}`);
    } finally {
      await handle.close();
      lowSub.unSubscribe();
    }
    const done = await waitStored(server, since, 600_000);
    const costs = meter.read();
    checkStored(done.event, file, "bare loop");
    const seconds = (done.at - firstSendAt) / 1000;
    pauses.pausedShare = pausedMs / 1000 / seconds;
    return {
      firstSendAt,
      completeAt: done.at,
      seconds,
      mibPerSecond: file.bytes / MiB / seconds,
      ...costRates(costs, file.bytes, seconds),
      pauses,
    };
  } finally {
    await pc.close().catch(() => {});
    await server.waitEvent("session-end", since, 60_000).catch(() => {});
  }
}

/** The binding: `InferenceClient.webrtc.stream()` with a `VideoFileSource`. */
async function vidrtcUpload(
  server: ServerChild,
  file: { path: string; bytes: number; sha256: string },
  opts: { mtu: number; sink: SinkSetting; maxUploadBytes: number },
): Promise<UploadRun> {
  const since = server.events.length;
  const client = new InferenceClient({ apiUrl: server.url, werift: senderOptions(opts.mtu) });
  let firstSendAt = Number.NaN;
  let meter: CostMeter | null = null;
  const session = await client.webrtc.stream({
    source: sourceFor(file.path, opts.sink, opts.maxUploadBytes),
    workflow: WORKFLOW,
    workspace: "local",
    dataOutput: ["*"],
    maxUploadBytes: opts.maxUploadBytes,
    ...sinkOption(opts.sink),
    onUploadProgress: (p: UploadProgress) => {
      if (Number.isNaN(firstSendAt) && p.bytesUploaded > 0) {
        firstSendAt = wallNow() - p.elapsedMs;
        meter = startCostMeter(server.pid);
      }
    },
  });
  try {
    // session.uploaded rejects when the session fails (stall, closed channel): stop waiting then.
    const done = await waitStored(server, since, 600_000, session.uploaded);
    const costs = (meter as CostMeter | null)?.read();
    checkStored(done.event, file, "@vidrtc/node");
    await session.uploaded;
    if (Number.isNaN(firstSendAt) || !costs) throw new Error("no upload progress event was seen");
    const seconds = (done.at - firstSendAt) / 1000;
    return {
      firstSendAt,
      completeAt: done.at,
      seconds,
      mibPerSecond: file.bytes / MiB / seconds,
      ...costRates(costs, file.bytes, seconds),
    };
  } finally {
    session.close();
    await server.waitEvent("session-end", since, 60_000).catch(() => {});
  }
}

// ====================================================================== child: the RSS client

interface RssClientInput {
  url: string;
  path: string;
  warmPath: string;
  bytes: number;
  mtu: number;
  sink: SinkSetting;
  maxUploadBytes: number;
}

type RssClientMessage =
  | { kind: "baseline"; cold: number; warm: number; samples: number }
  | { kind: "progress"; bytesDelivered: number; total: number; rss: number; elapsedMs: number }
  | { kind: "uploaded"; durationMs: number }
  | {
      kind: "done";
      peak: number;
      peakAtMs: number;
      samples: number;
      maxGapMs: number;
      heapUsedPeak: number;
      arrayBuffersPeak: number;
      externalPeak: number;
    }
  | { kind: "error"; message: string };

async function runRssClient(input: RssClientInput): Promise<void> {
  const send = (m: RssClientMessage) => process.send?.(m);
  // The parent is gone (killed or crashed): do not keep uploading on our own.
  process.on("disconnect", () => process.exit(1));
  const gc = getGc();
  const samples: { at: number; rss: number }[] = [];
  let heapUsedPeak = 0;
  let arrayBuffersPeak = 0;
  let externalPeak = 0;
  let maxGapMs = 0;
  let last = performance.now();
  const tick = () => {
    const t = performance.now();
    maxGapMs = Math.max(maxGapMs, t - last);
    last = t;
    const m = process.memoryUsage();
    samples.push({ at: t, rss: m.rss });
    heapUsedPeak = Math.max(heapUsedPeak, m.heapUsed);
    arrayBuffersPeak = Math.max(arrayBuffersPeak, m.arrayBuffers);
    externalPeak = Math.max(externalPeak, m.external);
  };
  tick();
  const sampler = setInterval(tick, RSS_SAMPLE_MS);
  const meanSince = (from: number) => {
    const xs = samples.filter((s) => s.at >= from).map((s) => s.rss);
    return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  };
  const settle = async () => {
    gc?.();
    await sleep(300);
    gc?.();
    const from = performance.now();
    await sleep(1_000);
    return meanSince(from);
  };
  const client = new InferenceClient({ apiUrl: input.url, werift: senderOptions(input.mtu) });
  const sink = sinkOption(input.sink);
  const cold = await settle();
  // Warm-up: one whole small session, so that code loaded and compiled once is not counted.
  const warm = await client.webrtc.stream({
    source: sourceFor(input.warmPath, input.sink),
    workflow: WORKFLOW,
    workspace: "local",
    dataOutput: ["*"],
    ...sink,
  });
  await warm.run();
  warm.close();
  await sleep(500);
  const warmBaseline = await settle();
  send({ kind: "baseline", cold, warm: warmBaseline, samples: samples.length });
  heapUsedPeak = arrayBuffersPeak = externalPeak = 0;
  maxGapMs = 0;

  const startedAt = performance.now();
  let lastReport = 0;
  const session = await client.webrtc.stream({
    source: sourceFor(input.path, input.sink, input.maxUploadBytes),
    workflow: WORKFLOW,
    workspace: "local",
    dataOutput: ["*"],
    maxUploadBytes: input.maxUploadBytes,
    timeouts: { uploadStall: 60_000 },
    ...sink,
    onUploadProgress: (p) => {
      const t = performance.now();
      if (t - lastReport < 10_000) return;
      lastReport = t;
      send({
        kind: "progress",
        bytesDelivered: p.bytesDelivered,
        total: p.totalBytes,
        rss: samples.at(-1)?.rss ?? 0,
        elapsedMs: p.elapsedMs,
      });
    },
  });
  const summary = await session.uploaded;
  send({ kind: "uploaded", durationMs: summary.durationMs });
  // Keep sampling until the parent has seen the server store the file.
  await new Promise<void>((resolve) => {
    process.on("message", (m: unknown) => {
      if ((m as { kind?: string }).kind === "stop") resolve();
    });
  });
  clearInterval(sampler);
  session.close();
  const during = samples.filter((s) => s.at >= startedAt);
  const peakSample = during.reduce((a, b) => (b.rss > a.rss ? b : a), during[0] ?? { at: startedAt, rss: 0 });
  send({
    kind: "done",
    peak: peakSample.rss,
    peakAtMs: peakSample.at - startedAt,
    samples: during.length,
    maxGapMs,
    heapUsedPeak,
    arrayBuffersPeak,
    externalPeak,
  });
}

interface RssResult {
  cold: number;
  warm: number;
  peak: number;
  growth: number;
  /** VmHWM at the end minus the warm baseline: an upper bound of the growth (no sampling gaps). */
  hwmGrowth: number;
  /** VmHWM when the baseline was taken (start-up and warm-up peaks). */
  hwmBeforeUpload: number;
  seconds: number;
  mibPerSecond: number;
  samples: number;
  maxGapMs: number;
  heapUsedPeak: number;
  arrayBuffersPeak: number;
  externalPeak: number;
}

async function measureRss(
  server: ServerChild,
  file: { path: string; bytes: number; sha256: string },
  warmPath: string,
  opts: { mtu: number; sink: SinkSetting; maxUploadBytes: number },
): Promise<RssResult> {
  const child = fork(fileURLToPath(import.meta.url), [RSS_CLIENT_FLAG], {
    execArgv: [...process.execArgv, "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: RssClientMessage[] = [];
  const waiters = new Set<() => void>();
  let exitCode: number | null = null;
  child.on("message", (m) => {
    const msg = m as RssClientMessage;
    if (msg.kind === "progress") {
      console.log(
        `    rss run: ${((msg.bytesDelivered / msg.total) * 100).toFixed(0).padStart(3)}% ` +
          `${fmtMiB(msg.bytesDelivered).padStart(11)} in ${(msg.elapsedMs / 1000).toFixed(0)} s, sender RSS ${fmtMiB(msg.rss)}`,
      );
    }
    messages.push(msg);
    for (const w of [...waiters]) w();
  });
  child.on("exit", (code) => {
    exitCode = code ?? -1;
    for (const w of [...waiters]) w();
  });
  const next = <K extends RssClientMessage["kind"]>(kind: K, timeoutMs: number) =>
    new Promise<Extract<RssClientMessage, { kind: K }>>((resolve, reject) => {
      const check = () => {
        const error = messages.find((m) => m.kind === "error");
        const hit = messages.find((m) => m.kind === kind);
        if (error) finish(new Error(`rss client: ${(error as { message: string }).message}`));
        else if (hit) finish(undefined, hit as Extract<RssClientMessage, { kind: K }>);
        else if (exitCode !== null) finish(new Error(`the rss client exited (${exitCode}) before "${kind}"`));
      };
      const finish = (error?: Error, value?: Extract<RssClientMessage, { kind: K }>) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(value!);
      };
      const timer = setTimeout(
        () => finish(new Error(`rss client: no "${kind}" within ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });
  try {
    const input: RssClientInput = {
      url: server.url,
      path: file.path,
      warmPath,
      bytes: file.bytes,
      mtu: opts.mtu,
      sink: opts.sink,
      maxUploadBytes: opts.maxUploadBytes,
    };
    child.send(input);
    const baseline = await next("baseline", 120_000);
    const hwmAtBaseline = procMemory(child.pid!)?.hwm ?? Number.NaN;
    const since = server.events.length;
    // At least 0.5 MiB/s, whatever the size.
    const budget = 120_000 + (file.bytes / MiB) * 2_000;
    const stored = await Promise.race([
      waitStored(server, since, budget),
      next("error", budget + 5_000).then(() => {
        throw new Error("unreachable: next() rejects on an error message");
      }),
    ]);
    checkStored(stored.event, file, "@vidrtc/node (rss run)");
    await next("uploaded", 60_000);
    const hwmEnd = procMemory(child.pid!)?.hwm ?? Number.NaN;
    child.send({ kind: "stop" });
    const done = await next("done", 30_000);
    const seconds = stored.event.durationMs / 1000;
    await server.waitEvent("session-end", since, 60_000).catch(() => {});
    return {
      cold: baseline.cold,
      warm: baseline.warm,
      peak: done.peak,
      growth: done.peak - baseline.warm,
      hwmGrowth: hwmEnd - baseline.warm,
      hwmBeforeUpload: hwmAtBaseline,
      seconds,
      mibPerSecond: file.bytes / MiB / seconds,
      samples: done.samples,
      maxGapMs: done.maxGapMs,
      heapUsedPeak: done.heapUsedPeak,
      arrayBuffersPeak: done.arrayBuffersPeak,
      externalPeak: done.externalPeak,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill();
      await gone;
    }
  }
}

// ====================================================================== setup latency

interface SetupRun {
  /** `stream()` called -> first message handed to the channel (ms). */
  firstChunkMs: number;
  /** `stream()` called -> `stream()` resolved (ms). */
  streamResolvedMs: number;
  /** `stream()` called -> `uploaded` (ms). */
  uploadedMs: number;
}

async function measureSetup(
  server: ServerChild,
  path: string,
  runs: number,
  opts: { mtu: number; sink: SinkSetting },
): Promise<SetupRun[]> {
  const out: SetupRun[] = [];
  for (let i = 0; i < runs; i++) {
    const since = server.events.length;
    const client = new InferenceClient({ apiUrl: server.url, werift: senderOptions(opts.mtu) });
    let firstAt = Number.NaN;
    const t0 = performance.now();
    const session = await client.webrtc.stream({
      source: sourceFor(path, opts.sink),
      workflow: WORKFLOW,
      workspace: "local",
      dataOutput: ["*"],
      ...sinkOption(opts.sink),
      onUploadProgress: (p) => {
        if (Number.isNaN(firstAt) && p.bytesUploaded > 0) firstAt = performance.now() - p.elapsedMs;
      },
    });
    const resolvedAt = performance.now();
    try {
      await session.uploaded;
      const uploadedAt = performance.now();
      await session.run();
      if (Number.isNaN(firstAt)) throw new Error("no upload progress event was seen");
      out.push({
        firstChunkMs: firstAt - t0,
        streamResolvedMs: resolvedAt - t0,
        uploadedMs: uploadedAt - t0,
      });
    } finally {
      session.close();
      await server.waitEvent("session-end", since, 30_000).catch(() => {});
    }
  }
  return out;
}

// ====================================================================== main

async function preRead(path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on("data", () => {})
      .on("end", resolve)
      .on("error", reject);
  });
}

interface Row {
  metric: string;
  value: string;
  target: string;
  verdict: "PASS" | "FAIL" | "info";
}

function printTable(title: string, rows: Row[]): void {
  const head: Row = { metric: "metric", value: "value", target: "target", verdict: "info" };
  const w = {
    metric: Math.max(...[head, ...rows].map((r) => r.metric.length)),
    value: Math.max(...[head, ...rows].map((r) => r.value.length)),
    target: Math.max(...[head, ...rows].map((r) => r.target.length)),
  };
  const line = (r: Row, verdict: string) =>
    `| ${r.metric.padEnd(w.metric)} | ${r.value.padEnd(w.value)} | ${r.target.padEnd(w.target)} | ${verdict.padEnd(7)} |`;
  console.log("");
  console.log(title);
  console.log(line(head, "result"));
  console.log(
    `|${"-".repeat(w.metric + 2)}|${"-".repeat(w.value + 2)}|${"-".repeat(w.target + 2)}|---------|`,
  );
  for (const r of rows) console.log(line(r, r.verdict === "info" ? "" : r.verdict));
}

function environment(): string[] {
  let weriftVersion = "?";
  try {
    // werift's exports map hides package.json: walk up from its entry point instead.
    let dir = dirname(fileURLToPath(import.meta.resolve("werift")));
    for (let i = 0; i < 6 && weriftVersion === "?"; i++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
          name?: string;
          version?: string;
        };
        if (pkg.name === "werift" && pkg.version) weriftVersion = pkg.version;
      } catch {
        // no package.json at this level
      }
    }
  } catch {
    // not resolvable from here: leave "?"
  }
  const [l1, l5, l15] = loadavg().map((x) => x.toFixed(2));
  return [
    `node ${process.version}, werift ${weriftVersion}, linux ${release()}`,
    `load average ${l1} ${l5} ${l15} (1/5/15 min)`,
    `net.core.rmem_max ${readSysctl("net.core.rmem_max")}, wmem_max ${readSysctl("net.core.wmem_max")}, ` +
      `rmem_default ${readSysctl("net.core.rmem_default")}`,
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: "string", default: "256" },
      rounds: { type: "string", default: "3" },
      "rss-mib": { type: "string", default: "1024" },
      "setup-runs": { type: "string", default: "10" },
      mtu: { type: "string", default: "0" },
      sink: { type: "string", default: "default" },
      bare: { type: "string", default: `${1024 * 1024}:${256 * 1024}` },
      "bare-block": { type: "string", default: "20" },
      only: { type: "string", default: "throughput,rss,setup" },
      senders: { type: "string", default: "bare,vidrtc" },
    },
    strict: true,
  });
  const sizeMiB = Number(values.mib);
  const rounds = Number(values.rounds);
  const rssMiB = Number(values["rss-mib"]);
  const setupRuns = Number(values["setup-runs"]);
  const mtu = Number(values.mtu);
  const sinks = parseSinkList(values.sink);
  const [bareHigh, bareLow] = values.bare.split(":").map(Number) as [number, number];
  const bareBlock = Number(values["bare-block"]);
  if (!(bareBlock >= 1) || !Number.isInteger(bareBlock))
    throw new Error(`bad --bare-block ${values["bare-block"]}`);
  const only = new Set(values.only.split(",").map((s) => s.trim()));
  // `--senders vidrtc` (or `bare`) runs the throughput part with one sender only, e.g. to profile it.
  const senders = new Set(values.senders.split(",").map((s) => s.trim()));
  const withBare = senders.has("bare");
  const withVidrtc = senders.has("vidrtc");
  const bareOpts = { mtu, high: bareHigh, low: bareLow, blockChunks: bareBlock };
  for (const [name, v] of [
    ["--mib", sizeMiB],
    ["--rounds", rounds],
    ["--rss-mib", rssMiB],
    ["--setup-runs", setupRuns],
  ] as const) {
    if (!(v > 0) || !Number.isInteger(v))
      throw new Error(`${name} must be a positive whole number, got ${v}`);
  }
  if (!(mtu >= 0)) throw new Error(`--mtu must be >= 0, got ${values.mtu}`);
  if (!(bareHigh >= 0 && bareLow >= 0 && bareLow <= bareHigh)) throw new Error(`bad --bare ${values.bare}`);
  assertIsolatedNetwork();

  const env = environment();
  console.log(
    "@vidrtc/node upload benchmarks (client in this process or a child; server in a child process)",
  );
  for (const line of env) console.log(`  ${line}`);
  console.log(
    `  sender werift options: loopbackIceOptions()${mtu > 0 ? ` + sctp.mtu ${mtu}` : " (SCTP MTU werift default 1191)"}, ` +
      `${SOCKET_BUFFER_BYTES / MiB} MiB socket buffers; receiver: @vidrtc/server (its own werift settings)`,
  );

  const wantThroughput = only.has("throughput");
  const wantRss = only.has("rss");
  const wantSetup = only.has("setup");
  const tiny = await tinyVideo();
  process.stdout.write("  preparing fixtures (padded MP4s, cached in apps/e2e/.fixtures/)... ");
  const big = wantThroughput ? await largeVideo(sizeMiB, { kind: "padded" }) : null;
  const huge = wantRss ? await largeVideo(rssMiB, { kind: "padded" }) : null;
  console.log("done");
  const maxUploadBytes = Math.max(big?.bytes ?? 0, huge?.bytes ?? 0, 512 * MiB) + 64 * MiB;

  const server = await startServerChild({ maxUploadBytes });
  const rows: Row[] = [];
  let failed = false;
  try {
    // Warm the server (and this process) once with each sender, so that round 1 is not a cold start.
    await bareUpload(server, tiny, { mtu, high: bareHigh, low: bareLow, blockChunks: bareBlock });
    await vidrtcUpload(server, tiny, { mtu, sink: sinks[0]!, maxUploadBytes });

    if (big) {
      await preRead(big.path);
      console.log(
        `\n  throughput: ${sizeMiB} MiB, ${rounds} round(s) of bare loop (marks ${bareHigh / 1024}/${bareLow / 1024} KiB, reads of ${bareBlock} chunks) ` +
          `then @vidrtc/node (sink ${sinks.map(sinkLabel).join(", ")})`,
      );
      const bare: UploadRun[] = [];
      const node: UploadRun[][] = sinks.map(() => []);
      for (let round = 1; round <= rounds; round++) {
        for (const b of withBare ? [await bareUpload(server, big, bareOpts)] : []) {
          bare.push(b);
          console.log(
            `    round ${round} bare    : ${b.mibPerSecond.toFixed(2).padStart(6)} MiB/s  ${b.seconds.toFixed(1)} s, ` +
              `CPU sender ${(b.cpu * 100).toFixed(0)}% (${b.cpuMsPerMiB.toFixed(0)} ms/MiB, GC ${b.gcMsPerMiB.toFixed(1)}) receiver ${(b.receiverCpu * 100).toFixed(0)}%, ` +
              `${b.pauses?.count} pauses ` +
              `(${b.pauses?.byEvent} ended by bufferedamountlow, ${b.pauses?.byPoll} by the poll, ` +
              `max ${b.pauses?.maxBufferedAtResume} B buffered at resume, ${((b.pauses?.pausedShare ?? 0) * 100).toFixed(0)}% of the time), ` +
              `${b.drops} UDP drops`,
          );
        }
        for (const [i, sink] of withVidrtc ? sinks.entries() : []) {
          const v = await vidrtcUpload(server, big, { mtu, sink, maxUploadBytes });
          node[i]!.push(v);
          console.log(
            `    round ${round} vidrtc  : ${v.mibPerSecond.toFixed(2).padStart(6)} MiB/s  ${v.seconds.toFixed(1)} s, ` +
              `CPU sender ${(v.cpu * 100).toFixed(0)}% (${v.cpuMsPerMiB.toFixed(0)} ms/MiB, GC ${v.gcMsPerMiB.toFixed(1)}) receiver ${(v.receiverCpu * 100).toFixed(0)}%, ${v.drops} UDP drops  (sink ${sinkLabel(sink)})`,
          );
        }
      }
      const bareMedian = withBare ? median(bare.map((r) => r.mibPerSecond)) : Number.NaN;
      const cpuLabel = (runs: UploadRun[]) =>
        `sender CPU ${median(runs.map((r) => r.cpuMsPerMiB)).toFixed(0)} ms/MiB`;
      if (withBare)
        rows.push({
          metric: `bare werift loop, ${sizeMiB} MiB, median of ${rounds}`,
          value: `${bareMedian.toFixed(2)} MiB/s, ${cpuLabel(bare)}`,
          target: "",
          verdict: "info",
        });
      for (const [i, sink] of withVidrtc ? sinks.entries() : []) {
        const m = median(node[i]!.map((r) => r.mibPerSecond));
        const ratio = m / bareMedian;
        rows.push({
          metric: `@vidrtc/node, sink ${sinkLabel(sink)}, median of ${rounds}`,
          value: `${m.toFixed(2)} MiB/s, ${cpuLabel(node[i]!)}`,
          target: "",
          verdict: "info",
        });
        if (!withBare) continue;
        const pass = ratio >= TARGET_RATIO;
        if (i === 0 && !pass) failed = true;
        rows.push({
          metric: `upload throughput ratio vidrtc/bare${i === 0 ? "" : ` (tuning: ${sinkLabel(sink)})`}`,
          // Per-round ratios (each binding run against the bare run just before it) are less
          // sensitive to slow drifts of the machine's load; shown next to the ratio of medians.
          value: `${ratio.toFixed(3)} (per-round ratios: ${node[i]!.map((r, k) => (r.mibPerSecond / bare[k]!.mibPerSecond).toFixed(2)).join(", ")})`,
          target: `>= ${TARGET_RATIO}`,
          verdict: i === 0 ? (pass ? "PASS" : "FAIL") : "info",
        });
      }
    }

    if (huge) {
      console.log(`\n  sender RSS: ${rssMiB} MiB upload from a child process (progress every 10 s)`);
      const r = await measureRss(server, huge, tiny.path, { mtu, sink: sinks[0]!, maxUploadBytes });
      rows.push({
        metric: `sender RSS baseline (warm, after GC) -> peak, ${rssMiB} MiB`,
        value: `${fmtMiB(r.warm)} -> ${fmtMiB(r.peak)}`,
        target: "",
        verdict: "info",
      });
      const pass = r.growth <= TARGET_RSS_GROWTH_MIB * MiB;
      if (!pass) failed = true;
      rows.push({
        metric: `sender peak RSS growth, ${rssMiB} MiB upload (${RSS_SAMPLE_MS} ms samples)`,
        value: fmtMiB(r.growth),
        target: `<= ${TARGET_RSS_GROWTH_MIB} MiB`,
        verdict: pass ? "PASS" : "FAIL",
      });
      rows.push({
        metric: "  kernel VmHWM at the end - warm baseline (upper bound)",
        value: `${fmtMiB(r.hwmGrowth)} (VmHWM before the upload ${fmtMiB(r.hwmBeforeUpload)})`,
        target: "",
        verdict: "info",
      });
      rows.push({
        metric: "  sender heap used / array buffers (peak)",
        value: `${fmtMiB(r.heapUsedPeak)} / ${fmtMiB(r.arrayBuffersPeak)}`,
        target: "",
        verdict: "info",
      });
      rows.push({
        metric: "  rss run upload rate (server: channel open -> stored)",
        value: `${r.mibPerSecond.toFixed(2)} MiB/s, ${r.seconds.toFixed(0)} s`,
        target: "",
        verdict: "info",
      });
    }

    if (wantSetup) {
      console.log(`\n  setup latency: ${setupRuns} sessions with the ${tiny.bytes}-byte video`);
      const runs = await measureSetup(server, tiny.path, setupRuns, { mtu, sink: sinks[0]! });
      const first = runs.map((r) => r.firstChunkMs);
      const m = median(first);
      const pass = m <= TARGET_SETUP_S * 1000;
      if (!pass) failed = true;
      rows.push({
        metric: `setup latency stream() -> first chunk sent, median of ${setupRuns}`,
        value: `${(m / 1000).toFixed(3)} s (min ${(Math.min(...first) / 1000).toFixed(3)}, max ${(Math.max(...first) / 1000).toFixed(3)})`,
        target: `<= ${TARGET_SETUP_S} s`,
        verdict: pass ? "PASS" : "FAIL",
      });
      rows.push({
        metric: "  stream() resolved / uploaded (median)",
        value: `${(median(runs.map((r) => r.streamResolvedMs)) / 1000).toFixed(3)} s / ${(median(runs.map((r) => r.uploadedMs)) / 1000).toFixed(3)} s`,
        target: "",
        verdict: "info",
      });
    }
  } finally {
    await server.stop();
  }
  printTable(`@vidrtc/node benchmarks (${env[1]})`, rows);
  const header = UPLOAD_HEADER_SIZE + UPLOAD_CHUNK_SIZE;
  console.log(
    `  MiB/s are file bytes per second; messages are ${header} bytes; time = first message handed to the ` +
      "channel -> server stored the file (SHA-256 checked).",
  );
  if (failed) process.exitCode = 1;
}

if (process.argv.includes(RSS_CLIENT_FLAG)) {
  process.once("message", (input) => {
    runRssClient(input as RssClientInput).catch((error: unknown) => {
      process.send?.({
        kind: "error",
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      } satisfies RssClientMessage);
      setTimeout(() => process.exit(1), 100);
    });
  });
} else {
  main().then(
    () => process.exit(),
    (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exit(1);
    },
  );
}
