/** The `motion` workflow: motion detection by frame differencing, with an annotated image output. */
import { randomUUID } from "node:crypto";
import { drawBoxes, lumaOf } from "../cv.js";
import { defineWorkflow, type EngineFrame } from "../workflow.js";

/** A Roboflow-style detection; `x`, `y` are the box centre. */
export interface MotionPrediction {
  x: number;
  y: number;
  width: number;
  height: number;
  confidence: number;
  class: "motion";
  class_id: 0;
  detection_id: string;
}

/** Settings of the `motion` workflow (all optional in `parameters`). */
export type MotionParameters = {
  /** Luma difference (0-255) above which a pixel counts as changed. Default 25. */
  threshold: number;
  /** Grid cell size in pixels; 0 = automatic (about 1/60 of the smaller side, at least 2). Default 0. */
  cell_size: number;
  /** Fraction of a cell's pixels that must change for the cell to be active. Default 0.15. */
  min_cell_fraction: number;
  /** Smallest reported region, in changed pixels as a fraction of the frame area. Default 0.0005. */
  min_area: number;
  /** Boxes closer than this fraction of the smaller frame side are merged. Default 0.15. */
  merge_distance: number;
  /** At most this many boxes (the largest). Default 50. */
  max_detections: number;
  /** Outline thickness of the annotated boxes in pixels. Default 2. */
  line_width: number;
};

interface Region {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  changed: number;
  diffSum: number;
}

/** Frame-differencing motion detector; keeps the previous frame's luma. */
export class MotionDetector {
  private previous: Uint8Array | null = null;
  private current: Uint8Array | null = null;
  private prevWidth = 0;
  private prevHeight = 0;

  /** @param params complete motion parameters (see {@link normalizeParameters}) */
  constructor(readonly params: MotionParameters) {}

  /** Detects motion between the previous frame and this one. The first frame (or a size change) gives none. */
  detect(frame: EngineFrame): { predictions: MotionPrediction[]; motionScore: number } {
    const { width, height } = frame;
    const pixels = width * height;
    const luma = lumaOf(frame.rgb, pixels, this.current ?? undefined);
    const prev = this.previous;
    const sameSize = prev !== null && this.prevWidth === width && this.prevHeight === height;
    this.current = prev !== null && prev.length === pixels ? prev : null;
    this.previous = luma;
    this.prevWidth = width;
    this.prevHeight = height;
    if (!sameSize || prev === null) return { predictions: [], motionScore: 0 };
    return this.compare(prev, luma, width, height);
  }

  private compare(
    prev: Uint8Array,
    luma: Uint8Array,
    width: number,
    height: number,
  ): { predictions: MotionPrediction[]; motionScore: number } {
    const p = this.params;
    const minSide = Math.min(width, height);
    const cell = p.cell_size > 0 ? p.cell_size : Math.max(2, Math.round(minSide / 60));
    const gw = Math.ceil(width / cell);
    const gh = Math.ceil(height / cell);
    const cells = gw * gh;
    const count = new Uint32Array(cells);
    const diffSum = new Float64Array(cells);
    const minX = new Int32Array(cells).fill(width);
    const minY = new Int32Array(cells).fill(height);
    const maxX = new Int32Array(cells).fill(-1);
    const maxY = new Int32Array(cells).fill(-1);
    const threshold = p.threshold;
    let changedTotal = 0;
    for (let y = 0; y < height; y++) {
      const row = y * width;
      const gRow = ((y / cell) | 0) * gw;
      for (let x = 0; x < width; x++) {
        const d = luma[row + x]! - prev[row + x]!;
        const ad = d < 0 ? -d : d;
        if (ad > threshold) {
          changedTotal++;
          const c = gRow + ((x / cell) | 0);
          count[c]!++;
          diffSum[c]! += ad;
          if (x < minX[c]!) minX[c] = x;
          if (x > maxX[c]!) maxX[c] = x;
          if (y < minY[c]!) minY[c] = y;
          if (y > maxY[c]!) maxY[c] = y;
        }
      }
    }
    const motionScore = changedTotal / Math.max(1, width * height);
    if (changedTotal === 0) return { predictions: [], motionScore: 0 };

    // Active cells, then connected components over active cells with a one-cell bridge (8-neighbourhood
    // of radius 2), which joins fragments separated by a single quiet cell.
    const active = new Uint8Array(cells);
    for (let c = 0; c < cells; c++) {
      const cw = Math.min(cell, width - (c % gw) * cell);
      const ch = Math.min(cell, height - Math.floor(c / gw) * cell);
      if (count[c]! > 0 && count[c]! >= Math.max(1, p.min_cell_fraction * cw * ch)) active[c] = 1;
    }
    const label = new Int32Array(cells).fill(-1);
    const regions: Region[] = [];
    const stack: number[] = [];
    for (let c = 0; c < cells; c++) {
      if (active[c] !== 1 || label[c] !== -1) continue;
      const region: Region = { minX: width, minY: height, maxX: -1, maxY: -1, changed: 0, diffSum: 0 };
      const id = regions.length;
      regions.push(region);
      label[c] = id;
      stack.push(c);
      while (stack.length > 0) {
        const k = stack.pop()!;
        region.changed += count[k]!;
        region.diffSum += diffSum[k]!;
        if (minX[k]! < region.minX) region.minX = minX[k]!;
        if (minY[k]! < region.minY) region.minY = minY[k]!;
        if (maxX[k]! > region.maxX) region.maxX = maxX[k]!;
        if (maxY[k]! > region.maxY) region.maxY = maxY[k]!;
        const kx = k % gw;
        const ky = (k / gw) | 0;
        for (let dy = -2; dy <= 2; dy++) {
          const ny = ky + dy;
          if (ny < 0 || ny >= gh) continue;
          for (let dx = -2; dx <= 2; dx++) {
            const nx = kx + dx;
            if (nx < 0 || nx >= gw || (dx === 0 && dy === 0)) continue;
            const n = ny * gw + nx;
            if (active[n] === 1 && label[n] === -1) {
              label[n] = id;
              stack.push(n);
            }
          }
        }
      }
    }

    // Merge regions whose boxes are closer than merge_distance (repeat until stable).
    const gap = p.merge_distance * minSide;
    let merged = true;
    while (merged) {
      merged = false;
      for (let i = 0; i < regions.length && !merged; i++) {
        for (let j = i + 1; j < regions.length; j++) {
          const a = regions[i]!;
          const b = regions[j]!;
          const dx = Math.max(0, Math.max(a.minX, b.minX) - Math.min(a.maxX, b.maxX) - 1);
          const dy = Math.max(0, Math.max(a.minY, b.minY) - Math.min(a.maxY, b.maxY) - 1);
          if (dx <= gap && dy <= gap) {
            a.minX = Math.min(a.minX, b.minX);
            a.minY = Math.min(a.minY, b.minY);
            a.maxX = Math.max(a.maxX, b.maxX);
            a.maxY = Math.max(a.maxY, b.maxY);
            a.changed += b.changed;
            a.diffSum += b.diffSum;
            regions.splice(j, 1);
            merged = true;
            break;
          }
        }
      }
    }

    const minPixels = Math.max(4, p.min_area * width * height);
    const kept = regions
      .filter((r) => r.changed >= minPixels && r.maxX >= r.minX && r.maxY >= r.minY)
      .sort(
        (a, b) =>
          (b.maxX - b.minX + 1) * (b.maxY - b.minY + 1) - (a.maxX - a.minX + 1) * (a.maxY - a.minY + 1),
      )
      .slice(0, p.max_detections);
    const predictions = kept.map((r): MotionPrediction => {
      const w = r.maxX - r.minX + 1;
      const h = r.maxY - r.minY + 1;
      return {
        x: r.minX + w / 2,
        y: r.minY + h / 2,
        width: w,
        height: h,
        confidence: Math.round(Math.min(1, r.diffSum / r.changed / 128) * 10_000) / 10_000,
        class: "motion",
        class_id: 0,
        detection_id: randomUUID(),
      };
    });
    return { predictions, motionScore: Math.round(motionScore * 1e6) / 1e6 };
  }
}

export default defineWorkflow<MotionParameters>({
  id: "motion",
  description:
    "Motion detection by frame differencing: Roboflow-style boxes of moving regions, the fraction of " +
    "changed pixels, and the frame with the boxes drawn. Parameters: threshold, cell_size, " +
    "min_cell_fraction, min_area, merge_distance, max_detections, line_width.",
  outputs: [
    { name: "predictions", kind: "data" },
    { name: "motion_score", kind: "data" },
    { name: "annotated", kind: "image" },
  ],
  parameters: {
    threshold: {
      type: "number",
      default: 25,
      min: 1,
      max: 255,
      description: "Luma difference counted as change.",
    },
    cell_size: {
      type: "integer",
      default: 0,
      min: 0,
      max: 256,
      description: "Grid cell size; 0 = automatic.",
    },
    min_cell_fraction: {
      type: "number",
      default: 0.15,
      min: 0,
      max: 1,
      description: "Changed share of an active cell.",
    },
    min_area: {
      type: "number",
      default: 0.0005,
      min: 0,
      max: 1,
      description: "Smallest region, share of the frame.",
    },
    merge_distance: {
      type: "number",
      default: 0.15,
      min: 0,
      max: 1,
      description: "Merge gap, share of the smaller side.",
    },
    max_detections: {
      type: "integer",
      default: 50,
      min: 1,
      max: 10_000,
      description: "At most this many boxes.",
    },
    line_width: { type: "integer", default: 2, min: 1, max: 32, description: "Box outline width in pixels." },
  },
  create(parameters) {
    const detector = new MotionDetector(parameters);
    return {
      processFrame(frame) {
        const { predictions, motionScore } = detector.detect(frame);
        return {
          data: {
            predictions: { image: { width: frame.width, height: frame.height }, predictions },
            motion_score: motionScore,
          },
          images: {
            annotated: () => {
              const copy = new Uint8Array(frame.rgb);
              drawBoxes(copy, frame.width, frame.height, predictions, parameters.line_width);
              return copy;
            },
          },
        };
      },
    };
  },
});
