/**
 * Video back, through the seam only, for every offerer x answerer pair: ffmpeg encodes a VP8 test
 * pattern to RTP, the answerer's `videoSender.writeRtp` forwards it, the offerer records it to
 * WebM with `recordVideo`, and ffprobe must decode every recorded frame at the right size.
 */
import { execFileSync, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { connectPeers, fakeNicAddress } from "../test-support/peers.js";
import type { TransportName } from "../types.js";

const dir = mkdtempSync(path.join(tmpdir(), "vidrtc-video-"));
beforeAll(() => assertIsolatedNetwork());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs ffmpeg to send `seconds` of 320x240 VP8 as RTP to a local UDP socket; calls `onPacket` per packet. */
async function vp8Rtp(seconds: number, onPacket: (packet: Buffer) => void): Promise<void> {
  const socket = createSocket("udp4");
  socket.on("message", onPacket);
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const port = socket.address().port;
  const ffmpeg = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"],
      ...["-i", `testsrc=size=320x240:rate=15:duration=${seconds}`],
      ...["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "400k", "-g", "5"],
      ...["-f", "rtp", `rtp://127.0.0.1:${port}?pkt_size=1200`],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("ffmpeg did not finish")), 30_000);
      ffmpeg.on("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`ffmpeg exited with ${code}`));
      });
    });
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    ffmpeg.kill("SIGKILL");
    socket.close();
  }
}

function probe(file: string): { width: number; height: number; frames: number } {
  const out = execFileSync(
    "ffprobe",
    [
      ...["-v", "error", "-count_frames", "-select_streams", "v:0"],
      ...["-show_entries", "stream=width,height,nb_read_frames", "-of", "json", file],
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  const stream = (JSON.parse(out) as { streams: { width: number; height: number; nb_read_frames: string }[] })
    .streams[0]!;
  return { width: stream.width, height: stream.height, frames: Number(stream.nb_read_frames) };
}

const stacks: TransportName[] = fakeNicAddress() ? ["werift", "node-datachannel"] : ["werift"];
describe("video back through the seam", () => {
  for (const offer of stacks) {
    for (const answer of stacks) {
      it(`${answer} answerer sends VP8 RTP that a ${offer} offerer records to a decodable WebM`, async () => {
        const peers = await connectPeers(offer, answer, { labels: ["inference"], video: true });
        try {
          const sender = peers.answerer.videoSender;
          expect(sender).not.toBeNull();
          expect(sender!.mimeType).toBe("video/VP8");
          const offered = /^a=rtpmap:(\d+) VP8\/90000/m.exec(peers.offerSdp)?.[1];
          expect(sender!.payloadType).toBe(Number(offered));
          const file = path.join(dir, `${offer}-${answer}.webm`);
          // werift's recordVideo resolves once the track arrives, i.e. with the first packet.
          let sent = 0;
          const recording = peers.offerer.recordVideo(file, { width: 320, height: 240 });
          await vp8Rtp(3, (packet) => {
            packet[1] = (packet[1]! & 0x80) | sender!.payloadType;
            sender!.writeRtp(packet);
            sent++;
          });
          const recorder = await recording;
          await recorder.stop();
          expect(sent).toBeGreaterThan(20);
          expect(statSync(file).size).toBeGreaterThan(1000);
          const info = probe(file);
          expect(info.width).toBe(320);
          expect(info.height).toBe(240);
          // 45 frames sent, keyframe every 5; packets before the SRTP track is up are lost, then recording starts at a keyframe.
          expect(info.frames).toBeGreaterThanOrEqual(15);
        } finally {
          await peers.close();
        }
      }, 60_000);
    }
  }
});
