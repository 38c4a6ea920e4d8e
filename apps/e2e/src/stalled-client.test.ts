/**
 * A client that stops reading during processing, without ACKs (so without pacing), with large
 * results (a JPEG per frame): the server's result channel fills and nothing drains. The stall is
 * detected after `resultStallMs`; the session must then end at once: its error result and
 * `processing_complete` cannot be delivered either, and must not each wait another full stall
 * bound for the buffer (the audit saw 60 s + 60 s + 60 s = ~180 s with the default bound).
 *
 * The client is a real child process (support/no-ack-client.ts, raw werift) stopped with SIGSTOP,
 * against @vidrtc/server on its default transport (werift), inside the test's network namespace.
 * The liveness bound is set far above the stall bound so that the stall is what ends the session.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { SessionEvent } from "@vidrtc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noiseVideo, type VideoFixture } from "./support/fixtures.js";
import { childProcesses, collectOutput } from "./support/processes.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const clientScript = fileURLToPath(new URL("./support/no-ack-client.ts", import.meta.url));

const STALL_MS = 5_000;
/** Far above the stall bound: a stopped client sends no consent checks either. */
const LIVENESS_MS = 120_000;
/** For the test with the default stall bound (60 s): well below it (see liveness.test.ts for why not shorter). */
const LIVENESS_BOUND_MS = 8_000;

interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
}

function startClient(url: string, video: string): Child {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", clientScript, url, video, "annotated,predictions"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  return { proc, ...collectOutput(proc) };
}

describe("a client that stops reading without ACKs", () => {
  let server: TestServer;
  let video: VideoFixture;
  const timed: Array<{ event: SessionEvent; at: number }> = [];
  const children: Child[] = [];

  beforeAll(async () => {
    // 150 frames with a ~170 KB JPEG each (~30 MiB of results, base64): far more than the
    // server's 1 MiB result buffer plus what the stopped client's socket and SCTP window hold.
    video = await noiseVideo(150);
    server = await startTestServer({
      resultStallMs: STALL_MS,
      livenessTimeoutMs: LIVENESS_MS,
      idleTimeoutMs: 30_000,
      lingerMs: 2_000,
      onSessionEvent: (event) => timed.push({ event, at: Date.now() }),
    });
  });
  afterAll(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        c.proc.kill("SIGKILL");
        c.proc.kill("SIGCONT");
      }
    }
    await server?.close();
  });

  it("SIGSTOPped mid-processing: the stall is detected after one bound and the session ends at once, not after two more", async () => {
    const since = timed.length;
    const child = startClient(server.url, video.path);
    children.push(child);
    await eventually(
      () => child.lines.some((l) => l.includes('"receiving"')) || child.proc.exitCode !== null,
      60_000,
      "the client receives results",
    );
    expect(child.proc.exitCode, child.stderr()).toBeNull();
    const start = timed.slice(since).find((t) => t.event.type === "session-start");
    const id = start?.event.sessionId;
    expect(id).toBeDefined();
    child.proc.kill("SIGSTOP");
    const stoppedAt = Date.now();
    const mine = () => timed.slice(since).filter((t) => t.event.sessionId === id);
    try {
      await eventually(
        () => mine().some((t) => t.event.type === "session-end"),
        4 * STALL_MS + 20_000,
        "the session ended",
      );
    } finally {
      child.proc.kill("SIGKILL");
      child.proc.kill("SIGCONT");
    }
    const error = mine().find((t) => t.event.type === "error");
    const end = mine().find((t) => t.event.type === "session-end")!;
    const sent = mine().filter((t) => t.event.type === "frame-sent").length;
    const detectedAfterMs = (error?.at ?? Number.NaN) - stoppedAt;
    const endedAfterDetectionMs = end.at - (error?.at ?? Number.NaN);
    console.log(
      `[stall] client SIGSTOPped after ${sent}/${video.frames} frames were handed over; stall bound ${STALL_MS} ms: detected ${detectedAfterMs} ms after the stop, session ended ${endedAfterDetectionMs} ms later (${end.at - stoppedAt} ms after the stop)`,
    );
    expect(error?.event).toMatchObject({ code: "UPLOAD_STALLED", terminationReason: "processing_error" });
    if (error?.event.type === "error")
      expect(error.event.message).toMatch(
        /^The client stopped reading results: nothing drained from the result channel for 5000 ms/,
      );
    // Processing was cut short by the stall, not finished.
    expect(sent).toBeLessThan(video.frames);
    expect(mine().some((t) => t.event.type === "processing-complete" && t.event.errors.length === 0)).toBe(
      false,
    );
    // Detected after about one bound (the buffer fills within a moment of the stop)...
    expect(detectedAfterMs).toBeGreaterThanOrEqual(STALL_MS - 500);
    expect(detectedAfterMs).toBeLessThan(STALL_MS + 10_000);
    // ...and then the error result and processing_complete are abandoned at once: well under one
    // more bound (it was one more bound each), closing the peer included.
    expect(endedAfterDetectionMs).toBeLessThan(STALL_MS);
    await eventually(
      async () => server.sessions === 0 && (await server.tempFiles()).length === 0,
      10_000,
      "the session is gone and its temp file removed",
    );
  }, 120_000);

  it("SIGSTOPped with the default 60 s stall bound: the liveness bound ends the session, the blocked result send is abandoned at once, ffmpeg is gone with it", async () => {
    const liveness = await startTestServer({
      livenessTimeoutMs: LIVENESS_BOUND_MS,
      idleTimeoutMs: 30_000,
      lingerMs: 2_000,
      onSessionEvent: (event) => timed.push({ event, at: Date.now() }),
    });
    try {
      const since = timed.length;
      const child = startClient(liveness.url, video.path);
      children.push(child);
      await eventually(
        () => child.lines.some((l) => l.includes('"receiving"')) || child.proc.exitCode !== null,
        60_000,
        "the client receives results",
      );
      expect(child.proc.exitCode, child.stderr()).toBeNull();
      const id = timed.slice(since).find((t) => t.event.type === "session-start")?.event.sessionId;
      expect(id).toBeDefined();
      child.proc.kill("SIGSTOP");
      const stoppedAt = Date.now();
      const mine = () => timed.slice(since).filter((t) => t.event.sessionId === id);
      let ffmpegAtEnd: number[] = [];
      try {
        await eventually(
          () => mine().some((t) => t.event.type === "session-end"),
          LIVENESS_BOUND_MS + 30_000,
          "the session ended",
        );
        ffmpegAtEnd = await childProcesses("ffmpeg");
      } finally {
        child.proc.kill("SIGKILL");
        child.proc.kill("SIGCONT");
      }
      const error = mine().find((t) => t.event.type === "error");
      const end = mine().find((t) => t.event.type === "session-end")!;
      const sent = mine().filter((t) => t.event.type === "frame-sent").length;
      const endedAfterDetectionMs = end.at - (error?.at ?? Number.NaN);
      console.log(
        `[stall] default stall bound, liveness bound ${LIVENESS_BOUND_MS} ms: client SIGSTOPped after ${sent}/${video.frames} frames; liveness lost ${(error?.at ?? Number.NaN) - stoppedAt} ms after the stop, session ended ${endedAfterDetectionMs} ms later; ffmpeg children at the end: ${ffmpegAtEnd.length}`,
      );
      expect(error?.event).toMatchObject({ code: "LIVENESS_LOST" });
      expect(sent).toBeLessThan(video.frames);
      // The frame send blocked on the full buffer does not hold the close for its stall bound.
      expect(endedAfterDetectionMs).toBeLessThan(3_000);
      expect(ffmpegAtEnd).toEqual([]);
      await eventually(
        async () => liveness.sessions === 0 && (await liveness.tempFiles()).length === 0,
        10_000,
        "the session is gone and its temp file removed",
      );
    } finally {
      await liveness.close();
    }
  }, 120_000);
});
