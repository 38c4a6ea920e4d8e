/**
 * batch-folder: every file of a folder through @vidrtc/node's library API, a few at a time.
 *
 *   node --import tsx src/main.ts <folder> [--api-url URL] [--out DIR] [--concurrency N] [--workflow ID]
 *
 * Each regular, non-hidden file of <folder> (not its subfolders) becomes one session. At most
 * N sessions run at once (default 2). For a file `clip.mp4` the results go to `DIR/clip.mp4.jsonl`,
 * one JSON line per result, written to `clip.mp4.jsonl.partial` and renamed only once the
 * session has ended well (a failed file leaves no JSONL). A file that fails (not a video, server
 * refuses it, ...) is reported and the others go on. At the end a table goes to stdout and
 * `DIR/summary.json` holds, per file: frames, results, bytes, wall time, start/end times, and
 * ok or the error's code and message. Exit code: 0 if every file succeeded, 1 if any failed,
 * 130 after Ctrl-C (which aborts the running sessions and starts no new ones).
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { InferenceClient, VideoFileSource, VidrtcError } from "@vidrtc/node";

/** One line of the summary. */
export interface FileReport {
  file: string;
  ok: boolean;
  /** Frames the server reported as processed (0 when it failed before the end). */
  frames: number;
  /** Result lines written to the JSONL. */
  results: number;
  /** Size of the file. */
  bytes: number;
  /** Wall time of this file's session (ms). */
  ms: number;
  /** `Date.now()` when this file's session started and ended. */
  startedAt: number;
  endedAt: number;
  /** The JSONL written (only when ok). */
  jsonl: string | null;
  error: { code: string; message: string } | null;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "api-url": { type: "string", default: "http://127.0.0.1:9001" },
    out: { type: "string", default: "batch-out" },
    concurrency: { type: "string", default: "2" },
    workflow: { type: "string", default: "motion" },
  },
});
const folder = positionals[0];
const concurrency = Number(values.concurrency);
if (folder === undefined || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write(
    "usage: main.ts <folder> [--api-url URL] [--out DIR] [--concurrency N>=1] [--workflow ID]\n",
  );
  process.exit(2);
}
const outDir = values.out;
await mkdir(outDir, { recursive: true });

const files: string[] = [];
for (const entry of await readdir(folder, { withFileTypes: true })) {
  if (entry.isFile() && !entry.name.startsWith(".")) files.push(join(folder, entry.name));
}
files.sort();

const controller = new AbortController();
process.once("SIGINT", () => controller.abort()); // Ctrl-C: running sessions reject with ABORTED
const client = new InferenceClient({ apiUrl: values["api-url"] }); // one client, many sessions

async function processFile(path: string): Promise<FileReport> {
  const startedAt = Date.now();
  const jsonlPath = join(outDir, `${basename(path)}.jsonl`);
  const partial = `${jsonlPath}.partial`;
  let results = 0;
  let frames = 0;
  let bytes = 0;
  let out: WriteStream | null = null;
  try {
    bytes = (await stat(path)).size;
    out = createWriteStream(partial);
    const session = await client.webrtc.stream({
      source: new VideoFileSource(path),
      workflow: values.workflow,
      workspace: "local",
      dataOutput: ["*"],
      // Each session gets its own bound, and Ctrl-C reaches all of them.
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(600_000)]),
    });
    for await (const result of session) {
      out.write(
        `${JSON.stringify({ frameId: result.frameId, outputs: result.outputs, errors: result.errors })}\n`,
      );
      results++;
    }
    frames = (await session.done).framesProcessed;
    await closeStream(out);
    await rename(partial, jsonlPath);
    return report(path, true, { frames, results, bytes, startedAt, jsonl: jsonlPath, error: null });
  } catch (error) {
    if (out) await closeStream(out).catch(() => {});
    await rm(partial, { force: true });
    const code = VidrtcError.isInstance(error) ? error.code : "ERROR";
    const message = error instanceof Error ? error.message : String(error);
    return report(path, false, { frames, results, bytes, startedAt, jsonl: null, error: { code, message } });
  }
}

function report(
  file: string,
  ok: boolean,
  r: Pick<FileReport, "frames" | "results" | "bytes" | "startedAt" | "jsonl" | "error">,
): FileReport {
  const endedAt = Date.now();
  const line: FileReport = { file, ok, ...r, ms: endedAt - r.startedAt, endedAt };
  process.stderr.write(
    ok
      ? `${basename(file)}: ${line.results} results in ${line.ms} ms\n`
      : `${basename(file)}: failed: ${line.error?.code}: ${line.error?.message}\n`,
  );
  return line;
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once("error", reject);
    stream.end(() => resolve());
  });
}

// Bounded concurrency: `concurrency` workers take the next file until none is left.
const reports: FileReport[] = [];
let next = 0;
async function worker(): Promise<void> {
  while (next < files.length && !controller.signal.aborted) {
    const file = files[next++]!;
    reports.push(await processFile(file));
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
reports.sort((a, b) => a.file.localeCompare(b.file));

const failed = reports.filter((r) => !r.ok).length;
const notStarted = files.length - reports.length;
const rows = [
  ["file", "status", "frames", "results", "bytes", "ms"],
  ...reports.map((r) => [
    basename(r.file),
    r.ok ? "ok" : `error ${r.error?.code}`,
    String(r.frames),
    String(r.results),
    String(r.bytes),
    String(r.ms),
  ]),
];
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
for (const row of rows)
  console.log(
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join("  ")
      .trimEnd(),
  );
console.log(
  `${reports.length - failed} ok, ${failed} failed${notStarted > 0 ? `, ${notStarted} not started (interrupted)` : ""}`,
);
await writeFile(
  join(outDir, "summary.json"),
  `${JSON.stringify({ concurrency, files: reports }, null, 2)}\n`,
);
process.exitCode = controller.signal.aborted ? 130 : failed > 0 ? 1 : 0;
