/**
 * Server memory benchmark: uploads a 1 GiB video to `@vidrtc/server` over real werift WebRTC on
 * 127.0.0.1 and prints the server's peak RSS growth (target <= 64 MiB: uploads are streamed to a
 * temp file, never held in RAM as Roboflow's server does) and the upload MiB/s.
 *
 * The server runs alone in a child process, so its RSS is measured without the client's: this
 * process samples the child's `/proc/<pid>/status` VmRSS every 50 ms. The client is the raw test
 * client (support/raw-client.ts) in this process. The upload is a padded MP4 (a 2 s 320x240
 * H.264 video followed by one ISO-BMFF `free` box up to the size), so it decodes to 30 frames
 * and processing is cheap; the stored file's SHA-256 must equal the source's.
 *
 * Growth is measured over a warm baseline: the idle server after one small session, so that
 * one-time costs (code loaded and compiled on first use) are not counted as upload memory; growth
 * over the cold start-up baseline is printed too.
 *
 * Run inside a network namespace (nothing may leave the machine), after building the packages:
 *   pnpm -r --filter "./packages/*" build
 *   bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e exec tsx src/bench/server-memory.ts [--mib N]
 * Size: `--mib N` or env `VIDRTC_BENCH_MIB` (default 1024). Exits 1 when a target is missed.
 * `--server-node-flags="<flags>"` adds node/V8 flags to the server process (for experiments such as
 * `--max-semi-space-size=2`; the default run uses none, as `vidrtc-server` does).
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createServer, type SessionEvent } from "@vidrtc/server";
import { largeVideo, tinyVideo } from "../support/fixtures.js";
import { assertIsolatedNetwork } from "../support/netns.js";
import { RawClient } from "../support/raw-client.js";

const MiB = 1024 * 1024;
const TARGET_GROWTH_MIB = 64;
const SAMPLE_MS = 50;
/** argv flag that makes this script the server (in the child process). */
const SERVER_FLAG = "--as-server";

type ChildMessage =
  | { kind: "ready"; url: string; pid: number }
  | { kind: "event"; event: SessionEvent }
  | { kind: "closed" }
  | { kind: "memory"; usage: NodeJS.MemoryUsage }
  | { kind: "error"; message: string };

// ------------------------------------------------------------------ child: the server

async function runServer(maxUploadBytes: number): Promise<void> {
  const send = (m: ChildMessage) => process.send?.(m);
  const tempDir = await mkdtemp(join(tmpdir(), "vidrtc-bench-server-"));
  const server = createServer({
    host: "127.0.0.1",
    port: 0,
    tempDir,
    maxUploadBytes,
    maxSessions: 1,
    idleTimeoutMs: 60_000,
    logger: { info() {}, error: (line: string) => console.error(`[server] ${line}`), debug() {} },
    onSessionEvent: (event) => send({ kind: "event", event }),
  });
  const { url } = await server.listen();
  process.on("message", (m: unknown) => {
    if ((m as { kind?: string }).kind !== "stop") return;
    void (async () => {
      await server.close();
      await rm(tempDir, { recursive: true, force: true });
      send({ kind: "closed" });
      process.disconnect?.();
    })();
  });
  process.on("disconnect", () => {
    void server.close().finally(() => process.exit(0));
  });
  // Where the memory is (V8 heap vs. buffers), reported alongside the external RSS samples.
  setInterval(() => send({ kind: "memory", usage: process.memoryUsage() }), 250).unref();
  send({ kind: "ready", url, pid: process.pid });
}

// ------------------------------------------------------------------ parent: client and sampler

/** VmRSS and VmHWM of a process, in bytes (null once it has exited). */
function readRss(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rss: kib("VmRSS") * 1024, hwm: kib("VmHWM") * 1024 };
  } catch {
    return null;
  }
}

class Sampler {
  samples: { at: number; rss: number }[] = [];
  hwm = 0;
  #timer: NodeJS.Timeout | null = null;
  constructor(readonly pid: number) {}
  start(): void {
    const tick = () => {
      const r = readRss(this.pid);
      if (r) {
        this.samples.push({ at: performance.now(), rss: r.rss });
        this.hwm = r.hwm;
      }
    };
    tick();
    this.#timer = setInterval(tick, SAMPLE_MS);
  }
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
  peakSince(at: number): number {
    return Math.max(0, ...this.samples.filter((s) => s.at >= at).map((s) => s.rss));
  }
  meanBetween(from: number, to: number): number {
    const xs = this.samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.rss);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
  }
}

function startServerChild(
  maxUploadBytes: number,
  nodeFlags: string[],
): {
  child: ChildProcess;
  ready: Promise<{ url: string; pid: number }>;
  events: SessionEvent[];
  /** `process.memoryUsage()` of the server, every 250 ms. */
  memory: { at: number; usage: NodeJS.MemoryUsage }[];
  /** First event of `type` at or after `events[since]`. */
  waitEvent: <T extends SessionEvent["type"]>(
    type: T,
    since: number,
    timeoutMs: number,
  ) => Promise<Extract<SessionEvent, { type: T }>>;
} {
  const child = fork(fileURLToPath(import.meta.url), [SERVER_FLAG, String(maxUploadBytes)], {
    execArgv: [...process.execArgv, ...nodeFlags],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const events: SessionEvent[] = [];
  const memory: { at: number; usage: NodeJS.MemoryUsage }[] = [];
  const listeners = new Set<() => void>();
  let fail: ((e: Error) => void) | null = null;
  const ready = new Promise<{ url: string; pid: number }>((resolve, reject) => {
    fail = reject;
    const timer = setTimeout(() => reject(new Error("the server child did not start within 30 s")), 30_000);
    child.on("message", (raw) => {
      const m = raw as ChildMessage;
      if (m.kind === "ready") {
        clearTimeout(timer);
        resolve({ url: m.url, pid: m.pid });
      } else if (m.kind === "memory") {
        memory.push({ at: performance.now(), usage: m.usage });
      } else if (m.kind === "event") {
        events.push(m.event);
        for (const l of [...listeners]) l();
      } else if (m.kind === "error") reject(new Error(m.message));
    });
  });
  child.on("exit", (code) => fail?.(new Error(`the server child exited (${code})`)));
  const waitEvent = <T extends SessionEvent["type"]>(type: T, since: number, timeoutMs: number) =>
    new Promise<Extract<SessionEvent, { type: T }>>((resolve, reject) => {
      const find = () =>
        events.slice(since).find((e) => e.type === type) as Extract<SessionEvent, { type: T }> | undefined;
      const check = () => {
        const hit = find();
        if (!hit) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(
          new Error(`no ${type} event within ${timeoutMs} ms (saw ${events.map((e) => e.type).join(", ")})`),
        );
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return { child, ready, events, memory, waitEvent };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.send({ kind: "stop" });
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { mib: { type: "string" }, "server-node-flags": { type: "string" } },
    allowPositionals: false,
    strict: true,
  });
  const nodeFlags = (values["server-node-flags"] ?? "").split(/\s+/).filter((f) => f !== "");
  const sizeMiB = Number(values.mib ?? process.env.VIDRTC_BENCH_MIB ?? 1024);
  if (!(sizeMiB > 0) || !Number.isInteger(sizeMiB))
    throw new Error(`--mib must be a whole number, got ${values.mib}`);
  assertIsolatedNetwork();

  process.stdout.write(`preparing a ${sizeMiB} MiB padded MP4 (cached in apps/e2e/.fixtures/)... `);
  const file = await largeVideo(sizeMiB, { kind: "padded" });
  console.log("done");

  const maxUploadBytes = Math.max(file.bytes + 64 * MiB, 1536 * MiB);
  const server = startServerChild(maxUploadBytes, nodeFlags);
  let client: RawClient | null = null;
  const sampler = { current: null as Sampler | null };
  try {
    const { url, pid } = await server.ready;
    const sampler0 = new Sampler(pid);
    sampler.current = sampler0;
    sampler0.start();
    const settle = async () => {
      await new Promise((r) => setTimeout(r, 1_500));
      return sampler0.meanBetween(performance.now() - 1_000, performance.now());
    };
    // Cold baseline: the idle, listening server after start-up.
    const coldBaseline = await settle();
    const hwmAtBaseline = sampler0.hwm;
    // Warm-up: one small session loads (and JIT-compiles) the code every session runs: werift's
    // DTLS/SCTP, the upload path, ffprobe/ffmpeg handling, the workflow worker. What remains after
    // it is the steady state of a running server; growth over it is what the upload itself costs.
    const warm = await tinyVideo();
    let since = server.events.length;
    client = await RawClient.connect({ url, request: { workflow: "frame-stats", dataOutput: ["*"] } });
    await client.uploadFile(warm.path);
    await client.waitComplete(60_000);
    await client.close();
    client = null;
    await server.waitEvent("session-end", since, 30_000);
    const warmBaseline = await settle();

    since = server.events.length;
    const sessionStart = performance.now();
    client = await RawClient.connect({ url, request: { workflow: "frame-stats", dataOutput: ["*"] } });
    let lastPrint = 0;
    const report = await client.uploadFile(file.path, {
      stallTimeoutMs: 60_000,
      onProgress: (sent, total) => {
        const now = performance.now();
        if (now - lastPrint < 10_000 && sent < total) return;
        lastPrint = now;
        const s = sampler0.samples.at(-1)?.rss ?? 0;
        console.log(
          `  ${((sent / total) * 100).toFixed(0).padStart(3)}%  ${mib(sent).padStart(11)}  server RSS ${mib(s)}`,
        );
      },
    });
    const upload = await server.waitEvent("upload-complete", since, 120_000);
    const complete = await client.waitComplete(120_000);
    await server.waitEvent("processing-complete", since, 30_000);
    const sessionEnd = performance.now();
    await client.close();
    client = null;
    await server.waitEvent("session-end", since, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const after = sampler0.samples.at(-1)?.rss ?? Number.NaN;
    sampler0.stop();

    const peak = sampler0.peakSince(sessionStart);
    const growth = peak - warmBaseline;
    const coldGrowth = peak - coldBaseline;
    const clientMiBps = report.bytes / MiB / (report.ms / 1000);
    const serverMiBps = upload.bytes / MiB / (upload.durationMs / 1000);
    const frames = complete.output.video_metadata?.frame_id ?? 0;
    const byteExact = upload.sha256 === file.sha256 && upload.bytes === file.bytes;
    const memoryOk = growth <= TARGET_GROWTH_MIB * MiB;
    const ok = byteExact && memoryOk && complete.output.termination_reason === null;

    const usage = (key: keyof NodeJS.MemoryUsage) => {
      const before = server.memory.filter((m) => m.at < sessionStart).at(-1)?.usage[key] ?? Number.NaN;
      const peakValue = Math.max(
        0,
        ...server.memory.filter((m) => m.at >= sessionStart).map((m) => m.usage[key]),
      );
      return `${mib(before)} -> ${mib(peakValue)}`;
    };
    const rows: [string, string][] = [
      ["server node flags", nodeFlags.length ? nodeFlags.join(" ") : "(none: node defaults)"],
      ["upload size", `${mib(file.bytes)} (${report.chunks} chunks)`],
      [
        "upload (client: first send to drained)",
        `${clientMiBps.toFixed(1)} MiB/s in ${(report.ms / 1000).toFixed(1)} s`,
      ],
      [
        "upload (server: channel open to stored)",
        `${serverMiBps.toFixed(1)} MiB/s in ${(upload.durationMs / 1000).toFixed(1)} s`,
      ],
      ["stored SHA-256 equals source", byteExact ? "yes" : `NO (${upload.sha256} vs ${file.sha256})`],
      ["frames processed", `${frames} (${complete.output.termination_reason ?? "complete"})`],
      ["server baseline RSS, cold (idle, listening)", mib(coldBaseline)],
      ["server baseline RSS, warm (after a 1-video session)", mib(warmBaseline)],
      [`server peak RSS (${SAMPLE_MS} ms samples, ${sampler0.samples.length} taken)`, mib(peak)],
      ["server RSS after the session ended", mib(after)],
      ["server VmHWM (kernel peak; at baseline / end)", `${mib(hwmAtBaseline)} / ${mib(sampler0.hwm)}`],
      ["peak RSS growth over the cold baseline (info)", mib(coldGrowth)],
      [
        `peak RSS growth over the warm baseline (target <= ${TARGET_GROWTH_MIB} MiB)`,
        `${mib(growth)}  ${memoryOk ? "PASS" : "FAIL"}`,
      ],
      ["server V8 heap used (before -> peak)", usage("heapUsed")],
      ["server V8 heap total (before -> peak)", usage("heapTotal")],
      ["server external / array buffers (peak)", `${usage("external")} / ${usage("arrayBuffers")}`],
      ["session wall time", `${((sessionEnd - sessionStart) / 1000).toFixed(1)} s`],
      ["result", ok ? "PASS" : "FAIL"],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    console.log("");
    console.log(`@vidrtc/server memory benchmark (werift client -> server child process, 127.0.0.1)`);
    for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
    if (!ok) process.exitCode = 1;
  } finally {
    sampler.current?.stop();
    await client?.close();
    await stopChild(server.child);
  }
}

if (process.argv.includes(SERVER_FLAG)) {
  const max = Number(process.argv[process.argv.indexOf(SERVER_FLAG) + 1]);
  runServer(max).catch((error: unknown) => {
    process.send?.({ kind: "error", message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
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
