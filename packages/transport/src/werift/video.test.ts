import { execFileSync, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VidrtcError } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MediaStreamTrack } from "werift";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { createPair } from "../test-support/werift-pair.js";
import { recordVideoToWebm } from "./peer.js";

let dir: string;

beforeAll(async () => {
  assertIsolatedNetwork();
  dir = await mkdtemp(join(tmpdir(), "vidrtc-video-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function hasFfmpeg(): boolean {
  try {
    execFileSync("ffmpeg", ["-hide_banner", "-version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!hasFfmpeg())("video track and recordVideoToWebm", () => {
  it("receives the server's VP8 track and records it to a playable WebM without decoding", async () => {
    // The "server" sends VP8 RTP that ffmpeg encodes from a test pattern onto a loopback UDP port.
    const source = new MediaStreamTrack({ kind: "video" });
    const rtpIn = createSocket("udp4");
    await new Promise<void>((resolve) => rtpIn.bind(0, "127.0.0.1", resolve));
    rtpIn.on("message", (packet) => source.writeRtp(packet));
    const pair = await createPair({
      labels: ["inference"],
      beforeOffer: (client) => client.addVideoReceiver(),
      beforeAnswer: (server) => {
        const transceiver = server.getTransceivers().find((t) => t.kind === "video")!;
        transceiver.setDirection("sendonly");
        transceiver.sender.replaceTrack(source);
      },
    });
    const ffmpeg = spawn(
      "ffmpeg",
      [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=15",
        "-t",
        "3",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-g",
        "15",
        "-b:v",
        "300k",
        "-f",
        "rtp",
        `rtp://127.0.0.1:${rtpIn.address().port}?pkt_size=1200`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const ffmpegDone = new Promise<number | null>((resolve) => ffmpeg.on("close", resolve));
    const path = join(dir, "out.webm");
    try {
      const track = await Promise.race([
        pair.client.videoTrack! as Promise<MediaStreamTrack>,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("no video track in 5 s")), 5_000),
        ),
      ]);
      expect(track.kind).toBe("video");
      expect(track.codec?.mimeType.toLowerCase()).toBe("video/vp8");
      const recording = recordVideoToWebm(track, path); // the header gets the real 320x240, not 640x360
      expect(await ffmpegDone).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      await recording.stop();
      await recording.stop();
    } finally {
      ffmpeg.kill();
      rtpIn.close();
      await pair.close();
    }
    expect((await stat(path)).size).toBeGreaterThan(1000);
    const probe = JSON.parse(
      execFileSync(
        "ffprobe",
        ["-v", "error", "-count_frames", "-show_streams", "-select_streams", "v:0", "-of", "json", path],
        { encoding: "utf8" },
      ),
    ) as { streams: { codec_name: string; width: number; height: number; nb_read_frames: string }[] };
    const [stream] = probe.streams;
    expect(stream?.codec_name).toBe("vp8");
    expect(stream?.width).toBe(320);
    expect(stream?.height).toBe(240);
    // About 3 s at 15 fps; allow for the first frames before the track arrived.
    expect(Number(stream?.nb_read_frames)).toBeGreaterThan(15);
  }, 30_000);

  it("rejects a non-.webm path and an audio track", () => {
    const video = new MediaStreamTrack({ kind: "video" });
    const audio = new MediaStreamTrack({ kind: "audio" });
    expect(() => recordVideoToWebm(video, join(dir, "x.mp4"))).toThrow(VidrtcError);
    expect(() => recordVideoToWebm(audio, join(dir, "x.webm"))).toThrow(/video track/);
  });
});
