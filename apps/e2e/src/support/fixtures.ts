/**
 * Test inputs made with the system's ffmpeg, cached in `apps/e2e/.fixtures/` (gitignored,
 * override with `VIDRTC_FIXTURES_DIR`). Each file's name carries a key hashed from its recipe
 * and the ffmpeg version, so changing a recipe makes a new file; a sidecar `.json` records its
 * size, SHA-256 and (for videos) the frame count ffprobe counted when it was made.
 *
 * Every video shows one white square moving left to right across a black frame at constant
 * speed, vertically centred, so a motion workflow finds exactly one moving box.
 */
import { execFile } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { UPLOAD_CHUNK_SIZE } from "@vidrtc/protocol";

/** Bump when a recipe changes in a way its key would not capture. */
const FIXTURE_FORMAT_VERSION = 1;
const MiB = 1024 * 1024;
const FFMPEG_TIMEOUT_MS = 180_000;

/** A file on disk made for tests. */
export interface FileFixture {
  /** Absolute path. */
  path: string;
  /** Exact size in bytes. */
  bytes: number;
  /** Lowercase hex SHA-256 of the contents. */
  sha256: string;
}

/** A video file made for tests. */
export interface VideoFixture extends FileFixture {
  /** Frames in the video stream, as counted by ffprobe (`-count_frames`) when it was made. */
  frames: number;
  /** Frame rate. */
  fps: number;
  width: number;
  height: number;
  /** Duration (frames / fps). */
  seconds: number;
  /** Video codec name as ffprobe reports it (`h264`, `vp8`, `rawvideo`). */
  codec: string;
  /**
   * Side of the moving white square, in pixels. Its left edge goes linearly from x = 0 (first
   * frame) to x = width - side (last frame); its top is at (height - side) / 2.
   */
  squareSize: number;
}

/** Options for {@link motionVideo}. */
export interface MotionVideoOptions {
  /** Duration in seconds (default 2). */
  seconds?: number;
  /** Frame rate (default 15). */
  fps?: number;
  /** `WIDTHxHEIGHT`, even numbers (default `320x240`). */
  size?: `${number}x${number}`;
  /** `h264` in MP4 (default), `vp8` in WebM, or uncompressed `rawvideo` (yuv420p) in Matroska. */
  codec?: "h264" | "vp8" | "rawvideo";
}

/** Options for {@link largeVideo}. */
export interface LargeVideoOptions {
  /**
   * `dense` (default): an uncompressed 1280x720 yuv420p video (Matroska) with as many frames as
   * the size needs (about 1.32 MiB each, ~152 frames for 200 MiB at 10 fps): every byte is video.
   * `padded`: a 2 s 320x240 H.264 MP4 followed by one top-level ISO-BMFF `free` box up to exactly
   * the size: still a valid MP4 that decodes to 30 frames, so server-side processing is cheap.
   */
  kind?: "dense" | "padded";
}

/** Options for {@link exactMultipleFile}. */
export interface ExactMultipleOptions {
  /** Size in upload chunks of 49152 bytes (default: the fewest that hold the video, at least 4). */
  chunks?: number;
}

/** Options for {@link randomFile}. */
export interface RandomFileOptions {
  /** Seed of the deterministic byte stream (default 1): same size and seed, same bytes. */
  seed?: number;
}

interface FixtureMeta {
  key: string;
  bytes: number;
  sha256: string;
  extra: Record<string, unknown>;
}

/** Directory the fixtures are cached in (created on demand). */
export function fixturesDir(): string {
  const fromEnv = process.env.VIDRTC_FIXTURES_DIR;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return fileURLToPath(new URL("../../.fixtures/", import.meta.url));
}

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: FFMPEG_TIMEOUT_MS, maxBuffer: 16 * MiB, encoding: "utf8", signal },
      (error, stdout, stderr) => {
        if (error) {
          const detail = stderr.trim().split("\n").slice(-5).join("\n");
          reject(
            new Error(`${command} failed: ${error.message}${detail ? `\n${detail}` : ""}`, { cause: error }),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

let ffmpegVersionPromise: Promise<string> | undefined;

/** First line of `ffmpeg -version`; part of every video fixture's cache key. */
function ffmpegVersion(): Promise<string> {
  ffmpegVersionPromise ??= run("ffmpeg", ["-hide_banner", "-version"]).then(
    (r) => r.stdout.split("\n")[0] ?? "",
    (error: unknown) => {
      ffmpegVersionPromise = undefined;
      throw new Error("ffmpeg not found: install it (bash scripts/setup.sh does).", { cause: error });
    },
  );
  return ffmpegVersionPromise;
}

/** Lowercase hex SHA-256 of a file, streamed. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path, { highWaterMark: MiB }), hash, { signal });
  return hash.digest("hex");
}

/** Frames in the first video stream, decoded and counted by ffprobe (`-count_frames`). */
export async function frameCount(path: string, signal?: AbortSignal): Promise<number> {
  const { stdout } = await run(
    "ffprobe",
    [
      "-v",
      "error",
      "-count_frames",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=nb_read_frames",
      "-of",
      "csv=p=0",
      path,
    ],
    signal,
  );
  const frames = Number.parseInt(stdout.trim(), 10);
  if (!Number.isInteger(frames)) throw new Error(`ffprobe reported no frame count for ${path}: "${stdout}"`);
  return frames;
}

/** Codec name of the first video stream, per ffprobe. */
async function videoCodec(path: string, signal?: AbortSignal): Promise<string> {
  const { stdout } = await run(
    "ffprobe",
    ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
    signal,
  );
  return stdout.trim();
}

const inFlight = new Map<string, Promise<FileFixture & Record<string, unknown>>>();

/**
 * Returns the cached fixture for `recipe`, making it with `make(tmpPath)` when absent.
 * Made under a temporary name and renamed into place, so concurrent makers never see a
 * partial file; the sidecar JSON is written last and marks the file complete.
 */
async function cached<Extra extends Record<string, unknown>>(
  name: string,
  ext: string,
  recipe: unknown,
  make: (tmpPath: string) => Promise<Extra>,
): Promise<FileFixture & Extra> {
  const key = createHash("sha256")
    .update(JSON.stringify({ v: FIXTURE_FORMAT_VERSION, name, recipe }))
    .digest("hex")
    .slice(0, 16);
  const dir = fixturesDir();
  const path = join(dir, `${name}-${key}.${ext}`);
  const metaPath = `${path}.json`;
  const pending = inFlight.get(path);
  if (pending) return (await pending) as FileFixture & Extra;

  const task = (async () => {
    try {
      const meta = JSON.parse(await readFile(metaPath, "utf8")) as FixtureMeta;
      const info = await stat(path);
      if (meta.key === key && info.size === meta.bytes) {
        return { path, bytes: meta.bytes, sha256: meta.sha256, ...(meta.extra as Extra) };
      }
    } catch {
      // not cached yet (or a broken cache entry): make it
    }
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.tmp-${process.pid}-${Date.now()}-${name}.${ext}`);
    try {
      const extra = await make(tmp);
      const bytes = (await stat(tmp)).size;
      const sha256 = await sha256File(tmp);
      await rename(tmp, path);
      const meta: FixtureMeta = { key, bytes, sha256, extra };
      const metaTmp = `${tmp}.json`;
      await writeFile(metaTmp, `${JSON.stringify(meta, null, 2)}\n`);
      await rename(metaTmp, metaPath);
      return { path, bytes, sha256, ...extra };
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  })();
  inFlight.set(path, task);
  try {
    return await task;
  } finally {
    inFlight.delete(path);
  }
}

function parseSize(size: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(size);
  if (!m) throw new Error(`size must look like 320x240, got "${size}"`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width < 16 || height < 16 || width % 2 !== 0 || height % 2 !== 0) {
    throw new Error(`size must be even and at least 16x16, got "${size}"`);
  }
  return { width, height };
}

const CODECS = {
  h264: {
    ext: "mp4",
    args: ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-movflags", "+faststart", "-f", "mp4"],
  },
  vp8: { ext: "webm", args: ["-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-f", "webm"] },
  rawvideo: { ext: "mkv", args: ["-c:v", "rawvideo", "-f", "matroska"] },
} as const;

/**
 * Encodes `frames` frames of the moving-square pattern. The square's x goes linearly from 0
 * (first frame) to width - side (last frame); y is centred.
 */
async function encodeMotion(
  out: string,
  o: { width: number; height: number; fps: number; frames: number; codec: keyof typeof CODECS },
): Promise<{ squareSize: number }> {
  const side = Math.max(4, Math.round(Math.min(o.width, o.height) / 6 / 2) * 2);
  const lastT = Math.max(1, o.frames - 1) / o.fps;
  const seconds = (o.frames + 1) / o.fps;
  await run("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    `color=c=black:s=${o.width}x${o.height}:r=${o.fps}:d=${seconds}`,
    "-f",
    "lavfi",
    "-i",
    `color=c=white:s=${side}x${side}:r=${o.fps}:d=${seconds}`,
    "-filter_complex",
    `[0:v][1:v]overlay=x='(W-w)*min(t/${lastT},1)':y='(H-h)/2':eof_action=pass,format=yuv420p[v]`,
    "-map",
    "[v]",
    "-frames:v",
    String(o.frames),
    "-pix_fmt",
    "yuv420p",
    "-fflags",
    "+bitexact",
    "-map_metadata",
    "-1",
    ...CODECS[o.codec].args,
    out,
  ]);
  return { squareSize: side };
}

async function videoExtras(
  path: string,
  o: { width: number; height: number; fps: number; frames: number; squareSize: number },
): Promise<Omit<VideoFixture, keyof FileFixture>> {
  const frames = await frameCount(path);
  if (frames !== o.frames) {
    throw new Error(`ffmpeg made ${frames} frames in ${path}, expected ${o.frames}`);
  }
  return {
    frames,
    fps: o.fps,
    width: o.width,
    height: o.height,
    seconds: frames / o.fps,
    codec: await videoCodec(path),
    squareSize: o.squareSize,
  };
}

/**
 * A video of a white square moving across black: `seconds * fps` frames (rounded), by default
 * 320x240, 15 fps, 2 s (30 frames), H.264 in MP4.
 */
export async function motionVideo(options: MotionVideoOptions = {}): Promise<VideoFixture> {
  const seconds = options.seconds ?? 2;
  const fps = options.fps ?? 15;
  const codec = options.codec ?? "h264";
  const { width, height } = parseSize(options.size ?? "320x240");
  const frames = Math.round(seconds * fps);
  if (!(frames >= 1) || !Number.isInteger(fps) || fps < 1) {
    throw new Error(
      `motionVideo needs an integer fps >= 1 and at least one frame (fps=${fps}, seconds=${seconds})`,
    );
  }
  const version = await ffmpegVersion();
  const recipe = { width, height, fps, frames, codec, version };
  return cached(
    `motion-${width}x${height}-${fps}fps-${frames}f-${codec}`,
    CODECS[codec].ext,
    recipe,
    async (tmp) => {
      const { squareSize } = await encodeMotion(tmp, { width, height, fps, frames, codec });
      return videoExtras(tmp, { width, height, fps, frames, squareSize });
    },
  );
}

/** The small everyday test video: 320x240, 15 fps, 2 s (30 frames), H.264 in MP4, ~10 KB. */
export function tinyVideo(): Promise<VideoFixture> {
  return motionVideo();
}

/** Appends one top-level ISO-BMFF `free` box so the file is exactly `target` bytes long. */
async function padMp4(path: string, target: number): Promise<void> {
  const size = (await stat(path)).size;
  const pad = target - size;
  if (pad < 8 || pad > 0xffff_ffff)
    throw new Error(`cannot pad ${size} bytes to ${target} with one free box`);
  const handle = await open(path, "a");
  try {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(pad, 0);
    header.write("free", 4, "latin1");
    await handle.write(header);
    const zeros = Buffer.alloc(Math.min(pad - 8, 4 * MiB));
    let left = pad - 8;
    while (left > 0) {
      const n = Math.min(left, zeros.length);
      await handle.write(zeros, 0, n);
      left -= n;
    }
  } finally {
    await handle.close();
  }
}

/**
 * A valid, decodable MP4 (the 320x240 motion video, 30 frames) whose size is an exact multiple
 * of the 49152-byte upload chunk, so its last upload message is a full chunk. The size is made
 * up with a trailing top-level `free` box, which every MP4 reader skips.
 */
export async function exactMultipleFile(options: ExactMultipleOptions = {}): Promise<VideoFixture> {
  const base = await tinyVideo();
  const minChunks = Math.max(4, Math.ceil((base.bytes + 8) / UPLOAD_CHUNK_SIZE));
  const chunks = options.chunks ?? minChunks;
  if (!Number.isInteger(chunks) || chunks < Math.ceil((base.bytes + 8) / UPLOAD_CHUNK_SIZE)) {
    throw new Error(`exactMultipleFile needs at least ${minChunks} chunks for the video, got ${chunks}`);
  }
  const target = chunks * UPLOAD_CHUNK_SIZE;
  return cached(`exact-${chunks}x${UPLOAD_CHUNK_SIZE}`, "mp4", { base: base.sha256, target }, async (tmp) => {
    await pipeline(createReadStream(base.path), createWriteStream(tmp));
    await padMp4(tmp, target);
    const { path: _p, bytes: _b, sha256: _s, ...extra } = base;
    return videoExtras(tmp, extra);
  });
}

/**
 * A large video of about `sizeMiB` MiB (default 200): see {@link LargeVideoOptions.kind}.
 * `padded` files are exactly `sizeMiB` MiB; `dense` ones are whole frames, at least `sizeMiB` MiB.
 */
export async function largeVideo(sizeMiB = 200, options: LargeVideoOptions = {}): Promise<VideoFixture> {
  const kind = options.kind ?? "dense";
  if (!(sizeMiB > 0) || sizeMiB > 4000)
    throw new Error(`largeVideo size must be in (0, 4000] MiB, got ${sizeMiB}`);
  const target = Math.round(sizeMiB * MiB);
  if (kind === "padded") {
    const base = await tinyVideo();
    if (target < base.bytes + 8) throw new Error(`largeVideo padded needs more than ${base.bytes} bytes`);
    return cached(`large-padded-${target}`, "mp4", { base: base.sha256, target }, async (tmp) => {
      await pipeline(createReadStream(base.path), createWriteStream(tmp));
      await padMp4(tmp, target);
      const { path: _p, bytes: _b, sha256: _s, ...extra } = base;
      return videoExtras(tmp, extra);
    });
  }
  const width = 1280;
  const height = 720;
  const fps = 10;
  const frames = Math.max(1, Math.ceil(target / ((width * height * 3) / 2)));
  const version = await ffmpegVersion();
  return cached(`large-dense-${frames}f`, "mkv", { width, height, fps, frames, version }, async (tmp) => {
    const { squareSize } = await encodeMotion(tmp, { width, height, fps, frames, codec: "rawvideo" });
    return videoExtras(tmp, { width, height, fps, frames, squareSize });
  });
}

/**
 * A video that is tiny to upload but large to send results for: one frame of uniform random
 * grey-level noise held for `frames` frames (640x480, 15 fps, H.264 in MP4: one I-frame and nearly
 * empty P-frames, ~200 KB), so every frame's JPEG (the `annotated` output) is ~170 KB. No moving
 * square: `squareSize` is 0.
 */
export async function noiseVideo(frames = 150): Promise<VideoFixture> {
  if (!Number.isInteger(frames) || frames < 1) throw new Error(`noiseVideo needs frames >= 1, got ${frames}`);
  const width = 640;
  const height = 480;
  const fps = 15;
  const version = await ffmpegVersion();
  return cached(
    `noise-${width}x${height}-${frames}f`,
    "mp4",
    { width, height, fps, frames, version },
    async (tmp) => {
      const still = `${tmp}.png`;
      try {
        await run("ffmpeg", [
          ...["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"],
          ...["-i", `nullsrc=s=${width}x${height}:r=${fps},geq=lum='random(1)*255':cb=128:cr=128`],
          ...["-frames:v", "1", still],
        ]);
        await run("ffmpeg", [
          ...[
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-loop",
            "1",
            "-framerate",
            String(fps),
          ],
          ...["-i", still, "-frames:v", String(frames), "-pix_fmt", "yuv420p", "-g", String(frames + 1)],
          ...["-fflags", "+bitexact", "-map_metadata", "-1", ...CODECS.h264.args, tmp],
        ]);
      } finally {
        await rm(still, { force: true });
      }
      return videoExtras(tmp, { width, height, fps, frames, squareSize: 0 });
    },
  );
}

/** A video file cut short: see {@link truncatedVideo}. */
export interface TruncatedVideoFixture extends FileFixture {
  /** The intact video it was cut from. */
  intact: VideoFixture;
  /** Frames the cut file's container still announces (its `moov` is at the front): the intact count. */
  announcedFrames: number;
  /** Frames that can still be decoded from the cut file (ffprobe `-count_frames`). */
  decodableFrames: number;
}

/**
 * The first `fraction` (default one half) of the bytes of the motion video (320x240, 30 fps, 5 s =
 * 150 frames), by default a faststart H.264 MP4: its index at the front still announces every
 * frame, but the media data of the second part is gone, so ffmpeg decodes the first frames and then
 * stops without an error exit. With `codec: "vp8"` a WebM, which announces no frame count but
 * states the track's duration (5 s) at the front.
 */
export async function truncatedVideo(
  fraction = 0.5,
  codec: "h264" | "vp8" = "h264",
): Promise<TruncatedVideoFixture> {
  if (!(fraction > 0 && fraction < 1))
    throw new Error(`truncatedVideo fraction must be in (0, 1), got ${fraction}`);
  const intact = await motionVideo({ seconds: 5, fps: 30, codec });
  const keep = Math.floor(intact.bytes * fraction);
  const made = await cached(
    `cut-${Math.round(fraction * 100)}pct-${intact.frames}f${codec === "h264" ? "" : `-${codec}`}`,
    CODECS[codec].ext,
    { base: intact.sha256, keep },
    async (tmp) => {
      const data = await readFile(intact.path);
      await writeFile(tmp, data.subarray(0, keep));
      return { announcedFrames: intact.frames, decodableFrames: await frameCount(tmp) };
    },
  );
  return { ...made, intact };
}

/** A file of `size` deterministic pseudo-random bytes (AES-128-CTR keystream of the seed). */
export async function randomFile(size: number, options: RandomFileOptions = {}): Promise<FileFixture> {
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(size) || size < 0)
    throw new Error(`randomFile size must be a byte count, got ${size}`);
  return cached(`random-${size}-s${seed}`, "bin", { size, seed }, async (tmp) => {
    const key = createHash("sha256").update(`vidrtc-fixture-${seed}`).digest().subarray(0, 16);
    const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
    const handle = await open(tmp, "w");
    try {
      const zeros = Buffer.alloc(MiB);
      let left = size;
      while (left > 0) {
        const n = Math.min(left, zeros.length);
        await handle.write(cipher.update(zeros.subarray(0, n)));
        left -= n;
      }
    } finally {
      await handle.close();
    }
    return {};
  });
}

/** A zero-byte file. */
export function emptyFile(): Promise<FileFixture> {
  return cached("empty", "bin", {}, async (tmp) => {
    await writeFile(tmp, new Uint8Array(0));
    return {};
  });
}

/** Makes the fixtures most tests use (tiny, exact-multiple, 200 MiB dense), once; returns them. */
export async function prepareStandardFixtures(): Promise<{
  tiny: VideoFixture;
  exactMultiple: VideoFixture;
  large: VideoFixture;
}> {
  const tiny = await tinyVideo();
  const exactMultiple = await exactMultipleFile();
  const large = await largeVideo();
  return { tiny, exactMultiple, large };
}
