import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { VidrtcError } from "@vidrtc/protocol";
import { describe, expect, it } from "vitest";
import { Vp8RtpEncoder } from "./vp8-out.js";

const W = 160;
const H = 120;
const FPS = 15;

function frame(i: number): Uint8Array {
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = (y * W + x) * 3;
      rgb[p] = (x * 2 + i * 8) & 255;
      rgb[p + 1] = y * 2;
      rgb[p + 2] = x > 40 + i * 2 && x < 80 + i * 2 && y > 40 && y < 80 ? 255 : 60;
    }
  }
  return rgb;
}

interface Parsed {
  pt: number;
  marker: boolean;
  seq: number;
  ts: number;
  ssrc: number;
  start: boolean;
  vp8: Uint8Array;
}

/** Parses the RTP header and the VP8 payload descriptor (RFC 7741). */
function parse(packet: Uint8Array): Parsed {
  expect(packet[0]! >> 6).toBe(2);
  const dv = new DataView(packet.buffer, packet.byteOffset, packet.length);
  const cc = packet[0]! & 0x0f;
  let o = 12 + cc * 4;
  if (packet[0]! & 0x10) o += 4 + dv.getUint16(o + 2) * 4; // header extension
  const d0 = packet[o++]!;
  if (d0 & 0x80) {
    const x = packet[o++]!;
    if (x & 0x80) o += packet[o]! & 0x80 ? 2 : 1; // picture id
    if (x & 0x40) o += 1; // TL0PICIDX
    if (x & 0x30) o += 1; // TID / KEYIDX
  }
  return {
    pt: packet[1]! & 0x7f,
    marker: (packet[1]! & 0x80) !== 0,
    seq: dv.getUint16(2),
    ts: dv.getUint32(4),
    ssrc: dv.getUint32(8),
    start: (d0 & 0x10) !== 0 && (d0 & 0x07) === 0,
    vp8: packet.subarray(o),
  };
}

async function encode(count: number, options: { payloadType?: number; ssrc?: number } = {}) {
  const packets: Uint8Array[] = [];
  const enc = new Vp8RtpEncoder({
    width: W,
    height: H,
    fps: FPS,
    onRtp: (p) => packets.push(new Uint8Array(p)),
    ...options,
  });
  await enc.start();
  for (let i = 0; i < count; i++) await enc.write(frame(i));
  await enc.close();
  return { packets, enc };
}

describe("Vp8RtpEncoder", () => {
  it("produces VP8 RTP packets with the payload type, SSRC, sequence and marker per frame", async () => {
    const { packets, enc } = await encode(30, { ssrc: 0x1234abcd });
    expect(enc.framesWritten).toBe(30);
    expect(enc.packetsSent).toBe(packets.length);
    expect(packets.length).toBeGreaterThanOrEqual(30);
    const parsed = packets.map(parse);
    for (const p of parsed) {
      expect(p.pt).toBe(96);
      expect(p.ssrc).toBe(0x1234abcd);
      expect(p.vp8.length).toBeGreaterThan(0);
    }
    for (let i = 1; i < parsed.length; i++) expect(parsed[i]!.seq).toBe((parsed[i - 1]!.seq + 1) & 0xffff);
    // One marker per frame (the frame's last packet); timestamps advance by 90000 / fps per frame.
    const ends = parsed.filter((p) => p.marker);
    expect(ends.length).toBe(30);
    for (let i = 1; i < ends.length; i++) expect((ends[i]!.ts - ends[i - 1]!.ts) >>> 0).toBe(90000 / FPS);
    // Frame starts carry the VP8 payload header: keyframes (bit 0 clear) have the 9d 01 2a start code and the size.
    const starts = parsed.filter((p) => p.start);
    expect(starts.length).toBe(30);
    const keyframes = starts.filter((p) => (p.vp8[0]! & 1) === 0);
    expect(starts[0]!.vp8[0]! & 1).toBe(0);
    expect(keyframes.length).toBeGreaterThanOrEqual(2); // about one a second
    expect(keyframes.length).toBeLessThan(10);
    for (const k of keyframes) {
      expect(Array.from(k.vp8.subarray(3, 6))).toEqual([0x9d, 0x01, 0x2a]);
      const dv = new DataView(k.vp8.buffer, k.vp8.byteOffset);
      expect(dv.getUint16(6, true) & 0x3fff).toBe(W);
      expect(dv.getUint16(8, true) & 0x3fff).toBe(H);
    }
  });

  it("emits a stream ffmpeg decodes back to the same number of frames", async () => {
    const { packets } = await encode(20);
    // Depacketize into an IVF file.
    const frames: Uint8Array[] = [];
    let current: Uint8Array[] = [];
    for (const p of packets.map(parse)) {
      current.push(p.vp8);
      if (p.marker) {
        frames.push(Buffer.concat(current));
        current = [];
      }
    }
    const header = Buffer.alloc(32);
    header.write("DKIF", 0);
    header.writeUInt16LE(0, 4);
    header.writeUInt16LE(32, 6);
    header.write("VP80", 8);
    header.writeUInt16LE(W, 12);
    header.writeUInt16LE(H, 14);
    header.writeUInt32LE(FPS, 16);
    header.writeUInt32LE(1, 20);
    header.writeUInt32LE(frames.length, 24);
    const parts: Uint8Array[] = [header];
    frames.forEach((f, i) => {
      const fh = Buffer.alloc(12);
      fh.writeUInt32LE(f.length, 0);
      fh.writeBigUInt64LE(BigInt(i), 4);
      parts.push(fh, f);
    });
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-vp8-"));
    try {
      const file = join(dir, "out.ivf");
      await writeFile(file, Buffer.concat(parts));
      const { stdout } = await promisify(execFile)(
        "ffprobe",
        [
          "-v",
          "error",
          "-count_frames",
          "-show_entries",
          "stream=codec_name,width,height,nb_read_frames",
          "-of",
          "json",
          file,
        ],
        { timeout: 30_000 },
      );
      const stream = (JSON.parse(stdout) as { streams: Array<Record<string, unknown>> }).streams[0]!;
      expect(stream).toMatchObject({ codec_name: "vp8", width: W, height: H, nb_read_frames: "20" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("uses the requested payload type", async () => {
    const { packets } = await encode(3, { payloadType: 100 });
    expect(packets.length).toBeGreaterThan(0);
    for (const p of packets) expect(p[1]! & 0x7f).toBe(100);
  });

  it("validates options and frame sizes; close is idempotent and ends writes", async () => {
    expect(() => new Vp8RtpEncoder({ width: 161, height: 120, fps: 15, onRtp: () => {} })).toThrow(/even/);
    expect(() => new Vp8RtpEncoder({ width: 160, height: 120, fps: 0, onRtp: () => {} })).toThrow(/fps/);
    const enc = new Vp8RtpEncoder({ width: W, height: H, fps: FPS, onRtp: () => {} });
    await expect(enc.write(frame(0))).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    await enc.start();
    await expect(enc.write(new Uint8Array(10))).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    await enc.write(frame(0));
    await Promise.all([enc.close(), enc.close()]);
    await enc.close();
    await expect(enc.write(frame(1))).rejects.toMatchObject({ code: "ABORTED" });
  });

  it("fails to start with PROCESSING_FAILED and an install hint when ffmpeg is missing", async () => {
    const enc = new Vp8RtpEncoder({
      width: W,
      height: H,
      fps: FPS,
      onRtp: () => {},
      ffmpegPath: "/nonexistent/ffmpeg",
    });
    try {
      await enc.start();
      expect.unreachable();
    } catch (error) {
      expect(VidrtcError.hasCode(error, "PROCESSING_FAILED")).toBe(true);
      expect((error as Error).message).toContain("apt-get install -y ffmpeg");
    }
    await enc.close();
  });
});
