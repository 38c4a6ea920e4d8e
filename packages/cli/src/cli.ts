/**
 * `vidrtc` — send a video file to an inference server over WebRTC and get per-frame results.
 */
import { createWriteStream, readFileSync } from "node:fs";
import { basename } from "node:path";
import { DEFAULT_API_URL, InferenceClient, VideoFileSource } from "@vidrtc/node";
import { type ResultMessage, VidrtcError } from "@vidrtc/protocol";
import type { UploadProgress } from "@vidrtc/protocol/session";
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";

/** Process exit codes of the `vidrtc` CLI. */
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
]);

/** Maps an error to the CLI's exit code. */
export function exitCodeFor(error: unknown): number {
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
  UNAUTHORIZED: "pass a valid --api-key.",
  FILE_NOT_FOUND: "check the video path.",
  TRANSPORT_UNAVAILABLE: "install it (`npm install node-datachannel`) or use --transport werift.",
  CHANNEL_OPEN_TIMEOUT: "the server's ICE candidates may be unreachable from here; try --ice-server.",
};

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

interface RunFlags {
  apiUrl: string;
  apiKey?: string;
  workflow: string;
  workspace?: string;
  dataOutput?: string[];
  streamOutput?: string;
  saveVideo?: string;
  jsonl?: string;
  realtime?: boolean;
  iceServer?: string[];
  transport: "werift" | "node-datachannel";
  processingTimeout?: number;
  progress: boolean;
  quiet?: boolean;
}

/** Builds the commander program (exported for tests). */
export function buildProgram(
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Command {
  const program = new Command("vidrtc")
    .description(
      "Send a video file to a Roboflow-compatible inference server over WebRTC and get per-frame results.",
    )
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("run")
    .description("upload <video>, run a workflow on every frame, write the results as JSON lines")
    .argument("<video>", "video file to upload")
    .option("-u, --api-url <url>", "inference server URL", DEFAULT_API_URL)
    .option("-k, --api-key <key>", "Roboflow API key (or env ROBOFLOW_API_KEY)")
    .requiredOption(
      "-w, --workflow <id|spec.json>",
      "workflow id, or a JSON file with an inline workflow specification",
    )
    .option("--workspace <name>", "workspace of the workflow (Roboflow servers need it)")
    .option("-d, --data-output <names>", "outputs to return per frame, comma separated; * for all", list)
    .option("-s, --stream-output <name>", "image output to send back as video")
    .option("--save-video <out.webm>", "record the returned video (needs --stream-output) to a WebM file")
    .option("-o, --jsonl <file>", "write results as JSON lines to this file (default: stdout)")
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
    .option("--no-progress", "no progress bars")
    .option("-q, --quiet", "no summary")
    .addHelpText(
      "after",
      `
Examples:
  $ vidrtc-server &                                  # a local server on 127.0.0.1:9001
  $ vidrtc run clip.mp4 --workflow motion --data-output '*' -o results.jsonl
  $ vidrtc run clip.mp4 -w motion -d predictions -s annotated --save-video annotated.webm
  $ vidrtc run clip.mp4 -u https://serverless.roboflow.com -k $ROBOFLOW_API_KEY \\
        --workspace my-ws -w my-workflow -d '*'

Exit codes: 0 ok, 2 usage, 3 bad input file, 4 server refused or failed, 5 connection, 130 interrupted.`,
    )
    .action(async (video: string, flags: RunFlags) => {
      process.exitCode = await runCommand(video, flags, io);
    });
  return program;
}

async function runCommand(
  video: string,
  flags: RunFlags,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new VidrtcError("ABORTED", "Interrupted."));
  process.once("SIGINT", onSigint);
  const isTty = Boolean((io.stderr as { isTTY?: boolean }).isTTY);
  const showProgress = flags.progress && !flags.quiet;
  let bars: cliProgress.MultiBar | null = null;
  let uploadBar: cliProgress.SingleBar | null = null;
  let framesBar: cliProgress.SingleBar | null = null;
  let lastLine = 0;
  const out = flags.jsonl ? createWriteStream(flags.jsonl) : io.stdout;
  try {
    let workflow: { workflow?: string; specification?: Record<string, unknown> };
    if (flags.workflow.endsWith(".json")) {
      try {
        workflow = { specification: JSON.parse(readFileSync(flags.workflow, "utf8")) };
      } catch (cause) {
        throw new VidrtcError(
          "INVALID_OPTIONS",
          `Cannot read the workflow specification ${flags.workflow}.`,
          { cause },
        );
      }
    } else {
      workflow = { workflow: flags.workflow };
    }
    const source = new VideoFileSource(video);
    const client = new InferenceClient({
      apiUrl: flags.apiUrl,
      apiKey: flags.apiKey ?? process.env.ROBOFLOW_API_KEY,
      iceServers: flags.iceServer?.map((urls) => ({ urls })),
      transport: flags.transport,
    });
    if (showProgress && isTty) {
      bars = new cliProgress.MultiBar(
        {
          stream: io.stderr as NodeJS.WriteStream,
          hideCursor: true,
          clearOnComplete: false,
          format: "{label} [{bar}] {percentage}% | {info}",
        },
        cliProgress.Presets.shades_classic,
      );
    }
    const onUploadProgress = (p: UploadProgress) => {
      const info = `${formatBytes(p.bytesDelivered)}/${formatBytes(p.totalBytes)} ${formatBytes(p.bytesPerSecond)}/s ETA ${p.etaSeconds === null ? "?" : `${Math.ceil(p.etaSeconds)}s`}`;
      if (bars) {
        uploadBar ??= bars.create(p.totalBytes, 0, { label: "upload ", info: "" });
        uploadBar.update(p.bytesDelivered, { info });
      } else if (showProgress && Date.now() - lastLine > 2000) {
        lastLine = Date.now();
        io.stderr.write(`upload ${Math.floor((p.bytesDelivered / p.totalBytes) * 100)}% ${info}\n`);
      }
    };
    const startedAt = Date.now();
    const session = await client.webrtc.stream({
      source,
      ...workflow,
      workspace: flags.workspace,
      dataOutput: flags.dataOutput ?? ["*"],
      streamOutput: flags.streamOutput ? [flags.streamOutput] : [],
      realtime: Boolean(flags.realtime),
      processingTimeoutSeconds: flags.processingTimeout,
      signal: controller.signal,
      onUploadProgress,
    });
    const recording = flags.saveVideo ? session.saveVideo(flags.saveVideo) : null;
    let frames = 0;
    let frameErrors = 0;
    let firstResultAt = 0;
    session.uploaded.then(
      (u) => {
        uploadBar?.update(u.bytes, {
          info: `${formatBytes(u.bytes)} in ${(u.durationMs / 1000).toFixed(1)} s`,
        });
        if (!bars && showProgress)
          io.stderr.write(`upload done: ${formatBytes(u.bytes)} in ${(u.durationMs / 1000).toFixed(1)} s\n`);
      },
      () => {},
    );
    for await (const result of session) {
      frames += 1;
      if (frames === 1) firstResultAt = Date.now();
      if (result.errors.length > 0) frameErrors += 1;
      await writeLine(out, result);
      if (bars) {
        framesBar ??= bars.create(0, 0, { label: "frames ", info: "" });
        const fps = frames / Math.max(0.001, (Date.now() - firstResultAt) / 1000);
        framesBar.setTotal(Math.max(frames, framesBar.getTotal()));
        framesBar.update(frames, { info: `${frames} frames ${fps.toFixed(1)} fps` });
      } else if (showProgress && Date.now() - lastLine > 2000) {
        lastLine = Date.now();
        io.stderr.write(`frames ${frames}\n`);
      }
    }
    const summary = await session.done;
    if (recording) await recording;
    bars?.stop();
    bars = null;
    if (!flags.quiet) {
      const seconds = (Date.now() - startedAt) / 1000;
      const lines = [
        `vidrtc: ${basename(video)} -> ${flags.apiUrl} workflow ${flags.workflow}`,
        `  uploaded   ${summary.upload ? `${formatBytes(summary.upload.bytes)} at ${formatBytes(summary.upload.bytesPerSecond)}/s` : "-"}`,
        `  results    ${frames} frames (server processed ${summary.framesProcessed}), ${frameErrors} with errors`,
        `  ended      ${summary.terminationReason ?? "complete"} after ${seconds.toFixed(1)} s`,
      ];
      if (flags.jsonl) lines.push(`  jsonl      ${flags.jsonl}`);
      if (flags.saveVideo) lines.push(`  video      ${flags.saveVideo}`);
      io.stderr.write(`${lines.join("\n")}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    bars?.stop();
    const code = VidrtcError.isInstance(error) ? error.code : "ERROR";
    const message = error instanceof Error ? error.message : String(error);
    const hint = HINTS[code];
    io.stderr.write(`vidrtc: error ${code}: ${message}${hint ? `\n  hint: ${hint}` : ""}\n`);
    return exitCodeFor(error);
  } finally {
    process.off("SIGINT", onSigint);
    if (out !== io.stdout) await new Promise<void>((resolve) => (out as NodeJS.WritableStream).end(resolve));
  }
}

function writeLine(out: NodeJS.WritableStream, result: ResultMessage): Promise<void> {
  const line = `${JSON.stringify({ frame_id: result.frameId, ...result.raw })}\n`;
  return new Promise((resolve, reject) => {
    if (out.write(line)) resolve();
    else {
      out.once("drain", resolve);
      out.once("error", reject);
    }
  });
}

/** Entry point of the `vidrtc` bin. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
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
