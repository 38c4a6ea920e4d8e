/**
 * `vidrtc` — send video files to an inference server over WebRTC and get per-frame results.
 *
 * Every input and output is checked before anything connects; outputs are written to a temp
 * file next to the target and renamed into place only when the run succeeds, so a failed run
 * never destroys an existing file. Every error is one line (`vidrtc: error CODE: message`),
 * then a `hint:` line, and a documented exit code (see {@link EXIT} and the README).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants, type Stats } from "node:fs";
import { access, type FileHandle, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import {
  DEFAULT_API_URL,
  InferenceClient,
  type InferenceClientOptions,
  type ResultMessage,
  type SessionSummary,
  type StreamOptions,
  type UploadProgress,
  type UploadSummary,
  VideoFileSource,
  VidrtcError,
} from "@vidrtc/node";
import { oneLine } from "@vidrtc/protocol";
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";

/** The CLI's version (from its package.json). */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string })
  .version;

/** Process exit codes of the `vidrtc` CLI (documented in the README). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  input: 3,
  server: 4,
  connection: 5,
  aborted: 130,
} as const;

const INPUT_CODES = new Set([
  "EMPTY_FILE",
  "FILE_TOO_LARGE",
  "FILE_NOT_FOUND",
  "FILE_UNREADABLE",
  "SOURCE_SIZE_MISMATCH",
  "INVALID_OPTIONS",
]);
const SERVER_CODES = new Set([
  "SIGNALING_FAILED",
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "PAYMENT_REQUIRED",
  "NOT_FOUND",
  "RATE_LIMITED",
  "VALIDATION_FAILED",
  "SERVER_ERROR",
  "BAD_GATEWAY",
  "PROCESSING_FAILED",
  "NO_RESULTS_TIMEOUT",
  // What the server sent could not be read: the server failed, not the connection.
  "MALFORMED_MESSAGE",
  "RESULT_DECODE_FAILED",
  "FRAME_TOO_LARGE",
  "CHUNK_OUT_OF_RANGE",
  "TOTAL_CHUNKS_CHANGED",
  "ZERO_CHUNKS",
  "DUPLICATE_CHUNK",
  "TOO_MANY_PENDING",
  "UPLOAD_TOO_LARGE",
]);

/** A failure the CLI finds itself (usage, paths), with its own code, exit code and hint. */
export class CliFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "CliFailure";
  }
}

/** Maps an error to the CLI's exit code. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CliFailure) return error.exitCode;
  if (!VidrtcError.isInstance(error)) return EXIT.failure;
  if (error.code === "ABORTED") return EXIT.aborted;
  if (error.code === "TRANSPORT_UNAVAILABLE") return EXIT.usage;
  if (INPUT_CODES.has(error.code)) return EXIT.input;
  if (SERVER_CODES.has(error.code)) return EXIT.server;
  return EXIT.connection;
}

const HINTS: Partial<Record<string, string>> = {
  CONNECTION_FAILED: "is the server running? Start a local one with `vidrtc-server`.",
  NOT_FOUND: "check --workflow (and --workspace); `vidrtc-server` knows frame-stats and motion.",
  UNAUTHORIZED: "pass a valid --api-key (or set ROBOFLOW_API_KEY).",
  FILE_NOT_FOUND: "check the video path.",
  TRANSPORT_UNAVAILABLE: "install it (`npm install node-datachannel`) or use --transport werift.",
  FILE_UNREADABLE: "pass a regular, readable video file (or a directory of them).",
  EMPTY_FILE: "the file has 0 bytes; pass a video file.",
  INVALID_OPTIONS: "check the options (run with --help).",
  CHANNEL_OPEN_TIMEOUT: "the server's ICE candidates may be unreachable from here; try --ice-server.",
  PROCESSING_FAILED: "the server's logs have the details.",
  MALFORMED_MESSAGE: "the server sent results vidrtc cannot read; check the server's version and logs.",
  RESULT_DECODE_FAILED: "the server sent results vidrtc cannot read; check the server's version and logs.",
  SERVER_ERROR: "the server failed; check its logs and retry.",
};

const VIDEO_EXTENSIONS = new Set([
  ".mp4",
  ".m4v",
  ".mov",
  ".mkv",
  ".webm",
  ".avi",
  ".mpg",
  ".mpeg",
  ".ts",
  ".mts",
  ".flv",
  ".wmv",
  ".3gp",
  ".ogv",
  ".y4m",
]);

function list(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** The URL for display: no query (it may carry `?api_key=`), no fragment, no credentials. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    const hadSecret = url.search !== "" || url.username !== "" || url.password !== "";
    url.search = "";
    url.hash = "";
    url.username = "";
    url.password = "";
    return hadSecret ? `${url.toString()} (query and credentials hidden)` : url.toString();
  } catch {
    return "(invalid URL)";
  }
}

interface RunFlags {
  apiUrl: string;
  apiKey?: string;
  workflow: string;
  workspace?: string;
  dataOutput?: string[];
  streamOutput?: string;
  saveVideo?: string;
  jsonl?: string;
  outDir?: string;
  concurrency: number;
  realtime?: boolean;
  iceServer?: string[];
  transport: "werift" | "node-datachannel";
  processingTimeout?: number;
  progress: boolean;
  quiet?: boolean;
}

/** A session as the CLI uses it (the `VideoSession` of `@vidrtc/node`). */
export interface CliSession extends AsyncIterable<ResultMessage> {
  readonly done: Promise<SessionSummary>;
  readonly uploaded: Promise<UploadSummary>;
  saveVideo(path: string): Promise<string>;
}

/** What the CLI needs of `InferenceClient` (replaceable in tests). */
export interface CliClient {
  webrtc: { stream(options: StreamOptions): Promise<CliSession> };
}

/** Streams, environment and seams of the CLI (the process's by default). */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  createClient?: (options: InferenceClientOptions) => CliClient;
  /** Frame count of a video file, or null when unknown (default: ffprobe, bounded). */
  probeFrames?: (path: string) => Promise<number | null>;
}

/** Builds the commander program (exported for tests). */
export function buildProgram(io: CliIo = process): Command {
  const program = new Command("vidrtc")
    .description(
      "Send video files to a Roboflow-compatible inference server over WebRTC and get per-frame results.",
    )
    .version(VERSION, "-V, --version", "print the version")
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("run")
    .description(
      "upload each <video> (or every video in a directory), run a workflow on every frame, write the results as JSON lines",
    )
    .argument("<videos...>", "video files or directories of video files")
    .option("-u, --api-url <url>", "inference server URL", DEFAULT_API_URL)
    .option("-k, --api-key <key>", "Roboflow API key (or env ROBOFLOW_API_KEY)")
    .requiredOption(
      "-w, --workflow <id|spec.json>",
      "workflow id, or a JSON file with an inline workflow specification",
    )
    .option("--workspace <name>", "workspace of the workflow (Roboflow servers need it)")
    .option(
      "-d, --data-output <names>",
      "outputs to return per frame, comma separated; * alone for all non-image outputs",
      list,
    )
    .option("-s, --stream-output <name>", "image output to send back as video")
    .option(
      "--save-video <out.webm>",
      "record the returned video (needs --stream-output) to a WebM file (one input only)",
    )
    .option(
      "-o, --jsonl <file>",
      "write results as JSON lines to this file (one input only; default: stdout)",
    )
    .option(
      "--out-dir <dir>",
      "write <name>.jsonl (and <name>.webm with --stream-output) per input into this directory (default with several inputs: .)",
    )
    .addOption(
      new Option("--concurrency <n>", "inputs processed at the same time").argParser(positiveInt).default(1),
    )
    .option("--realtime", "realtime mode: server paced at the file's fps and may drop frames")
    .option("--ice-server <url>", "ICE server URL (repeatable), e.g. stun:stun.example.org:3478", list)
    .addOption(
      new Option("--transport <stack>", "WebRTC stack: werift (pure JS) or node-datachannel (native, faster)")
        .choices(["werift", "node-datachannel"])
        .default("werift"),
    )
    .addOption(
      new Option("--processing-timeout <s>", "server-side processing timeout in seconds").argParser(
        positiveInt,
      ),
    )
    .option("--no-progress", "no progress display")
    .option("-q, --quiet", "no progress and no summary")
    .addHelpText(
      "after",
      `
Examples:
  $ vidrtc-server &                                  # a local server on 127.0.0.1:9001
  $ vidrtc run clip.mp4 --workflow motion --data-output '*' -o results.jsonl
  $ vidrtc run clip.mp4 -w motion -d predictions -s annotated --save-video annotated.webm
  $ vidrtc run clips/ a.mp4 -w motion --out-dir results --concurrency 2
  $ vidrtc run clip.mp4 -u https://serverless.roboflow.com -k $ROBOFLOW_API_KEY \\
        --workspace my-ws -w my-workflow -d '*'

Progress bars are drawn only on a terminal without NO_COLOR; otherwise a plain line every 2 s.
Exit codes: 0 ok, 1 internal error, 2 usage (flags, --api-url), 3 bad input or output file,
4 server refused or failed, 5 connection, 130 interrupted. With several inputs: the code of the
first input that failed.`,
    )
    .action(async (videos: string[], flags: RunFlags) => {
      process.exitCode = await runCommand(videos, flags, io);
    });
  return program;
}

// ---------------------------------------------------------------------------------------------
// Checks before connecting

function usage(message: string, hint?: string): CliFailure {
  return new CliFailure("USAGE", message, EXIT.usage, hint);
}

function checkApiUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliFailure(
      "INVALID_URL",
      `--api-url ${JSON.stringify(oneLine(value, 200))} is not a URL.`,
      EXIT.usage,
      "pass an http(s) URL such as http://127.0.0.1:9001.",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliFailure(
      "INVALID_URL",
      `--api-url must be http or https, got ${url.protocol}.`,
      EXIT.usage,
      "pass an http(s) URL such as http://127.0.0.1:9001.",
    );
  }
}

async function statOrNull(path: string): Promise<Stats | null> {
  return stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return null;
    throw error;
  });
}

/** Expands directories (their video files, sorted, not recursive) and checks every input. */
async function collectInputs(args: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    const info = await statOrNull(arg);
    if (info?.isDirectory()) {
      const names = (await readdir(arg)).filter((n) => VIDEO_EXTENSIONS.has(extname(n).toLowerCase())).sort();
      const files: string[] = [];
      for (const n of names) {
        const p = join(arg, n);
        if ((await statOrNull(p))?.isFile()) files.push(p);
      }
      if (files.length === 0) {
        throw new CliFailure(
          "NO_INPUTS",
          `The directory ${arg} has no video files (${[...VIDEO_EXTENSIONS].slice(0, 6).join(", ")}, ...).`,
          EXIT.input,
          "pass video files, or a directory that holds some.",
        );
      }
      out.push(...files);
    } else {
      out.push(arg);
    }
  }
  // Each file is checked (exists, regular, readable, not empty) before anything connects.
  for (const path of out) await new VideoFileSource(path).prepare();
  return out;
}

/**
 * An output written to a temp file next to its target, renamed into place on success. A target
 * that is a character device (`/dev/null`, `/dev/full`) is written in place instead: it cannot be
 * replaced, and renaming a file over it would destroy the device node.
 */
class AtomicOutput {
  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private handle: FileHandle | null,
    /** Written in place (a device): nothing to rename, nothing to remove. */
    readonly direct: boolean,
  ) {}

  /**
   * Checks that `path` can be written (its directory exists and takes a new file; `path` is not
   * a directory) by creating the temp file now. `keepOpen` false closes it (for a writer that
   * opens the path itself). Throws `OUTPUT_UNWRITABLE` (exit 3).
   */
  static async create(path: string, what: string, keepOpen: boolean): Promise<AtomicOutput> {
    const target = resolve(path);
    const existing = await statOrNull(target).catch(() => null);
    if (existing?.isDirectory()) throw unwritable(what, path, "it is a directory");
    if (existing?.isCharacterDevice()) {
      let handle: FileHandle;
      try {
        handle = await open(target, fsConstants.O_WRONLY);
      } catch (error) {
        throw unwritable(what, path, openFailure(error));
      }
      if (!keepOpen) await handle.close();
      return new AtomicOutput(target, target, keepOpen ? handle : null, true);
    }
    if (existing && !existing.isFile()) {
      throw unwritable(what, path, "it is not a regular file (a FIFO or a socket)");
    }
    const dir = dirname(target);
    const dirInfo = await statOrNull(dir).catch(() => null);
    if (!dirInfo) throw unwritable(what, path, `the directory ${dir} does not exist`);
    if (!dirInfo.isDirectory()) throw unwritable(what, path, `${dir} is not a directory`);
    if (existing) {
      await access(target, fsConstants.W_OK).catch(() => {
        throw unwritable(what, path, "permission denied");
      });
    }
    const ext = extname(target);
    const temp = join(
      dir,
      `.${basename(target, ext)}.vidrtc-${process.pid}-${randomBytes(4).toString("hex")}.tmp${ext}`,
    );
    let handle: FileHandle;
    try {
      handle = await open(temp, "wx");
    } catch (error) {
      throw unwritable(what, path, openFailure(error));
    }
    if (!keepOpen) {
      await handle.close();
      return new AtomicOutput(target, temp, null, false);
    }
    return new AtomicOutput(target, temp, handle, false);
  }

  /** The open temp file as a stream (for `keepOpen` outputs). */
  stream(): NodeJS.WritableStream {
    if (!this.handle) throw new Error("AtomicOutput: not open");
    const h = this.handle;
    this.handle = null;
    return h.createWriteStream({ autoClose: true });
  }

  async commit(): Promise<void> {
    if (!this.direct) await rename(this.tempPath, this.path);
  }

  /** Removes the temp file (the existing target is untouched). */
  async discard(): Promise<void> {
    await this.handle?.close().catch(() => {});
    this.handle = null;
    if (!this.direct) await unlink(this.tempPath).catch(() => {});
  }
}

function openFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "EACCES" || code === "EPERM"
    ? "permission denied"
    : code === "EROFS"
      ? "read-only file system"
      : String(code ?? error);
}

const WRITE_ERRORS: Partial<Record<string, { reason: string; hint: string }>> = {
  ENOSPC: {
    reason: "no space left on the device",
    hint: "free some space or choose another output path, then run again.",
  },
  EDQUOT: {
    reason: "disk quota exceeded",
    hint: "free some space or choose another output path, then run again.",
  },
  EFBIG: {
    reason: "the file is too large for the file system",
    hint: "choose an output path on another file system, then run again.",
  },
  EIO: { reason: "I/O error", hint: "check the disk, or choose another output path, then run again." },
  EROFS: { reason: "read-only file system", hint: "choose a writable output path, then run again." },
  EPIPE: {
    reason: "the program reading the output closed it",
    hint: "the command after the pipe exited early; write to a file with --jsonl instead, or keep the reader running.",
  },
  ECONNRESET: {
    reason: "the program reading the output closed it",
    hint: "the command after the pipe exited early; write to a file with --jsonl instead, or keep the reader running.",
  },
  EACCES: { reason: "permission denied", hint: "choose a writable output path, then run again." },
  EPERM: { reason: "permission denied", hint: "choose a writable output path, then run again." },
};

/**
 * A write to the JSONL output failed during the run (disk full, a closed pipe): exit 3, like an
 * output that cannot be written at all. `path` null is standard output.
 */
function writeFailed(path: string | null, atomic: boolean, error: unknown): CliFailure {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const known = code ? WRITE_ERRORS[code] : undefined;
  const reason = known?.reason ?? (error instanceof Error ? error.message : String(error ?? "unknown error"));
  const where = path === null ? "to standard output" : `to ${path}`;
  const kept = atomic
    ? "The run was stopped; an existing file at that path was left as it was."
    : "The run was stopped.";
  return new CliFailure(
    "OUTPUT_WRITE_FAILED",
    `Writing the JSONL results ${where} failed: ${reason}${code ? ` (${code})` : ""}. ${kept}`,
    EXIT.input,
    known?.hint ?? "check the output path (or the program reading standard output), then run again.",
  );
}

function unwritable(what: string, path: string, reason: string): CliFailure {
  return new CliFailure(
    "OUTPUT_UNWRITABLE",
    `Cannot write the ${what} ${path}: ${reason}.`,
    EXIT.input,
    "choose a path in an existing, writable directory.",
  );
}

async function readWorkflow(
  value: string,
): Promise<{ workflow?: string; specification?: Record<string, unknown> }> {
  if (!value.endsWith(".json")) return { workflow: value };
  let text: string;
  try {
    text = await readFile(value, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new VidrtcError(
      code === "ENOENT" ? "FILE_NOT_FOUND" : "FILE_UNREADABLE",
      `Cannot read the workflow specification ${value}: ${code === "ENOENT" ? "no such file" : String(code)}.`,
    );
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (error) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `The workflow specification ${value} is not JSON: ${(error as Error).message}`,
    );
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new VidrtcError("INVALID_OPTIONS", `The workflow specification ${value} must be a JSON object.`);
  }
  return { specification: spec as Record<string, unknown> };
}

// ---------------------------------------------------------------------------------------------
// Frame count probe

/** Frame count of the first video stream with ffprobe (header first, then a packet count), or null. */
export async function probeFrameCount(path: string, timeoutMs = 15_000): Promise<number | null> {
  const run = (args: string[]) =>
    new Promise<string | null>((resolveRun) => {
      execFile(
        "ffprobe",
        [
          "-v",
          "error",
          "-protocol_whitelist",
          "file",
          "-select_streams",
          "v:0",
          ...args,
          `file:${resolve(path)}`,
        ],
        { timeout: timeoutMs, maxBuffer: 64 * 1024 },
        (error, stdout) => resolveRun(error ? null : stdout),
      );
    });
  const parse = (s: string | null) => {
    const n = Number.parseInt(String(s ?? "").trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  };
  const header = parse(await run(["-show_entries", "stream=nb_frames", "-of", "default=nw=1:nk=1"]));
  if (header !== null) return header;
  return parse(
    await run(["-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "default=nw=1:nk=1"]),
  );
}

// ---------------------------------------------------------------------------------------------
// Progress

interface Progress {
  upload(p: UploadProgress): void;
  uploaded(u: UploadSummary): void;
  frame(frames: number): void;
  setTotal(total: number | null): void;
  /** The session finished: the bar may now show 100 %. */
  finish(frames: number): void;
}

class ProgressView {
  private readonly bars: cliProgress.MultiBar | null;
  constructor(
    private readonly io: CliIo,
    readonly enabled: boolean,
    useBars: boolean,
  ) {
    this.bars =
      enabled && useBars
        ? new cliProgress.MultiBar(
            {
              stream: io.stderr as NodeJS.WriteStream,
              hideCursor: true,
              clearOnComplete: false,
              format: "{label} {info}",
              noTTYOutput: false,
            },
            cliProgress.Presets.shades_classic,
          )
        : null;
  }

  stop(): void {
    this.bars?.stop();
  }

  create(label: string): Progress {
    const { bars, io, enabled } = this;
    let uploadBar: cliProgress.SingleBar | null = null;
    let framesBar: cliProgress.SingleBar | null = null;
    let total: number | null = null;
    let frames = 0;
    let firstAt = 0;
    let lastLine = 0;
    const BAR = "{label} [{bar}] {percentage}% | {info}";
    const line = (text: string, force = false) => {
      if (!enabled || bars) return;
      if (!force && Date.now() - lastLine < 2000) return;
      lastLine = Date.now();
      io.stderr.write(`${label}${text}\n`);
    };
    const fps = () => (frames / Math.max(0.001, (Date.now() - firstAt) / 1000)).toFixed(1);
    const framesInfo = () =>
      total !== null && frames <= total
        ? `${frames}/${total} frames ${fps()} fps`
        : `${frames} frames ${fps()} fps`;
    const drawFrames = () => {
      if (!bars) return;
      if (total !== null && frames <= total) {
        // While processing runs the bar stays below 100 % (cli-progress floors the percentage).
        const barTotal = Math.max(total, frames + 1);
        framesBar ??= bars.create(barTotal, 0, { label: `${label}frames`, info: "" }, { format: BAR });
        framesBar.setTotal(barTotal);
        framesBar.update(frames, { info: framesInfo() });
      } else {
        framesBar ??= bars.create(1, 0, { label: `${label}frames`, info: "" }, { format: "{label} {info}" });
        framesBar.update(0, { info: framesInfo() });
      }
    };
    return {
      upload: (p) => {
        const info = `${formatBytes(p.bytesDelivered)}/${formatBytes(p.totalBytes)} ${formatBytes(p.bytesPerSecond)}/s ETA ${p.etaSeconds === null ? "?" : `${Math.ceil(p.etaSeconds)}s`}`;
        if (bars) {
          uploadBar ??= bars.create(p.totalBytes, 0, { label: `${label}upload`, info: "" }, { format: BAR });
          uploadBar.update(p.bytesDelivered, { info });
        } else line(`upload ${Math.floor((p.bytesDelivered / Math.max(1, p.totalBytes)) * 100)}% ${info}`);
      },
      uploaded: (u) => {
        const info = `${formatBytes(u.bytes)} in ${(u.durationMs / 1000).toFixed(1)} s`;
        uploadBar?.update(u.bytes, { info });
        line(`upload done: ${info}`, true);
      },
      frame: (n) => {
        frames = n;
        if (n === 1) firstAt = Date.now();
        if (bars) drawFrames();
        else line(`frames ${framesInfo()}`);
      },
      setTotal: (t) => {
        total = t;
        if (frames > 0) drawFrames();
      },
      finish: (n) => {
        frames = n;
        if (framesBar && total !== null && frames <= total) {
          framesBar.setTotal(Math.max(1, frames));
          framesBar.update(frames, { info: `${frames} frames` });
        }
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface Job {
  input: string;
  jsonl: string | null;
  video: string | null;
}

interface JobResult {
  job: Job;
  ok: boolean;
  error?: unknown;
  frames: number;
  frameErrors: number;
  seconds: number;
  summary?: SessionSummary;
}

function planJobs(inputs: string[], flags: RunFlags): Job[] {
  const multi = inputs.length > 1;
  if (flags.saveVideo && !flags.streamOutput) {
    throw usage(
      "--save-video needs --stream-output (the image output to send back as video).",
      "add e.g. --stream-output annotated.",
    );
  }
  if (flags.saveVideo && !flags.saveVideo.toLowerCase().endsWith(".webm")) {
    throw usage(`--save-video writes WebM: the path must end in .webm, got ${flags.saveVideo}.`);
  }
  if (flags.jsonl && flags.outDir) throw usage("--jsonl and --out-dir cannot be used together.");
  if (multi && flags.jsonl) {
    throw usage(
      `--jsonl names one file but there are ${inputs.length} inputs.`,
      "use --out-dir <dir> to write one <name>.jsonl per input.",
    );
  }
  if (multi && flags.saveVideo) {
    throw usage(
      `--save-video names one file but there are ${inputs.length} inputs.`,
      "use --out-dir <dir> with --stream-output: each video is written as <name>.webm.",
    );
  }
  const outDir = flags.outDir ?? (multi ? "." : undefined);
  const jobs: Job[] = inputs.map((input) => {
    const stem = basename(input, extname(input));
    return {
      input,
      jsonl: outDir !== undefined ? join(outDir, `${stem}.jsonl`) : (flags.jsonl ?? null),
      video:
        outDir !== undefined && flags.streamOutput ? join(outDir, `${stem}.webm`) : (flags.saveVideo ?? null),
    };
  });
  // No two outputs on one path, and never an output over an input.
  const seen = new Map<string, string>();
  for (const i of inputs) seen.set(resolve(i), `input ${i}`);
  for (const job of jobs) {
    for (const out of [job.jsonl, job.video]) {
      if (out === null) continue;
      const key = resolve(out);
      const clash = seen.get(key);
      if (clash) {
        throw usage(
          `The output ${out} would overwrite the ${clash}.`,
          "inputs with the same name need separate runs or --out-dir per run.",
        );
      }
      seen.set(key, `output of ${job.input}`);
    }
  }
  return jobs;
}

function describeError(error: unknown): { code: string; message: string; hint: string | undefined } {
  if (error instanceof CliFailure) return { code: error.code, message: error.message, hint: error.hint };
  const code = VidrtcError.isInstance(error) ? error.code : "ERROR";
  const message = error instanceof Error ? error.message : String(error);
  return { code, message, hint: HINTS[code] };
}

function writeError(io: CliIo, error: unknown, prefix = ""): void {
  const { code, message, hint } = describeError(error);
  io.stderr.write(
    `vidrtc: ${prefix}error ${code}: ${oneLine(message, 1000)}${hint ? `\n  hint: ${oneLine(hint, 300)}` : ""}\n`,
  );
}

async function runCommand(videos: string[], flags: RunFlags, io: CliIo): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new VidrtcError("ABORTED", "Interrupted."));
  process.once("SIGINT", onSigint);
  const env = io.env ?? process.env;
  const isTty = Boolean((io.stderr as { isTTY?: boolean }).isTTY);
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== "";
  const view = new ProgressView(io, flags.progress && !flags.quiet, isTty && !noColor && env.TERM !== "dumb");
  try {
    // Everything is checked before anything connects: flags, URL, workflow file, inputs, outputs.
    checkApiUrl(flags.apiUrl);
    const workflow = await readWorkflow(flags.workflow);
    const inputs = await collectInputs(videos);
    const jobs = planJobs(inputs, flags);
    if (flags.outDir !== undefined) {
      const info = await statOrNull(flags.outDir).catch(() => null);
      if (!info?.isDirectory())
        throw unwritable("output directory", flags.outDir, "it does not exist or is not a directory");
    }
    const outputs = new Map<Job, { jsonl: AtomicOutput | null; video: AtomicOutput | null }>();
    try {
      for (const job of jobs) {
        outputs.set(job, {
          jsonl: job.jsonl ? await AtomicOutput.create(job.jsonl, "JSONL output", true) : null,
          video: job.video ? await AtomicOutput.create(job.video, "video output", false) : null,
        });
      }
    } catch (error) {
      for (const o of outputs.values()) {
        await o.jsonl?.discard();
        await o.video?.discard();
      }
      throw error;
    }
    const createClient = io.createClient ?? ((o: InferenceClientOptions) => new InferenceClient(o));
    const client = createClient({
      apiUrl: flags.apiUrl,
      apiKey: flags.apiKey ?? env.ROBOFLOW_API_KEY,
      iceServers: flags.iceServer?.map((urls) => ({ urls })),
      transport: flags.transport,
    });
    const probe = io.probeFrames ?? ((p: string) => probeFrameCount(p));
    const multi = jobs.length > 1;

    const runJob = async (job: Job): Promise<JobResult> => {
      const out = outputs.get(job)!;
      const label = multi ? `${basename(job.input)} ` : "";
      const progress = view.create(label);
      const startedAt = Date.now();
      let frames = 0;
      let frameErrors = 0;
      const stream = out.jsonl ? out.jsonl.stream() : io.stdout;
      // A failing output (disk full, a closed pipe) ends this input's session at once (the
      // session's signal aborts, which closes the peer connection, so the server ends it too); the
      // temp file is removed and an existing file at the target is never touched.
      const jobController = new AbortController();
      const onInterrupt = () => jobController.abort(controller.signal.reason);
      if (controller.signal.aborted) onInterrupt();
      else controller.signal.addEventListener("abort", onInterrupt, { once: true });
      let writeFailure: CliFailure | null = null;
      /** The first failure of the output wins; it stops the session. */
      const outputFailed = (error: unknown): CliFailure => {
        writeFailure ??= writeFailed(job.jsonl, Boolean(out.jsonl && !out.jsonl.direct), error);
        jobController.abort(writeFailure);
        return writeFailure;
      };
      const onStreamError = (error: unknown) => void outputFailed(error);
      stream.on("error", onStreamError);
      try {
        if (view.enabled)
          void probe(job.input).then(
            (n) => progress.setTotal(n),
            () => {},
          );
        const session = await client.webrtc.stream({
          source: new VideoFileSource(job.input),
          ...workflow,
          workspace: flags.workspace,
          dataOutput: flags.dataOutput ?? ["*"],
          streamOutput: flags.streamOutput ? [flags.streamOutput] : [],
          realtime: Boolean(flags.realtime),
          processingTimeoutSeconds: flags.processingTimeout,
          signal: jobController.signal,
          onUploadProgress: (p) => progress.upload(p),
        });
        const recording = out.video ? session.saveVideo(out.video.tempPath) : null;
        recording?.catch(() => {});
        session.uploaded.then(
          (u) => progress.uploaded(u),
          () => {},
        );
        for await (const result of session) {
          frames += 1;
          if (result.errors.length > 0) frameErrors += 1;
          if (writeFailure) throw writeFailure;
          await writeLine(stream, result).catch((error: unknown) => {
            throw outputFailed(error);
          });
          progress.frame(frames);
        }
        const summary = await session.done;
        if (recording) await recording;
        progress.finish(frames);
        if (out.jsonl)
          await endStream(stream).catch((error: unknown) => {
            throw outputFailed(error);
          });
        if (writeFailure) throw writeFailure;
        await out.jsonl?.commit();
        await out.video?.commit();
        return { job, ok: true, frames, frameErrors, seconds: (Date.now() - startedAt) / 1000, summary };
      } catch (error) {
        if (out.jsonl) await endStream(stream).catch(() => {});
        await out.jsonl?.discard();
        await out.video?.discard();
        const reported = writeFailure ?? error;
        return {
          job,
          ok: false,
          error: reported,
          frames,
          frameErrors,
          seconds: (Date.now() - startedAt) / 1000,
        };
      } finally {
        controller.signal.removeEventListener("abort", onInterrupt);
        // Our own output stream keeps its listener (a late error must not crash the process).
        // Standard output is the caller's: after a failure it keeps a listener that ignores
        // further errors (a closed pipe fails every later write too), otherwise it gets its own back.
        if (!out.jsonl) {
          stream.off("error", onStreamError);
          if (writeFailure && stream.listenerCount("error") === 0) stream.on("error", () => {});
        }
      }
    };

    const results: JobResult[] = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
      while (next < jobs.length && !controller.signal.aborted) {
        const i = next++;
        results[i] = await runJob(jobs[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(flags.concurrency, jobs.length) }, worker));
    view.stop();
    for (let i = 0; i < jobs.length; i++) {
      results[i] ??= {
        job: jobs[i]!,
        ok: false,
        error: new VidrtcError("ABORTED", "Interrupted before this input started."),
        frames: 0,
        frameErrors: 0,
        seconds: 0,
      };
    }

    for (const r of results) if (!r.ok) writeError(io, r.error, multi ? `${r.job.input}: ` : "");
    if (!flags.quiet) io.stderr.write(multi ? summaryTable(results) : singleSummary(results[0]!, flags));
    const failed = results.find((r) => !r.ok);
    return failed ? exitCodeFor(failed.error) : EXIT.ok;
  } catch (error) {
    view.stop();
    writeError(io, error);
    return exitCodeFor(error);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function singleSummary(r: JobResult, flags: RunFlags): string {
  if (!r.ok || !r.summary) return "";
  const s = r.summary;
  const lines = [
    `vidrtc: ${basename(r.job.input)} -> ${redactUrl(flags.apiUrl)} workflow ${flags.workflow}`,
    `  uploaded   ${s.upload ? `${formatBytes(s.upload.bytes)} at ${formatBytes(s.upload.bytesPerSecond)}/s` : "-"}`,
    `  results    ${r.frames} frames (server processed ${s.framesProcessed}), ${r.frameErrors} with errors`,
    `  ended      ${s.terminationReason ?? "complete"} after ${r.seconds.toFixed(1)} s`,
  ];
  if (r.job.jsonl) lines.push(`  jsonl      ${r.job.jsonl}`);
  if (r.job.video) lines.push(`  video      ${r.job.video}`);
  return `${lines.join("\n")}\n`;
}

/** The table printed after a run with several inputs. */
function summaryTable(results: JobResult[]): string {
  const rows = [
    ["input", "status", "frames", "errors", "time", "output"],
    ...results.map((r) => [
      r.job.input,
      r.ok ? "ok" : `failed ${describeError(r.error).code}`,
      String(r.frames),
      String(r.frameErrors),
      `${r.seconds.toFixed(1)} s`,
      r.ok ? [r.job.jsonl, r.job.video].filter(Boolean).join(", ") : "-",
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const text = rows.map((row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join("  ")
      .trimEnd(),
  );
  const failed = results.filter((r) => !r.ok).length;
  text.push(
    `vidrtc: ${results.length - failed} of ${results.length} inputs ok${failed ? `, ${failed} failed` : ""}`,
  );
  return `${text.join("\n")}\n`;
}

/** A stream as `node:stream` implements it (the fields `NodeJS.WritableStream` does not type). */
type StreamState = NodeJS.WritableStream & { destroyed?: boolean; errored?: Error | null };

function closedError(out: StreamState): Error {
  return out.errored ?? new Error("The output stream was closed.");
}

/** Writes one result line; waits for `drain` when the stream is full, rejects on error or close. */
function writeLine(out: NodeJS.WritableStream, result: ResultMessage): Promise<void> {
  const line = `${JSON.stringify({ frame_id: result.frameId, ...result.raw })}\n`;
  const s = out as StreamState;
  return new Promise((resolveWrite, reject) => {
    // A destroyed stream takes no writes and never emits `drain`: waiting would hang.
    if (s.destroyed) return reject(closedError(s));
    if (out.write(line)) return resolveWrite();
    const off = () => {
      out.off("drain", onDrain);
      out.off("error", onError);
      out.off("close", onClose);
    };
    const onDrain = () => {
      off();
      resolveWrite();
    };
    const onError = (error: unknown) => {
      off();
      reject(error);
    };
    const onClose = () => {
      off();
      reject(closedError(s));
    };
    out.once("drain", onDrain);
    out.once("error", onError);
    out.once("close", onClose);
  });
}

/** Ends the stream; rejects when it failed (a write that failed while flushing, or before). */
function endStream(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolveEnd, reject) => {
    const onError = (error: unknown) => reject(error);
    out.once("error", onError);
    (out.end as (cb: (error?: Error | null) => void) => void).call(out, (error) => {
      out.off("error", onError);
      if (error) reject(error);
      else resolveEnd();
    });
  });
}

/** Entry point of the `vidrtc` bin. */
export async function main(argv: string[] = process.argv, io: CliIo = process): Promise<void> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const e = error as { exitCode?: number; code?: string };
    if (
      e.code === "commander.helpDisplayed" ||
      e.code === "commander.version" ||
      e.code === "commander.help"
    ) {
      process.exitCode = 0;
    } else {
      process.exitCode = EXIT.usage;
    }
  }
}
