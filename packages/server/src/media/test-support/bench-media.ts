/**
 * Media + workflow benchmark: prints throughput numbers, asserts nothing.
 *
 *   cd packages/server && npx tsx src/media/test-support/bench-media.ts [seconds=5] [size=1280x720]
 *
 * Generates a testsrc2 video at 30 fps, then measures: probe time, decode fps (downscaled to 640 wide),
 * per-frame cost of frame-stats, motion and JPEG (own encoder vs jpeg-js) on the main thread, the
 * WorkflowRunner round trip (worker thread, with a JPEG output), and VP8 RTP encoding fps and latency.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import jpegJs from "jpeg-js";
import type { MotionParameters } from "../../workflows/engine.js";
import { encodeJpeg, frameStats, MotionDetector, normalizeParameters } from "../../workflows/engine.js";
import { resolveWorkflow, WorkflowRunner } from "../../workflows/index.js";
import { type DecodedFrame, decodeVideo } from "../decode.js";
import { probeVideo } from "../probe.js";
import { Vp8RtpEncoder } from "../vp8-out.js";

const seconds = Number(process.argv[2] ?? 5);
const size = process.argv[3] ?? "1280x720";

/** CPU time (user + system, this process) spent in `fn`, in ms: robust against a busy machine. */
function cpuMs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function report(name: string, value: number, unit: string): void {
  console.log(`${name.padEnd(44)} ${value.toFixed(2).padStart(10)} ${unit}`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vidrtc-bench-"));
  try {
    const file = join(dir, "bench.mp4");
    await promisify(execFile)(
      "ffmpeg",
      [
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        `testsrc2=size=${size}:rate=30`,
        "-t",
        String(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        file,
      ],
      { timeout: 120_000 },
    );
    console.log(`source: testsrc2 ${size} @ 30 fps, ${seconds} s, H.264`);

    let t = performance.now();
    const info = await probeVideo(file);
    report("probeVideo", performance.now() - t, "ms");

    t = performance.now();
    const frames: DecodedFrame[] = [];
    for await (const f of decodeVideo(file, info)) frames.push(f);
    const decodeMs = performance.now() - t;
    const first = frames[0]!;
    report(
      `decodeVideo -> ${first.width}x${first.height} rgb24`,
      (frames.length * 1000) / decodeMs,
      "frames/s",
    );

    report(
      "frame-stats (direct), CPU",
      cpuMs(() => {
        for (const f of frames) frameStats(f);
      }) / frames.length,
      "ms/frame",
    );

    const motion = new MotionDetector(normalizeParameters("motion", {}) as unknown as MotionParameters);
    report(
      "motion detect (direct), CPU",
      cpuMs(() => {
        for (const f of frames) motion.detect(f);
      }) / frames.length,
      "ms/frame",
    );

    const sample = frames.slice(0, Math.min(30, frames.length));
    let bytes = 0;
    const ownMs = cpuMs(() => {
      for (const f of sample) bytes += encodeJpeg(f.rgb, f.width, f.height).length;
    });
    report("JPEG q75 own encoder, CPU", ownMs / sample.length, "ms/frame");
    report("JPEG q75 own encoder size", bytes / sample.length / 1024, "KiB/frame");
    const few = sample.slice(0, 5);
    const refMs = cpuMs(() => {
      for (const f of few) {
        const rgba = new Uint8Array(f.width * f.height * 4);
        for (let i = 0, p = 0; p < f.rgb.length; i += 4, p += 3) {
          rgba[i] = f.rgb[p]!;
          rgba[i + 1] = f.rgb[p + 1]!;
          rgba[i + 2] = f.rgb[p + 2]!;
          rgba[i + 3] = 255;
        }
        jpegJs.encode({ data: rgba, width: f.width, height: f.height }, 75);
      }
    });
    report("JPEG q75 jpeg-js (reference), CPU", refMs / few.length, "ms/frame");

    const cases: Array<[string, { jpeg?: string[] }]> = [
      ["frame-stats", {}],
      ["motion", {}],
      ["motion", { jpeg: ["annotated"] }],
    ];
    for (const [id, want] of cases) {
      const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: id }));
      await runner.whenReady();
      t = performance.now();
      // Keep two frames in flight, as a pipelined server would.
      const inflight: Promise<unknown>[] = [];
      for (const f of frames) {
        inflight.push(runner.process(f, want));
        if (inflight.length >= 2) await inflight.shift();
      }
      await Promise.all(inflight);
      const label = `WorkflowRunner ${id}${"jpeg" in want ? " + annotated JPEG" : ""}`;
      report(label, (frames.length * 1000) / (performance.now() - t), "frames/s");
      await runner.close();
    }

    const sent: number[] = [];
    let markers = 0;
    const enc = new Vp8RtpEncoder({
      width: first.width,
      height: first.height,
      fps: info.fps,
      onRtp: (p) => {
        if (p[1]! & 0x80) {
          markers++;
          sent.push(performance.now());
        }
      },
    });
    await enc.start();
    const writes: number[] = [];
    t = performance.now();
    for (const f of frames) {
      writes.push(performance.now());
      await enc.write(f.rgb);
    }
    await enc.close();
    const encMs = performance.now() - t;
    report(`Vp8RtpEncoder ${first.width}x${first.height}`, (frames.length * 1000) / encMs, "frames/s");
    const lat = sent.map((s, i) => s - writes[i]!).sort((a, b) => a - b);
    report("Vp8RtpEncoder write -> last packet, median", lat[Math.floor(lat.length / 2)] ?? Number.NaN, "ms");
    report("Vp8RtpEncoder frames out / in", markers / frames.length, "ratio");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
