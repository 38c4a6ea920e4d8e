/**
 * node-basic: one video through @vidrtc/node, as a complete program.
 *
 *   node --import tsx src/main.ts <video> [--api-url URL] [--out DIR]
 *
 * Writes one JSON line per result to DIR/results.jsonl and the processed video to
 * DIR/annotated.webm, reports upload progress on stderr, and cancels cleanly on Ctrl-C
 * (SIGINT aborts the session through an AbortSignal; exit code 130).
 */
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { InferenceClient, VideoFileSource, VidrtcError } from "@vidrtc/node";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "api-url": { type: "string", default: "http://127.0.0.1:9001" },
    out: { type: "string", default: "." },
  },
});
const video = positionals[0];
if (video === undefined) {
  process.stderr.write("usage: main.ts <video> [--api-url URL] [--out DIR]\n");
  process.exit(2);
}
const outDir = values.out;
await mkdir(outDir, { recursive: true });

const controller = new AbortController();
process.once("SIGINT", () => controller.abort()); // Ctrl-C: the session rejects with code ABORTED
const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(600_000)]);
const jsonl = createWriteStream(join(outDir, "results.jsonl"));

try {
  // #region readme
  const client = new InferenceClient({ apiUrl: values["api-url"] }); // no STUN lookup unless you pass iceServers
  const session = await client.webrtc.stream({
    source: new VideoFileSource(video), // read lazily; EMPTY_FILE / FILE_NOT_FOUND / FILE_TOO_LARGE before connecting
    workflow: "motion",
    workspace: "local",
    dataOutput: ["*"],
    streamOutput: ["annotated"],
    signal,
    onUploadProgress: (p) =>
      process.stderr.write(`upload ${p.bytesDelivered}/${p.totalBytes} ETA ${p.etaSeconds ?? "?"}s\n`),
  });
  const saved = session.saveVideo(join(outDir, "annotated.webm")); // the processed VP8 track, not re-encoded
  for await (const result of session) {
    // paced by read-ahead credit: a slow consumer slows the server, nothing is dropped
    jsonl.write(
      `${JSON.stringify({ frameId: result.frameId, outputs: result.outputs, errors: result.errors })}\n`,
    );
  }
  const summary = await session.done; // { framesProcessed, terminationReason, upload, ... }
  await saved;
  // #endregion readme
  process.stderr.write(`done: ${summary.framesProcessed} frames, ${summary.resultsReceived} results\n`);
} catch (error) {
  if (VidrtcError.isInstance(error) && error.code === "ABORTED") {
    process.stderr.write("cancelled\n");
    process.exitCode = 130;
  } else {
    process.stderr.write(`failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
} finally {
  await new Promise<void>((resolve) => jsonl.end(resolve));
}
// No process.exit() on success: the program must end because nothing is left open.
