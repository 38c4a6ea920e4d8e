/**
 * A video file cut short (a faststart MP4 whose index still announces every frame, but whose
 * second half of media data is gone) against a real @vidrtc/server over real werift WebRTC
 * (inside the network namespace, see setup/global.ts): the frames that still decode come back,
 * and the cut is reported (an error result, then `processing_complete` with the same `errors` and
 * `termination_reason: "processing_error"`), so neither the library nor the CLI passes a partial
 * result off as the whole file. The intact file is the control.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { InferenceClient, loopbackIceOptions, type ResultMessage, VideoFileSource } from "@vidrtc/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { truncatedVideo } from "./support/fixtures.js";
import { RawClient } from "./support/raw-client.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const require = createRequire(import.meta.url);
const cliBin = join(dirname(require.resolve("vidrtc/package.json")), "dist", "bin.js");

/** What the server says about a cut file (see `truncationError` in the server's processing). */
const CUT = /The upload ended early: (\d+) of the (\d+) frames the file announces were decoded/;

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += String(d)));
    child.stderr.on("data", (d) => (stderr += String(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

async function librarySession(
  url: string,
  path: string,
): Promise<{ results: ResultMessage[]; error: unknown; summary: unknown }> {
  const client = new InferenceClient({ apiUrl: url, werift: loopbackIceOptions() });
  const session = await client.webrtc.stream({
    source: new VideoFileSource(path),
    workflow: "frame-stats",
    workspace: "local",
    dataOutput: ["*"],
    signal: AbortSignal.timeout(90_000),
  });
  const results: ResultMessage[] = [];
  let error: unknown = null;
  let summary: unknown = null;
  try {
    for await (const result of session) results.push(result);
    summary = await session.done;
  } catch (e) {
    error = e;
  }
  return { results, error, summary };
}

describe("a truncated upload is reported, not passed off as the whole file", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ idleTimeoutMs: 10_000, lingerMs: 1_000 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a faststart MP4 cut in half: its decodable frames come back, then an error result and processing_complete name the cut", async () => {
    const cut = await truncatedVideo(0.5);
    expect(cut.announcedFrames).toBe(150);
    expect(cut.decodableFrames).toBeGreaterThan(0);
    expect(cut.decodableFrames).toBeLessThan(cut.announcedFrames);
    const since = server.events.length;
    const client = await RawClient.connect({ url: server.url, ackDelayMs: 0 });
    try {
      await client.uploadFile(cut.path);
      const complete = await client.waitComplete(60_000);
      const data = client.frames.filter((r) => r.output.termination_reason === null);
      const reports = client.frames.filter((r) => r.output.termination_reason !== null);
      // Every frame that can be decoded came back, in order, without a per-frame error.
      expect(data.map((r) => r.output.video_metadata?.frame_id)).toEqual(
        Array.from({ length: cut.decodableFrames }, (_, i) => i + 1),
      );
      expect(data.every((r) => r.output.errors.length === 0)).toBe(true);
      // Then one error result after the last frame, and processing_complete, both with the reason.
      expect(reports).toHaveLength(1);
      const report = reports[0]!;
      expect(report.headerFrameId).toBe(cut.decodableFrames + 1);
      expect(report.output.termination_reason).toBe("processing_error");
      expect(report.output.errors.join(" ")).toMatch(CUT);
      const [, decoded, announced] = CUT.exec(report.output.errors.join(" ")) ?? [];
      expect(Number(decoded)).toBe(cut.decodableFrames);
      expect(Number(announced)).toBe(cut.announcedFrames);
      expect(complete.output.termination_reason).toBe("processing_error");
      expect(complete.output.errors).toEqual(report.output.errors);
      expect(complete.output.video_metadata?.frame_id).toBe(cut.decodableFrames);
      const events = server.events.slice(since);
      expect(events.find((e) => e.type === "error")).toMatchObject({
        code: "PROCESSING_FAILED",
        terminationReason: "processing_error",
      });
      console.log(
        `[truncated] ${cut.bytes} of ${cut.intact.bytes} bytes: ${data.length}/${cut.announcedFrames} frames back, then "${report.output.errors[0]}"`,
      );
    } finally {
      await client.close();
    }
    await eventually(
      async () => server.sessions === 0 && (await server.tempFiles()).length === 0,
      20_000,
      "the session ended and its temp file is gone",
    );
  });

  it("a WebM cut in half (no frame count in the container): the decodable frames, then an error naming the track's stated duration", async () => {
    const cut = await truncatedVideo(0.5, "vp8");
    expect(cut.decodableFrames).toBeGreaterThan(0);
    expect(cut.decodableFrames).toBeLessThan(cut.announcedFrames);
    const client = await RawClient.connect({ url: server.url, ackDelayMs: 0 });
    try {
      await client.uploadFile(cut.path);
      const complete = await client.waitComplete(60_000);
      const data = client.frames.filter((r) => r.output.termination_reason === null);
      expect(data).toHaveLength(cut.decodableFrames);
      expect(complete.output.termination_reason).toBe("processing_error");
      expect(complete.output.errors.join(" ")).toMatch(
        /The upload ended early: frames up to \d+\.\d\d s of the 5\.00 s the file announces were decoded/,
      );
      console.log(
        `[truncated] WebM ${cut.bytes} of ${cut.intact.bytes} bytes: ${data.length}/${cut.announcedFrames} frames back, then "${complete.output.errors[0]}"`,
      );
    } finally {
      await client.close();
    }
    // The intact WebM: every frame, no error.
    const whole = await RawClient.connect({ url: server.url, ackDelayMs: 0 });
    try {
      await whole.uploadFile(cut.intact.path);
      const complete = await whole.waitComplete(60_000);
      expect(complete.output.termination_reason).toBeNull();
      expect(complete.output.errors).toEqual([]);
      expect(whole.frames).toHaveLength(cut.intact.frames);
    } finally {
      await whole.close();
    }
  });

  it("@vidrtc/node: the decodable frames and the error result are delivered, then the session rejects with PROCESSING_FAILED naming the cut", async () => {
    const cut = await truncatedVideo(0.5);
    const { results, error, summary } = await librarySession(server.url, cut.path);
    expect(summary).toBeNull();
    expect(error).toMatchObject({ name: "VidrtcError", code: "PROCESSING_FAILED" });
    const message = (error as Error).message;
    expect(message).toMatch(CUT);
    expect(message).toMatch(/truncated or damaged/);
    expect(message).not.toMatch(/\n/);
    const frames = results.filter((r) => r.terminationReason === null);
    expect(frames).toHaveLength(cut.decodableFrames);
    expect(frames.every((r) => r.errors.length === 0)).toBe(true);
    const last = results.at(-1)!;
    expect(last.terminationReason).toBe("processing_error");
    expect(last.errors.join(" ")).toMatch(CUT);
  });

  it("the CLI prints the decodable frames' lines, then a one-line error naming the cut, and exits 4", async () => {
    const cut = await truncatedVideo(0.5);
    const { code, stdout, stderr } = await runCli([
      "run",
      cut.path,
      "-u",
      server.url,
      "-w",
      "frame-stats",
      "--no-progress",
    ]);
    expect(code, stderr).toBe(4);
    expect(stderr).toMatch(
      /^vidrtc: error PROCESSING_FAILED: The server ended processing: The upload ended early: \d+ of the 150 frames .*truncated or damaged/m,
    );
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { errors: string[]; termination_reason: string | null });
    expect(lines.filter((l) => l.termination_reason === null)).toHaveLength(cut.decodableFrames);
    expect(lines.at(-1)?.errors.join(" ")).toMatch(CUT);
  });

  it("control: the intact file gives every frame and no error, from the library and the CLI (exit 0)", async () => {
    const { intact } = await truncatedVideo(0.5);
    const { results, error, summary } = await librarySession(server.url, intact.path);
    expect(error).toBeNull();
    expect(results).toHaveLength(intact.frames);
    expect(results.every((r) => r.errors.length === 0 && r.terminationReason === null)).toBe(true);
    expect(summary).toMatchObject({ framesProcessed: intact.frames, terminationReason: null });
    const cli = await runCli(["run", intact.path, "-u", server.url, "-w", "frame-stats", "--no-progress"]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).not.toMatch(/vidrtc: error|ended early/);
    expect(cli.stdout.trim().split("\n")).toHaveLength(intact.frames);
  });
});
