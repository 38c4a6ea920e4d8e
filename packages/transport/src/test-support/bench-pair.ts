/**
 * Throughput of the two stacks through the seam, one process (CPU covers both ends):
 *   bash scripts/netns-run.sh --nic 192.0.2.10/24 npx tsx packages/transport/src/test-support/bench-pair.ts [MiB=64]
 * For each offerer -> answerer pair: MiB of 48 KiB messages through protocol's channel sink,
 * wall time, MiB/s and process CPU ms per MiB, all bytes counted at the receiver.
 */
import { createChannelSink } from "@vidrtc/protocol";
import type { TransportName } from "../types.js";
import { connectPeers, opened } from "./peers.js";

const mib = Number(process.argv[2] ?? 64);
const pairs: [TransportName, TransportName][] = [
  ["werift", "werift"],
  ["node-datachannel", "node-datachannel"],
  ["node-datachannel", "werift"],
  ["werift", "node-datachannel"],
];
const watermarks: Record<TransportName, { highWaterMark: number; lowWaterMark: number }> = {
  werift: { highWaterMark: 512 * 1024, lowWaterMark: 128 * 1024 },
  "node-datachannel": { highWaterMark: 1024 * 1024, lowWaterMark: 256 * 1024 },
};

const rows: string[] = [];
for (const [offer, answer] of pairs) {
  const peers = await connectPeers(offer, answer, { labels: ["video_upload"] });
  const local = peers.channels[0]!;
  await opened(local);
  const remote = await peers.remote("video_upload");
  const total = mib * 1024 * 1024;
  let received = 0;
  const done = new Promise<void>((resolve) =>
    remote.on("message", ({ data }) => {
      received += typeof data === "string" ? data.length : data.byteLength;
      if (received >= total) resolve();
    }),
  );
  const chunk = 48 * 1024;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const writer = createChannelSink(local, { ...watermarks[offer], stallTimeoutMs: 60_000 }).getWriter();
  for (let sent = 0; sent < total; sent += chunk)
    await writer.write(new Uint8Array(Math.min(chunk, total - sent)));
  await writer.close();
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  rows.push(
    `| ${offer} -> ${answer} | ${mib} | ${seconds.toFixed(2)} | ${(mib / seconds).toFixed(1)} | ${(cpuMs / mib).toFixed(1)} |`,
  );
  console.error(rows.at(-1));
  await peers.close();
}
console.log("| offerer -> answerer | MiB | s | MiB/s | CPU ms/MiB (both ends) |");
console.log("|---|---|---|---|---|");
for (const row of rows) console.log(row);
