/**
 * Quick upload throughput probe for the server (a developer tool, not a test), inside a netns:
 * `unshare -n sh -c 'ip link set lo up; npx tsx src/test-support/upload-bench.ts [MiB]'`
 * (server in the same process), or with `VIDRTC_URL=http://127.0.0.1:9001` against a separately
 * started `vidrtc-server --max-upload-mb 4096` (so client and server do not share one event loop).
 * Uploads random bytes: the session ends with an "undecodable" error result, whose arrival marks
 * the end of the upload.
 */
import { randomBytes } from "node:crypto";
import { silentLogger } from "../log.js";
import { createServer, type VidrtcServer } from "../server.js";
import { TestClient } from "./werift-client.js";

const mib = Number(process.argv[2] ?? 64);
let server: VidrtcServer | null = null;
let url = process.env.VIDRTC_URL;
if (!url) {
  server = createServer({ port: 0, logger: silentLogger, maxUploadBytes: 2 ** 32 });
  url = (await server.listen()).url;
}
const c = new TestClient({ url, body: { data_output: [] } });
const answer = await c.connect();
if (answer.status !== 200)
  throw new Error(`initialise failed: ${answer.status} ${JSON.stringify(answer.json)}`);
await c.waitOpen();
const block = randomBytes(49_152 * 64);
const total = Math.ceil((mib * 1048576) / 49_152);
const t0 = performance.now();
function* messages() {
  for (let idx = 0; idx < total; idx++) {
    const off = (idx % 64) * 49_152;
    const m = new Uint8Array(8 + 49_152);
    const v = new DataView(m.buffer);
    v.setUint32(0, idx, true);
    v.setUint32(4, total, true);
    m.set(block.subarray(off, off + 49_152), 8);
    yield m;
  }
}
await c.send(messages());
const sent = performance.now();
await c.waitComplete(600_000);
const secs = (performance.now() - t0) / 1000;
console.log(
  `uploaded ${mib} MiB: handed to send() in ${((sent - t0) / 1000).toFixed(1)} s, server done after ${secs.toFixed(1)} s = ${(mib / secs).toFixed(1)} MiB/s`,
);
console.log(`server said: ${JSON.stringify(c.results[0]?.output.errors)}`);
await c.close();
await server?.close();
process.exit(0);
