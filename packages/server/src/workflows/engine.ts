/**
 * The built-in workflows' computer vision, as plain synchronous functions.
 * It runs inside the workflow worker thread (see worker.ts); it is also importable directly (tests,
 * benchmarks), but the server never calls it on the main thread.
 */
import { randomUUID } from "node:crypto";
import { encodeRgbJpeg } from "./jpeg.js";

/** A frame as the engine sees it (a structural subset of `DecodedFrame`). */
export interface EngineFrame {
  index: number;
  ptsSeconds: number;
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Which image outputs to produce, and how. */
export interface EngineWant {
  /** Image output names to JPEG-encode. */
  jpeg?: string[];
  /** Image output names to return as raw rgb24. */
  rgb?: string[];
}

/** One image output. */
export interface EngineImage {
  jpeg?: Uint8Array;
  rgb?: Uint8Array;
  width: number;
  height: number;
}

/** Result of processing one frame. */
export interface EngineResult {
  data: Record<string, unknown>;
  images: Record<string, EngineImage>;
}

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
export interface MotionParameters {
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
}

/** Settings of the `delay` workflow. */
export interface DelayParameters {
  /** Milliseconds to wait per frame (0-1000). Default 5. */
  ms: number;
}

/** Settings of the `frame-stats` workflow (none today). */
export type FrameStatsParameters = Record<string, never>;

/** JPEG quality used for image outputs. */
export const JPEG_QUALITY = 75;

/** Thrown by {@link normalizeParameters} for invalid parameter values. */
export class ParameterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ParameterError";
  }
}

const MOTION_DEFAULTS: MotionParameters = {
  threshold: 25,
  cell_size: 0,
  min_cell_fraction: 0.15,
  min_area: 0.0005,
  merge_distance: 0.15,
  max_detections: 50,
  line_width: 2,
};

const MOTION_RANGES: Record<keyof MotionParameters, [number, number, boolean]> = {
  threshold: [1, 255, false],
  cell_size: [0, 256, true],
  min_cell_fraction: [0, 1, false],
  min_area: [0, 1, false],
  merge_distance: [0, 1, false],
  max_detections: [1, 10_000, true],
  line_width: [1, 32, true],
};

const DELAY_DEFAULTS: DelayParameters = { ms: 5 };
const DELAY_RANGES: Record<keyof DelayParameters, [number, number, boolean]> = { ms: [0, 1000, false] };

/** Blocks the calling (worker) thread for `ms` without spinning. */
function sleepThread(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Validates and completes a workflow's parameters. Unknown keys are ignored (clients may send
 * parameters meant for other workflows); known keys must be numbers (or numeric strings) in range.
 * Throws {@link ParameterError}.
 */
export function normalizeParameters(
  workflowId: string,
  parameters: Record<string, unknown> | undefined,
): Record<string, number> {
  const table =
    workflowId === "motion"
      ? { defaults: MOTION_DEFAULTS as unknown as Record<string, number>, ranges: MOTION_RANGES }
      : workflowId === "delay"
        ? { defaults: DELAY_DEFAULTS as unknown as Record<string, number>, ranges: DELAY_RANGES }
        : null;
  if (table === null) return {};
  const out: Record<string, number> = { ...table.defaults };
  for (const key of Object.keys(table.defaults)) {
    const raw = parameters?.[key];
    if (raw === undefined || raw === null) continue;
    const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
    const [min, max, integer] = (table.ranges as Record<string, [number, number, boolean]>)[key]!;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      throw new ParameterError(
        `Workflow parameter "${key}" must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}.`,
      );
    }
    if (integer && !Number.isInteger(value)) {
      throw new ParameterError(`Workflow parameter "${key}" must be an integer, got ${JSON.stringify(raw)}.`);
    }
    out[key] = value;
  }
  return out;
}

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

/** Frame statistics: mean luma, luma standard deviation, size and mean colour. */
export function frameStats(frame: EngineFrame): {
  brightness: number;
  contrast: number;
  width: number;
  height: number;
  mean_rgb: [number, number, number];
} {
  const { rgb, width, height } = frame;
  const pixels = width * height;
  let sy = 0;
  let syy = 0;
  let sr = 0;
  let sg = 0;
  let sb = 0;
  for (let i = 0, p = 0; i < pixels; i++, p += 3) {
    const r = rgb[p]!;
    const g = rgb[p + 1]!;
    const b = rgb[p + 2]!;
    const y = (77 * r + 150 * g + 29 * b + 128) >> 8;
    sy += y;
    syy += y * y;
    sr += r;
    sg += g;
    sb += b;
  }
  const n = Math.max(1, pixels);
  const mean = sy / n;
  const variance = Math.max(0, syy / n - mean * mean);
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    brightness: round(mean),
    contrast: round(Math.sqrt(variance)),
    width,
    height,
    mean_rgb: [round(sr / n), round(sg / n), round(sb / n)],
  };
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

/** A running built-in workflow: per-frame state plus the image-output plumbing. */
export class WorkflowEngine {
  private readonly motion: MotionDetector | null;
  private readonly delayMs: number;

  /**
   * @param workflowId a built-in id (`frame-stats`, `delay` or `motion`)
   * @param parameters parameters as returned by {@link normalizeParameters}
   */
  constructor(
    readonly workflowId: string,
    parameters: Record<string, unknown> = {},
  ) {
    this.delayMs = workflowId === "delay" ? normalizeParameters("delay", parameters).ms! : 0;
    if (workflowId === "motion") {
      this.motion = new MotionDetector(
        normalizeParameters("motion", parameters) as unknown as MotionParameters,
      );
    } else if (workflowId === "frame-stats" || workflowId === "delay") {
      this.motion = null;
    } else {
      throw new ParameterError(`Unknown built-in workflow "${workflowId}".`);
    }
  }

  /** Runs the workflow on one frame. Only requested image outputs are produced. */
  process(frame: EngineFrame, want: EngineWant = {}): EngineResult {
    const expected = frame.width * frame.height * 3;
    if (!(frame.width > 0 && frame.height > 0) || frame.rgb.length !== expected) {
      throw new Error(
        `Frame ${frame.index} has ${frame.rgb.length} bytes, expected ${expected} for ${frame.width}x${frame.height} rgb24.`,
      );
    }
    const data: Record<string, unknown> = {};
    const imageSources: Record<string, () => Uint8Array> = {};
    if (this.workflowId === "frame-stats") {
      data.stats = frameStats(frame);
    } else if (this.workflowId === "delay") {
      const started = performance.now();
      sleepThread(this.delayMs);
      data.delay = { frame: frame.index, waited_ms: Math.round((performance.now() - started) * 1000) / 1000 };
    } else if (this.motion) {
      const { predictions, motionScore } = this.motion.detect(frame);
      data.predictions = { image: { width: frame.width, height: frame.height }, predictions };
      data.motion_score = motionScore;
      const lineWidth = this.motion.params.line_width;
      imageSources.annotated = () => {
        const copy = new Uint8Array(frame.rgb);
        drawBoxes(copy, frame.width, frame.height, predictions, lineWidth);
        return copy;
      };
    }
    const images: Record<string, EngineImage> = {};
    const names = new Set([...(want.jpeg ?? []), ...(want.rgb ?? [])]);
    for (const name of names) {
      const source = imageSources[name];
      if (!source) continue;
      const rgb = source();
      const image: EngineImage = { width: frame.width, height: frame.height };
      if (want.jpeg?.includes(name)) image.jpeg = encodeJpeg(rgb, frame.width, frame.height);
      if (want.rgb?.includes(name)) image.rgb = rgb;
      images[name] = image;
    }
    return { data, images };
  }
}
