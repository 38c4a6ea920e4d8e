import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { VidrtcError } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DecodedFrame, decodedFrameSize, decodeVideo } from "./decode.js";
import { checkFfmpeg, probeVideo, type VideoInfo } from "./probe.js";
import {
  brightBox,
  makeVideoFixtures,
  processAlive,
  SQUARE,
  squareX,
  type VideoFixtures,
  waitGone,
} from "./test-support/videos.js";

let fx: VideoFixtures;

beforeAll(async () => {
  fx = await makeVideoFixtures({ withLong: true });
}, 120_000);

afterAll(async () => {
  await fx?.cleanup();
});

async function collect(gen: AsyncGenerator<DecodedFrame>): Promise<DecodedFrame[]> {
  const frames: DecodedFrame[] = [];
  for await (const f of gen) frames.push(f);
  return frames;
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

/** Bytes a process has written (all fds), from /proc. */
function bytesWritten(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  return Number(/wchar:\s*(\d+)/.exec(io)?.[1] ?? Number.NaN);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("checkFfmpeg", () => {
  it("reports the installed version", async () => {
    const r = await checkFfmpeg();
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.ffmpegVersion).toMatch(/\d/);
      expect(r.vp8Encoder).toBe(true); // Debian's ffmpeg has libvpx; the VP8 tests need it too
    }
  });

  it("says how to install ffmpeg when it is missing", async () => {
    const r = await checkFfmpeg({ ffmpegPath: "/nonexistent/ffmpeg" });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain("apt-get install -y ffmpeg");
    const r2 = await checkFfmpeg({ ffprobePath: "/nonexistent/ffprobe" });
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.message).toContain("ffprobe");
  });
});

describe("probeVideo", () => {
  it("reads fps, size, frame count, duration and codec", async () => {
    const info = await probeVideo(fx.testsrc);
    expect(info).toMatchObject({
      fps: 15,
      width: 320,
      height: 240,
      rotation: 0,
      frameCount: 30,
      codec: "h264",
    });
    expect(info.durationSeconds).toBeCloseTo(2, 1);
  });

  it("counts frames when the container has no count (WebM)", async () => {
    const info = await probeVideo(fx.webm);
    expect(info).toMatchObject({ fps: 15, width: 320, height: 240, frameCount: 15, codec: "vp8" });
  });

  it("reports display rotation and the displayed size", async () => {
    const info = await probeVideo(fx.rotated);
    expect(info.rotation).toBe(90);
    expect(info.width).toBe(240);
    expect(info.height).toBe(320);
  });

  it("rejects random bytes as not a decodable video", async () => {
    const e = await rejection(probeVideo(fx.garbage));
    expect(e.code).toBe("PROCESSING_FAILED");
    expect(e.message).toMatch(/^The uploaded file is not a decodable video: \S/);
    expect(e.message).not.toContain(fx.dir);
  });

  it("never lets an upload make ffmpeg open a network URL (playlist disguised as a video)", async () => {
    const playlist = join(fx.dir, "playlist.mp4");
    await writeFile(
      playlist,
      "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n",
    );
    const e = await rejection(probeVideo(playlist));
    expect(e.code).toBe("PROCESSING_FAILED");
    expect(e.message).toContain("whitelist");
    const fake: VideoInfo = {
      fps: 15,
      width: 32,
      height: 32,
      rotation: 0,
      frameCount: 1,
      durationSeconds: 1,
      codec: "h264",
    };
    const d = await rejection(collect(decodeVideo(playlist, fake)));
    expect(d.message).toContain("whitelist");
  });

  it("never lets an upload make ffmpeg read another local file (HLS playlist, concat list)", async () => {
    // The segment is a real, decodable video on this machine: before the demuxer allowlist ffprobe and
    // ffmpeg followed the playlist and decoded it.
    const segment = join(fx.dir, "secret.ts");
    const { execFileSync } = await import("node:child_process");
    execFileSync("ffmpeg", ["-v", "error", "-y", "-i", fx.testsrc, "-c", "copy", "-f", "mpegts", segment]);
    const uploads = {
      hls: `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${segment}\n#EXT-X-ENDLIST\n`,
      concat: `ffconcat version 1.0\nfile '${segment}'\n`,
    };
    for (const [name, text] of Object.entries(uploads)) {
      const upload = join(fx.dir, `upload-${name}.mp4`);
      await writeFile(upload, text);
      const e = await rejection(probeVideo(upload));
      expect(e.code).toBe("PROCESSING_FAILED");
      expect(e.message).toMatch(/whitelist|not allowed/);
      // Even when handed a forged info naming the list's demuxer, ffmpeg refuses to open it.
      for (const container of [undefined, name === "hls" ? "hls" : "concat"]) {
        const fake: VideoInfo = {
          fps: 15,
          width: 320,
          height: 240,
          rotation: 0,
          frameCount: 30,
          durationSeconds: 2,
          codec: "h264",
          ...(container ? { container } : {}),
        };
        const d = await rejection(collect(decodeVideo(upload, fake)));
        expect(d.code).toBe("PROCESSING_FAILED");
      }
    }
    // The probed demuxer of real uploads is reported (and forced when decoding).
    expect((await probeVideo(fx.testsrc)).container).toBe("mov");
    expect((await probeVideo(fx.webm)).container).toBe("matroska");
  });

  it("rejects a missing file and a missing ffprobe with PROCESSING_FAILED", async () => {
    expect((await rejection(probeVideo(`${fx.dir}/nope.mp4`))).code).toBe("PROCESSING_FAILED");
    const e = await rejection(probeVideo(fx.testsrc, { ffprobePath: "/nonexistent/ffprobe" }));
    expect(e.code).toBe("PROCESSING_FAILED");
    expect(e.message).toContain("apt-get install -y ffmpeg");
  });

  it("honours an abort signal", async () => {
    const e = await rejection(probeVideo(fx.testsrc, { signal: AbortSignal.abort() }));
    expect(e.code).toBe("ABORTED");
  });
});

describe("decodedFrameSize", () => {
  it("keeps small sizes (made even) and downscales wide ones keeping the aspect", () => {
    expect(decodedFrameSize({ width: 320, height: 240 })).toEqual({ width: 320, height: 240 });
    expect(decodedFrameSize({ width: 321, height: 241 })).toEqual({ width: 320, height: 240 });
    expect(decodedFrameSize({ width: 1920, height: 1080 })).toEqual({ width: 640, height: 360 });
    expect(decodedFrameSize({ width: 1920, height: 1080 }, 641)).toEqual({ width: 640, height: 360 });
    const odd = decodedFrameSize({ width: 1000, height: 333 }, 500);
    expect((odd.width % 2) + (odd.height % 2)).toBe(0);
    expect(odd.width).toBeLessThanOrEqual(500);
  });
});

describe("decodeVideo", () => {
  it("emits every frame with 1-based indices, timestamps and rgb24 buffers", async () => {
    const info = await probeVideo(fx.testsrc);
    const frames = await collect(decodeVideo(fx.testsrc, info));
    expect(frames.length).toBe(30);
    frames.forEach((f, i) => {
      expect(f.index).toBe(i + 1);
      expect(f.ptsSeconds).toBeCloseTo(i / 15, 3);
      expect(f.width).toBe(320);
      expect(f.height).toBe(240);
      expect(f.rgb.length).toBe(320 * 240 * 3);
    });
    // Fresh buffers: frames differ (testsrc2 animates) and don't alias.
    expect(frames[0]!.rgb.buffer).not.toBe(frames[1]!.rgb.buffer);
    expect(Buffer.compare(frames[0]!.rgb, frames[29]!.rgb)).not.toBe(0);
  });

  it("decodes frames where the content is (moving square)", async () => {
    const info = await probeVideo(fx.square);
    const frames = await collect(decodeVideo(fx.square, info));
    expect(frames.length).toBe(30);
    for (const f of [frames[0]!, frames[10]!, frames[29]!]) {
      const box = brightBox(f.rgb, f.width, f.height)!;
      expect(Math.abs(box.x0 - squareX(f.index))).toBeLessThanOrEqual(1);
      expect(Math.abs(box.y0 - SQUARE.y)).toBeLessThanOrEqual(1);
      expect(Math.abs(box.x1 - box.x0 + 1 - SQUARE.size)).toBeLessThanOrEqual(2);
    }
  });

  it("reports ffmpeg's timestamps for variable-frame-rate video", async () => {
    const info = await probeVideo(fx.vfr);
    const frames = await collect(decodeVideo(fx.vfr, info));
    expect(frames.map((f) => f.index)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    const expected = frames.map((_, i) => (i < 10 ? i / 15 : (i + 15) / 15));
    frames.forEach((f, i) => {
      expect(f.ptsSeconds).toBeCloseTo(expected[i]!, 2);
    });
  });

  it("counts the same frames in WebM", async () => {
    const info = await probeVideo(fx.webm);
    expect((await collect(decodeVideo(fx.webm, info))).length).toBe(info.frameCount);
  });

  it("applies the display rotation (autorotate)", async () => {
    const info = await probeVideo(fx.rotated);
    const frames = await collect(decodeVideo(fx.rotated, info));
    expect(frames.length).toBe(30);
    const f = frames[10]!;
    expect([f.width, f.height]).toEqual([240, 320]);
    // 90 degrees counter-clockwise: (x, y) -> (y, W - 1 - x) with W = 320.
    const x = squareX(f.index);
    const box = brightBox(f.rgb, f.width, f.height)!;
    expect(Math.abs(box.x0 - SQUARE.y)).toBeLessThanOrEqual(1);
    expect(Math.abs(box.y0 - (SQUARE.width - 1 - (x + SQUARE.size - 1)))).toBeLessThanOrEqual(1);
    expect(Math.abs(box.y1 - (SQUARE.width - 1 - x))).toBeLessThanOrEqual(1);
  });

  it("downscales to maxWidth keeping the aspect ratio", async () => {
    const info = await probeVideo(fx.testsrc);
    const frames = await collect(decodeVideo(fx.testsrc, info, { maxWidth: 160 }));
    expect(frames.length).toBe(30);
    expect([frames[0]!.width, frames[0]!.height, frames[0]!.rgb.length]).toEqual([160, 120, 160 * 120 * 3]);
  });

  it("pauses ffmpeg while the consumer is slow, and kills it on return()", async () => {
    const info: VideoInfo = await probeVideo(fx.long);
    expect(info.frameCount).toBe(300);
    const frameBytes = 320 * 240 * 3;
    let pid = 0;
    const gen = decodeVideo(fx.long, info, {
      onSpawn: (c) => {
        pid = c.pid ?? 0;
      },
    });
    expect((await gen.next()).value?.index).toBe(1);
    expect((await gen.next()).value?.index).toBe(2);
    expect(pid).toBeGreaterThan(0);
    await sleep(800);
    const early = bytesWritten(pid);
    await sleep(800);
    const later = bytesWritten(pid);
    // The whole video would be 300 frames (69 MB); ffmpeg is blocked on a full pipe a few frames ahead.
    expect(later).toBeLessThan(12 * frameBytes);
    expect(later - early).toBeLessThan(frameBytes);
    expect(processAlive(pid)).toBe(true);
    // Consuming resumes it.
    expect((await gen.next()).value?.index).toBe(3);
    await gen.return(undefined);
    expect(await waitGone(pid)).toBe(true);
  });

  it("kills ffmpeg on abort and rejects with ABORTED", async () => {
    const info = await probeVideo(fx.long);
    const ac = new AbortController();
    let pid = 0;
    const gen = decodeVideo(fx.long, info, {
      signal: ac.signal,
      onSpawn: (c) => {
        pid = c.pid ?? 0;
      },
    });
    await gen.next();
    ac.abort();
    expect(await waitGone(pid)).toBe(true);
    const e = await rejection(gen.next());
    expect(e.code).toBe("ABORTED");
    expect((await gen.next()).done).toBe(true);
  });

  it("stops at break in for-await", async () => {
    const info = await probeVideo(fx.long);
    let pid = 0;
    let n = 0;
    for await (const _ of decodeVideo(fx.long, info, {
      onSpawn: (c) => {
        pid = c.pid ?? 0;
      },
    })) {
      if (++n === 5) break;
    }
    expect(n).toBe(5);
    expect(processAlive(pid)).toBe(false);
  });

  it("rejects an already-aborted signal before spawning", async () => {
    const info = await probeVideo(fx.testsrc);
    let spawned = false;
    const gen = decodeVideo(fx.testsrc, info, {
      signal: AbortSignal.abort(),
      onSpawn: () => (spawned = true),
    });
    expect((await rejection(gen.next())).code).toBe("ABORTED");
    expect(spawned).toBe(false);
  });

  it("surfaces ffmpeg failures as PROCESSING_FAILED with the exit code and stderr", async () => {
    const fake: VideoInfo = {
      fps: 15,
      width: 320,
      height: 240,
      rotation: 0,
      frameCount: 10,
      durationSeconds: 1,
      codec: "h264",
    };
    const e = await rejection(collect(decodeVideo(fx.garbage, fake)));
    expect(e.code).toBe("PROCESSING_FAILED");
    expect(e.message).toMatch(/exited with code [1-9]/);
    expect(e.message).toMatch(/Invalid data|moov/i);
    expect(e.message).not.toContain(fx.dir);
    const missing = await rejection(
      collect(decodeVideo(fx.testsrc, fake, { ffmpegPath: "/nonexistent/ffmpeg" })),
    );
    expect(missing.code).toBe("PROCESSING_FAILED");
    expect(missing.message).toContain("apt-get install -y ffmpeg");
  });
});
