/**
 * Small helpers to run ffmpeg/ffprobe as child processes with a bounded lifetime.
 * Nothing here decodes media on the event loop: the heavy work is in the child.
 */
import { spawn } from "node:child_process";
import { abortError, VidrtcError } from "@vidrtc/protocol";

/** Result of {@link runTool}: exit status and captured output (stdout/stderr capped). */
export interface ToolResult {
  /** Exit code, or `null` when the process was ended by a signal. */
  code: number | null;
  /** Signal that ended the process, if any. */
  signal: NodeJS.Signals | null;
  /** Captured standard output (UTF-8, capped at `maxOutputBytes`). */
  stdout: string;
  /** Captured standard error (UTF-8, capped at `maxOutputBytes`, keeps the tail). */
  stderr: string;
}

/** Options for {@link runTool}. */
export interface RunToolOptions {
  /** Aborts the run: the child is killed and the promise rejects with `ABORTED`. */
  signal?: AbortSignal;
  /** Upper bound on the run; the child is killed and the promise rejects with `PROCESSING_FAILED`. */
  timeoutMs: number;
  /** Cap on captured stdout and stderr, in bytes each (default 4 MiB). */
  maxOutputBytes?: number;
  /** Human label for error messages (default: the command). */
  label?: string;
}

/** Thrown (as `cause`) when the executable does not exist. */
export interface SpawnFailure extends Error {
  code?: string;
}

/**
 * Runs `command args`, collects its output, and resolves with the exit status (it never rejects for a
 * non-zero exit). Rejects with the spawn error (e.g. `ENOENT`) when the executable cannot be started,
 * `ABORTED` on abort, and `PROCESSING_FAILED` on timeout. The child is always killed on the way out.
 */
export function runTool(
  command: string,
  args: readonly string[],
  options: RunToolOptions,
): Promise<ToolResult> {
  const { signal, timeoutMs } = options;
  const cap = options.maxOutputBytes ?? 4 * 1024 * 1024;
  const label = options.label ?? command;
  return new Promise<ToolResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal, label));
      return;
    }
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err: Buffer[] = [];
    let errBytes = 0;
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      fn();
    };
    const onAbort = (): void => finish(() => reject(abortError(signal, label)));
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new VidrtcError("PROCESSING_FAILED", `${label} did not finish within ${timeoutMs} ms.`, {
              details: { timeoutMs },
            }),
          ),
        ),
      timeoutMs,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => {
      if (outBytes >= cap) return;
      out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      err.push(chunk);
      errBytes += chunk.length;
      while (errBytes > cap && err.length > 1) {
        errBytes -= err[0]!.length;
        err = err.slice(1);
      }
    });
    child.on("error", (e) => finish(() => reject(e)));
    child.on("close", (code, sig) =>
      finish(() =>
        resolve({
          code,
          signal: sig,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        }),
      ),
    );
  });
}

/** True for the error `spawn` reports when the executable is missing. */
export function isMissingExecutable(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    ((error as SpawnFailure).code === "ENOENT" || (error as SpawnFailure).code === "EACCES")
  );
}

/** The last `count` non-empty lines of a tool's stderr, joined with "; " (for error messages). */
export function lastLines(text: string, count = 5): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-count)
    .join("; ");
}

/** How to install ffmpeg, for error messages. */
export const FFMPEG_INSTALL_HINT =
  "Install ffmpeg (which includes ffprobe): `apt-get install -y ffmpeg` on Debian/Ubuntu, " +
  "`dnf install ffmpeg` on Fedora, `brew install ffmpeg` on macOS, or pass the paths explicitly " +
  "(--ffmpeg/--ffprobe, or the ffmpegPath/ffprobePath options).";
