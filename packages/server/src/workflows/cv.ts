/** Image helpers shared by the workflows (luma, box drawing, JPEG). */
import { encodeRgbJpeg } from "./jpeg.js";

/** JPEG quality used for image outputs. */
export const JPEG_QUALITY = 75;

/** Mean-luma conversion (BT.601 weights, integer): 0x808080 -> 128. */
export function lumaOf(rgb: Uint8Array, pixels: number, out?: Uint8Array): Uint8Array {
  const y = out && out.length === pixels ? out : new Uint8Array(pixels);
  for (let i = 0, p = 0; i < pixels; i++, p += 3) {
    y[i] = (77 * rgb[p]! + 150 * rgb[p + 1]! + 29 * rgb[p + 2]! + 128) >> 8;
  }
  return y;
}

/** JPEG-encodes an rgb24 image (baseline, 4:2:0, see jpeg.ts). Returns a fresh, transferable buffer. */
export function encodeJpeg(
  rgb: Uint8Array,
  width: number,
  height: number,
  quality = JPEG_QUALITY,
): Uint8Array {
  return encodeRgbJpeg(rgb, width, height, quality);
}

/** Box colours for annotations (RGB), cycled per detection. */
export const BOX_COLOURS: ReadonlyArray<readonly [number, number, number]> = [
  [255, 64, 64],
  [64, 220, 64],
  [64, 128, 255],
  [255, 200, 0],
  [220, 64, 255],
  [0, 220, 220],
];

/** Draws rectangle outlines (`lineWidth` px, inside the box) onto an rgb24 image in place. */
export function drawBoxes(
  rgb: Uint8Array,
  width: number,
  height: number,
  boxes: ReadonlyArray<{ x: number; y: number; width: number; height: number }>,
  lineWidth = 2,
): void {
  boxes.forEach((box, k) => {
    const colour = BOX_COLOURS[k % BOX_COLOURS.length]!;
    const x0 = Math.max(0, Math.round(box.x - box.width / 2));
    const y0 = Math.max(0, Math.round(box.y - box.height / 2));
    const x1 = Math.min(width - 1, Math.round(box.x + box.width / 2) - 1);
    const y1 = Math.min(height - 1, Math.round(box.y + box.height / 2) - 1);
    if (x1 < x0 || y1 < y0) return;
    const fill = (ax: number, ay: number, bx: number, by: number): void => {
      for (let y = Math.max(0, ay); y <= Math.min(height - 1, by); y++) {
        for (let x = Math.max(0, ax); x <= Math.min(width - 1, bx); x++) {
          const p = (y * width + x) * 3;
          rgb[p] = colour[0];
          rgb[p + 1] = colour[1];
          rgb[p + 2] = colour[2];
        }
      }
    };
    const t = lineWidth - 1;
    fill(x0, y0, x1, y0 + t);
    fill(x0, y1 - t, x1, y1);
    fill(x0, y0, x0 + t, y1);
    fill(x1 - t, y0, x1, y1);
  });
}
