/**
 * Transport benchmark (issue 8): one table of uploads over each WebRTC stack, measured in one run,
 * and the ratios between them with their targets.
 *
 * Rows (one upload each, the padded MP4 of support/fixtures.ts, SHA-256 checked by the receiver):
 *   1. @vidrtc/node on werift           -> vidrtc-server on werift
 *   2. @vidrtc/node on node-datachannel -> vidrtc-server on node-datachannel
 *   3. aiortc SDK-style sender          -> the aiortc receiver (python/vidrtc_aiortc.py)
 *   4. @vidrtc/node on node-datachannel -> the same aiortc receiver
 *   5. Chromium (@vidrtc/browser, a Blob made in the page) -> vidrtc-server on werift
 *   6. Chromium -> vidrtc-server on node-datachannel (sender CPU/RSS n/a; --mib upload only)
 * Every sender and receiver is a process of its own, so CPU and RSS are each one's alone:
 *   - MiB/s: measured by the receiver (vidrtc-server: video_upload channel open -> file stored;
 *     aiortc receiver: first chunk -> last chunk), so both sides of a ratio use the same clock;
 *   - sender CPU ms/MiB: the sender's own CPU from its first chunk until its send buffer drained;
 *   - receiver CPU %: the receiving process's CPU over the upload (near 100 % = receiver-bound);
 *   - sender / server RSS growth: peak VmRSS (50 ms samples) over a settled baseline taken after a
 *     small warm-up session (the Python sender: over its RSS when its channel opened), measured on
 *     the `--rss-mib` upload (default 1 GiB), a second upload of each row when it differs from --mib;
 *   - setup s: `stream()` called -> first chunk handed to the channel (aiortc: offer creation ->
 *     first chunk), from the `--mib` upload.
 *
 * node-datachannel and aiortc ignore loopback-only hosts, so run it with the sealed fake NIC:
 *   pnpm -r --filter "./packages/*" build
 *   bash scripts/netns-run.sh --nic 192.0.2.10/24 pnpm --filter @vidrtc/e2e exec tsx src/bench/transport.ts \
 *     [--mib 256] [--rss-mib 1024] [--quick] [--only werift,ndc,aiortc,ndc-aiortc,chromium-werift,chromium-ndc]
 * `--quick` = `--mib 32 --rss-mib 64` (a smoke test of the command, not the targets' sizes).
 * Exits 1 when a target is missed.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { InferenceClient } from "@vidrtc/node";
import type { SessionEvent } from "@vidrtc/server";
import type { Page } from "playwright-core";
import { type ServerChild, startServerChild } from "../support/bench-server.js";
import { DEMO_DIST, ensureDemoBuilt, launchWebRtcChromium } from "../support/browser-harness.js";
import { largeVideo, tinyVideo, type VideoFixture } from "../support/fixtures.js";
import { assertIsolatedNetwork, inspectNetwork } from "../support/netns.js";
import { procCpuMs, RssSampler } from "../support/proc-stats.js";
import { makeBlob } from "./browser-upload.js";

const MiB = 1024 * 1024;
const SENDER_FLAG = "--as-transport-sender";
const SCRIPT = fileURLToPath(new URL("../../python/vidrtc_aiortc.py", import.meta.url));
const PYTHON = process.env.VIDRTC_PYTHON ?? "/usr/bin/python3";
const WORKFLOW = "frame-stats";
const TARGET = {
  nativeRatio: 5,
  nativeMiBps: 70,
  aiortcRatio: 1.2,
  receiverBoundCpuPct: 95,
  senderCpuRatio: 0.5,
  rssGrowthMiB: 64,
  chromiumRatio: 1.5,
  setupS: 0.5,
};

type ClientTransport = "werift" | "node-datachannel";

/** Things that went wrong and were retried, printed under the table. */
const NOTES: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errorText = (e: unknown) => (e instanceof Error ? (e.stack ?? e.message) : String(e));

// ====================================================================== child: a @vidrtc/node sender

interface SenderInput {
  url: string;
  transport: ClientTransport;
  path: string;
  warmPath: string;
  maxUploadBytes: number;
}

type SenderMessage =
  | { kind: "warm" }
  | { kind: "note"; message: string }
  | { kind: "uploaded"; setupMs: number; cpuMs: number }
  | { kind: "done" }
  | { kind: "error"; message: string };

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

async function runSender(input: SenderInput): Promise<void> {
  const send = (m: SenderMessage) => process.send?.(m);
  process.on("disconnect", () => process.exit(1));
  const waitFor = (kind: string) =>
    new Promise<void>((resolve) => {
      const on = (m: unknown) => {
        if ((m as { kind?: string }).kind !== kind) return;
        process.off("message", on);
        resolve();
      };
      process.on("message", on);
    });
  const client = new InferenceClient({ apiUrl: input.url, transport: input.transport });
  const request = { workflow: WORKFLOW, workspace: "local", dataOutput: ["*"] };
  // Warm-up: one whole small session, so that code loaded and compiled once is not counted.
  // A failed warm-up is retried once and reported (seen: the first node-datachannel session of a
  // fresh process sometimes fails in setAnswer with "Got a remote candidate without ICE transport").
  for (let attempt = 1; ; attempt++) {
    try {
      const warm = await client.webrtc.stream({ source: input.warmPath, ...request });
      await warm.run();
      warm.close();
      break;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= 2) throw new Error(`warm-up session (twice): ${message}`);
      send({
        kind: "note",
        message: `${input.transport} sender: warm-up session failed, retried: ${message}`,
      });
    }
  }
  const gc = getGc();
  gc?.();
  await sleep(300);
  gc?.();
  const go = waitFor("go");
  send({ kind: "warm" });
  await go;

  let firstAt = Number.NaN;
  let cpuAtFirst: NodeJS.CpuUsage | null = null;
  let t0 = 0;
  let session: Awaited<ReturnType<typeof client.webrtc.stream>> | undefined;
  // stream() failing before any byte is sent is retried once and reported (same failure as above).
  for (let attempt = 1; session === undefined; attempt++) {
    t0 = performance.now();
    try {
      session = await client.webrtc.stream({
        source: input.path,
        ...request,
        maxUploadBytes: input.maxUploadBytes,
        timeouts: { uploadStall: 60_000 },
        onUploadProgress: (p) => {
          if (cpuAtFirst === null && p.bytesUploaded > 0) {
            // The first progress event is made right after the first send(); elapsedMs is since then.
            firstAt = performance.now() - p.elapsedMs;
            cpuAtFirst = process.cpuUsage();
          }
        },
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= 2 || cpuAtFirst !== null) throw error;
      send({
        kind: "note",
        message: `${input.transport} sender: measured stream() failed, retried: ${message}`,
      });
    }
  }
  try {
    await session.uploaded;
    const cpu = process.cpuUsage(cpuAtFirst ?? undefined);
    if (cpuAtFirst === null) throw new Error("no upload progress event was seen");
    send({ kind: "uploaded", setupMs: firstAt - t0, cpuMs: (cpu.user + cpu.system) / 1e3 });
    await session.run();
  } finally {
    session.close();
  }
  send({ kind: "done" });
}

/** A forked {@link runSender} and its messages. */
function startSender(input: SenderInput): {
  child: ChildProcess;
  next<K extends SenderMessage["kind"]>(
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<SenderMessage, { kind: K }>>;
  stop(): Promise<void>;
} {
  const child = fork(fileURLToPath(import.meta.url), [SENDER_FLAG], {
    execArgv: [...process.execArgv, "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: SenderMessage[] = [];
  const waiters = new Set<() => void>();
  let exitCode: number | null = null;
  child.on("message", (m) => {
    const msg = m as SenderMessage;
    if (msg.kind === "note") NOTES.push(msg.message);
    messages.push(msg);
    for (const w of [...waiters]) w();
  });
  child.on("exit", (code) => {
    exitCode = code ?? -1;
    for (const w of [...waiters]) w();
  });
  child.send(input);
  return {
    child,
    next: (kind, timeoutMs) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const error = messages.find((m) => m.kind === "error");
          const hit = messages.find((m) => m.kind === kind);
          if (error)
            finish(new Error(`sender (${input.transport}): ${(error as { message: string }).message}`));
          else if (hit) finish(undefined, hit);
          else if (exitCode !== null) finish(new Error(`the sender exited (${exitCode}) before "${kind}"`));
        };
        const finish = (error?: Error, value?: SenderMessage) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (error) reject(error);
          else resolve(value as Extract<SenderMessage, { kind: typeof kind }>);
        };
        const timer = setTimeout(
          () => finish(new Error(`sender: no "${kind}" within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.add(check);
        check();
      }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill();
      await gone;
    },
  };
}

// ====================================================================== receivers

/** What a receiver measured of one upload. */
interface Stored {
  mibPerSecond: number;
  /** Receiver CPU over the upload, % of one core. */
  cpuPct: number;
}

/** A receiving process: vidrtc-server in a child, or the aiortc receiver. */
interface Receiver {
  name: string;
  url: string;
  pid: number;
  /** Call before an upload starts; resolves when the receiver has stored that upload (checked). */
  expect(file: { bytes: number; sha256: string | null }, timeoutMs: number): Promise<Stored>;
  stop(): Promise<void>;
}

function vidrtcReceiver(server: ServerChild, name: string): Receiver {
  return {
    name,
    url: server.url,
    pid: server.pid,
    async expect(file, timeoutMs) {
      const since = server.events.length;
      const cpu0 = procCpuMs(server.pid);
      const t0 = performance.now();
      // A session that fails before storing is the sender's to report (it retries a failed
      // connection once), so only the stored upload is waited for here.
      const hit = await server.waitEvent("upload-complete", since, timeoutMs);
      const cpuMs = procCpuMs(server.pid) - cpu0;
      const wallMs = performance.now() - t0;
      const event: Extract<SessionEvent, { type: "upload-complete" }> = hit.event;
      if (event.bytes !== file.bytes || (file.sha256 !== null && event.sha256 !== file.sha256))
        throw new Error(
          `${name}: stored ${event.bytes} bytes sha256=${event.sha256}, expected ${file.sha256}`,
        );
      // Let the session end (results sent, peer closed) before the next upload starts.
      const id = event.sessionId;
      for (const end = performance.now() + 120_000; performance.now() < end; await sleep(50)) {
        if (server.events.some((e) => e.event.type === "session-end" && e.event.sessionId === id)) break;
      }
      return { mibPerSecond: event.bytes / MiB / (event.durationMs / 1000), cpuPct: (100 * cpuMs) / wallMs };
    },
    stop: () => server.stop(),
  };
}

async function aiortcReceiver(): Promise<Receiver> {
  const child = spawn(PYTHON, [SCRIPT, "receive", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buf = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
    for (const w of [...waiters]) w();
  });
  child.on("exit", () => {
    for (const w of [...waiters]) w();
  });
  const lineAfter = (seen: number, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        if (lines.length > seen) finish(undefined, lines[seen]);
        else if (child.exitCode !== null) finish(new Error(`the aiortc receiver exited (${child.exitCode})`));
      };
      const finish = (error?: Error, value?: Record<string, unknown>) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(value as Record<string, unknown>);
      };
      const timer = setTimeout(
        () => finish(new Error(`no line from the aiortc receiver within ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });
  const ready = await lineAfter(0, 60_000);
  return {
    name: "aiortc receiver",
    url: String(ready.listening),
    pid: child.pid as number,
    async expect(file, timeoutMs) {
      const line = await lineAfter(lines.length, timeoutMs);
      if (line.ok !== true || line.sha256 !== file.sha256 || line.bytes !== file.bytes)
        throw new Error(
          `aiortc receiver: ${JSON.stringify(line)} (expected ${file.bytes} bytes ${file.sha256})`,
        );
      return { mibPerSecond: Number(line.mibPerSecond), cpuPct: Number(line.cpuPercent) };
    },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** The aiortc SDK-style sender (python/vidrtc_aiortc.py upload): its JSON result line. */
function aiortcUpload(url: string, path: string, timeoutS: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      PYTHON,
      [SCRIPT, "upload", "--url", url, "--file", path, "--timeout", String(timeoutS)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err = (err + d).slice(-4000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), (timeoutS + 60) * 1000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      try {
        const line = JSON.parse(last) as Record<string, unknown>;
        if (line.ok === true) return resolve(line);
      } catch {}
      reject(new Error(`the aiortc sender failed (exit ${code}): ${last}\n${err}`));
    });
  });
}

// ====================================================================== one measured upload

interface Measured {
  mibPerSecond: number;
  senderCpuMsPerMiB: number;
  receiverCpuPct: number;
  senderRssGrowth: number;
  serverRssGrowth: number;
  setupS: number;
}

const budgetMs = (file: { bytes: number }) => 120_000 + (file.bytes / MiB) * 2_000;

async function nodeUpload(
  receiver: Receiver,
  transport: ClientTransport,
  file: VideoFixture,
  warm: VideoFixture,
): Promise<Measured> {
  const sender = startSender({
    url: receiver.url,
    transport,
    path: file.path,
    warmPath: warm.path,
    maxUploadBytes: file.bytes + 64 * MiB,
  });
  const senderRss = new RssSampler(sender.child.pid as number);
  const serverRss = new RssSampler(receiver.pid);
  try {
    await sender.next("warm", 120_000);
    senderRss.start();
    serverRss.start();
    const [senderBase, serverBase] = await Promise.all([senderRss.settle(), serverRss.settle()]);
    const startedAt = performance.now();
    const stored = receiver.expect(file, budgetMs(file));
    stored.catch(() => {});
    sender.child.send({ kind: "go" });
    const uploaded = await sender.next("uploaded", budgetMs(file));
    const got = await stored;
    await sender.next("done", 120_000);
    return {
      mibPerSecond: got.mibPerSecond,
      senderCpuMsPerMiB: uploaded.cpuMs / (file.bytes / MiB),
      receiverCpuPct: got.cpuPct,
      senderRssGrowth: senderRss.peakSince(startedAt) - senderBase,
      serverRssGrowth: serverRss.peakSince(startedAt) - serverBase,
      setupS: uploaded.setupMs / 1000,
    };
  } finally {
    senderRss.stop();
    serverRss.stop();
    await sender.stop();
  }
}

async function pythonUpload(receiver: Receiver, file: VideoFixture): Promise<Measured> {
  const serverRss = new RssSampler(receiver.pid).start();
  try {
    const serverBase = await serverRss.settle();
    const startedAt = performance.now();
    const stored = receiver.expect(file, budgetMs(file));
    stored.catch(() => {});
    const line = await aiortcUpload(receiver.url, file.path, budgetMs(file) / 1000);
    const got = await stored;
    return {
      mibPerSecond: got.mibPerSecond,
      senderCpuMsPerMiB: Number(line.cpuMsPerMiB),
      receiverCpuPct: got.cpuPct,
      senderRssGrowth: Number(line.rssPeakGrowthMiB) * MiB,
      serverRssGrowth: serverRss.peakSince(startedAt) - serverBase,
      setupS: Number(line.setupSeconds),
    };
  } finally {
    serverRss.stop();
  }
}

/**
 * One upload of the page's Blob (browser-upload.ts's makeBlob: a padded MP4 made in the page)
 * through @vidrtc/browser into a vidrtc-server whose origin the page was loaded from. The server
 * checks the byte count (the Blob is built in the page, so there is no SHA-256 to compare).
 * Chromium's CPU and RSS are spread over several processes and not measured.
 */
async function chromiumUpload(receiver: Receiver, page: Page, bytes: number): Promise<Measured> {
  const serverRss = new RssSampler(receiver.pid).start();
  try {
    const serverBase = await serverRss.settle();
    const startedAt = performance.now();
    const stored = receiver.expect({ bytes, sha256: null }, budgetMs({ bytes }));
    stored.catch(() => {});
    const setupMs = await page.evaluate(async (workflow) => {
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      let first = Number.NaN;
      const t0 = performance.now();
      const session = await client.webrtc.stream({
        source: window.__blob,
        workflow,
        dataOutput: [],
        onUploadProgress: (p) => {
          if (Number.isNaN(first) && p.bytesUploaded > 0) first = performance.now() - p.elapsedMs;
        },
      });
      window.__sessions.push(session);
      await session.uploaded;
      return first - t0;
    }, WORKFLOW);
    const got = await stored;
    await page.evaluate(() => {
      for (const s of window.__sessions.splice(0)) s.close();
    });
    return {
      mibPerSecond: got.mibPerSecond,
      senderCpuMsPerMiB: Number.NaN,
      receiverCpuPct: got.cpuPct,
      senderRssGrowth: Number.NaN,
      serverRssGrowth: serverRss.peakSince(startedAt) - serverBase,
      setupS: setupMs / 1000,
    };
  } finally {
    serverRss.stop();
  }
}

// ====================================================================== main

interface RowSpec {
  key: string;
  label: string;
  receiver: "werift" | "node-datachannel" | "aiortc";
  sender: ClientTransport | "aiortc" | "chromium";
}

const ROWS: RowSpec[] = [
  { key: "werift", label: "@vidrtc/node werift -> server werift", receiver: "werift", sender: "werift" },
  {
    key: "ndc",
    label: "@vidrtc/node ndc -> server ndc",
    receiver: "node-datachannel",
    sender: "node-datachannel",
  },
  { key: "aiortc", label: "aiortc SDK-style -> aiortc receiver", receiver: "aiortc", sender: "aiortc" },
  {
    key: "ndc-aiortc",
    label: "@vidrtc/node ndc -> aiortc receiver",
    receiver: "aiortc",
    sender: "node-datachannel",
  },
  { key: "chromium-werift", label: "Chromium -> server werift", receiver: "werift", sender: "chromium" },
  { key: "chromium-ndc", label: "Chromium -> server ndc", receiver: "node-datachannel", sender: "chromium" },
];

interface Verdict {
  what: string;
  value: string;
  target: string;
  pass: boolean;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== "--"),
    options: {
      mib: { type: "string" },
      "rss-mib": { type: "string" },
      quick: { type: "boolean", default: false },
      only: { type: "string" },
    },
    strict: true,
  });
  const sizeMiB = Number(values.mib ?? (values.quick ? 32 : 256));
  const rssMiB = Number(values["rss-mib"] ?? (values.quick ? 64 : 1024));
  for (const [flag, n] of [
    ["--mib", sizeMiB],
    ["--rss-mib", rssMiB],
  ] as const) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a whole number of MiB, got ${n}`);
  }
  const only = values.only?.split(",").map((s) => s.trim());
  const unknown = only?.filter((k) => !ROWS.some((r) => r.key === k)) ?? [];
  if (unknown.length > 0)
    throw new Error(`unknown row(s) ${unknown.join(", ")}; known: ${ROWS.map((r) => r.key).join(", ")}`);
  const rows = ROWS.filter((r) => !only || only.includes(r.key));

  assertIsolatedNetwork();
  const nic = inspectNetwork().fakeNicAddress;
  if (nic === null) {
    console.error(
      "transport bench: node-datachannel and aiortc need the sealed fake NIC: run it as\n" +
        "  bash scripts/netns-run.sh --nic 192.0.2.10/24 pnpm --filter @vidrtc/e2e exec tsx src/bench/transport.ts",
    );
    return 2;
  }

  process.stdout.write(
    `preparing ${sizeMiB} and ${rssMiB} MiB padded MP4s (cached in apps/e2e/.fixtures/)... `,
  );
  const file = await largeVideo(sizeMiB, { kind: "padded" });
  const rssFile = rssMiB === sizeMiB ? file : await largeVideo(rssMiB, { kind: "padded" });
  const warm = await tinyVideo();
  console.log("done");

  const maxUploadBytes = Math.max(file.bytes, rssFile.bytes) + 64 * MiB;
  if (rows.some((r) => r.sender === "chromium")) await ensureDemoBuilt();
  const mp4 = new Uint8Array(await readFile(warm.path));
  let chromium: Awaited<ReturnType<typeof launchWebRtcChromium>> | null = null;
  const receivers = new Map<RowSpec["receiver"], Receiver>();
  const results = new Map<string, { speed: Measured | null; rss: Measured | null }>();
  const failures = new Map<string, string>();
  try {
    for (const row of rows) {
      let receiver = receivers.get(row.receiver);
      if (!receiver) {
        if (row.receiver === "aiortc") {
          receiver = await aiortcReceiver();
          // Warm-up of the receiver: one small upload.
          await pythonUpload(receiver, warm);
        } else {
          const server = await startServerChild({
            maxUploadBytes,
            transport: row.receiver,
            staticDir: DEMO_DIST,
          });
          receiver = vidrtcReceiver(server, `server ${row.receiver}`);
        }
        receivers.set(row.receiver, receiver);
      }
      const r = receiver;
      const sender = row.sender;
      let page: Page | null = null;
      if (sender === "chromium") {
        chromium ??= await launchWebRtcChromium();
        page = await chromium.newPage();
        await page.goto(`${r.url}/test.html`);
        await page.waitForFunction(() => typeof window.vidrtc === "object");
        // tsx (esbuild keepNames) wraps named functions in __name(): give the page a no-op one.
        await page.evaluate("globalThis.__name = (f) => f");
      }
      const once = async (f: VideoFixture) => {
        if (sender === "aiortc") return pythonUpload(r, f);
        if (sender !== "chromium") return nodeUpload(r, sender, f, warm);
        if (page === null) throw new Error("no Chromium page");
        // The Blob is made in the page at the --mib size only (no 1 GiB Blob: page memory).
        await makeBlob(page, mp4, f.bytes);
        return chromiumUpload(r, page, f.bytes);
      };
      // A failed upload fails its row (MISS), not the whole table.
      const attempt = async (f: VideoFixture, what: string): Promise<Measured | null> => {
        console.log(`  ${row.label}: ${what}...`);
        try {
          return await once(f);
        } catch (error) {
          const message = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
          failures.set(row.key, `${failures.get(row.key) ?? ""}${what}: ${message} `);
          console.log(`  ${row.label}: ${what} FAILED: ${message}`);
          return null;
        }
      };
      const speed = await attempt(file, `${sizeMiB} MiB`);
      const rss =
        rssFile === file || sender === "chromium" ? speed : await attempt(rssFile, `${rssMiB} MiB (RSS)`);
      await page?.close();
      results.set(row.key, { speed, rss });
    }
  } finally {
    await chromium?.close();
    for (const r of receivers.values()) await r.stop().catch(() => {});
  }

  // ---------------------------------------------------------------- the table
  const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  const head = [
    "upload",
    `MiB/s (${sizeMiB} MiB)`,
    "sender CPU ms/MiB",
    "receiver CPU %",
    `sender RSS growth (${rssMiB} MiB)`,
    `server RSS growth (${rssMiB} MiB)`,
    "setup s",
  ];
  const body = rows.map((row) => {
    const m = results.get(row.key);
    const sp = m?.speed;
    const rs = m?.rss;
    const failed = "failed";
    return [
      row.label,
      sp ? f1(sp.mibPerSecond) : failed,
      sp ? f1(sp.senderCpuMsPerMiB) : failed,
      sp ? f1(sp.receiverCpuPct) : failed,
      rs ? (Number.isNaN(rs.senderRssGrowth) ? "n/a" : `${f1(rs.senderRssGrowth / MiB)} MiB`) : failed,
      rs ? `${f1(rs.serverRssGrowth / MiB)} MiB` : failed,
      sp ? sp.setupS.toFixed(2) : failed,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  console.log("");
  console.log(`Transport benchmark (one run; ${sizeMiB} MiB for speed, ${rssMiB} MiB for RSS)`);
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const b of body) console.log(line(b));

  // ---------------------------------------------------------------- the ratios
  const verdicts: Verdict[] = [];
  const speedOf = (key: string) => results.get(key)?.speed ?? null;
  const rssOf = (key: string) => results.get(key)?.rss ?? null;
  const has = (key: string) => rows.some((r) => r.key === key);
  const failedValue = (...keys: string[]) =>
    `failed: ${keys
      .map((k) => failures.get(k))
      .filter(Boolean)
      .join("; ")}`;
  if (has("werift") && has("ndc")) {
    const werift = speedOf("werift");
    const ndc = speedOf("ndc");
    const target = `>= ${TARGET.nativeRatio}x and >= ${TARGET.nativeMiBps} MiB/s`;
    const what = "native/werift MiB/s (server on the same stack as the client)";
    if (werift && ndc) {
      const ratio = ndc.mibPerSecond / werift.mibPerSecond;
      verdicts.push({
        what,
        value: `${ratio.toFixed(2)}x, native ${f1(ndc.mibPerSecond)} MiB/s`,
        target,
        pass: ratio >= TARGET.nativeRatio && ndc.mibPerSecond >= TARGET.nativeMiBps,
      });
    } else verdicts.push({ what, value: failedValue("werift", "ndc"), target, pass: false });
  }
  if (has("aiortc") && has("ndc-aiortc")) {
    const aio = speedOf("aiortc");
    const ndcAio = speedOf("ndc-aiortc");
    const what = "ndc/aiortc sender MiB/s into the aiortc receiver";
    const target = `>= ${TARGET.aiortcRatio}x, or receiver CPU >= ${TARGET.receiverBoundCpuPct} % and sender CPU <= ${TARGET.senderCpuRatio}x`;
    if (aio && ndcAio) {
      const ratio = ndcAio.mibPerSecond / aio.mibPerSecond;
      const cpuRatio = ndcAio.senderCpuMsPerMiB / aio.senderCpuMsPerMiB;
      const bound = ndcAio.receiverCpuPct >= TARGET.receiverBoundCpuPct;
      verdicts.push({
        what,
        value: `${ratio.toFixed(2)}x (receiver CPU ${f1(ndcAio.receiverCpuPct)} %, sender CPU ratio ${cpuRatio.toFixed(2)}x)`,
        target,
        pass: ratio >= TARGET.aiortcRatio || (bound && cpuRatio <= TARGET.senderCpuRatio),
      });
    } else verdicts.push({ what, value: failedValue("aiortc", "ndc-aiortc"), target, pass: false });
  }
  if (has("chromium-werift") && has("chromium-ndc")) {
    const w = speedOf("chromium-werift");
    const n = speedOf("chromium-ndc");
    const what = "Chromium: server ndc / server werift MiB/s";
    const target = `>= ${TARGET.chromiumRatio}x`;
    if (w && n) {
      const ratio = n.mibPerSecond / w.mibPerSecond;
      verdicts.push({ what, value: `${ratio.toFixed(2)}x`, target, pass: ratio >= TARGET.chromiumRatio });
    } else
      verdicts.push({ what, value: failedValue("chromium-werift", "chromium-ndc"), target, pass: false });
  }
  for (const row of rows) {
    const rs = rssOf(row.key);
    if (row.sender === "chromium") {
      const sp = speedOf(row.key);
      verdicts.push({
        what: `${row.label}: server RSS growth (${sizeMiB} MiB)`,
        value: sp ? `${f1(sp.serverRssGrowth / MiB)} MiB` : failedValue(row.key),
        target: `<= ${TARGET.rssGrowthMiB} MiB`,
        pass: sp !== null && sp.serverRssGrowth / MiB <= TARGET.rssGrowthMiB,
      });
      verdicts.push({
        what: `${row.label}: setup`,
        value: sp ? `${sp.setupS.toFixed(2)} s` : failedValue(row.key),
        target: `<= ${TARGET.setupS} s`,
        pass: sp !== null && sp.setupS <= TARGET.setupS,
      });
      continue;
    }
    const sp = speedOf(row.key);
    const rssTarget = `<= ${TARGET.rssGrowthMiB} MiB each`;
    verdicts.push({
      what: `${row.label}: RSS growth, sender / server (${rssMiB} MiB)`,
      value: rs
        ? `${f1(rs.senderRssGrowth / MiB)} / ${f1(rs.serverRssGrowth / MiB)} MiB`
        : failedValue(row.key),
      target: rssTarget,
      pass: rs !== null && Math.max(rs.senderRssGrowth, rs.serverRssGrowth) / MiB <= TARGET.rssGrowthMiB,
    });
    verdicts.push({
      what: `${row.label}: setup`,
      value: sp ? `${sp.setupS.toFixed(2)} s` : failedValue(row.key),
      target: `<= ${TARGET.setupS} s`,
      pass: sp !== null && sp.setupS <= TARGET.setupS,
    });
  }
  const vw = {
    what: Math.max(6, ...verdicts.map((v) => v.what.length)),
    value: Math.max(5, ...verdicts.map((v) => v.value.length)),
    target: Math.max(6, ...verdicts.map((v) => v.target.length)),
  };
  console.log("");
  console.log(
    `| ${"target".padEnd(vw.what)} | ${"value".padEnd(vw.value)} | ${"needed".padEnd(vw.target)} | result |`,
  );
  console.log(
    `|${"-".repeat(vw.what + 2)}|${"-".repeat(vw.value + 2)}|${"-".repeat(vw.target + 2)}|--------|`,
  );
  for (const v of verdicts)
    console.log(
      `| ${v.what.padEnd(vw.what)} | ${v.value.padEnd(vw.value)} | ${v.target.padEnd(vw.target)} | ${(v.pass ? "PASS" : "MISS").padEnd(6)} |`,
    );
  for (const note of NOTES) console.log(`  note: ${note}`);
  console.log(
    "  Chromium rows: sender CPU and RSS n/a (not measured); RSS growth is the server's, on the --mib upload.",
  );
  if (values.quick) console.log("  --quick: smaller sizes than the targets are defined for; not a verdict.");
  return verdicts.every((v) => v.pass) ? 0 : 1;
}

if (process.argv.includes(SENDER_FLAG)) {
  process.once("message", (input) => {
    runSender(input as SenderInput).catch((error: unknown) => {
      process.send?.({ kind: "error", message: errorText(error) } satisfies SenderMessage);
      setTimeout(() => process.exit(1), 100);
    });
  });
} else {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(errorText(error));
      process.exit(1);
    },
  );
}
