/**
 * @vidrtc/browser in real Chromium (Debian's /usr/bin/chromium through playwright-core) against an
 * in-process @vidrtc/server that also serves the built demo bundle; the demo-page test runs the
 * page that @vidrtc/server ships, served by `vidrtc-server --demo`. Run inside an isolated network
 * namespace: `bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e test browser`.
 */
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type * as Vidrtc from "@vidrtc/browser";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  DEMO_DIST,
  ensureDemoBuilt,
  installWireTap,
  launchWebRtcChromium,
  readWireTap,
  type TappedMessage,
} from "./support/browser-harness.js";
import type { ChromiumSession } from "./support/chromium.js";
import { frameCount, motionVideo, sha256File } from "./support/fixtures.js";
import {
  type CliServer,
  eventually,
  startCliServer,
  startTestServer,
  type TestServer,
} from "./support/server.js";

declare global {
  interface Window {
    vidrtc: typeof Vidrtc;
  }
}

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));

let chromium: ChromiumSession;
let server: TestServer | null = null;
let cliServer: CliServer | null = null;
let page: Page | null = null;
const consoleLines: string[] = [];

beforeAll(async () => {
  await ensureDemoBuilt();
  chromium = await launchWebRtcChromium({ onConsole: (line) => consoleLines.push(line) });
});

afterAll(async () => {
  await chromium?.close();
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail" && consoleLines.length > 0) {
    console.log(`[browser console]\n${consoleLines.slice(-40).join("\n")}`);
  }
  consoleLines.length = 0;
  await page?.close().catch(() => {});
  page = null;
  await server?.close();
  server = null;
  await cliServer?.close();
  cliServer = null;
});

/** A fresh server serving the demo bundle, and a page on its test page (window.vidrtc loaded). */
async function open(path = "/test.html", tap = true): Promise<{ server: TestServer; page: Page }> {
  server = await startTestServer({ staticDir: DEMO_DIST });
  page = await chromium.newPage();
  if (tap) await installWireTap(page);
  await page.goto(`${server.url}${path}`);
  if (path === "/test.html") await page.waitForFunction(() => typeof window.vidrtc === "object");
  return { server, page };
}

/** `vidrtc-server --demo` as a user runs it (a child process), and a page on its demo page at `/`. */
async function openDemo(): Promise<{ server: CliServer; page: Page }> {
  cliServer = await startCliServer(["--demo"]);
  page = await chromium.newPage();
  await page.goto(`${cliServer.url}/`);
  return { server: cliServer, page };
}

describe("@vidrtc/browser in Chromium", () => {
  it("uploads a generated video byte-exact, gets one gzip-decoded result per frame", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15, codec: "rawvideo" });
    const frames = await frameCount(video.path);
    const sha256 = await sha256File(video.path);
    expect(video.bytes).toBeGreaterThan(20 * 49_152); // many upload chunks, not one
    const { server, page } = await open();
    await page.setInputFiles("#file", video.path);

    const out = await page.evaluate(async () => {
      const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      const session = await client.webrtc.stream({
        source: file,
        workflow: "frame-stats",
        dataOutput: ["*"],
      });
      const results: Array<{
        frameId: number;
        metaId: number | null;
        brightness: unknown;
        errors: string[];
      }> = [];
      const summary = await session.run({
        onData: (r) => {
          const stats = r.outputs.stats as { brightness?: unknown } | undefined;
          results.push({
            frameId: r.frameId,
            metaId: r.metadata?.frame_id ?? null,
            brightness: stats?.brightness,
            errors: r.errors,
          });
        },
      });
      const uploaded = await session.uploaded;
      return { results, summary, uploaded, size: file.size };
    });

    const complete = await server.waitFor("upload-complete");
    expect(complete.bytes).toBe(video.bytes);
    expect(complete.sha256).toBe(sha256);
    expect(out.uploaded.bytes).toBe(video.bytes);

    expect(out.results).toHaveLength(frames);
    expect(out.results.map((r) => r.frameId)).toEqual(Array.from({ length: frames }, (_, i) => i + 1));
    for (const r of out.results) {
      expect(r.metaId).toBe(r.frameId);
      expect(typeof r.brightness).toBe("number");
      expect(r.errors).toEqual([]);
    }
    expect(out.summary.framesProcessed).toBe(frames);
    expect(out.summary.resultsReceived).toBe(frames);

    // The server gzipped every data result (data_output ["*"]); the page decoded them all above.
    const wire = await readWireTap(page);
    const firstChunks = wire.filter((m) => m.label === "inference" && m.dir === "in" && m.chunkIndex === 0);
    const dataFrames = firstChunks.filter((m) => (m.frameId ?? 0) <= frames);
    expect(dataFrames).toHaveLength(frames);
    expect(dataFrames.every((m) => m.gzip)).toBe(true);
  });

  it("paces the server with ACKs: with readAhead 0 and a slow consumer the server never runs more than one frame ahead", async () => {
    const video = await motionVideo({ seconds: 3, fps: 15 }); // 45 frames
    const { page } = await open();
    await page.setInputFiles("#file", video.path);
    const out = await page.evaluate(async () => {
      const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      const session = await client.webrtc.stream({
        source: file,
        workflow: "frame-stats",
        dataOutput: ["*"],
        // Strict ACK-after-consume: the server may run at most one frame ahead of the consumer.
        readAhead: 0,
      });
      const handled: Array<{ frameId: number; start: number; end: number }> = [];
      await session.run({
        onData: async (r) => {
          const start = performance.now();
          // Frame 1 is handled at once so pacing (which starts with the first ACK) engages early.
          if (r.frameId > 1) await new Promise((resolve) => setTimeout(resolve, 100));
          handled.push({ frameId: r.frameId, start, end: performance.now() });
        },
      });
      return { handled };
    });
    const frames = video.frames;
    expect(out.handled).toHaveLength(frames);

    const wire = await readWireTap(page);
    const acks = wire
      .filter(
        (m): m is TappedMessage & { text: string } => m.dir === "out" && m.label === "inference" && !!m.text,
      )
      .map((m) => ({ t: m.t, n: (JSON.parse(m.text) as { ack: number }).ack }));
    expect(acks.length).toBeGreaterThan(frames / 2);
    // ACKs are cumulative and increasing.
    for (let i = 1; i < acks.length; i++) expect(acks[i]!.n).toBeGreaterThan(acks[i - 1]!.n);
    const arrivals = wire.filter(
      (m) => m.label === "inference" && m.dir === "in" && m.chunkIndex === 0 && (m.frameId ?? 0) <= frames,
    );
    expect(arrivals).toHaveLength(frames);

    // Once the server can have seen the first ACK, frame k may only arrive after ACK k-1 was sent.
    const firstAck = acks[0]!.t;
    const graceMs = 250;
    const ackedBefore = (t: number) => acks.filter((a) => a.t <= t).reduce((max, a) => Math.max(max, a.n), 0);
    const paced = arrivals.filter((m) => m.t > firstAck + graceMs);
    const violations = paced.filter((m) => m.frameId! > ackedBefore(m.t) + 1);
    expect(violations.map((m) => ({ frameId: m.frameId, ackedBefore: ackedBefore(m.t) }))).toEqual([]);
    // Not vacuous: most frames arrived under pacing, at the consumer's speed.
    expect(paced.length).toBeGreaterThanOrEqual(frames - 10);
    const span = arrivals.at(-1)!.t - arrivals[0]!.t;
    expect(span).toBeGreaterThan((frames - 10) * 100 * 0.9);
  });

  it("read-ahead credit from frame 1 and session.reconfigure through the shared session", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 }); // 30 frames
    const { page } = await open();
    await page.setInputFiles("#file", video.path);
    const out = await page.evaluate(async () => {
      const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      const session = await client.webrtc.stream({
        source: file,
        workflow: "motion",
        dataOutput: ["motion_score"],
        readAhead: { frames: 3 },
      });
      const keys: string[][] = [];
      await session.run({
        onData: async (r) => {
          keys.push(Object.keys(r.outputs).sort());
          if (r.frameId === 5) session.reconfigure({ dataOutput: ["predictions"] });
          await new Promise((resolve) => setTimeout(resolve, 20));
        },
      });
      return { keys };
    });
    expect(out.keys).toHaveLength(video.frames);
    for (const k of out.keys.slice(0, 5)) expect(k).toEqual(["motion_score"]);
    for (const k of out.keys.slice(5 + 3 + 1)) expect(k).toEqual(["predictions"]);
    const wire = await readWireTap(page);
    const sent = wire
      .filter(
        (m): m is TappedMessage & { text: string } => m.dir === "out" && m.label === "inference" && !!m.text,
      )
      .map((m) => JSON.parse(m.text) as Record<string, unknown>);
    // The first control message is the initial credit (frames - 1), before any result arrived.
    expect(sent[0]).toEqual({ ack: 2 });
    expect(sent).toContainEqual({ stream_output: null, data_output: ["predictions"] });
  });

  it("shows the processed video: the <video> decodes frames from remoteStream()", async () => {
    const video = await motionVideo({ seconds: 4, fps: 15 }); // 60 frames
    const { page } = await open();
    await page.setInputFiles("#file", video.path);
    const out = await page.evaluate(async () => {
      const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
      const el = document.getElementById("video") as HTMLVideoElement;
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      const session = await client.webrtc.stream({
        source: file,
        workflow: "motion",
        dataOutput: ["predictions"],
        streamOutput: ["annotated"],
      });
      session.remoteStream().then((stream) => {
        el.srcObject = stream;
        void el.play().catch(() => {});
      });
      let framesDecoded = 0;
      let videoWidth = 0;
      let videoHeight = 0;
      let results = 0;
      const sample = async () => {
        const stats = await session.peerConnection.getStats();
        stats.forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
          if (s.type === "inbound-rtp" && s.kind === "video")
            framesDecoded = Math.max(framesDecoded, s.framesDecoded ?? 0);
        });
        videoWidth = Math.max(videoWidth, el.videoWidth);
        videoHeight = Math.max(videoHeight, el.videoHeight);
      };
      await session.run({
        onData: async () => {
          results += 1;
          await new Promise((resolve) => setTimeout(resolve, 30)); // give the video time to play
          await sample();
        },
      });
      return { framesDecoded, videoWidth, videoHeight, results };
    });
    expect(out.results).toBe(video.frames);
    expect(out.framesDecoded).toBeGreaterThan(0);
    expect(out.videoWidth).toBe(video.width);
    expect(out.videoHeight).toBe(video.height);
  });

  it("cancels mid-upload: the session rejects with ABORTED and the server cleans up", async () => {
    const { server, page } = await open();
    const out = await page.evaluate(async () => {
      // 96 MiB made in the page: far more than can be sent before the abort.
      const blob = new Blob(Array.from({ length: 24 }, () => new Uint8Array(4 * 1024 * 1024)));
      const controller = new AbortController();
      const client = new window.vidrtc.InferenceClient({ apiUrl: location.origin });
      let abortedAt = 0;
      try {
        const session = await client.webrtc.stream({
          source: blob,
          workflow: "frame-stats",
          dataOutput: ["*"],
          signal: controller.signal,
          onUploadProgress: (p) => {
            if (!abortedAt && p.bytesUploaded >= 4 * 1024 * 1024) {
              abortedAt = p.bytesUploaded;
              controller.abort();
            }
          },
        });
        await session.done;
        return { ok: true as const, abortedAt };
      } catch (error) {
        const e = error as { code?: string; name?: string; message?: string };
        return {
          ok: false as const,
          code: e.code,
          name: e.name,
          message: e.message,
          abortedAt,
          size: blob.size,
        };
      }
    });
    expect(out).toMatchObject({ ok: false, code: "ABORTED", name: "VidrtcError" });
    expect(out.abortedAt).toBeGreaterThan(0);
    expect(out.abortedAt).toBeLessThan(96 * 1024 * 1024);
    await server.waitFor("session-start");
    await eventually(() => server.sessions === 0, 30_000, "the server still holds the cancelled session");
    await eventually(
      async () => (await server.tempFiles()).length === 0,
      10_000,
      "the server left temp files",
    );
    expect(server.events.some((e) => e.type === "upload-complete")).toBe(false);
  });

  it("runs the demo page shipped in @vidrtc/server (vidrtc-server --demo): file in, progress to 100 %, results listed, boxes drawn; saves a screenshot", async () => {
    const video = await motionVideo({ seconds: 4, fps: 15, size: "640x360" });
    const { page } = await openDemo();
    await page.setViewportSize({ width: 1280, height: 860 });
    await expect.poll(() => page.getAttribute("#server-status", "data-ok")).toBe("yes");
    await page.setInputFiles("#file", video.path);
    await page.selectOption("#workflow", "motion");
    await page.click("#start");
    await page.waitForFunction(
      () => Number(document.querySelectorAll("#results li").length) >= 20,
      undefined,
      {
        timeout: 60_000,
      },
    );
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}demo-page-running.png` });
    await page.waitForFunction(
      () => ["done", "error"].includes(document.body.dataset.state ?? ""),
      undefined,
      {
        timeout: 120_000,
      },
    );
    const error = await page.textContent("#error");
    expect(await page.getAttribute("body", "data-state"), error ?? "").toBe("done");
    expect(await page.getAttribute("#progress", "aria-valuenow")).toBe("100");
    expect(await page.textContent("#progress-pct")).toBe("100 %");
    expect(await page.locator("#results li").count()).toBe(video.frames);
    expect(await page.textContent("#results li:last-child .fid")).toBe(`#${video.frames}`);
    const painted = await page.evaluate(() => {
      const canvas = document.getElementById("overlay") as HTMLCanvasElement;
      const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n;
    });
    expect(painted).toBeGreaterThan(100);
    await page.screenshot({ path: `${ARTIFACTS}demo-page.png`, fullPage: true });
  });
});
