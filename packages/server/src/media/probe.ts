/**
 * Video probing with the system's ffprobe, and a check that ffmpeg/ffprobe are usable.
 */
import { VidrtcError } from "@vidrtc/protocol";
import { FFMPEG_INSTALL_HINT, isMissingExecutable, lastLines, runTool } from "./run-tool.js";

/** What the server needs to know about an uploaded video before decoding it. */
export interface VideoInfo {
  /** Average frame rate (frames per second); falls back to the nominal rate, then 30. */
  fps: number;
  /** Displayed width in pixels, i.e. after applying `rotation` (what decoded frames have at full size). */
  width: number;
  /** Displayed height in pixels, i.e. after applying `rotation`. */
  height: number;
  /**
   * Display rotation in degrees counter-clockwise, normalised to 0, 90, 180 or 270 (ffprobe's display
   * matrix convention). ffmpeg's autorotate applies it while decoding.
   */
  rotation: number;
  /** Number of video frames (from the container, or counted by demuxing), `null` when unknown. */
  frameCount: number | null;
  /**
   * True when `frameCount` was counted by demuxing the file (containers such as WebM/Matroska store
   * no count): it is then what the file holds, not what it announces, so it cannot show a cut file.
   */
  frameCountCounted?: boolean;
  /** Duration in seconds (stream, else container), `null` when unknown. */
  durationSeconds: number | null;
  /**
   * The video stream's own duration in seconds (its `duration`, or Matroska's per-track `DURATION`
   * tag), `null` when the file states none; unlike `durationSeconds` never the container's, which
   * may be longer than the video (e.g. a longer audio track).
   */
  streamDurationSeconds?: number | null;
  /** ffprobe's codec name, e.g. `h264`, `vp8`. */
  codec: string;
  /**
   * The demuxer ffprobe chose, one of `ALLOWED_DEMUXERS` (e.g. `mov`, `matroska`). `decodeVideo`
   * forces it with `-f`, so ffmpeg cannot pick another one for the same bytes. Absent only in hand-made infos.
   */
  container?: string;
}

/** Options for {@link probeVideo}. */
export interface ProbeOptions {
  /** Aborts the probe (the ffprobe child is killed), rejecting with `ABORTED`. */
  signal?: AbortSignal;
  /** ffprobe executable (default `ffprobe` on the PATH). */
  ffprobePath?: string;
  /** Upper bound for each ffprobe run (default 30 s). */
  timeoutMs?: number;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  duration?: string;
  tags?: Record<string, string>;
  side_data_list?: Array<{ rotation?: number | string }>;
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { duration?: string; format_name?: string };
}

const DEFAULT_PROBE_TIMEOUT_MS = 30_000;

function notDecodable(reason: string, cause?: unknown): VidrtcError {
  return new VidrtcError("PROCESSING_FAILED", `The uploaded file is not a decodable video: ${reason}`, {
    cause,
  });
}

function parseRate(text: string | undefined): number | null {
  if (!text) return null;
  const [n, d] = text.split("/");
  const num = Number(n);
  const den = d === undefined ? 1 : Number(d);
  if (!Number.isFinite(num) || !Number.isFinite(den) || num <= 0 || den <= 0) return null;
  return num / den;
}

/** Matroska's per-track `DURATION` tag, `HH:MM:SS.fraction`, in seconds (null when absent or malformed). */
function parseClockDuration(text: string | undefined): number | null {
  const m = text === undefined ? null : /^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$/.exec(text.trim());
  if (!m) return null;
  const seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : null;
}

function parsePositive(text: string | undefined): number | null {
  if (text === undefined) return null;
  const v = Number(text);
  return Number.isFinite(v) && v > 0 ? v : null;
}

/** Counter-clockwise rotation normalised to 0/90/180/270 from the display matrix (or the legacy `rotate` tag). */
function rotationOf(stream: FfprobeStream): number {
  let ccw: number | null = null;
  for (const sd of stream.side_data_list ?? []) {
    if (sd.rotation !== undefined && Number.isFinite(Number(sd.rotation))) {
      ccw = Number(sd.rotation);
      break;
    }
  }
  if (ccw === null && stream.tags?.rotate !== undefined && Number.isFinite(Number(stream.tags.rotate))) {
    // The legacy tag is clockwise.
    ccw = -Number(stream.tags.rotate);
  }
  if (ccw === null) return 0;
  const quarter = Math.round(ccw / 90);
  return (((quarter % 4) + 4) % 4) * 90;
}

async function ffprobeJson(ffprobe: string, args: string[], options: ProbeOptions): Promise<FfprobeOutput> {
  let result: Awaited<ReturnType<typeof runTool>>;
  try {
    result = await runTool(ffprobe, args, {
      timeoutMs: options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      label: "ffprobe",
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (isMissingExecutable(error)) {
      throw new VidrtcError(
        "PROCESSING_FAILED",
        `ffprobe could not be started (${ffprobe}). ${FFMPEG_INSTALL_HINT}`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  if (result.code !== 0) {
    const input = args[args.length - 1] ?? "";
    const reason = lastLines(
      result.stderr
        .split(`${input}: `)
        .join("")
        .replace(/\[[^\]\n]*@ 0x[0-9a-f]+\]\s*/g, ""),
      3,
    );
    throw notDecodable(reason || `ffprobe exited with code ${result.code}`);
  }
  try {
    return JSON.parse(result.stdout) as FfprobeOutput;
  } catch (error) {
    throw notDecodable("ffprobe printed unreadable output", error);
  }
}

/**
 * Demuxers an upload may use: self-contained video containers only. Playlists and lists that name other
 * files or URLs (`hls`, `dash`, `concat`, `image2`, `ffconcat`, `sdp`, `rtsp`, `tee`, `lavfi`, ...) are
 * not on it, so an upload can never make ffmpeg read anything but itself. Each entry is ffmpeg's demuxer
 * name (ffmpeg matches any of a demuxer's comma-separated names against this list).
 */
export const ALLOWED_DEMUXERS: readonly string[] = [
  "mov", // mp4, m4v, mov, 3gp (external data references stay off: the demuxer's enable_drefs defaults to 0)
  "matroska", // mkv, webm
  "avi",
  "mpegts",
  "mpeg",
  "flv",
  "ogg",
  "ivf",
  "asf",
  "h264",
  "hevc",
  "m4v",
];

/**
 * Input options for untrusted uploads: only the `file` protocol (no network URL is ever opened) and only
 * the demuxers of {@link ALLOWED_DEMUXERS} (no playlist or list can open other local files).
 */
export const INPUT_SAFETY: readonly string[] = [
  "-protocol_whitelist",
  "file",
  "-format_whitelist",
  ALLOWED_DEMUXERS.join(","),
];

/**
 * The allowed demuxer of an ffprobe `format_name` (e.g. `mov,mp4,m4a,3gp,3g2,mj2` -> `mov`), or null when
 * none of its names is allowed.
 */
export function allowedDemuxer(formatName: string | undefined): string | null {
  if (!formatName) return null;
  const names = formatName.split(",").map((n) => n.trim());
  return ALLOWED_DEMUXERS.find((allowed) => names.includes(allowed)) ?? null;
}

/** The input argument for ffmpeg/ffprobe: the `file:` protocol, so no other protocol or option is ever parsed from a path. */
export function fileUrl(path: string): string {
  return `file:${path}`;
}

/**
 * Reads the first video stream's properties with ffprobe. Rejects with `PROCESSING_FAILED` ("The uploaded
 * file is not a decodable video: <reason>") when the file is not a video ffmpeg can decode, and when
 * ffprobe does not finish within the timeout; with `ABORTED` on abort.
 */
export async function probeVideo(
  path: string,
  options: { signal?: AbortSignal; ffprobePath?: string; timeoutMs?: number } = {},
): Promise<VideoInfo> {
  const ffprobe = options.ffprobePath ?? "ffprobe";
  const base = ["-v", "error", ...INPUT_SAFETY, "-select_streams", "v:0"];
  const probed = await ffprobeJson(
    ffprobe,
    [
      ...base,
      "-show_entries",
      "stream=codec_type,codec_name,width,height,r_frame_rate,avg_frame_rate,nb_frames,duration:stream_tags=rotate,DURATION:stream_side_data=rotation:format=duration,format_name",
      "-of",
      "json",
      "-i",
      fileUrl(path),
    ],
    options,
  );
  const container = allowedDemuxer(probed.format?.format_name);
  if (container === null) {
    throw notDecodable(
      `the container format ${probed.format?.format_name ? `'${probed.format.format_name}' ` : ""}is not allowed (allowed: ${ALLOWED_DEMUXERS.join(", ")})`,
    );
  }
  const stream = probed.streams?.[0];
  if (!stream || (stream.codec_type !== undefined && stream.codec_type !== "video")) {
    throw notDecodable(
      `no video stream found${probed.format?.format_name ? ` (container: ${probed.format.format_name})` : ""}`,
    );
  }
  const codedWidth = stream.width ?? 0;
  const codedHeight = stream.height ?? 0;
  if (!(codedWidth > 0 && codedHeight > 0)) throw notDecodable("the video stream has no frame size");
  if (!stream.codec_name || stream.codec_name === "none") throw notDecodable("unknown video codec");
  const rotation = rotationOf(stream);
  const swap = rotation === 90 || rotation === 270;
  const fps = parseRate(stream.avg_frame_rate) ?? parseRate(stream.r_frame_rate) ?? 30;
  const streamDurationSeconds = parsePositive(stream.duration) ?? parseClockDuration(stream.tags?.DURATION);
  const durationSeconds = streamDurationSeconds ?? parsePositive(probed.format?.duration);
  let frameCount = parsePositive(stream.nb_frames);
  const frameCountCounted = frameCount === null;
  if (frameCount === null) {
    // Containers like WebM/Matroska don't store a frame count: count packets by demuxing (no decoding).
    try {
      const counted = await ffprobeJson(
        ffprobe,
        [
          ...base,
          "-f",
          container,
          "-count_packets",
          "-show_entries",
          "stream=nb_read_packets",
          "-of",
          "json",
          "-i",
          fileUrl(path),
        ],
        options,
      );
      frameCount = parsePositive(counted.streams?.[0]?.nb_read_packets);
    } catch (error) {
      if (VidrtcError.hasCode(error, "ABORTED")) throw error;
      frameCount = null;
    }
  }
  return {
    fps,
    width: swap ? codedHeight : codedWidth,
    height: swap ? codedWidth : codedHeight,
    rotation,
    frameCount: frameCount === null ? null : Math.round(frameCount),
    frameCountCounted: frameCountCounted && frameCount !== null,
    durationSeconds,
    streamDurationSeconds,
    codec: stream.codec_name,
    container,
  };
}

/**
 * Checks that ffmpeg and ffprobe can be run. Never rejects: resolves `{ ok: false, message }` with an
 * install hint (e.g. `apt-get install -y ffmpeg`) when either is missing or broken. `vp8Encoder` tells
 * whether ffmpeg has libvpx (needed by `Vp8RtpEncoder` for the video track back).
 */
export async function checkFfmpeg(
  options: { ffmpegPath?: string; ffprobePath?: string; signal?: AbortSignal } = {},
): Promise<
  | {
      /** Both tools ran. */
      ok: true;
      /** ffmpeg's version string, e.g. `6.1.1`. */
      ffmpegVersion: string;
      /** Whether ffmpeg has the libvpx VP8 encoder. */
      vp8Encoder: boolean;
    }
  | {
      /** A tool is missing or broken. */
      ok: false;
      /** What failed, with an install hint. */
      message: string;
    }
> {
  const ffmpeg = options.ffmpegPath ?? "ffmpeg";
  const ffprobe = options.ffprobePath ?? "ffprobe";
  let ffmpegVersion = "";
  for (const [tool, label] of [
    [ffmpeg, "ffmpeg"],
    [ffprobe, "ffprobe"],
  ] as const) {
    try {
      const result = await runTool(tool, ["-hide_banner", "-version"], {
        timeoutMs: 10_000,
        label,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.code !== 0) {
        return {
          ok: false,
          message: `${label} (${tool}) exited with code ${result.code}: ${lastLines(result.stderr, 2)}. ${FFMPEG_INSTALL_HINT}`,
        };
      }
      if (label === "ffmpeg") {
        const m = /version\s+(\S+)/.exec(result.stdout);
        ffmpegVersion = m?.[1] ?? (result.stdout.split("\n")[0] ?? "").trim();
      }
    } catch (error) {
      const reason = isMissingExecutable(error)
        ? "was not found"
        : `could not be run (${error instanceof Error ? error.message : String(error)})`;
      return { ok: false, message: `${label} (${tool}) ${reason}. ${FFMPEG_INSTALL_HINT}` };
    }
  }
  let vp8Encoder = false;
  try {
    const encoders = await runTool(ffmpeg, ["-hide_banner", "-encoders"], {
      timeoutMs: 10_000,
      label: "ffmpeg",
      ...(options.signal ? { signal: options.signal } : {}),
    });
    vp8Encoder = encoders.code === 0 && /\blibvpx\b/.test(encoders.stdout);
  } catch {
    vp8Encoder = false;
  }
  return { ok: true, ffmpegVersion, vp8Encoder };
}
