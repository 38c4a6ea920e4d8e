/** The `frame-stats` workflow: per-frame brightness, contrast, size and mean colour. */
import { defineWorkflow, type EngineFrame } from "../workflow.js";

/** Settings of the `frame-stats` workflow (none today). */
export type FrameStatsParameters = Record<string, never>;

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

export default defineWorkflow<FrameStatsParameters>({
  id: "frame-stats",
  description:
    "Per-frame statistics: brightness (mean luma 0-255), contrast (luma standard deviation), size and mean RGB.",
  outputs: [{ name: "stats", kind: "data" }],
  parameters: {},
  create: () => ({ processFrame: (frame) => ({ data: { stats: frameStats(frame) } }) }),
});
