import { threadId } from "node:worker_threads";
import { VidrtcError } from "@vidrtc/protocol";
import jpeg from "jpeg-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DecodedFrame, decodeVideo } from "../media/decode.js";
import { probeVideo } from "../media/probe.js";
import {
  brightBox,
  makeVideoFixtures,
  SQUARE,
  squareX,
  type VideoFixtures,
} from "../media/test-support/videos.js";
import type { MotionPrediction } from "./engine.js";
import { BUILTIN_WORKFLOWS, resolveWorkflow, WorkflowRunner, workerExecArgv } from "./index.js";

function thrown(fn: () => unknown): VidrtcError {
  try {
    fn();
  } catch (error) {
    expect(VidrtcError.isInstance(error)).toBe(true);
    return error as VidrtcError;
  }
  throw new Error("expected an error");
}

async function rejection(p: Promise<unknown>): Promise<VidrtcError> {
  try {
    await p;
  } catch (error) {
    expect(VidrtcError.isInstance(error)).toBe(true);
    return error as VidrtcError;
  }
  throw new Error("expected a rejection");
}

describe("resolveWorkflow", () => {
  it("lists frame-stats and motion", () => {
    expect(BUILTIN_WORKFLOWS.map((w) => w.id)).toEqual(expect.arrayContaining(["frame-stats", "motion"]));
    for (const w of BUILTIN_WORKFLOWS) {
      expect(w.description.length).toBeGreaterThan(10);
      expect(w.outputs.length).toBeGreaterThan(0);
    }
  });

  it("finds a built-in by id, whatever the workspace", () => {
    const def = resolveWorkflow({ workflow_id: "motion", workspace_name: "anything" });
    expect(def.id).toBe("motion");
    expect(def.outputs).toEqual([
      { name: "predictions", kind: "data" },
      { name: "motion_score", kind: "data" },
      { name: "annotated", kind: "image" },
    ]);
    expect(resolveWorkflow({ workflow_id: "frame-stats" }).outputs).toEqual([
      { name: "stats", kind: "data" },
    ]);
  });

  it("rejects an unknown id with NOT_FOUND listing the built-ins", () => {
    const e = thrown(() => resolveWorkflow({ workflow_id: "yolo", workspace_name: "w" }));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toContain('"frame-stats"');
    expect(e.message).toContain('"motion"');
  });

  it("rejects a request that names no workflow", () => {
    expect(thrown(() => resolveWorkflow({})).code).toBe("BAD_REQUEST");
    expect(thrown(() => resolveWorkflow({ workflow_id: null, workflow_specification: null })).code).toBe(
      "BAD_REQUEST",
    );
  });

  it("accepts the builtin form of an inline specification, with parameters", () => {
    const def = resolveWorkflow({
      workflow_specification: { version: "1.0", builtin: "motion", parameters: { threshold: 30 } },
    });
    expect(def.id).toBe("motion");
    expect(def.parameters).toEqual({ threshold: 30 });
  });

  it("accepts the Roboflow-like steps form, as object or JSON string, and prefers it over workflow_id", () => {
    const spec = { version: "1.0", steps: [{ type: "vidrtc/motion@v1", name: "m", threshold: 40 }] };
    const a = resolveWorkflow({ workflow_id: "frame-stats", workflow_specification: spec });
    expect(a.id).toBe("motion");
    expect(a.parameters).toEqual({ threshold: 40 });
    const b = resolveWorkflow({
      workflow_specification: JSON.stringify({ steps: [{ kind: "frame-stats" }] }),
    });
    expect(b.id).toBe("frame-stats");
    expect(resolveWorkflow({ workflow_specification: { steps: [{ type: "vidrtc/frame-stats" }] } }).id).toBe(
      "frame-stats",
    );
  });

  it("rejects specifications that don't name a built-in with BAD_REQUEST", () => {
    for (const spec of [
      { steps: [{ type: "roboflow_core/roboflow_object_detection_model@v1", name: "model" }] },
      { steps: [{ type: "vidrtc/motion@v1" }, { type: "vidrtc/frame-stats@v1" }] },
      { steps: [] },
      { builtin: "nope" },
      { version: "1.0" },
      "not json",
      42,
      [],
    ]) {
      const e = thrown(() => resolveWorkflow({ workflow_specification: spec }));
      expect(e.code).toBe("BAD_REQUEST");
      expect(e.message).toContain("motion");
    }
  });

  it("rejects invalid parameters in a specification", () => {
    const e = thrown(() =>
      resolveWorkflow({ workflow_specification: { builtin: "motion", parameters: { threshold: -1 } } }),
    );
    expect(e.code).toBe("BAD_REQUEST");
    expect(e.message).toContain("threshold");
  });
});

describe("workerExecArgv", () => {
  it("drops options a worker rejects and keeps the rest", () => {
    expect(workerExecArgv(["--input-type=module", "-e", "code()", "--enable-source-maps"])).toEqual([
      "--enable-source-maps",
    ]);
    expect(workerExecArgv(["--import", "tsx", "--eval=x", "-p", "1+1"])).toEqual(["--import", "tsx"]);
  });

  it("drops V8 and process-wide flags, which make new Worker() throw", () => {
    expect(
      workerExecArgv([
        "--max-old-space-size=512",
        "--max-semi-space-size",
        "--expose-gc",
        "--import=tsx",
        "-r",
        "x.cjs",
      ]),
    ).toEqual(["--import=tsx", "-r", "x.cjs"]);
  });
});

describe("WorkflowRunner", () => {
  let fx: VideoFixtures;
  beforeAll(async () => {
    fx = await makeVideoFixtures();
  }, 120_000);
  afterAll(async () => {
    await fx?.cleanup();
  });

  async function frames(path: string): Promise<DecodedFrame[]> {
    const info = await probeVideo(path);
    const out: DecodedFrame[] = [];
    for await (const f of decodeVideo(path, info)) out.push(f);
    return out;
  }

  it("computes frame-stats on a solid 0x808080 video in a worker thread", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "frame-stats" }));
    try {
      const all = await frames(fx.gray);
      expect(all.length).toBe(15);
      const results = await Promise.all(all.map((f) => runner.process(f)));
      for (const r of results) {
        const stats = r.data.stats as {
          brightness: number;
          contrast: number;
          width: number;
          mean_rgb: number[];
        };
        expect(Math.abs(stats.brightness - 128)).toBeLessThan(1.5);
        expect(stats.contrast).toBeLessThan(1);
        expect(stats.width).toBe(64);
        for (const c of stats.mean_rgb) expect(Math.abs(c - 128)).toBeLessThan(2);
        expect(r.images).toEqual({});
      }
      expect(runner.threadId).not.toBeNull();
      expect(runner.threadId).not.toBe(threadId);
      expect(runner.threadId).toBeGreaterThan(0);
    } finally {
      await runner.close();
    }
  });

  it("follows the moving square with motion boxes, and returns decodable JPEG and raw images", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "motion" }));
    try {
      const all = await frames(fx.square);
      expect(all.length).toBe(30);
      for (const f of all) {
        const want = f.index % 10 === 1 ? { jpeg: ["annotated"], rgb: ["annotated"] } : {};
        const r = await runner.process(f, want);
        const preds = (r.data.predictions as { image: unknown; predictions: MotionPrediction[] }).predictions;
        expect(r.data.predictions).toMatchObject({ image: { width: 320, height: 240 } });
        if (f.index === 1) {
          expect(preds).toEqual([]);
          expect(r.data.motion_score).toBe(0);
        } else {
          expect(preds.length).toBe(1);
          const p = preds[0]!;
          // Frame differencing covers the square's previous and current positions.
          const left = squareX(f.index - 1);
          const right = squareX(f.index) + SQUARE.size;
          expect(Math.abs(p.x - (left + right) / 2)).toBeLessThanOrEqual(3);
          expect(Math.abs(p.y - (SQUARE.y + SQUARE.size / 2))).toBeLessThanOrEqual(3);
          expect(Math.abs(p.width - (right - left))).toBeLessThanOrEqual(4);
          expect(Math.abs(p.height - SQUARE.size)).toBeLessThanOrEqual(4);
          expect(p.class).toBe("motion");
          expect(r.data.motion_score as number).toBeGreaterThan(0);
          expect(r.data.motion_score as number).toBeLessThan(0.05);
        }
        if (f.index % 10 === 1) {
          const img = r.images.annotated!;
          expect([img.width, img.height]).toEqual([320, 240]);
          expect(img.rgb!.length).toBe(320 * 240 * 3);
          const d = jpeg.decode(img.jpeg!, { useTArray: true, formatAsRGBA: false });
          expect([d.width, d.height]).toEqual([320, 240]);
          // The square is still visible in the JPEG.
          const box = brightBox(d.data, 320, 240, 180)!;
          expect(Math.abs(box.y0 - SQUARE.y)).toBeLessThanOrEqual(3);
        } else {
          expect(r.images).toEqual({});
        }
      }
    } finally {
      await runner.close();
    }
  });

  it("keeps the main thread responsive while frames are processed", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "motion" }));
    try {
      await runner.whenReady();
      const w = 1920;
      const h = 1080;
      const mk = (i: number): DecodedFrame => ({
        index: i,
        ptsSeconds: i / 30,
        width: w,
        height: h,
        rgb: Uint8Array.from({ length: w * h * 3 }, (_, k) => (k * 31 + i * 97) & 255),
      });
      const inputs = [mk(1), mk(2)];
      let maxGap = 0;
      let last = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 5);
      const t0 = performance.now();
      await Promise.all(inputs.map((f) => runner.process(f, { jpeg: ["annotated"] })));
      const busy = performance.now() - t0;
      clearInterval(ticker);
      // Motion + JPEG on two noisy 1080p frames takes a while; the event loop kept ticking meanwhile.
      expect(busy).toBeGreaterThan(100);
      expect(maxGap).toBeLessThan(busy / 2);
    } finally {
      await runner.close();
    }
  });

  it("close() terminates the worker, rejects pending and later frames, and is idempotent", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "motion" }));
    await runner.whenReady();
    expect(runner.running).toBe(true);
    const f: DecodedFrame = {
      index: 1,
      ptsSeconds: 0,
      width: 640,
      height: 360,
      rgb: new Uint8Array(640 * 360 * 3),
    };
    const pending = runner.process(f, { jpeg: ["annotated"] });
    const c1 = runner.close();
    const c2 = runner.close();
    expect((await rejection(pending)).code).toBe("ABORTED");
    await Promise.all([c1, c2]);
    expect(runner.running).toBe(false);
    expect((await rejection(runner.process(f))).code).toBe("ABORTED");
    await runner.close();
  });

  it("rejects a malformed frame with PROCESSING_FAILED and keeps working", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "frame-stats" }));
    try {
      const bad: DecodedFrame = { index: 1, ptsSeconds: 0, width: 10, height: 10, rgb: new Uint8Array(7) };
      const e = await rejection(runner.process(bad));
      expect(e.code).toBe("PROCESSING_FAILED");
      expect(e.message).toContain("expected 300");
      const ok = await runner.process({ ...bad, rgb: new Uint8Array(300).fill(255) });
      expect((ok.data.stats as { brightness: number }).brightness).toBe(255);
    } finally {
      await runner.close();
    }
  });

  it("accepts a frame whose pixels are a view into a larger buffer", async () => {
    const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "frame-stats" }));
    try {
      const big = new Uint8Array(1000).fill(7);
      big.fill(200, 100, 100 + 4 * 4 * 3);
      const r = await runner.process({
        index: 1,
        ptsSeconds: 0,
        width: 4,
        height: 4,
        rgb: big.subarray(100, 148),
      });
      expect((r.data.stats as { brightness: number }).brightness).toBe(200);
    } finally {
      await runner.close();
    }
  });

  it("validates parameters up front", () => {
    const def = resolveWorkflow({ workflow_id: "motion" });
    expect(thrown(() => new WorkflowRunner(def, { parameters: { threshold: 999 } })).code).toBe(
      "BAD_REQUEST",
    );
    expect(thrown(() => new WorkflowRunner({ id: "nope", description: "", outputs: [] })).code).toBe(
      "NOT_FOUND",
    );
  });

  it("uses parameters (runner options override the specification's)", async () => {
    // With a threshold above any change in the video, nothing is detected.
    const def = resolveWorkflow({
      workflow_specification: { builtin: "motion", parameters: { threshold: 10 } },
    });
    const runner = new WorkflowRunner(def, { parameters: { threshold: 255 } });
    try {
      const all = (await frames(fx.square)).slice(0, 4);
      for (const f of all) {
        const r = await runner.process(f);
        expect((r.data.predictions as { predictions: unknown[] }).predictions).toEqual([]);
      }
    } finally {
      await runner.close();
    }
  });
});
