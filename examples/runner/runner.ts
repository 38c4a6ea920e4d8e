/**
 * What every example's `start` script shares: make a small test video with ffmpeg (testsrc),
 * start `vidrtc-server` on 127.0.0.1 (port 0, loopback host candidates only), run the example
 * program as a child process with a bound on how long it may take to exit by itself, and check.
 *
 * The examples talk to a real server over WebRTC, so run them inside the network namespace:
 * `bash scripts/netns-run.sh pnpm --filter "./examples/*" start`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** Every wait of the runner is bounded by this many milliseconds unless told otherwise. */
const DEFAULT_BOUND_MS = 120_000;

/** Runs a command to completion (bounded), resolving with its stdout. */
export function run(command: string, args: string[], timeoutMs = DEFAULT_BOUND_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, encoding: "utf8", maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** Makes `frames` frames of ffmpeg's testsrc pattern as H.264 in MP4 at `path`. */
export async function makeTestVideo(path: string, frames: number, size = "160x120", fps = 10): Promise<void> {
  await run("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    `testsrc=size=${size}:rate=${fps}`,
    "-frames:v",
    String(frames),
    "-pix_fmt",
    "yuv420p",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-bf",
    "0",
    "-movflags",
    "+faststart",
    path,
  ]);
}

/** Frames in the first video stream, decoded and counted by ffprobe. */
export async function countFrames(path: string): Promise<number> {
  const out = await run("ffprobe", [
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
  ]);
  const n = Number.parseInt(out.trim(), 10);
  if (!Number.isInteger(n)) throw new Error(`ffprobe found no frame count in ${path}: ${out}`);
  return n;
}

/** Lowercase hex SHA-256 of a file. */
export async function sha256(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

/** A fresh temp directory, removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `vidrtc-example-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A running `vidrtc-server`. */
export interface RunningServer {
  url: string;
  stop(): Promise<void>;
}

const SERVER_BIN = fileURLToPath(new URL("../../packages/server/dist/cli.js", import.meta.url));

/**
 * Starts `vidrtc-server --host 127.0.0.1 --port 0` (its ICE offers loopback host candidates and
 * never asks a STUN server) and resolves with its URL once it prints its ready line.
 */
export async function startServer(extraArgs: string[] = [], timeoutMs = 30_000): Promise<RunningServer> {
  const child = spawn(process.execPath, [SERVER_BIN, "--host", "127.0.0.1", "--port", "0", ...extraArgs], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`vidrtc-server printed no ready line within ${timeoutMs} ms`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const m = /ready: (http:\/\/\S+)/.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`vidrtc-server exited with ${code} before it was ready`));
    });
  });
  return { url, stop: () => stopChild(child, 15_000) };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** How a program run by {@link runProgram} ended. */
export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit (ms). */
  ms: number;
}

/**
 * Runs `node --import tsx <script> ...args` and waits for it to exit by itself. If it has not
 * exited after `exitBoundMs`, it is killed and this rejects: the examples must not hang.
 * `onSpawn` sees the child (e.g. to send it SIGINT).
 */
export function runProgram(
  script: string,
  args: string[],
  exitBoundMs: number,
  onSpawn?: (child: ChildProcess) => void,
): Promise<ProgramResult> {
  const started = Date.now();
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    process.stderr.write(d);
  });
  onSpawn?.(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `${script} did not exit by itself within ${exitBoundMs} ms (killed). Its stderr:\n${stderr.slice(-2000)}`,
        ),
      );
    }, exitBoundMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Counts checks and prints the closing `N passed, N failed` line; exits non-zero on a failure. */
export class Checks {
  #passed = 0;
  #failed = 0;

  constructor(readonly name: string) {}

  check(ok: boolean, what: string): void {
    if (ok) this.#passed++;
    else this.#failed++;
    process.stderr.write(`[${this.name}] ${ok ? "ok  " : "FAIL"} ${what}\n`);
  }

  /** Prints the summary; returns the exit code. */
  finish(): number {
    console.log(`${this.name}: ${this.#passed} passed, ${this.#failed} failed`);
    return this.#failed === 0 && this.#passed > 0 ? 0 : 1;
  }
}
