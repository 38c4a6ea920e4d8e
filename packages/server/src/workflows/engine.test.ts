import jpeg from "jpeg-js";
import { describe, expect, it } from "vitest";
import {
  BOX_COLOURS,
  drawBoxes,
  type EngineFrame,
  encodeJpeg,
  frameStats,
  lumaOf,
  type MotionPrediction,
  normalizeParameters,
  ParameterError,
  WorkflowEngine,
} from "./engine.js";

function solid(width: number, height: number, r: number, g: number, b: number, index = 1): EngineFrame {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i += 3) {
    rgb[i] = r;
    rgb[i + 1] = g;
    rgb[i + 2] = b;
  }
  return { index, ptsSeconds: 0, width, height, rgb };
}

function withRect(
  frame: EngineFrame,
  x: number,
  y: number,
  w: number,
  h: number,
  value: number,
  index = frame.index,
): EngineFrame {
  const rgb = new Uint8Array(frame.rgb);
  for (let yy = y; yy < y + h; yy++) {
    for (let xx = x; xx < x + w; xx++) {
      const p = (yy * frame.width + xx) * 3;
      rgb[p] = rgb[p + 1] = rgb[p + 2] = value;
    }
  }
  return { ...frame, index, rgb };
}

function predictionsOf(data: Record<string, unknown>): MotionPrediction[] {
  return (data.predictions as { predictions: MotionPrediction[] }).predictions;
}

describe("frameStats", () => {
  it("measures a solid grey frame", () => {
    const s = frameStats(solid(8, 6, 128, 128, 128));
    expect(s).toEqual({ brightness: 128, contrast: 0, width: 8, height: 6, mean_rgb: [128, 128, 128] });
  });

  it("measures a half black, half white frame", () => {
    const f = withRect(solid(10, 10, 0, 0, 0), 0, 0, 10, 5, 255);
    const s = frameStats(f);
    expect(s.brightness).toBeCloseTo(127.5, 3);
    expect(s.contrast).toBeCloseTo(127.5, 3);
  });

  it("uses BT.601 luma weights", () => {
    expect(frameStats(solid(2, 2, 255, 0, 0)).brightness).toBe(77);
    expect(frameStats(solid(2, 2, 0, 255, 0)).brightness).toBe(149);
    expect(frameStats(solid(2, 2, 0, 0, 255)).brightness).toBe(29);
    expect(Array.from(lumaOf(new Uint8Array([255, 255, 255, 0, 0, 0]), 2))).toEqual([255, 0]);
  });
});

describe("motion", () => {
  it("reports nothing on the first frame and on a still scene", () => {
    const engine = new WorkflowEngine("motion");
    const a = withRect(solid(160, 120, 0, 0, 0), 20, 20, 20, 20, 255, 1);
    const first = engine.process(a);
    expect(predictionsOf(first.data)).toEqual([]);
    expect(first.data.motion_score).toBe(0);
    expect(first.data.predictions).toMatchObject({ image: { width: 160, height: 120 } });
    const still = engine.process({ ...a, index: 2 });
    expect(predictionsOf(still.data)).toEqual([]);
    expect(still.data.motion_score).toBe(0);
  });

  it("boxes a moving square (the union of its old and new positions), centre convention", () => {
    const engine = new WorkflowEngine("motion");
    const bg = solid(200, 150, 10, 10, 10);
    engine.process(withRect(bg, 40, 60, 30, 30, 240, 1));
    const out = engine.process(withRect(bg, 50, 60, 30, 30, 240, 2));
    const preds = predictionsOf(out.data);
    expect(preds.length).toBe(1);
    const p = preds[0]!;
    // changed pixels: x 40..49 (uncovered) and 70..79 (newly covered), y 60..89
    expect(p).toMatchObject({ x: 60, y: 75, width: 40, height: 30, class: "motion", class_id: 0 });
    expect(p.confidence).toBeGreaterThan(0.9);
    expect(p.confidence).toBeLessThanOrEqual(1);
    expect(p.detection_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.data.motion_score).toBeCloseTo((2 * 10 * 30) / (200 * 150), 5);
  });

  it("keeps two distant movers apart and ignores tiny noise", () => {
    const engine = new WorkflowEngine("motion");
    const bg = solid(320, 240, 0, 0, 0);
    engine.process(bg);
    let f = withRect(bg, 10, 10, 20, 20, 200, 2);
    f = withRect(f, 260, 190, 30, 25, 200);
    f = withRect(f, 150, 120, 1, 1, 255); // one noisy pixel
    const preds = predictionsOf(engine.process(f).data);
    expect(preds.length).toBe(2);
    const sorted = [...preds].sort((a, b) => a.x - b.x);
    expect(sorted[0]).toMatchObject({ x: 20, y: 20, width: 20, height: 20 });
    expect(sorted[1]).toMatchObject({ x: 275, y: 202.5, width: 30, height: 25 });
  });

  it("respects the threshold parameter", () => {
    const low = new WorkflowEngine("motion", { threshold: 10 });
    const high = new WorkflowEngine("motion", { threshold: 60 });
    const a = solid(100, 100, 100, 100, 100);
    const b = withRect(a, 30, 30, 20, 20, 140, 2);
    low.process(a);
    high.process(a);
    expect(predictionsOf(low.process(b).data).length).toBe(1);
    expect(predictionsOf(high.process(b).data).length).toBe(0);
  });

  it("resets when the frame size changes", () => {
    const engine = new WorkflowEngine("motion");
    engine.process(solid(100, 100, 0, 0, 0));
    expect(predictionsOf(engine.process(solid(80, 60, 255, 255, 255)).data)).toEqual([]);
  });

  it("produces only the requested image outputs, with boxes drawn", () => {
    const engine = new WorkflowEngine("motion");
    const bg = solid(120, 90, 0, 0, 0);
    engine.process(bg);
    const moved = withRect(bg, 30, 30, 20, 20, 255, 2);
    const none = new WorkflowEngine("motion");
    none.process(bg);
    expect(none.process(moved).images).toEqual({});
    const out = engine.process(moved, { rgb: ["annotated", "nope"], jpeg: ["annotated"] });
    expect(Object.keys(out.images)).toEqual(["annotated"]);
    const img = out.images.annotated!;
    expect([img.width, img.height, img.rgb!.length]).toEqual([120, 90, 120 * 90 * 3]);
    const [r, g, b] = BOX_COLOURS[0]!;
    const at = (x: number, y: number) =>
      Array.from(img.rgb!.subarray((y * 120 + x) * 3, (y * 120 + x) * 3 + 3));
    expect(at(30, 30)).toEqual([r, g, b]); // top-left corner of the box
    expect(at(31, 40)).toEqual([r, g, b]); // second pixel of the 2 px left edge
    expect(at(40, 40)).toEqual([255, 255, 255]); // inside: untouched
    expect(at(5, 5)).toEqual([0, 0, 0]);
    expect(moved.rgb[(30 * 120 + 30) * 3]).toBe(255); // the input frame is not modified
    const decoded = jpeg.decode(img.jpeg!, { useTArray: true });
    expect([decoded.width, decoded.height]).toEqual([120, 90]);
  });
});

describe("drawBoxes", () => {
  it("clips boxes at the frame edges", () => {
    const rgb = new Uint8Array(10 * 10 * 3);
    drawBoxes(rgb, 10, 10, [{ x: 0, y: 0, width: 8, height: 8 }], 2);
    expect(rgb[0]).toBe(BOX_COLOURS[0]![0]);
    expect(rgb[(9 * 10 + 9) * 3]).toBe(0);
  });
});

describe("encodeJpeg", () => {
  it("encodes rgb24 to a JPEG that decodes to about the same colours", () => {
    const f = withRect(solid(64, 48, 200, 40, 40), 0, 24, 64, 24, 30);
    const bytes = encodeJpeg(f.rgb, 64, 48);
    expect([bytes[0], bytes[1]]).toEqual([0xff, 0xd8]);
    const d = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
    expect([d.width, d.height]).toEqual([64, 48]);
    const px = (x: number, y: number) => Array.from(d.data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3));
    for (const [v, e] of px(10, 5).map((v, i) => [v, [200, 40, 40][i]!]))
      expect(Math.abs(v! - e!)).toBeLessThan(12);
    for (const v of px(10, 40)) expect(Math.abs(v - 30)).toBeLessThan(12);
  });
});

describe("normalizeParameters", () => {
  it("fills defaults, accepts numeric strings and ignores unknown keys", () => {
    const p = normalizeParameters("motion", { threshold: "40", other: true });
    expect(p.threshold).toBe(40);
    expect(p.min_area).toBe(0.0005);
    expect(normalizeParameters("frame-stats", { anything: 1 })).toEqual({});
  });

  it("rejects out-of-range and non-numeric values", () => {
    expect(() => normalizeParameters("motion", { threshold: 0 })).toThrow(ParameterError);
    expect(() => normalizeParameters("motion", { threshold: "high" })).toThrow(/threshold/);
    expect(() => normalizeParameters("motion", { max_detections: 2.5 })).toThrow(/integer/);
  });
});

describe("delay workflow", () => {
  it("waits the configured time per frame and reports it; ms defaults to 5 and is range-checked", () => {
    expect(normalizeParameters("delay", {})).toEqual({ ms: 5 });
    expect(() => normalizeParameters("delay", { ms: -1 })).toThrow(ParameterError);
    expect(() => normalizeParameters("delay", { ms: 5000 })).toThrow(/ms/);
    const engine = new WorkflowEngine("delay", { ms: 20 });
    const frame = { index: 3, ptsSeconds: 0.1, width: 2, height: 2, rgb: new Uint8Array(12) };
    const started = performance.now();
    const result = engine.process(frame);
    expect(performance.now() - started).toBeGreaterThanOrEqual(19);
    const out = result.data.delay as { frame: number; waited_ms: number };
    expect(out.frame).toBe(3);
    expect(out.waited_ms).toBeGreaterThanOrEqual(19);
    expect(new WorkflowEngine("delay").process(frame).data.delay).toMatchObject({ frame: 3 });
  });
});
