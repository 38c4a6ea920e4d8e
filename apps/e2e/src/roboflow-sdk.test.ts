/**
 * Interop: Roboflow's own browser SDK (`@roboflow/inference-sdk` 0.1.13, `webrtc.useVideoFile`)
 * as a client of @vidrtc/server, in real Chromium, inside an isolated network namespace:
 * `bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e exec vitest run src/roboflow-sdk.test.ts`.
 *
 * The SDK is bundled unmodified with esbuild into a temp directory the server also serves. What
 * the SDK needs from its environment (read from its dist):
 * - `connectors.withApiKey(key, { serverUrl })` posts to `{serverUrl}/initialise_webrtc_worker`;
 *   it fetches TURN config from api.roboflow.com only for Roboflow's serverless URLs, so with our
 *   URL it makes no other request (asserted below).
 * - With no `iceServers` it uses Google's STUN server; it waits up to 6 s for ICE gathering to
 *   complete and rejects if that time runs out without a server-reflexive candidate. So the
 *   test gives it a loopback STUN responder (./support/stun.ts) as `wrtcParams.iceServers`,
 *   which lets gathering complete at once. Chromium drops the reflexive candidate (it equals the
 *   host one), so no `srflx` ever appears; what matters is that gathering completes within 6 s.
 *   (`iceServers: []` works too: no STUN at all. The SDK also sends its ICE servers as
 *   `webrtc_config`; our server ignores client ICE servers by default.)
 * - It cannot read gzip, so the server runs with `gzip: false`.
 * - It always adds a recv-only video transceiver; `streamOutputNames: []` asks for no video.
 */
import { createSocket } from "node:dgram";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as RoboflowSdk from "@roboflow/inference-sdk";
import { build } from "esbuild";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { installWireTap, readWireTap, type TappedMessage } from "./support/browser-harness.js";
import { type ChromiumSession, launchChromium } from "./support/chromium.js";
import { motionVideo, type VideoFixture } from "./support/fixtures.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";
import { bindingResponse, type StunResponder, startStunResponder } from "./support/stun.js";

declare global {
  interface Window {
    rfSdk: typeof RoboflowSdk;
  }
}

/** apps/e2e: where `@roboflow/inference-sdk` resolves from. */
const E2E_DIR = fileURLToPath(new URL("../", import.meta.url));
const SDK_VERSION = "0.1.13";

const PAGE_HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8"><title>Roboflow SDK interop</title></head>
  <body><input id="file" type="file"><script src="rf-sdk.js"></script></body>
</html>
`;

/** What the page reports after one `useVideoFile` session. */
interface PageRun {
  /** Every object the SDK handed to `onData`, in order. */
  messages: Array<{
    serialized_output_data?: Record<string, unknown> | null;
    video_metadata?: { frame_id?: number } | null;
    errors?: string[];
    processing_complete?: boolean;
    termination_reason?: string | null;
  }>;
  /** `onUploadProgress(bytes, total)` calls. */
  progress: Array<[number, number]>;
  /** Types of the ICE candidates gathered (`null` marks the end of gathering). */
  candidates: Array<string | null>;
  /** ms from `useVideoFile()` to its promise resolving (it waits for ICE and `connected`). */
  connectMs: number;
  /** The peer connection's state when `processing_complete` arrived. */
  stateAtComplete: string;
  /** `onComplete` (fires only on a result-channel `close`) had fired by then. */
  onCompleteFired: boolean;
  /** The SDK's `dataChannel.label` / `uploadChannel.label`. */
  labels: [string, string | undefined];
}

let staticDir: string;
let chromium: ChromiumSession;
let stun: StunResponder;
let server: TestServer | null = null;
let page: Page | null = null;
const consoleLines: string[] = [];

beforeAll(async () => {
  staticDir = await mkdtemp(join(tmpdir(), "vidrtc-rf-sdk-"));
  // The package exactly as published: no shims, no defines.
  await build({
    stdin: { contents: 'export * from "@roboflow/inference-sdk";', resolveDir: E2E_DIR, loader: "js" },
    bundle: true,
    format: "iife",
    globalName: "rfSdk",
    platform: "browser",
    target: "es2022",
    outfile: join(staticDir, "rf-sdk.js"),
    logLevel: "error",
  });
  await writeFile(join(staticDir, "index.html"), PAGE_HTML);
  stun = await startStunResponder();
  chromium = await launchChromium({ onConsole: (line) => consoleLines.push(line) });
});

afterAll(async () => {
  await chromium?.close();
  await stun?.close();
  if (staticDir) await rm(staticDir, { recursive: true, force: true });
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
});

/** A fresh server (no gzip) serving the SDK page, a page on it with `video` in its file input. */
async function openSdkPage(video: VideoFixture): Promise<{ server: TestServer; page: Page; urls: string[] }> {
  server = await startTestServer({ gzip: false, staticDir });
  await chromium.allowHostCandidates(server.url);
  page = await chromium.newPage();
  const urls: string[] = [];
  page.on("request", (request) => urls.push(request.url()));
  await installWireTap(page);
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => typeof window.rfSdk?.webrtc?.useVideoFile === "function");
  await page.setInputFiles("#file", video.path);
  return { server, page, urls };
}

/**
 * Runs `webrtc.useVideoFile` in the page on the file input's file, until `processing_complete`
 * reaches `onData` (bounded), then calls the SDK's `cleanup()` (closes the peer connection).
 */
function runUseVideoFile(
  page: Page,
  args: { stunUrl: string; realtimeProcessing?: boolean; timeoutMs: number },
): Promise<PageRun> {
  return page.evaluate(async ({ stunUrl, realtimeProcessing, timeoutMs }) => {
    const { connectors, webrtc } = window.rfSdk;
    const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
    const run: PageRun = {
      messages: [],
      progress: [],
      candidates: [],
      connectMs: 0,
      stateAtComplete: "",
      onCompleteFired: false,
      labels: ["", undefined],
    };
    let complete!: () => void;
    const completed = new Promise<void>((resolve) => {
      complete = resolve;
    });
    const connector = connectors.withApiKey("vidrtc-interop-test", { serverUrl: location.origin });
    const started = performance.now();
    const connection = await webrtc.useVideoFile({
      file,
      connector,
      wrtcParams: {
        workspaceName: "local",
        workflowId: "frame-stats",
        imageInputName: "image",
        dataOutputNames: ["stats"],
        streamOutputNames: [],
        iceServers: [{ urls: [stunUrl] }],
        ...(realtimeProcessing === undefined ? {} : { realtimeProcessing }),
      },
      onData: (data) => {
        run.messages.push(JSON.parse(JSON.stringify(data)) as PageRun["messages"][number]);
        if (data.processing_complete) complete();
      },
      onUploadProgress: (bytes, total) => run.progress.push([bytes, total]),
      onComplete: () => {
        run.onCompleteFired = true;
      },
      hooks: {
        onPeerConnectionCreated: (pc) => {
          pc.addEventListener("icecandidate", (e) => run.candidates.push(e.candidate?.type ?? null));
        },
      },
    });
    run.connectMs = performance.now() - started;
    run.labels = [connection.dataChannel.label, connection.uploadChannel?.label];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        completed,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no processing_complete within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      run.stateAtComplete = connection.peerConnection.connectionState;
      await connection.cleanup();
    }
    return run;
  }, args);
}

/** The ACKs the page sent on `inference`, in order. */
function sentAcks(wire: TappedMessage[]): number[] {
  return wire
    .filter((m) => m.dir === "out" && m.label === "inference" && typeof m.text === "string")
    .map((m) => (JSON.parse(m.text!) as { ack: number }).ack);
}

describe(`@roboflow/inference-sdk ${SDK_VERSION} (browser) against @vidrtc/server`, () => {
  it("webrtc.useVideoFile in batch mode: byte-exact upload, one result per frame, ACK-paced, processing_complete, cleanup", async () => {
    // Uncompressed 320x240: ~3.5 MB, 71 upload chunks, so the SDK's own backpressure loop runs.
    const video = await motionVideo({ seconds: 2, fps: 15, codec: "rawvideo" });
    const frames = video.frames;
    const { server, page, urls } = await openSdkPage(video);
    const stunBefore = stun.requests;

    const run = await runUseVideoFile(page, {
      stunUrl: stun.url,
      realtimeProcessing: false,
      timeoutMs: 45_000,
    });

    // Signalling: the SDK talked to our server only; our server accepted its request as sent.
    const origin = new URL(server.url).origin;
    expect(urls.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    expect(urls).toContain(`${origin}/initialise_webrtc_worker`);
    const start = await server.waitFor("session-start", 1_000);
    expect(start).toMatchObject({ workflowId: "frame-stats", realtime: false, video: false });
    expect(run.labels).toEqual(["inference", "video_upload"]);
    // ICE: gathering used the loopback STUN responder and finished without the 6 s timeout.
    expect(stun.requests).toBeGreaterThan(stunBefore);
    expect(run.candidates).toContain("host");
    expect(run.candidates.at(-1)).toBeNull();
    expect(run.connectMs).toBeLessThan(6_000);

    // Upload: byte-exact, progress in bytes up to the file size.
    const uploaded = await server.waitFor("upload-complete", 1_000);
    expect(uploaded.bytes).toBe(video.bytes);
    expect(uploaded.sha256).toBe(video.sha256);
    expect(run.progress.length).toBe(Math.ceil(video.bytes / 49_152));
    expect(run.progress.at(-1)).toEqual([video.bytes, video.bytes]);

    // Results: every frame once, in order, as plain JSON the SDK could parse, then completion.
    const data = run.messages.filter((m) => !m.processing_complete);
    expect(data.map((m) => m.video_metadata?.frame_id)).toEqual(
      Array.from({ length: frames }, (_, i) => i + 1),
    );
    for (const m of data) {
      expect(m.errors).toEqual([]);
      const stats = m.serialized_output_data?.stats as { brightness?: unknown } | undefined;
      expect(typeof stats?.brightness).toBe("number");
    }
    const done = run.messages.at(-1)!;
    expect(done.processing_complete).toBe(true);
    expect(done.termination_reason ?? null).toBeNull();
    expect(done.video_metadata?.frame_id).toBe(frames);
    expect(run.messages.filter((m) => m.processing_complete)).toHaveLength(1);
    expect(run.stateAtComplete).toBe("connected");
    // The server leaves the channel open after processing_complete (like Roboflow's), so the
    // SDK's onComplete (tied to the channel's close) has not fired: the SDK's documented quirk.
    expect(run.onCompleteFired).toBe(false);
    const processed = await server.waitFor("processing-complete", 1_000);
    expect(processed).toMatchObject({ frames, dropped: 0, terminationReason: null });

    // Pacing: the SDK ACKed every frame (and the completion message, N+1); the server saw them.
    const wire = await readWireTap(page);
    const acks = sentAcks(wire);
    expect(acks.slice(0, frames)).toEqual(Array.from({ length: frames }, (_, i) => i + 1));
    expect(acks.at(-1)).toBe(frames + 1);
    expect(wire.filter((m) => m.dir === "in" && m.label === "inference" && m.gzip)).toEqual([]);
    const sent = server.events.filter((e) => e.type === "frame-sent");
    expect(sent).toHaveLength(frames);
    expect(sent.some((e) => e.lastAck > 0)).toBe(true);

    // Cleanup: the SDK's cleanup() closed the peer connection; the server ends the session
    // at once (not after its own 30 s linger) and leaves no file behind.
    const end = await server.waitFor("session-end", 5_000);
    expect(end.sessionId).toBe(start.sessionId);
    await eventually(() => server.sessions === 0, 5_000, "the server still holds the session");
    await eventually(async () => (await server.tempFiles()).length === 0, 5_000, "temp files left");
    expect(server.events.filter((e) => e.type === "error")).toEqual([]);
  });

  it("webrtc.useVideoFile with the SDK's defaults (realtime processing): completes, every frame accounted for", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 }); // 30 frames, H.264, one chunk
    const { server, page } = await openSdkPage(video);
    const run = await runUseVideoFile(page, { stunUrl: stun.url, timeoutMs: 45_000 });

    const start = await server.waitFor("session-start", 1_000);
    expect(start.realtime).toBe(true); // the SDK sends webrtc_realtime_processing: true for files
    const uploaded = await server.waitFor("upload-complete", 1_000);
    expect(uploaded.sha256).toBe(video.sha256);
    const processed = await server.waitFor("processing-complete", 1_000);
    expect(processed.frames + processed.dropped).toBe(video.frames);

    const data = run.messages.filter((m) => !m.processing_complete);
    expect(data).toHaveLength(processed.frames);
    const ids = data.map((m) => m.video_metadata!.frame_id!);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(run.messages.at(-1)?.processing_complete).toBe(true);
    // No ACKs in realtime mode.
    expect(sentAcks(await readWireTap(page))).toEqual([]);

    await server.waitFor("session-end", 5_000);
    await eventually(() => server.sessions === 0, 5_000, "the server still holds the session");
    await eventually(async () => (await server.tempFiles()).length === 0, 5_000, "temp files left");
  });

  it("documents the SDK's ICE precondition: with a STUN server that never answers it gives up after 6 s, before signalling", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 });
    const { server, page, urls } = await openSdkPage(video);
    const silent = createSocket("udp4"); // receives STUN requests, never answers
    let received = 0;
    silent.on("message", () => received++);
    try {
      await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
      const out = await page.evaluate(async (stunUrl) => {
        const { connectors, webrtc } = window.rfSdk;
        const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
        const started = performance.now();
        try {
          const connection = await webrtc.useVideoFile({
            file,
            connector: connectors.withApiKey("vidrtc-interop-test", { serverUrl: location.origin }),
            wrtcParams: {
              workflowId: "frame-stats",
              workspaceName: "local",
              iceServers: [{ urls: [stunUrl] }],
            },
          });
          await connection.cleanup();
          return { error: null, ms: performance.now() - started };
        } catch (error) {
          return { error: String(error), ms: performance.now() - started };
        }
      }, `stun:127.0.0.1:${silent.address().port}`);
      expect(received).toBeGreaterThan(0);
      expect(out.error).toMatch(/ICE gathering timeout without srflx candidate/);
      expect(out.ms).toBeGreaterThanOrEqual(5_900);
      expect(urls.some((u) => u.endsWith("/initialise_webrtc_worker"))).toBe(false);
      expect(server.events).toEqual([]);
    } finally {
      silent.close();
    }
  });
});

describe("loopback STUN responder (support/stun.ts)", () => {
  it("answers a Binding Request with the sender's address in XOR-MAPPED-ADDRESS and a valid FINGERPRINT", async () => {
    const client = createSocket("udp4");
    try {
      await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));
      const ownPort = client.address().port;
      const txid = Buffer.from("0123456789ab", "latin1");
      const request = Buffer.alloc(20);
      request.writeUInt16BE(0x0001, 0);
      request.writeUInt32BE(0x2112a442, 4);
      txid.copy(request, 8);

      const reply = new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no STUN reply within 2 s")), 2_000);
        client.once("message", (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
      const before = stun.requests;
      client.send(Buffer.from("not stun"), stun.port, "127.0.0.1"); // ignored
      client.send(request, stun.port, "127.0.0.1");
      const msg = await reply;
      expect(stun.requests).toBe(before + 1);

      expect(msg.readUInt16BE(0)).toBe(0x0101);
      expect(msg.readUInt16BE(2)).toBe(msg.length - 20);
      expect(msg.readUInt32BE(4)).toBe(0x2112a442);
      expect(msg.subarray(8, 20).equals(txid)).toBe(true);
      expect(msg.readUInt16BE(20)).toBe(0x0020);
      expect(msg.readUInt8(25)).toBe(1);
      expect(msg.readUInt16BE(26) ^ 0x2112).toBe(ownPort);
      const ip = (msg.readUInt32BE(28) ^ 0x2112a442) >>> 0;
      expect([ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".")).toBe("127.0.0.1");
      expect(msg.readUInt16BE(32)).toBe(0x8028);
    } finally {
      client.close();
    }
  });

  it("ignores what is not a Binding Request", () => {
    const from = { address: "127.0.0.1", port: 5000 };
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0);
    request.writeUInt32BE(0x2112a442, 4);
    expect(bindingResponse(request, from)).not.toBeNull();
    const response = Buffer.from(request);
    response.writeUInt16BE(0x0101, 0);
    expect(bindingResponse(response, from)).toBeNull(); // a response, not a request
    const classic = Buffer.from(request);
    classic.writeUInt32BE(0, 4);
    expect(bindingResponse(classic, from)).toBeNull(); // RFC 3489 (no magic cookie)
    expect(bindingResponse(request.subarray(0, 19), from)).toBeNull();
    expect(bindingResponse(request, { address: "::1", port: 5000 })).toBeNull();
  });
});
