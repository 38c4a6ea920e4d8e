/**
 * @vidrtc/server driven over real werift WebRTC on 127.0.0.1 (inside a network namespace: see
 * setup/global.ts) by a raw client built from the protocol pieces (support/raw-client.ts), so
 * that malformed uploads can be sent too. Checks PROTOCOL.md §2–§7 from the client's side:
 * byte-exact uploads, result framing, gzip, ACK pacing, upload validation, idle timeout, video
 * back, concurrency, HTTP errors, and that every session ends with its temp files removed.
 */
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordVideoToWebm } from "@vidrtc/node";
import { UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  exactMultipleFile,
  type FileFixture,
  frameCount,
  largeVideo,
  motionVideo,
  randomFile,
  tinyVideo,
} from "./support/fixtures.js";
import { initialiseBody } from "./support/http.js";
import { RawClient, type RawClientOptions, type ReceivedResult } from "./support/raw-client.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const MiB = 1024 * 1024;

/** An upload message with any header, for malformed cases (`frameUploadChunk` refuses bad ones). */
function rawChunk(index: number, total: number, payload: Uint8Array | number): Uint8Array {
  const body = typeof payload === "number" ? new Uint8Array(payload).fill(0x42) : payload;
  const message = new Uint8Array(UPLOAD_HEADER_SIZE + body.byteLength);
  const view = new DataView(message.buffer);
  view.setUint32(0, index, true);
  view.setUint32(4, total, true);
  message.set(body, UPLOAD_HEADER_SIZE);
  return message;
}

/** Server log lines of the current test file (the tail is shown when a cleanup check fails). */
const serverLog: string[] = [];
const logger = {
  info: (line: string) => serverLog.push(`info  ${line}`),
  error: (line: string) => serverLog.push(`error ${line}`),
  debug: (line: string) => serverLog.push(`debug ${line}`),
};

/** Waits until the server has no session and its temp directory is empty. */
async function expectCleanedUp(server: TestServer, timeoutMs = 15_000): Promise<void> {
  try {
    await eventually(
      async () => server.sessions === 0 && (await server.tempFiles()).length === 0,
      timeoutMs,
      "server sessions back to 0 and temp dir empty",
    );
  } catch (error) {
    const files = await server.tempFiles();
    throw new Error(
      `${(error as Error).message} (sessions ${server.sessions}, temp files ${JSON.stringify(files)}); server log tail:\n${serverLog.slice(-25).join("\n")}`,
    );
  }
  expect(server.sessions).toBe(0);
  expect(await server.tempFiles()).toEqual([]);
}

type UploadComplete = Extract<TestServer["events"][number], { type: "upload-complete" }>;

/** The first `upload-complete` server event after `events[since]` (one session at a time). */
async function uploadEventSince(
  server: TestServer,
  since: number,
  timeoutMs = 30_000,
): Promise<UploadComplete> {
  const find = () =>
    server.events.slice(since).find((e): e is UploadComplete => e.type === "upload-complete");
  await eventually(() => find() !== undefined, timeoutMs, "an upload-complete server event");
  return find() as UploadComplete;
}

/** Connects, uploads `file`, waits for processing_complete; returns the client (still open). */
async function uploadAndComplete(
  server: TestServer,
  file: FileFixture,
  options: Omit<RawClientOptions, "url"> = {},
  completeTimeoutMs = 60_000,
): Promise<{ client: RawClient; complete: ReceivedResult; since: number }> {
  const since = server.events.length;
  const client = await RawClient.connect({ url: server.url, ...options });
  try {
    await client.uploadFile(file.path);
    const complete = await client.waitComplete(completeTimeoutMs);
    await client.consumerIdle();
    expect(client.protocolErrors).toEqual([]);
    return { client, complete, since };
  } catch (error) {
    await client.close();
    throw error;
  }
}

/** The checks every successful batch session must pass. */
function expectWellFormedRun(client: RawClient, frames: number): void {
  const data = client.frames;
  expect(data).toHaveLength(frames);
  expect(data.map((r) => r.headerFrameId)).toEqual(Array.from({ length: frames }, (_, i) => i + 1));
  for (const r of data) {
    expect(r.output.video_metadata?.frame_id).toBe(r.headerFrameId);
    expect(r.output.errors).toEqual([]);
    expect(r.output.processing_complete).toBe(false);
  }
  const last = client.results.at(-1);
  expect(last?.output.processing_complete).toBe(true);
  // processing_complete: header N+1, metadata N, never gzipped, sent once.
  expect(last?.headerFrameId).toBe(frames + 1);
  expect(last?.output.video_metadata?.frame_id).toBe(frames);
  expect(last?.gzip).toBe(false);
  expect(last?.head[0]).toBe(0x7b); // '{'
  expect(last?.output.termination_reason).toBeNull();
  expect(client.results.filter((r) => r.output.processing_complete)).toHaveLength(1);
}

describe("@vidrtc/server with a raw werift client", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ idleTimeoutMs: 20_000, lingerMs: 5_000, logger });
  });
  afterAll(async () => {
    await server?.close();
  });

  describe("uploads and results", () => {
    it("a tiny video: byte-exact, one gzipped result per ffprobe frame, processing_complete N+1/N", async () => {
      const video = await tinyVideo();
      const frames = await frameCount(video.path);
      const { client, since } = await uploadAndComplete(server, video, {
        request: { workflow: "motion", dataOutput: ["*"] },
      });
      try {
        const upload = await uploadEventSince(server, since);
        expect(upload.sha256).toBe(video.sha256);
        expect(upload.bytes).toBe(video.bytes);
        expectWellFormedRun(client, frames);
        for (const r of client.frames) {
          // data_output ["*"] with gzip on (the default): every data message is gzip.
          expect(r.gzip).toBe(true);
          expect(r.head.slice(0, 2)).toEqual([0x1f, 0x8b]);
          expect(r.output.serialized_output_data).toHaveProperty("predictions");
          expect(r.output.serialized_output_data).toHaveProperty("motion_score");
          // "*" means all non-image outputs: the annotated image is not included.
          expect(r.output.serialized_output_data).not.toHaveProperty("annotated");
        }
        const done = await server.waitFor(
          "processing-complete",
          5_000,
          (e) => e.sessionId === upload.sessionId,
        );
        expect(done.frames).toBe(frames);
      } finally {
        await client.close();
      }
      await expectCleanedUp(server);
    });

    it("an exact multiple of 48 KiB is stored byte-exact", async () => {
      const file = await exactMultipleFile();
      expect(file.bytes % UPLOAD_CHUNK_SIZE).toBe(0);
      const since = server.events.length;
      const client = await RawClient.connect({ url: server.url });
      try {
        // 1-byte keepalives are echoed unchanged and are not chunks, before and mid-upload. (No
        // 0-byte one: werift sends an empty message as a DATA chunk without user data, which the
        // receiving werift drops, and the ordered stream then stalls behind the missing sequence number.)
        client.sendRaw(new Uint8Array([0x70]));
        await client.uploadFile(file.path, { stopAfterChunks: 2 });
        client.sendRaw(new Uint8Array([0x01]));
        await eventually(() => client.echoes.length === 2, 5_000, "2 keepalive echoes");
        expect(client.echoes.map((e) => [...e])).toEqual([[0x70], [0x01]]);
        await client.uploadFile(file.path, { startAtChunk: 2 });
        await client.waitComplete(30_000);
        await client.consumerIdle();
        expect(client.protocolErrors).toEqual([]);
        const upload = await uploadEventSince(server, since);
        expect(upload.bytes).toBe(file.bytes);
        expect(upload.sha256).toBe(file.sha256);
        expectWellFormedRun(client, await frameCount(file.path));
      } finally {
        await client.close();
      }
      await expectCleanedUp(server);
    });

    it("a 200 MiB file is stored byte-exact", async () => {
      const file = await largeVideo(200, { kind: "padded" });
      expect(file.bytes).toBe(200 * MiB);
      const since = server.events.length;
      const client = await RawClient.connect({ url: server.url });
      try {
        const report = await client.uploadFile(file.path);
        expect(report.bytes).toBe(file.bytes);
        console.log(
          `[server.test] 200 MiB upload: ${(report.bytes / MiB / (report.ms / 1000)).toFixed(1)} MiB/s (${Math.round(report.ms)} ms)`,
        );
        const upload = await uploadEventSince(server, since, 120_000);
        expect(upload.bytes).toBe(file.bytes);
        expect(upload.sha256).toBe(file.sha256);
        await client.waitComplete(60_000);
        expectWellFormedRun(client, await frameCount(file.path));
      } finally {
        await client.close();
      }
      await expectCleanedUp(server);
    });

    it("with gzip off the results are plain JSON", async () => {
      const plain = await startTestServer({ gzip: false });
      try {
        const video = await tinyVideo();
        const frames = await frameCount(video.path);
        const { client } = await uploadAndComplete(plain, video, { request: { dataOutput: ["*"] } });
        try {
          expectWellFormedRun(client, frames);
          for (const r of client.frames) {
            expect(r.gzip).toBe(false);
            expect(r.head[0]).toBe(0x7b);
            expect(r.output.serialized_output_data).toHaveProperty("stats");
          }
        } finally {
          await client.close();
        }
        await expectCleanedUp(plain);
      } finally {
        await plain.close();
      }
    });
  });

  describe("ACK pacing (batch mode)", () => {
    const ACK_DELAY_MS = 50;

    it("a slow consumer keeps the server within the window of 1 after its first ACK", async () => {
      const video = await motionVideo({ seconds: 6, fps: 15 });
      const n = await frameCount(video.path);
      const { client, since } = await uploadAndComplete(server, video, { ackDelayMs: ACK_DELAY_MS }, 60_000);
      try {
        expectWellFormedRun(client, n);
        const upload = await uploadEventSince(server, since);
        const sent = server.events.filter(
          (e): e is Extract<typeof e, { type: "frame-sent" }> =>
            e.type === "frame-sent" && e.sessionId === upload.sessionId,
        );
        expect(sent).toHaveLength(n);
        // Frames the server produced before any ACK reached it (pacing starts with the first ACK).
        const unpaced = sent.filter((e) => e.lastAck === 0).map((e) => e.frameId);
        const unpacedMax = unpaced.length === 0 ? 0 : Math.max(...unpaced);
        expect(unpaced).toEqual(Array.from({ length: unpacedMax }, (_, i) => i + 1));
        expect(n - unpacedMax).toBeGreaterThanOrEqual(20); // enough paced frames to judge
        // Server side: every paced frame was admitted within the window.
        for (const e of sent.filter((s) => s.lastAck > 0))
          expect(e.frameId).toBeLessThanOrEqual(e.lastAck + 1);
        // Client side, independent of what the server reports: a frame produced after pacing began
        // arrives only once the client has ACKed the frame before it.
        const beyondWindow = client.frames.filter((r) => r.headerFrameId > r.ackSentBefore + 1);
        expect(beyondWindow.every((r) => r.headerFrameId <= unpacedMax)).toBe(true);
        expect(client.frames.filter((r) => r.headerFrameId > unpacedMax && r.ackSentBefore === 0)).toEqual(
          [],
        );
        // And the whole run took about (n - burst) consumer steps.
        const span = (client.frames.at(-1)?.receivedAt ?? 0) - (client.frames[0]?.receivedAt ?? 0);
        expect(span).toBeGreaterThanOrEqual((n - unpacedMax - 1) * ACK_DELAY_MS * 0.9);
        console.log(
          `[server.test] paced: ${n} frames, ${unpacedMax} before the first ACK arrived, ${beyondWindow.length} beyond ack+1 at arrival, ${Math.round(span)} ms`,
        );
      } finally {
        await client.close();
      }
      await expectCleanedUp(server);
    });

    it("without ACKs the server is not paced", async () => {
      const video = await motionVideo({ seconds: 4, fps: 15 });
      const n = await frameCount(video.path);
      const { client } = await uploadAndComplete(server, video, { ackDelayMs: null });
      try {
        expectWellFormedRun(client, n);
        expect(client.acks).toEqual([]);
        const span = (client.frames.at(-1)?.receivedAt ?? 0) - (client.frames[0]?.receivedAt ?? 0);
        console.log(`[server.test] unpaced: ${n} frames in ${Math.round(span)} ms`);
        // A paced server would need n × 50 ms for a consumer this slow; unpaced it is far quicker.
        expect(span).toBeLessThan((n * ACK_DELAY_MS) / 2);
      } finally {
        await client.close();
      }
      await expectCleanedUp(server);
    });
  });

  describe("malformed uploads (PROTOCOL.md §7) end in an error result and a closed session", () => {
    const CAP_CHUNKS = 8;
    let strict: TestServer;
    beforeAll(async () => {
      strict = await startTestServer({
        maxUploadBytes: CAP_CHUNKS * UPLOAD_CHUNK_SIZE,
        idleTimeoutMs: 20_000,
      });
    });
    afterAll(async () => {
      await strict?.close();
    });

    type Send = (client: RawClient) => Promise<void>;
    const send =
      (...messages: (Uint8Array | string)[]): Send =>
      async (client) => {
        for (const m of messages) client.sendRaw(m);
      };
    const full = UPLOAD_CHUNK_SIZE;

    const cases: [name: string, run: Send | (() => Promise<Send>), code: string, text: RegExp][] = [
      ["a 2-byte message", send(new Uint8Array(2)), "MALFORMED_MESSAGE", /2 bytes/],
      ["a 7-byte message", send(new Uint8Array(7)), "MALFORMED_MESSAGE", /7 bytes/],
      ["a text message", send("hello, server"), "MALFORMED_MESSAGE", /text/],
      ["chunk_index >= total_chunks", send(rawChunk(2, 2, 100)), "CHUNK_OUT_OF_RANGE", /not below/],
      [
        "total_chunks changing mid-upload",
        send(rawChunk(0, 3, full), rawChunk(1, 4, full)),
        "TOTAL_CHUNKS_CHANGED",
        /changed from 3 to 4/,
      ],
      ["total_chunks 0", send(rawChunk(0, 0, 100)), "ZERO_CHUNKS", /total_chunks is 0/],
      [
        "a duplicate chunk mid-upload",
        send(rawChunk(0, 3, full), rawChunk(0, 3, full)),
        "DUPLICATE_CHUNK",
        /already received/,
      ],
      [
        "the last chunk sent twice",
        async () => {
          const file = await exactMultipleFile();
          return async (client: RawClient) => {
            await client.uploadFile(file.path);
            const total = file.bytes / full;
            const bytes = await readFile(file.path);
            client.sendRaw(rawChunk(total - 1, total, bytes.subarray((total - 1) * full)));
          };
        },
        "MALFORMED_MESSAGE",
        /after the upload completed/,
      ],
      [
        "a header announcing more than the byte cap",
        send(rawChunk(0, CAP_CHUNKS + 2, full)),
        "UPLOAD_TOO_LARGE",
        /limit/,
      ],
      [
        "a whole file over the byte cap",
        async () => {
          const file = await randomFile((CAP_CHUNKS + 1) * full + 17, { seed: 7 });
          return async (client: RawClient) => {
            await client.uploadFile(file.path).catch(() => {}); // the server may close mid-upload
          };
        },
        "UPLOAD_TOO_LARGE",
        /limit/,
      ],
      ["a short non-final chunk", send(rawChunk(0, 2, 1000)), "MALFORMED_MESSAGE", /exactly/],
    ];

    it.each(cases)("%s", async (_name, make, code, text) => {
      const run: Send = make.length === 0 ? await (make as () => Promise<Send>)() : (make as Send);
      const before = strict.events.length;
      const client = await RawClient.connect({ url: strict.url });
      try {
        const started = performance.now();
        await run(client);
        const complete = await client.waitComplete(15_000);
        await client.consumerIdle();
        expect(client.protocolErrors).toEqual([]);
        // An error result with errors and a termination reason, then processing_complete, last.
        const errorIndex = client.results.findIndex(
          (r) => r.output.errors.length > 0 && !r.output.processing_complete,
        );
        expect(errorIndex).toBeGreaterThanOrEqual(0);
        const error = client.results[errorIndex] as ReceivedResult;
        expect(error.output.termination_reason).toBeTruthy();
        expect(error.output.errors.join(" ")).toMatch(text);
        expect(client.results.indexOf(complete)).toBe(client.results.length - 1);
        expect(client.results.indexOf(complete)).toBeGreaterThan(errorIndex);
        expect(complete.output.termination_reason).toBe(error.output.termination_reason);
        expect(complete.gzip).toBe(false);
        // Data frames (if processing had begun) are numbered 1..k once each (the real server's
        // duplicate-chunk bug starts a second loop that repeats them); the error result and
        // processing_complete both carry k+1 in the header and k in their metadata.
        const data = client.results.filter(
          (r) => r.output.errors.length === 0 && !r.output.processing_complete,
        );
        expect(data.map((r) => r.headerFrameId)).toEqual(
          Array.from({ length: data.length }, (_, i) => i + 1),
        );
        expect(error.headerFrameId).toBe(data.length + 1);
        expect(complete.headerFrameId).toBe(data.length + 1);
        expect(complete.output.video_metadata?.frame_id).toBe(data.length);
        const serverError = strict.events
          .slice(before)
          .find((e): e is Extract<typeof e, { type: "error" }> => e.type === "error");
        expect(serverError?.code).toBe(code);
        // The server ends the session itself, never waits for the client.
        await client.waitClosedByServer(15_000);
        await expectCleanedUp(strict);
        expect(performance.now() - started).toBeLessThan(20_000);
      } finally {
        await client.close();
      }
      await expectCleanedUp(strict);
    });
  });

  it("an undecodable file gives an error result that says so", async () => {
    const file = await randomFile(300_000, { seed: 3 });
    const since = server.events.length;
    const client = await RawClient.connect({ url: server.url });
    try {
      await client.uploadFile(file.path);
      const complete = await client.waitComplete(30_000);
      await client.consumerIdle();
      const upload = await uploadEventSince(server, since);
      expect(upload.sha256).toBe(file.sha256);
      const errors = client.results.flatMap((r) => r.output.errors);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.join(" ")).toMatch(/decod/i);
      expect(errors.join(" ")).toMatch(/video/i);
      expect(client.frames.every((r) => r.output.errors.length > 0)).toBe(true);
      expect(complete.output.termination_reason).toBeTruthy();
      expect(complete.output.video_metadata?.frame_id).toBe(0);
      expect(complete.headerFrameId).toBe(1);
      await client.waitClosedByServer(15_000);
    } finally {
      await client.close();
    }
    await expectCleanedUp(server);
  });

  it("the returned video track carries decodable VP8 frames", async () => {
    const video = await tinyVideo();
    const frames = await frameCount(video.path);
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-e2e-video-"));
    const webm = join(dir, "annotated.webm");
    const client = await RawClient.connect({
      url: server.url,
      video: true,
      request: { workflow: "motion", streamOutput: ["annotated"], dataOutput: [] },
    });
    try {
      const track = client.track;
      expect(track).not.toBeNull();
      if (!track) return;
      const recording = recordVideoToWebm(track, webm, { width: video.width, height: video.height });
      await client.uploadFile(video.path);
      await client.waitComplete(60_000);
      expect(client.frames).toHaveLength(frames);
      expect(client.frames.every((r) => r.output.serialized_output_data === null)).toBe(true);
      // The encoder may still be flushing: wait until packets stop arriving.
      let last = -1;
      await eventually(
        () => {
          const settled = client.vp8.packets > 0 && client.vp8.packets === last;
          last = client.vp8.packets;
          return settled;
        },
        15_000,
        "RTP packets stopped arriving",
      );
      await new Promise((r) => setTimeout(r, 300));
      await recording.stop();
      const v = client.vp8;
      console.log(`[server.test] video back: ${JSON.stringify(v)}`);
      expect(v.malformed).toBe(0);
      expect(v.keyframes).toBeGreaterThanOrEqual(1);
      expect(v.frameStarts).toBeGreaterThanOrEqual(Math.floor(frames * 0.8));
      expect(v.timestamps).toBeGreaterThanOrEqual(Math.floor(frames * 0.8));
      expect(v.markers).toBeGreaterThanOrEqual(Math.floor(frames * 0.8));
      // The recording decodes: ffprobe counts its frames.
      expect((await stat(webm)).size).toBeGreaterThan(0);
      const decoded = await frameCount(webm);
      expect(decoded).toBeGreaterThanOrEqual(Math.floor(frames * 0.5));
    } finally {
      await client.close();
      await rm(dir, { recursive: true, force: true });
    }
    await expectCleanedUp(server);
  });

  it("4 concurrent sessions are all byte-exact", async () => {
    const files: FileFixture[] = [
      await tinyVideo(),
      await exactMultipleFile(),
      await motionVideo({ seconds: 3, fps: 10, codec: "vp8" }),
      await largeVideo(24, { kind: "padded" }),
    ];
    expect(new Set(files.map((f) => f.sha256)).size).toBe(4);
    const clients = await Promise.all(files.map(() => RawClient.connect({ url: server.url })));
    try {
      expect(server.sessions).toBe(4);
      await Promise.all(clients.map((c, i) => c.uploadFile((files[i] as FileFixture).path)));
      await Promise.all(clients.map((c) => c.waitComplete(60_000)));
      for (const [i, file] of files.entries()) {
        const events = server.events.filter((e) => e.type === "upload-complete" && e.sha256 === file.sha256);
        expect(events.length).toBeGreaterThanOrEqual(1);
        expectWellFormedRun(clients[i] as RawClient, await frameCount(file.path));
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    await expectCleanedUp(server);
  });

  it("idle timeout: an upload that stops half-way, or a client that never connects, ends the session and its files", async () => {
    const idle = await startTestServer({ idleTimeoutMs: 1_500 });
    try {
      const file = await largeVideo(2, { kind: "padded" });
      const client = await RawClient.connect({ url: idle.url });
      try {
        const half = Math.floor(file.bytes / UPLOAD_CHUNK_SIZE / 2);
        const report = await client.uploadFile(file.path, { stopAfterChunks: half });
        expect(report.chunks).toBe(half);
        const stoppedAt = performance.now();
        // The partial upload is on disk meanwhile.
        await eventually(async () => (await idle.tempFiles()).length > 0, 2_000, "session temp dir exists");
        const complete = await client.waitComplete(10_000);
        const waited = performance.now() - stoppedAt;
        expect(waited).toBeGreaterThanOrEqual(1_000);
        const errors = client.results.flatMap((r) => r.output.errors);
        expect(errors.join(" ")).toMatch(/idle/i);
        expect(complete.output.termination_reason).toMatch(/idle/);
        await client.waitClosedByServer(10_000);
        const error = await idle.waitFor("error", 1_000);
        expect(error.terminationReason).toMatch(/idle/);
      } finally {
        await client.close();
      }
      await expectCleanedUp(idle);

      // A client that gets its answer but never connects (PROTOCOL.md §7: the real worker never exits).
      const ghost = RawClient.create({ url: idle.url });
      try {
        const res = await fetch(`${idle.url}/initialise_webrtc_worker`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            workflow_configuration: {
              type: "WorkflowConfiguration",
              workflow_id: "frame-stats",
              workspace_name: "local",
              image_input_name: "image",
            },
            webrtc_offer: { type: "offer", sdp: await ghost.offer() },
            webrtc_realtime_processing: false,
            stream_output: [],
            data_output: ["*"],
          }),
          signal: AbortSignal.timeout(10_000),
        });
        expect(res.status).toBe(200);
        expect(idle.sessions).toBe(1);
        // The answer is never applied: no ICE, no channels.
        const ended = await idle.waitFor("session-end", 10_000);
        expect(ended.reason).toMatch(/idle|open the upload channel/i);
      } finally {
        await ghost.close();
      }
      await expectCleanedUp(idle);
    } finally {
      await idle.close();
    }
  });

  it("processing_timeout ends processing with termination_reason timeout_reached", async () => {
    const video = await motionVideo({ seconds: 4, fps: 15 });
    const n = await frameCount(video.path);
    // A consumer this slow needs n × 150 ms paced: far beyond the 1 s limit.
    const client = await RawClient.connect({
      url: server.url,
      ackDelayMs: 150,
      request: { processingTimeoutSeconds: 1 },
    });
    try {
      client.sendAck(1); // pacing on from the start, so the slow consumer sets the pace
      await client.uploadFile(video.path);
      const complete = await client.waitComplete(15_000);
      await client.consumerIdle();
      expect(complete.output.termination_reason).toBe("timeout_reached");
      const frames = client.frames.length;
      expect(frames).toBeLessThan(n);
      expect(complete.headerFrameId).toBe(frames + 1);
      expect(complete.output.video_metadata?.frame_id).toBe(frames);
    } finally {
      await client.close();
    }
    await expectCleanedUp(server);
  });

  it("a client that disappears mid-upload or mid-processing leaves nothing behind", async () => {
    const file = await largeVideo(2, { kind: "padded" });
    const uploading = await RawClient.connect({ url: server.url });
    await uploading.uploadFile(file.path, { stopAfterChunks: 10 });
    await eventually(async () => (await server.tempFiles()).length > 0, 2_000, "session temp dir exists");
    await uploading.close();
    await expectCleanedUp(server, 10_000);

    const video = await motionVideo({ seconds: 4, fps: 15 });
    // An early ACK of frame 1 switches pacing on; without further ACKs the server stops after frame 2.
    const processing = await RawClient.connect({ url: server.url, ackDelayMs: null });
    processing.sendAck(1);
    await processing.uploadFile(video.path);
    await eventually(() => processing.frames.length === 2, 10_000, "the first two results");
    await new Promise((r) => setTimeout(r, 300));
    expect(processing.frames).toHaveLength(2);
    await processing.close();
    await expectCleanedUp(server, 10_000);
    expect(processing.results.some((r) => r.output.processing_complete)).toBe(false);
  });

  it("server shutdown mid-upload tells the client, ends the session and removes its files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-e2e-shutdown-"));
    const own = await startTestServer({ tempDir: dir });
    let client: RawClient | null = null;
    try {
      const file = await largeVideo(2, { kind: "padded" });
      client = await RawClient.connect({ url: own.url });
      await client.uploadFile(file.path, { stopAfterChunks: 10 });
      await eventually(async () => (await readdir(dir)).length > 0, 2_000, "session temp dir exists");
      const closing = own.close();
      const complete = await client.waitComplete(10_000);
      await closing;
      expect(complete.output.termination_reason).toBeTruthy();
      expect(client.results.flatMap((r) => r.output.errors).join(" ")).toMatch(/shut/i);
      expect(own.sessions).toBe(0);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await client?.close();
      await own.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe("HTTP", () => {
    async function offerSdp(): Promise<string> {
      const c = RawClient.create({ url: server.url });
      try {
        return await c.offer();
      } finally {
        await c.close();
      }
    }
    async function post(
      url: string,
      json: unknown,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const res = await fetch(`${url}/initialise_webrtc_worker`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "http://example.test" },
        body: typeof json === "string" ? json : JSON.stringify(json),
        signal: AbortSignal.timeout(20_000),
      });
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }

    it("422 for a body that fails validation, FastAPI style", async () => {
      const missing = await post(server.url, { webrtc_offer: { type: "offer", sdp: "v=0" } });
      expect(missing.status).toBe(422);
      const detail = missing.body.detail as { loc: unknown[]; msg: string }[];
      expect(Array.isArray(detail)).toBe(true);
      expect(detail.some((d) => d.loc.includes("workflow_configuration"))).toBe(true);
      const notJson = await post(server.url, "{not json");
      expect(notJson.status).toBe(422);
      const wrongType = await post(
        server.url,
        initialiseBody(await offerSdp(), { webrtc_realtime_processing: "often" }),
      );
      expect(wrongType.status).toBe(422);
      expect(server.sessions).toBe(0);
    });

    it("404 for an unknown workflow", async () => {
      const sdp = await offerSdp();
      const res = await post(server.url, {
        ...initialiseBody(sdp),
        workflow_configuration: {
          type: "WorkflowConfiguration",
          workflow_id: "no-such-workflow",
          workspace_name: "local",
          image_input_name: "image",
        },
      });
      expect(res.status).toBe(404);
      expect(String(res.body.message)).toMatch(/no-such-workflow/);
      expect(server.sessions).toBe(0);
    });

    it("400 for unknown output names", async () => {
      const sdp = await offerSdp();
      const data = await post(server.url, initialiseBody(sdp, { data_output: ["stats", "nope_output"] }));
      expect(data.status).toBe(400);
      expect(String(data.body.message)).toMatch(/nope_output/);
      const stream = await post(server.url, initialiseBody(sdp, { stream_output: ["not_an_image"] }));
      expect(stream.status).toBe(400);
      expect(server.sessions).toBe(0);
    });

    it("429 over maxSessions, and a slot again once the session ends", async () => {
      const one = await startTestServer({ maxSessions: 1 });
      try {
        const holder = await RawClient.connect({ url: one.url });
        try {
          expect(one.sessions).toBe(1);
          const second = await post(one.url, initialiseBody(await offerSdp()));
          expect(second.status).toBe(429);
          expect(typeof second.body.message).toBe("string");
        } finally {
          await holder.close();
        }
        await expectCleanedUp(one);
        const again = await RawClient.connect({ url: one.url });
        await again.close();
        await expectCleanedUp(one);
      } finally {
        await one.close();
      }
    });

    it("answers CORS preflight requests", async () => {
      const res = await fetch(`${server.url}/initialise_webrtc_worker`, {
        method: "OPTIONS",
        headers: {
          origin: "http://example.test",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type, authorization",
        },
        signal: AbortSignal.timeout(5_000),
      });
      expect(res.status).toBeLessThan(300);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(res.headers.get("access-control-allow-methods")).toMatch(/POST/);
      expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toMatch(/content-type/);
      expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toMatch(/authorization/);
    });
  });
});
