/**
 * A client program for tests that need a real, separate process to stop or kill: a raw werift
 * client (see raw-client.ts) that uploads a video and never sends an ACK, so the server gets no
 * pacing and sends results as fast as it makes them. Prints one JSON line per event on stdout:
 * `{"event":"uploaded"}`, `{"event":"receiving","results":n}` after the first result, then
 * `{"event":"complete",...}` if it ever gets `processing_complete`.
 *
 *   node --import tsx src/support/no-ack-client.ts <server url> <video path> [data outputs, comma-separated]
 */
import { RawClient } from "./raw-client.js";

const [url, video, outputs] = process.argv.slice(2);
if (!url || !video) {
  console.error("usage: no-ack-client.ts <server url> <video path> [data outputs]");
  process.exit(2);
}
const say = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

const client = await RawClient.connect({
  url,
  ackDelayMs: null,
  request: { workflow: "motion", workspace: "local", dataOutput: (outputs ?? "annotated").split(",") },
});
await client.uploadFile(video);
say({ event: "uploaded" });
const receiving = setInterval(() => {
  if (client.results.length === 0) return;
  clearInterval(receiving);
  say({ event: "receiving", results: client.results.length });
}, 5);
const complete = await client.waitComplete(600_000);
say({ event: "complete", results: client.results.length, termination: complete.output.termination_reason });
await client.close();
