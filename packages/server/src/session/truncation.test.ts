/**
 * Telling a cut upload from a whole one: `truncationError` on what `probeVideo` reads and what
 * `decodeVideo` yields, for real files made with the system's ffmpeg and cut in half. MP4 states
 * its frame count; WebM/Matroska do not (the probe counts what the cut file holds), so there the
 * video track's `DURATION` tag must show the cut.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeVideo } from "../media/decode.js";
import { probeVideo, type VideoInfo } from "../media/probe.js";
import { truncationError } from "./processing.js";

const run = promisify(execFile);
let dir: string;

/** 5 s of testsrc2 at 15 fps (75 frames), 160x120, in the given codec and container. */
async function make(name: string, codecArgs: string[]): Promise<string> {
  const out = join(dir, name);
  await run("ffmpeg", [
    ...["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-frames:v", "75"],
    ...["-pix_fmt", "yuv420p", ...codecArgs, out],
  ]);
  return out;
}

async function cutInHalf(path: string): Promise<string> {
  const data = await readFile(path);
  const out = path.replace(/(\.\w+)$/, "-half$1");
  await writeFile(out, data.subarray(0, Math.floor(data.length / 2)));
  return out;
}

/** Probes and decodes `path` the way processing does; returns the probe, the frame count and the verdict. */
async function verdict(path: string): Promise<{ info: VideoInfo; decoded: number; error: string | null }> {
  const info = await probeVideo(path);
  let decoded = 0;
  let lastPts: number | null = null;
  for await (const frame of decodeVideo(path, info)) {
    decoded++;
    lastPts = frame.ptsSeconds;
  }
  return { info, decoded, error: truncationError(info, decoded, lastPts) };
}

const files: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vidrtc-truncation-"));
  files.mp4 = await make("a.mp4", ["-c:v", "libx264", "-preset", "veryfast", "-movflags", "+faststart"]);
  files.webm = await make("a.webm", ["-c:v", "libvpx", "-b:v", "400k", "-deadline", "realtime"]);
  files.mkv = await make("a.mkv", ["-c:v", "libx264", "-preset", "veryfast"]);
  for (const key of ["mp4", "webm", "mkv"]) files[`${key}Half`] = await cutInHalf(files[key]!);
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("truncationError on real files", () => {
  it("whole files (MP4, WebM, Matroska): no error, every frame decoded", async () => {
    for (const key of ["mp4", "webm", "mkv"]) {
      const { decoded, error } = await verdict(files[key]!);
      expect(decoded, key).toBe(75);
      expect(error, key).toBeNull();
    }
  });

  it("the probe tells an announced frame count (MP4) from a counted one (WebM), and reads the track's DURATION tag", async () => {
    const mp4 = await probeVideo(files.mp4!);
    expect(mp4).toMatchObject({ frameCount: 75, frameCountCounted: false });
    expect(mp4.streamDurationSeconds).toBeCloseTo(5, 1);
    const webm = await probeVideo(files.webmHalf!);
    expect(webm.frameCountCounted).toBe(true);
    expect(webm.frameCount).toBeLessThan(75);
    // The cut file still states the whole track's duration.
    expect(webm.streamDurationSeconds).toBeCloseTo(5, 1);
  });

  it("a faststart MP4 cut in half: fewer frames than it announces", async () => {
    const { decoded, error } = await verdict(files.mp4Half!);
    expect(decoded).toBeGreaterThan(0);
    expect(decoded).toBeLessThan(75);
    expect(error).toBe(
      `The upload ended early: ${decoded} of the 75 frames the file announces were decoded (the file is truncated or damaged).`,
    );
  });

  it("a WebM and a Matroska file cut in half: decoded frames end well before the track's stated duration", async () => {
    for (const key of ["webmHalf", "mkvHalf"]) {
      const { decoded, error } = await verdict(files[key]!);
      expect(decoded, key).toBeGreaterThan(0);
      expect(decoded, key).toBeLessThan(75);
      expect(error, key).toMatch(
        /^The upload ended early: frames up to \d+\.\d\d s of the 5\.00 s the file announces were decoded \(the file is truncated or damaged\)\.$/,
      );
    }
  });
});

describe("truncationError rules", () => {
  const base: VideoInfo = {
    fps: 10,
    width: 64,
    height: 48,
    rotation: 0,
    frameCount: 100,
    durationSeconds: 10,
    codec: "h264",
  };

  it("an announced count is compared as is", () => {
    expect(truncationError(base, 100, 9.9)).toBeNull();
    expect(truncationError(base, 99, 9.8)).toMatch(/99 of the 100 frames/);
  });

  it("a counted frame count falls back to the track's own duration, with a tolerance of 1 s", () => {
    const counted = { ...base, frameCount: 40, frameCountCounted: true, streamDurationSeconds: 10 };
    expect(truncationError(counted, 40, 3.9)).toMatch(/frames up to 4\.00 s of the 10\.00 s/);
    expect(truncationError(counted, 90, 8.9)).toBeNull();
  });

  it("a counted frame count never uses the container's duration (it may be a longer audio track)", () => {
    const counted = { ...base, frameCount: 40, frameCountCounted: true, streamDurationSeconds: null };
    expect(truncationError(counted, 40, 3.9)).toBeNull();
  });

  it("no frame count at all: the duration decides", () => {
    const unknown = { ...base, frameCount: null };
    expect(truncationError(unknown, 40, 3.9)).toMatch(/of the 10\.00 s/);
    expect(truncationError({ ...unknown, durationSeconds: null }, 40, 3.9)).toBeNull();
  });
});
