import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import jpeg from "jpeg-js";
import { describe, expect, it } from "vitest";
import { encodeRgbJpeg } from "./jpeg.js";

function image(w: number, h: number, f: (x: number, y: number) => [number, number, number]): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set(f(x, y), (y * w + x) * 3);
  return rgb;
}

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return se === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / (se / a.length));
}

function decode(bytes: Uint8Array) {
  return jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
}

describe("encodeRgbJpeg", () => {
  it("writes a JFIF baseline file (SOI, APP0, SOF0 with the size, EOI)", () => {
    const bytes = encodeRgbJpeg(
      image(50, 30, () => [10, 20, 30]),
      50,
      30,
    );
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0xff, 0xd8, 0xff, 0xe0]);
    expect(Buffer.from(bytes.subarray(6, 10)).toString("latin1")).toBe("JFIF");
    expect(Array.from(bytes.subarray(-2))).toEqual([0xff, 0xd9]);
    const sof = Buffer.from(bytes).indexOf(Buffer.from([0xff, 0xc0]));
    expect(sof).toBeGreaterThan(0);
    expect(Buffer.from(bytes).readUInt16BE(sof + 5)).toBe(30);
    expect(Buffer.from(bytes).readUInt16BE(sof + 7)).toBe(50);
    expect(bytes.buffer.byteLength).toBe(bytes.length); // owns its memory: safe to transfer
  });

  it("reproduces solid colours exactly and smooth gradients closely", () => {
    const solid = image(40, 24, () => [200, 40, 40]);
    expect(psnr(decode(encodeRgbJpeg(solid, 40, 24)).data, solid)).toBeGreaterThan(45);
    const gradient = image(64, 48, (x, y) => [x * 4, y * 5, 128]);
    expect(psnr(decode(encodeRgbJpeg(gradient, 64, 48, 75)).data, gradient)).toBeGreaterThan(35);
    expect(psnr(decode(encodeRgbJpeg(gradient, 64, 48, 95)).data, gradient)).toBeGreaterThan(
      psnr(decode(encodeRgbJpeg(gradient, 64, 48, 30)).data, gradient),
    );
  });

  it("keeps detail in the luma channel (black/white checkerboard of 4 px)", () => {
    const board = image(48, 40, (x, y) => (((x >> 2) + (y >> 2)) % 2 === 0 ? [255, 255, 255] : [0, 0, 0]));
    expect(psnr(decode(encodeRgbJpeg(board, 48, 40, 90)).data, board)).toBeGreaterThan(25);
  });

  it("decodes to the right size for any size and content (jpeg-js)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer(),
        (w, h, q, seed) => {
          let s = seed | 0;
          const rgb = new Uint8Array(w * h * 3).map(() => {
            s = (Math.imul(s, 1103515245) + 12345) | 0;
            return (s >>> 16) & 255;
          });
          const d = decode(encodeRgbJpeg(rgb, w, h, q));
          expect([d.width, d.height]).toEqual([w, h]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("is decoded by ffmpeg as well", async () => {
    const w = 97;
    const h = 61;
    const rgb = image(w, h, (x, y) => [x * 2, y * 3, x + y]);
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-jpeg-"));
    try {
      const file = join(dir, "x.jpg");
      await writeFile(file, encodeRgbJpeg(rgb, w, h));
      const { stdout } = await promisify(execFile)(
        "ffmpeg",
        ["-v", "error", "-i", file, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        { encoding: "buffer", maxBuffer: 1 << 24, timeout: 30_000 },
      );
      expect(stdout.length).toBe(w * h * 3);
      expect(psnr(new Uint8Array(stdout), rgb)).toBeGreaterThan(30);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects invalid sizes", () => {
    expect(() => encodeRgbJpeg(new Uint8Array(3), 0, 1)).toThrow(RangeError);
    expect(() => encodeRgbJpeg(new Uint8Array(3), 2, 2)).toThrow(RangeError);
  });
});
