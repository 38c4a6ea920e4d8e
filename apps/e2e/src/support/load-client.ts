/**
 * One `@vidrtc/node` client in its own process, for the load tests: clients in one process share
 * one event loop (werift's sender is CPU-bound), so each client of a concurrent load gets its own.
 *
 *   node --import tsx src/support/load-client.ts <server url> <video path> <werift|node-datachannel>
 *
 * Prepares the source, prints `{"event":"ready"}`, then waits for one line on stdin (the parent
 * releases every client at once) before it calls `stream()`. Ends with one JSON line:
 * `{"event":"done","ok":true,...}` with results, frames, upload and session times, or
 * `{"event":"done","ok":false,"code":...,"status":...,"ms":...}` where `ms` is the time from
 * `stream()` to the error.
 */
import { createInterface } from "node:readline";
import { InferenceClient, loopbackIceOptions, VideoFileSource, VidrtcError } from "@vidrtc/node";

const [url, video, transport] = process.argv.slice(2);
if (!url || !video || (transport !== "werift" && transport !== "node-datachannel")) {
  console.error("usage: load-client.ts <server url> <video path> <werift|node-datachannel>");
  process.exit(2);
}
const say = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

/** The whole session, from stream() to processing_complete, is bounded by this. */
const SESSION_BOUND_MS = Number(process.env.VIDRTC_LOAD_CLIENT_BOUND_MS ?? 1_500_000);

const client = new InferenceClient({
  apiUrl: url,
  transport,
  ...(transport === "werift" ? { werift: loopbackIceOptions() } : {}),
});
const source = new VideoFileSource(video);

const lines = createInterface({ input: process.stdin });
const go = new Promise<void>((resolve) => lines.once("line", () => resolve()));
say({ event: "ready" });
await go;
lines.close();

const cpu0 = process.cpuUsage();
const started = performance.now();
try {
  const session = await client.webrtc.stream({
    source,
    workflow: "motion",
    workspace: "local",
    dataOutput: ["*"],
    signal: AbortSignal.timeout(SESSION_BOUND_MS),
  });
  const streamedMs = performance.now() - started;
  let results = 0;
  let lastFrameId = 0;
  let inOrder = true;
  for await (const result of session) {
    results += 1;
    if (result.frameId !== lastFrameId + 1) inOrder = false;
    lastFrameId = result.frameId;
  }
  const summary = await session.done;
  const cpu = process.cpuUsage(cpu0);
  say({
    event: "done",
    ok: true,
    results,
    inOrder,
    framesProcessed: summary.framesProcessed,
    terminationReason: summary.terminationReason,
    uploadBytes: summary.upload?.bytes ?? null,
    uploadMs: summary.upload?.durationMs ?? null,
    streamedMs,
    ms: performance.now() - started,
    cpuMs: (cpu.user + cpu.system) / 1000,
    transport: session.transport,
  });
} catch (error) {
  const ms = performance.now() - started;
  if (error instanceof VidrtcError) {
    say({
      event: "done",
      ok: false,
      code: error.code,
      status: error.status ?? null,
      message: error.message,
      ms,
    });
  } else {
    say({ event: "done", ok: false, code: "UNEXPECTED", status: null, message: String(error), ms });
  }
}
