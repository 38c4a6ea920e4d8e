/**
 * Runs the WebSocket example end to end: the receiving server in this process, the client as a
 * child program. Checks a byte-exact upload (SHA-256 of what the server wrote = the source's),
 * one result per decoded frame (ids 1..N = ffprobe's count, with the frame's picture type), the
 * keepalive echoes, the client exiting by itself, and that a malformed upload comes back as a
 * clear error result.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ackMessage } from "@vidrtc/protocol";
import WebSocket from "ws";
import { Checks, countFrames, makeTestVideo, runProgram, sha256, tempDir } from "../../runner/runner.ts";
import { type ReceivedUpload, startWsInferenceServer } from "./server.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const checks = new Checks("custom-transport-websocket");
const tmp = await tempDir("ws");
const uploads: ReceivedUpload[] = [];
const server = await startWsInferenceServer({ dir: tmp.dir, onUpload: (u) => uploads.push(u) });
try {
  // 90 frames of 640x480 test pattern (about 32 KB: it compresses well): a clean, decodable upload.
  const video = join(tmp.dir, "clip.mp4");
  await makeTestVideo(video, 90, "640x480", 30);
  const frames = await countFrames(video);
  const out = join(tmp.dir, "results.jsonl");

  const r = await runProgram(
    MAIN,
    [video, "--url", server.url, "--out", out, "--keepalive-ms", "20"],
    60_000,
  );
  checks.check(r.code === 0, `client exits by itself with code 0 (got ${r.code ?? r.signal}) in ${r.ms} ms`);
  const summary = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
    results: number;
    framesProcessed: number;
    keepalive: { pingsSent: number; echoes: number };
  };
  const upload = uploads[0];
  checks.check(
    upload !== undefined && upload.error === null,
    `server received the upload without error (${upload?.error ?? "ok"})`,
  );
  const [sent, got] = [await sha256(video), upload ? await sha256(upload.path) : ""];
  checks.check(sent === got, `upload is byte-exact: sha256 ${sent.slice(0, 16)}… = ${got.slice(0, 16)}…`);
  const results = (await readFile(out, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { frameId: number; outputs: { picture_type?: unknown } });
  checks.check(
    results.length === frames &&
      results.every((x, i) => x.frameId === i + 1 && typeof x.outputs.picture_type === "string"),
    `results = frames: ${results.length} results with ids 1..${frames} (ffprobe counts ${frames})`,
  );
  checks.check(
    summary.framesProcessed === frames && summary.results === frames,
    `processing_complete reports ${summary.framesProcessed} frames`,
  );
  checks.check(
    summary.keepalive.pingsSent > 0 && summary.keepalive.echoes > 0,
    `keepalive pings echoed (${summary.keepalive.echoes}/${summary.keepalive.pingsSent})`,
  );

  // A raw client that breaks the protocol: chunk 5 of 2 must be refused with a clear error result.
  const errorText = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no error result within 10 s")), 10_000);
    const res = new WebSocket(`${server.url}/inference?session=bad`);
    res.on("message", (data: Buffer) => {
      clearTimeout(timer);
      res.close();
      resolve(data.subarray(12).toString("utf8"));
    });
    res.on("open", () => {
      res.send(ackMessage(1));
      const up = new WebSocket(`${server.url}/video_upload?session=bad`);
      // frameUploadChunk refuses to build this, so write the 8-byte header by hand:
      // chunk index and total chunks, both uint32 little-endian, then the payload.
      const bad = Buffer.alloc(8 + 10);
      bad.writeUInt32LE(5, 0);
      bad.writeUInt32LE(2, 4);
      up.on("open", () => up.send(bad));
    });
  });
  checks.check(
    /chunk_index 5 is not below total_chunks/.test(errorText) && errorText.includes('"errors"'),
    `a bad chunk comes back as an error result: ${errorText.slice(0, 120)}`,
  );
} finally {
  await server.close();
  await tmp.remove();
}
process.exitCode = checks.finish();
