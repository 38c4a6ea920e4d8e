/**
 * Upload throughput of @vidrtc/browser in Chromium into @vidrtc/server, against a bare
 * `RTCDataChannel` send loop in the same page and run: same Blob (256 MiB made in the page), same
 * 49160-byte messages with the real 8-byte headers, same receiver (the in-process server).
 * The bare loop pauses when `bufferedAmount` exceeds the high-water mark and resumes on
 * `bufferedamountlow`.
 *
 *   pnpm --filter @vidrtc/browser build
 *   bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e exec tsx src/bench/browser-upload.ts \
 *     [--mib 256] [--rounds 2] [--high 1048576] [--low 262144] [--bare-high N] [--bare-low N]
 *
 * Time of one upload: from its first message handed to the channel (page clock) until the
 * server reports `upload-complete` (same machine, same wall clock). The Blob is a valid MP4 (the
 * small motion fixture) padded with one `free` box, so the server's processing stays short.
 * Prints a table; exits 1 when the binding's median is below 0.95 of the bare loop's.
 *
 * The server's werift SCTP stack receives at only a few MiB/s, which hides any sender overhead.
 * `--receiver chromium` therefore measures the same two senders into a second RTCPeerConnection in
 * the same page (no server): the binding's upload path (VideoFileSource -> createUploadStream ->
 * createChannelSink over fromRTCDataChannel) against the bare loop, timed until the receiver holds
 * every byte. Use it to tune the sink watermarks for Chromium.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type * as Vidrtc from "@vidrtc/browser";
import { build } from "esbuild";
import type { Page } from "playwright-core";
import { DEMO_DIST, ensureDemoBuilt, launchWebRtcChromium } from "../support/browser-harness.js";
import { tinyVideo } from "../support/fixtures.js";
import { assertIsolatedNetwork } from "../support/netns.js";
import { eventually, startTestServer, type TestServer } from "../support/server.js";

declare global {
  interface Window {
    vidrtc: typeof Vidrtc;
    __blob: Blob;
    __peers: RTCPeerConnection[];
    __sessions: Array<{ close(): void }>;
    vidrtcBench: {
      createChannelSink: typeof import("@vidrtc/protocol").createChannelSink;
      createUploadStream: typeof import("@vidrtc/protocol").createUploadStream;
      fromRTCDataChannel: typeof Vidrtc.fromRTCDataChannel;
      VideoFileSource: typeof Vidrtc.VideoFileSource;
    };
  }
}

const MiB = 1024 * 1024;
const TARGET_RATIO = 0.95;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

interface Run {
  kind: "binding" | "bare";
  seconds: number;
  mibPerSecond: number;
  /** Page side: first send until bufferedAmount reached 0. */
  handedOverSeconds: number;
  serverSha256: string;
}

/** Builds the Blob in the page: the MP4 bytes, then one `free` box of zeros up to `size`. */
export async function makeBlob(page: Page, mp4: Uint8Array, size: number): Promise<void> {
  await page.evaluate(
    ({ mp4, size }) => {
      const head = new Uint8Array(mp4);
      const pad = size - head.length;
      const box = new Uint8Array(8);
      new DataView(box.buffer).setUint32(0, pad, false);
      box.set([0x66, 0x72, 0x65, 0x65], 4); // "free"
      const parts: BlobPart[] = [head, box];
      let left = pad - 8;
      const block = new Uint8Array(4 * 1024 * 1024);
      // A non-constant pattern, so nothing on the way can shortcut zeros.
      for (let i = 0; i < block.length; i += 4096) block[i] = (i >>> 12) & 0xff;
      while (left > 0) {
        const n = Math.min(left, block.length);
        parts.push(n === block.length ? block : block.subarray(0, n));
        left -= n;
      }
      window.__blob = new Blob(parts, { type: "video/mp4" });
      window.__peers = [];
      window.__sessions = [];
    },
    { mp4: Array.from(mp4), size },
  );
}

/** One upload through @vidrtc/browser; resolves with page-side times (epoch ms). */
function bindingUpload(page: Page, sink: { highWaterMark: number; lowWaterMark: number } | null) {
  return page.evaluate(async (sink) => {
    const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
    const session = await client.webrtc.stream({
      source: window.__blob,
      workflow: "frame-stats",
      dataOutput: [],
      ...(sink ? { sink } : {}),
    });
    const t0 = Date.now();
    window.__sessions.push(session);
    await session.uploaded;
    return { t0, tSent: Date.now() };
  }, sink);
}

/** One upload with a bare send loop on a native RTCDataChannel; resolves with page-side times. */
function bareUpload(page: Page, high: number, low: number) {
  return page.evaluate(
    async ({ high, low }) => {
      const CHUNK = 49_152;
      const READ = 16 * CHUNK;
      const blob = window.__blob;
      const pc = new RTCPeerConnection({ iceServers: [] });
      window.__peers.push(pc);
      pc.createDataChannel("inference", { ordered: true });
      const up = pc.createDataChannel("video_upload", { ordered: true });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.addEventListener(
          "icegatheringstatechange",
          () => pc.iceGatheringState === "complete" && resolve(),
        );
        setTimeout(resolve, 5000);
      });
      const res = await fetch(`${location.origin}/initialise_webrtc_worker`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          workflow_configuration: {
            type: "WorkflowConfiguration",
            workflow_id: "frame-stats",
            image_input_name: "image",
          },
          webrtc_offer: { type: "offer", sdp: pc.localDescription!.sdp },
          webrtc_config: null,
          webrtc_realtime_processing: false,
          stream_output: [],
          data_output: [],
        }),
      });
      if (!res.ok) throw new Error(`initialise failed: HTTP ${res.status} ${await res.text()}`);
      const answer = (await res.json()) as { sdp: string };
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      if (up.readyState !== "open") {
        await new Promise<void>((resolve, reject) => {
          up.addEventListener("open", () => resolve(), { once: true });
          setTimeout(() => reject(new Error("video_upload did not open")), 20_000);
        });
      }
      up.bufferedAmountLowThreshold = low;
      const total = Math.ceil(blob.size / CHUNK);
      const t0 = Date.now();
      let index = 0;
      for (let offset = 0; offset < blob.size; offset += READ) {
        const block = new Uint8Array(await blob.slice(offset, offset + READ).arrayBuffer());
        for (let p = 0; p < block.length; p += CHUNK) {
          const payload = block.subarray(p, p + CHUNK);
          const message = new Uint8Array(8 + payload.length);
          const view = new DataView(message.buffer);
          view.setUint32(0, index, true);
          view.setUint32(4, total, true);
          message.set(payload, 8);
          up.send(message);
          index++;
          if (up.bufferedAmount > high) {
            await new Promise((resolve) => up.addEventListener("bufferedamountlow", resolve, { once: true }));
          }
        }
      }
      while (up.bufferedAmount > 0) await new Promise((resolve) => setTimeout(resolve, 2));
      return { t0, tSent: Date.now() };
    },
    { high, low },
  );
}

/** The protocol's upload path and the browser adapter, bundled for the page as `window.vidrtcBench`. */
async function benchBundle(): Promise<string> {
  const result = await build({
    stdin: {
      contents:
        'export { createChannelSink, createUploadStream } from "@vidrtc/protocol";\n' +
        'export { fromRTCDataChannel, VideoFileSource } from "@vidrtc/browser";\n',
      resolveDir: fileURLToPath(new URL(".", import.meta.url)),
      loader: "js",
    },
    bundle: true,
    minify: true,
    format: "iife",
    globalName: "vidrtcBench",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

/**
 * One upload of `window.__blob` into a second peer connection in the same page. Resolves with the
 * seconds from the first send until the receiver holds every wire byte.
 */
function localUpload(
  page: Page,
  kind: Run["kind"],
  marks: { high: number; low: number } | null,
  bare: { high: number; low: number },
) {
  return page.evaluate(
    async ({ kind, marks, bare }) => {
      const CHUNK = 49_152;
      const blob = window.__blob;
      const total = Math.ceil(blob.size / CHUNK);
      const wireBytes = blob.size + 8 * total;
      const a = new RTCPeerConnection();
      const b = new RTCPeerConnection();
      a.addEventListener("icecandidate", (e) => e.candidate && void b.addIceCandidate(e.candidate));
      b.addEventListener("icecandidate", (e) => e.candidate && void a.addIceCandidate(e.candidate));
      const dc = a.createDataChannel("video_upload", { ordered: true });
      let received = 0;
      let firstSend = 0;
      const finished = new Promise<number>((resolve) => {
        b.addEventListener("datachannel", (e) => {
          const ch = e.channel;
          ch.binaryType = "arraybuffer";
          ch.addEventListener("message", (m) => {
            received += (m.data as ArrayBuffer).byteLength;
            if (received >= wireBytes) resolve(performance.now());
          });
        });
      });
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription!);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription!);
      await new Promise<void>((resolve, reject) => {
        dc.addEventListener("open", () => resolve(), { once: true });
        setTimeout(() => reject(new Error("local channel did not open")), 20_000);
      });
      if (kind === "binding") {
        const { createChannelSink, createUploadStream, fromRTCDataChannel, VideoFileSource } =
          window.vidrtcBench;
        const source = await new VideoFileSource(blob).prepare();
        const channel = fromRTCDataChannel(dc, a);
        const origSend = channel.send;
        channel.send = (data) => {
          firstSend ||= performance.now();
          origSend(data);
        };
        await createUploadStream(source.stream(), source.size).pipeTo(
          createChannelSink(channel, marks ? { highWaterMark: marks.high, lowWaterMark: marks.low } : {}),
        );
      } else {
        const READ = 16 * CHUNK;
        dc.bufferedAmountLowThreshold = bare.low;
        let index = 0;
        for (let offset = 0; offset < blob.size; offset += READ) {
          const block = new Uint8Array(await blob.slice(offset, offset + READ).arrayBuffer());
          for (let p = 0; p < block.length; p += CHUNK) {
            const payload = block.subarray(p, p + CHUNK);
            const message = new Uint8Array(8 + payload.length);
            const view = new DataView(message.buffer);
            view.setUint32(0, index, true);
            view.setUint32(4, total, true);
            message.set(payload, 8);
            firstSend ||= performance.now();
            dc.send(message);
            index++;
            if (dc.bufferedAmount > bare.high) {
              await new Promise((resolve) =>
                dc.addEventListener("bufferedamountlow", resolve, { once: true }),
              );
            }
          }
        }
      }
      const end = await finished;
      a.close();
      b.close();
      return (end - firstSend) / 1000;
    },
    { kind, marks, bare },
  );
}

async function closeAll(page: Page, server: TestServer): Promise<void> {
  await page.evaluate(() => {
    for (const s of window.__sessions.splice(0)) s.close();
    for (const pc of window.__peers.splice(0)) pc.close();
  });
  await eventually(() => server.sessions === 0, 60_000, "server sessions did not end");
}

async function measure(
  page: Page,
  server: TestServer,
  kind: Run["kind"],
  size: number,
  opts: { high: number; low: number; bareHigh: number; bareLow: number; sinkGiven: boolean },
): Promise<Run> {
  server.events.length = 0;
  const upload =
    kind === "bare"
      ? bareUpload(page, opts.bareHigh, opts.bareLow)
      : bindingUpload(page, opts.sinkGiven ? { highWaterMark: opts.high, lowWaterMark: opts.low } : null);
  const complete = await server.waitFor("upload-complete", 600_000);
  const tEnd = Date.now();
  const { t0, tSent } = await upload;
  await closeAll(page, server);
  if (complete.bytes !== size)
    throw new Error(`${kind}: server got ${complete.bytes} bytes, expected ${size}`);
  const seconds = (tEnd - t0) / 1000;
  return {
    kind,
    seconds,
    mibPerSecond: size / MiB / seconds,
    handedOverSeconds: (tSent - t0) / 1000,
    serverSha256: complete.sha256,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  assertIsolatedNetwork();
  await ensureDemoBuilt();
  const mib = arg("mib", 256);
  const rounds = arg("rounds", 2);
  const sinkGiven = process.argv.includes("--high") || process.argv.includes("--low");
  const high = arg("high", 1024 * 1024);
  const low = arg("low", 256 * 1024);
  const bareHigh = arg("bare-high", 1024 * 1024);
  const bareLow = arg("bare-low", 256 * 1024);
  const size = Math.round(mib * MiB);
  const local =
    process.argv.includes("--receiver") &&
    process.argv[process.argv.indexOf("--receiver") + 1] === "chromium";

  const mp4 = new Uint8Array(await readFile((await tinyVideo()).path));
  const server = await startTestServer({ staticDir: DEMO_DIST });
  const chromium = await launchWebRtcChromium();
  try {
    const page = await chromium.newPage();
    await page.goto(`${server.url}/test.html`);
    await page.waitForFunction(() => typeof window.vidrtc === "object");
    await makeBlob(page, mp4, size);
    if (local) await page.addScriptTag({ content: await benchBundle() });

    const runs: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      // Alternate the order so neither side always runs on a warmer machine.
      const order: Run["kind"][] = r % 2 === 0 ? ["bare", "binding"] : ["binding", "bare"];
      for (const kind of order) {
        let run: Run;
        if (local) {
          const marks = sinkGiven ? { high, low } : null;
          const seconds = await localUpload(page, kind, marks, { high: bareHigh, low: bareLow });
          run = {
            kind,
            seconds,
            mibPerSecond: size / MiB / seconds,
            handedOverSeconds: seconds,
            serverSha256: "",
          };
        } else {
          run = await measure(page, server, kind, size, { high, low, bareHigh, bareLow, sinkGiven });
        }
        runs.push(run);
        console.error(`  round ${r + 1} ${kind.padEnd(7)} ${run.mibPerSecond.toFixed(1)} MiB/s`);
      }
    }
    const shas = new Set(runs.map((r) => r.serverSha256));
    if (shas.size !== 1) throw new Error("the server received different bytes in different runs");

    const bare = runs.filter((r) => r.kind === "bare");
    const binding = runs.filter((r) => r.kind === "binding");
    const bareMed = median(bare.map((r) => r.mibPerSecond));
    const bindMed = median(binding.map((r) => r.mibPerSecond));
    const ratio = bindMed / bareMed;
    const sinkText = sinkGiven ? `sink high ${high} / low ${low}` : "sink defaults";
    console.log(
      `\nBrowser upload into ${local ? "a second RTCPeerConnection in the page (no server)" : "@vidrtc/server"}: ${mib} MiB Blob made in the page, ${rounds} round(s), Chromium ${(await chromium.context.browser()?.version()) ?? ""}`,
    );
    console.log(`binding: ${sinkText}; bare loop: high ${bareHigh} / low ${bareLow} (bufferedamountlow)\n`);
    console.log("| run | MiB/s (median) | runs MiB/s | handed over (s, median) |");
    console.log("|---|---:|---|---:|");
    const row = (name: string, rs: Run[]) =>
      console.log(
        `| ${name} | ${median(rs.map((r) => r.mibPerSecond)).toFixed(1)} | ${rs.map((r) => r.mibPerSecond.toFixed(1)).join(", ")} | ${median(rs.map((r) => r.handedOverSeconds)).toFixed(2)} |`,
      );
    row("bare RTCDataChannel loop", bare);
    row("@vidrtc/browser", binding);
    console.log(`\nratio binding / bare: ${ratio.toFixed(3)} (target >= ${TARGET_RATIO})`);
    if (ratio < TARGET_RATIO) process.exitCode = 1;
  } finally {
    await chromium.close();
    await server.close();
  }
}

// Run only as a script (transport.ts imports makeBlob).
if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
