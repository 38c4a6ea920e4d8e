/**
 * Frame-by-frame decoding of a video file to rgb24 with an ffmpeg child process.
 * Decoding never runs on the event loop, and a slow consumer pauses ffmpeg (pipe backpressure).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { abortError, throwIfAborted, VidrtcError } from "@vidrtc/protocol";
import { fileUrl, INPUT_SAFETY, type VideoInfo } from "./probe.js";
import { FFMPEG_INSTALL_HINT, isMissingExecutable } from "./run-tool.js";

/** One decoded video frame. */
export interface DecodedFrame {
  /** 1-based frame number, in decoding (presentation) order. */
  index: number;
  /** Presentation time in seconds (from ffmpeg; `(index - 1) / fps` when ffmpeg did not report it). */
  ptsSeconds: number;
  /** Frame width in pixels (after rotation and downscaling). */
  width: number;
  /** Frame height in pixels (after rotation and downscaling). */
  height: number;
  /** Packed rgb24 pixels, row-major, `width * height * 3` bytes; a fresh buffer per frame. */
  rgb: Uint8Array;
}

/** Options for {@link decodeVideo}. */
export interface DecodeOptions {
  /** Aborts decoding: the ffmpeg child is killed and the generator throws `ABORTED`. */
  signal?: AbortSignal;
  /** Frames wider than this are downscaled keeping the aspect ratio (default 640). Dimensions are made even. */
  maxWidth?: number;
  /** ffmpeg executable (default `ffmpeg` on the PATH). */
  ffmpegPath?: string;
  /** Called once the ffmpeg child is spawned (diagnostics and tests). */
  onSpawn?: (child: { pid: number | undefined }) => void;
}

/** The default `maxWidth` of {@link decodeVideo}. */
export const DEFAULT_DECODE_MAX_WIDTH = 640;

/** Frame size {@link decodeVideo} produces for `info` and `maxWidth`: aspect kept, both even, at least 2. */
export function decodedFrameSize(
  info: Pick<VideoInfo, "width" | "height">,
  maxWidth = DEFAULT_DECODE_MAX_WIDTH,
): { width: number; height: number } {
  const even = (v: number): number => Math.max(2, Math.round(v / 2) * 2);
  if (!(info.width > 0 && info.height > 0)) {
    throw new VidrtcError("PROCESSING_FAILED", `Invalid video size ${info.width}x${info.height}.`);
  }
  const floorEven = (v: number): number => Math.max(2, Math.floor(v / 2) * 2);
  const limit = Math.max(2, Math.floor(maxWidth));
  if (info.width <= limit) return { width: floorEven(info.width), height: floorEven(info.height) };
  const width = floorEven(limit);
  return { width, height: even((info.height * width) / info.width) };
}

const SHOWINFO_RE = /\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\s+pts_time:(\S+)/;
const STDERR_TAIL = 40;
const EXIT_WAIT_MS = 5_000;
const PTS_WAIT_MS = 250;

type Child = ChildProcessByStdio<null, Readable, Readable>;

function waitForExit(child: Child, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      child.off("exit", done);
      resolve();
    }
    child.once("exit", done);
  });
}

/**
 * Decodes every frame of the first video stream of `path` to rgb24 with ffmpeg
 * (`-f rawvideo -pix_fmt rgb24 pipe:1`, autorotate on, passthrough frame timing so the number of frames
 * matches the file), downscaled to at most `maxWidth` pixels wide.
 *
 * The consumer drives decoding: while it does not ask for the next frame, ffmpeg's stdout pipe fills and
 * ffmpeg blocks, so memory stays bounded. The child is killed on abort, on `return()` (e.g. `break` in a
 * `for await`) and on error. ffmpeg failures reject with `PROCESSING_FAILED` (exit code and the last
 * stderr lines); abort rejects with `ABORTED`.
 */
export async function* decodeVideo(
  path: string,
  info: VideoInfo,
  options: DecodeOptions = {},
): AsyncGenerator<DecodedFrame, void, undefined> {
  const { signal } = options;
  throwIfAborted(signal, "decoding");
  const { width, height } = decodedFrameSize(info, options.maxWidth ?? DEFAULT_DECODE_MAX_WIDTH);
  const frameBytes = width * height * 3;
  const ffmpeg = options.ffmpegPath ?? "ffmpeg";
  const args = [
    "-hide_banner",
    "-nostdin",
    "-nostats",
    "-loglevel",
    "repeat+level+info",
    ...INPUT_SAFETY,
    ...(info.container ? ["-f", info.container] : []),
    "-i",
    fileUrl(path),
    "-map",
    "0:v:0",
    "-an",
    "-sn",
    "-dn",
    "-vsync",
    "passthrough",
    "-vf",
    `scale=${width}:${height}:flags=bilinear,showinfo=checksum=0`,
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "pipe:1",
  ];

  const child: Child = spawn(ffmpeg, args, { stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
  let spawnError: Error | null = null;
  child.on("error", (e) => {
    spawnError = e;
  });
  options.onSpawn?.({ pid: child.pid });

  // stderr: per-frame timestamps from showinfo, and a bounded tail of everything else for error messages.
  const pts = new Map<number, number>();
  const tail: string[] = [];
  let stderrEnded = false;
  let stderrRest = "";
  let wake: (() => void) | null = null;
  const notify = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    const lines = (stderrRest + text).split(/\r?\n/);
    stderrRest = lines.pop() ?? "";
    for (const line of lines) {
      const m = SHOWINFO_RE.exec(line);
      if (m) {
        const seconds = Number(m[3]);
        if (Number.isFinite(seconds)) pts.set(Number(m[1]), seconds);
        continue;
      }
      if (line.includes("Parsed_showinfo") || line.trim() === "") continue;
      tail.push(line.trim());
      if (tail.length > STDERR_TAIL) tail.shift();
    }
    notify();
  });
  child.stderr.on("end", () => {
    stderrEnded = true;
    notify();
  });
  child.stderr.on("error", () => {
    stderrEnded = true;
    notify();
  });

  const onAbort = (): void => {
    child.kill("SIGKILL");
  };
  signal?.addEventListener("abort", onAbort, { once: true });

  // If this ffmpeg never prints showinfo lines we recognise, stop waiting for them after two misses.
  let ptsSeen = false;
  let ptsMisses = 0;
  const ptsFor = async (n: number): Promise<number | undefined> => {
    const deadline = Date.now() + (ptsSeen || ptsMisses < 2 ? PTS_WAIT_MS : 0);
    while (!pts.has(n) && !stderrEnded && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const v = pts.get(n);
    if (v === undefined) ptsMisses++;
    else ptsSeen = true;
    pts.delete(n);
    return v;
  };

  const failure = (reason: string): VidrtcError => {
    const important = tail.filter((l) => /\[(error|fatal|panic)\]/.test(l));
    const input = `${fileUrl(path)}: `;
    const lines = (important.length > 0 ? important : tail).slice(-5).map((l) =>
      l
        .replace(/^\[[^\]]*@[^\]]*\]\s*/, "")
        .replace(/^\[(error|fatal|panic|warning|info)\]\s*/, "")
        .split(input)
        .join(""),
    );
    return new VidrtcError(
      "PROCESSING_FAILED",
      `Decoding the video failed: ${reason}${lines.length > 0 ? `: ${lines.join("; ")}` : ""}`,
      { details: { exitCode: child.exitCode, signal: child.signalCode, stderr: tail.slice(-10) } },
    );
  };

  let index = 0;
  let current: Uint8Array | null = null;
  let filled = 0;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        if (current === null) {
          current = new Uint8Array(frameBytes);
          filled = 0;
        }
        const n = Math.min(frameBytes - filled, chunk.length - offset);
        current.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === frameBytes) {
          const rgb: Uint8Array = current;
          current = null;
          index += 1;
          const seconds = await ptsFor(index - 1);
          throwIfAborted(signal, "decoding");
          yield {
            index,
            ptsSeconds: seconds ?? (index - 1) / (info.fps > 0 ? info.fps : 30),
            width,
            height,
            rgb,
          };
          throwIfAborted(signal, "decoding");
        }
      }
    }
    throwIfAborted(signal, "decoding");
    await waitForExit(child, EXIT_WAIT_MS);
    await new Promise<void>((resolve) => setImmediate(resolve));
    throwIfAborted(signal, "decoding");
    if (spawnError !== null) throw spawnFailure(ffmpeg, spawnError);
    if (child.exitCode === null && child.signalCode === null) {
      throw failure(`ffmpeg did not exit within ${EXIT_WAIT_MS} ms after its output ended`);
    }
    if (child.exitCode !== 0) {
      throw failure(
        child.exitCode === null
          ? `ffmpeg was killed by ${child.signalCode}`
          : `ffmpeg exited with code ${child.exitCode}`,
      );
    }
    if (current !== null && filled > 0) {
      throw failure(`the last frame was truncated (${filled} of ${frameBytes} bytes)`);
    }
    if (index === 0) throw failure("ffmpeg decoded no frames");
  } catch (error) {
    if (signal?.aborted) throw abortError(signal, "decoding");
    if (spawnError !== null) throw spawnFailure(ffmpeg, spawnError);
    if (VidrtcError.isInstance(error)) throw error;
    throw failure(error instanceof Error ? error.message : String(error));
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    child.stdout.destroy();
    await waitForExit(child, EXIT_WAIT_MS);
    child.stderr.destroy();
  }
}

function spawnFailure(ffmpeg: string, error: Error): VidrtcError {
  return new VidrtcError(
    "PROCESSING_FAILED",
    isMissingExecutable(error)
      ? `ffmpeg could not be started (${ffmpeg}). ${FFMPEG_INSTALL_HINT}`
      : `ffmpeg could not be started (${ffmpeg}): ${error.message}`,
    { cause: error },
  );
}
