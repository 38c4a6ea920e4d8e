/**
 * Test fixtures: small videos generated with the system's ffmpeg into a temp directory.
 * Not part of the build (tsconfig.build excludes test-support).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The moving square: 40x40 white on black, 320x240 @ 15 fps, x = 10 + 120 t, y = 100. */
export const SQUARE = { size: 40, y: 100, x0: 10, speed: 120, fps: 15, width: 320, height: 240 } as const;

/** Left edge of the moving square in frame `index` (1-based), as ffmpeg's overlay computes it. */
export function squareX(index: number): number {
  return Math.floor(SQUARE.x0 + (SQUARE.speed * (index - 1)) / SQUARE.fps);
}

async function ffmpeg(args: string[]): Promise<void> {
  await run("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", ...args], { timeout: 60_000 });
}

const X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];

/** Paths of the generated fixtures, and a cleanup function. */
export interface VideoFixtures {
  dir: string;
  /** testsrc2, 320x240, 15 fps, 2 s (30 frames), H.264 in MP4. */
  testsrc: string;
  /** The moving square ({@link SQUARE}), 2 s (30 frames), H.264 in MP4. */
  square: string;
  /** `square` with display rotation metadata (90 degrees). */
  rotated: string;
  /** Solid 0x808080, 64x48, 15 fps, 1 s. */
  gray: string;
  /** testsrc2 as VP8 in WebM (no frame count in the container), 1 s, 15 frames. */
  webm: string;
  /** testsrc2, 320x240, 30 fps, 10 s (300 frames): for backpressure tests (only with `withLong`). */
  long: string;
  /** testsrc2 160x120, 15 frames with a 1 s gap after the 10th (variable frame rate), H.264 in Matroska. */
  vfr: string;
  /** 64 KiB of random bytes. */
  garbage: string;
  cleanup: () => Promise<void>;
}

/** Generates the fixtures (a few seconds of ffmpeg work); `long` only when `withLong` is set. */
export async function makeVideoFixtures(options: { withLong?: boolean } = {}): Promise<VideoFixtures> {
  const dir = await mkdtemp(join(tmpdir(), "vidrtc-media-"));
  const p = (name: string): string => join(dir, name);
  const f: VideoFixtures = {
    dir,
    testsrc: p("testsrc.mp4"),
    square: p("square.mp4"),
    rotated: p("rotated.mp4"),
    gray: p("gray.mp4"),
    webm: p("testsrc.webm"),
    long: p("long.mp4"),
    garbage: p("garbage.mp4"),
    vfr: p("vfr.mkv"),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  const s = SQUARE;
  await Promise.all([
    ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", "2", ...X264, f.testsrc]),
    ffmpeg([
      "-f",
      "lavfi",
      "-i",
      `color=c=black:s=${s.width}x${s.height}:r=${s.fps}[bg];color=c=white:s=${s.size}x${s.size}:r=${s.fps}[fg];` +
        `[bg][fg]overlay=x='${s.x0}+t*${s.speed}':y=${s.y}`,
      "-t",
      "2",
      ...X264,
      "-crf",
      "12",
      f.square,
    ]),
    ffmpeg(["-f", "lavfi", "-i", "color=c=0x808080:s=64x48:r=15", "-t", "1", ...X264, f.gray]),
    ffmpeg([
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=320x240:rate=15",
      "-t",
      "1",
      "-c:v",
      "libvpx",
      "-b:v",
      "300k",
      f.webm,
    ]),
    options.withLong
      ? ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "10", ...X264, f.long])
      : Promise.resolve(),
    ffmpeg([
      "-f",
      "lavfi",
      "-t",
      "1",
      "-i",
      "testsrc2=size=160x120:rate=15",
      "-vf",
      "setpts='(N+if(gte(N,10),15,0))/(15*TB)'",
      "-vsync",
      "vfr",
      ...X264,
      f.vfr,
    ]),
    writeFile(
      f.garbage,
      Uint8Array.from({ length: 65536 }, (_, i) => (i * 2654435761) >>> 24),
    ),
  ]);
  await ffmpeg(["-i", f.square, "-c", "copy", "-metadata:s:v:0", "rotate=90", f.rotated]);
  return f;
}

/** True while a process with this pid exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/** Waits until `pid` is gone (bounded); returns whether it is gone. */
export async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !processAlive(pid);
}

/** Bounding box of pixels brighter than `min` (all three channels) in an rgb24 frame. */
export function brightBox(
  rgb: Uint8Array,
  width: number,
  height: number,
  min = 200,
): { x0: number; y0: number; x1: number; y1: number } | null {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      if (rgb[p]! > min && rgb[p + 1]! > min && rgb[p + 2]! > min) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1, y1 };
}
