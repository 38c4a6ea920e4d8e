import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseRtp, recordRtpToWebm, vp8KeyframeSize, vp8Payload } from "./webm.js";

const dir = mkdtempSync(path.join(tmpdir(), "vidrtc-webm-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake VP8 frame: a keyframe header with the size (what the muxer reads) or an interframe. */
function frame(key: boolean, bytes = 300): Uint8Array {
  const f = new Uint8Array(bytes).fill(0x55);
  if (key) {
    f.set([0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 320 & 0xff, 320 >> 8, 240 & 0xff, 240 >> 8]);
  } else f[0] = 0x01;
  return f;
}

/** Packetises `data` into RTP packets of at most `size` payload bytes (RFC 7741 descriptor, no extensions). */
function packets(data: Uint8Array, seq: number, ts: number, size = 120): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < data.length; off += size, i++) {
    const part = data.subarray(off, off + size);
    const p = new Uint8Array(12 + 1 + part.length);
    p[0] = 0x80;
    p[1] = (off + size >= data.length ? 0x80 : 0) | 96;
    new DataView(p.buffer).setUint16(2, (seq + i) & 0xffff);
    new DataView(p.buffer).setUint32(4, ts);
    p[12] = off === 0 ? 0x10 : 0x00;
    p.set(part, 13);
    out.push(p);
  }
  return out;
}

describe("VP8 RTP -> WebM", () => {
  it("parses RTP and the VP8 descriptor, skips RTCP, reads keyframe sizes", () => {
    const [p] = packets(frame(true), 7, 9000);
    const rtp = parseRtp(p!)!;
    expect([rtp.payloadType, rtp.sequence, rtp.timestamp, rtp.marker]).toEqual([96, 7, 9000, false]);
    expect(vp8Payload(rtp.payload)!.start).toBe(true);
    expect(vp8KeyframeSize(frame(true))).toEqual({ width: 320, height: 240 });
    expect(vp8KeyframeSize(frame(false))).toBeNull();
    const rtcp = new Uint8Array(12);
    rtcp[0] = 0x80;
    rtcp[1] = 201; // RR
    expect(parseRtp(rtcp)).toBeNull();
  });

  it("drops a frame with a lost packet and resumes at the next keyframe; ffprobe reads the file", async () => {
    const file = path.join(dir, "loss.webm");
    const rec = recordRtpToWebm(file);
    let seq = 100;
    const kinds = [true, false, false, false, true, false]; // frame 2 loses a packet
    kinds.forEach((key, i) => {
      const ps = packets(frame(key), seq, 1000 + i * 6000);
      seq += ps.length;
      ps.forEach((p, j) => {
        if (i === 2 && j === 1) return; // lost
        rec.push(p);
      });
    });
    await rec.stop();
    // frames 0, 1 kept; 2 broken; 3 dropped (waits for a keyframe); 4, 5 kept
    expect(rec.framesWritten).toBe(4);
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x1a, 0x45, 0xdf, 0xa3]));
    const out = execFileSync(
      "ffprobe",
      ["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", file],
      { encoding: "utf8", timeout: 20_000 },
    );
    expect(JSON.parse(out).streams[0]).toMatchObject({ codec_name: "vp8", width: 320, height: 240 });
  });

  it("refuses a path that does not end in .webm", () => {
    expect(() => recordRtpToWebm(path.join(dir, "x.mp4"))).toThrowError(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
  });
});
