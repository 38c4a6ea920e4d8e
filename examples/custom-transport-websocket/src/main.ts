/**
 * custom-transport-websocket client program:
 *
 *   node --import tsx src/main.ts <video> --url ws://127.0.0.1:PORT [--out results.jsonl]
 *
 * Uploads the file over WebSockets, writes one JSON line per frame result, prints a summary JSON
 * line on stdout, progress on stderr. Ctrl-C aborts through an AbortSignal.
 */
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { parseArgs } from "node:util";
import { uploadOverWebSocket } from "./client.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    out: { type: "string", default: "results.jsonl" },
    "keepalive-ms": { type: "string", default: "3000" },
  },
});
const path = positionals[0];
if (path === undefined || values.url === undefined) {
  process.stderr.write("usage: main.ts <video> --url ws://HOST:PORT [--out results.jsonl]\n");
  process.exit(2);
}
const controller = new AbortController();
process.once("SIGINT", () => controller.abort());

const file = await open(path);
const { size } = await file.stat();
const jsonl = createWriteStream(values.out);
try {
  const results = uploadOverWebSocket({
    url: values.url,
    session: randomUUID(),
    source: file.readableWebStream({ type: "bytes" }) as ReadableStream<Uint8Array>,
    size,
    signal: controller.signal,
    keepaliveMs: Number(values["keepalive-ms"]),
    onProgress: (p) =>
      process.stderr.write(
        `upload: ${p.bytesDrained} wire bytes drained (the ${size}-byte file plus 8-byte chunk headers)\n`,
      ),
  });
  for (;;) {
    const next = await results.next();
    if (next.done) {
      console.log(JSON.stringify(next.value));
      break;
    }
    jsonl.write(
      `${JSON.stringify({ frameId: next.value.frameId, outputs: next.value.outputs, errors: next.value.errors })}\n`,
    );
  }
} catch (error) {
  process.stderr.write(`failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await file.close();
  await new Promise<void>((resolve) => jsonl.end(resolve));
}
