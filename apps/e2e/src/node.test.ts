/**
 * @vidrtc/node against @vidrtc/server over real werift WebRTC on 127.0.0.1 (inside a network
 * namespace: see setup/global.ts).
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { InferenceClient, loopbackIceOptions, VideoFileSource, VidrtcError } from "@vidrtc/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emptyFile, frameCount, largeVideo, motionVideo, randomFile, tinyVideo } from "./support/fixtures.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const require = createRequire(import.meta.url);
const cliBin = join(dirname(require.resolve("vidrtc/package.json")), "dist", "bin.js");
const serverBin = join(dirname(require.resolve("@vidrtc/server/package.json")), "dist", "cli.js");

function client(url: string): InferenceClient {
  return new InferenceClient({ apiUrl: url, werift: loopbackIceOptions() });
}

describe("@vidrtc/node against @vidrtc/server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ idleTimeoutMs: 5_000 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("uploads a small video byte-exact and yields one gzip-decoded result per frame", async () => {
    const video = await tinyVideo();
    const session = await client(server.url).webrtc.stream({
      source: new VideoFileSource(video.path),
      workflow: "motion",
      workspace: "local",
      dataOutput: ["*"],
    });
    const results = [];
    for await (const r of session) results.push(r);
    const summary = await session.done;
    expect(results).toHaveLength(video.frames);
    expect(results.map((r) => r.frameId)).toEqual(Array.from({ length: video.frames }, (_, i) => i + 1));
    expect(summary.framesProcessed).toBe(video.frames);
    expect(results[5]!.outputs).toHaveProperty("predictions");
    expect(results[5]!.outputs).toHaveProperty("motion_score");
    const upload = await server.waitFor("upload-complete", 5_000, (e) => e.bytes === video.bytes);
    expect(upload.sha256).toBe(video.sha256);
    await eventually(
      async () => server.sessions === 0 && (await server.tempFiles()).length === 0,
      35_000,
      "server cleaned up",
    );
  });

  it("decodes uncompressed results when the server's gzip is off", async () => {
    const plain = await startTestServer({ gzip: false });
    try {
      const video = await tinyVideo();
      const session = await client(plain.url).webrtc.stream({
        source: video.path,
        workflow: "frame-stats",
        dataOutput: ["stats"],
      });
      let n = 0;
      await session.run({
        onData: (r) => {
          n += 1;
          expect((r.outputs.stats as { brightness: number }).brightness).toBeGreaterThanOrEqual(0);
        },
      });
      expect(n).toBe(video.frames);
    } finally {
      await plain.close();
    }
  });

  it("uploads a 200 MiB file byte-exact", async () => {
    const video = await largeVideo(200, { kind: "padded" });
    const started = Date.now();
    let lastProgress = 0;
    const session = await client(server.url).webrtc.stream({
      source: video.path,
      workflow: "frame-stats",
      dataOutput: [],
      onUploadProgress: (p) => {
        expect(p.bytesUploaded).toBeGreaterThanOrEqual(lastProgress);
        lastProgress = p.bytesUploaded;
      },
    });
    const uploaded = await session.uploaded;
    const upload = await server.waitFor("upload-complete", 30_000, (e) => e.bytes === video.bytes);
    expect(upload.sha256).toBe(video.sha256);
    expect(uploaded.bytes).toBe(video.bytes);
    expect(lastProgress).toBe(video.bytes);
    let n = 0;
    for await (const _ of session) n += 1;
    expect(n).toBe(video.frames);
    console.log(
      `[e2e] 200 MiB upload: ${(video.bytes / 1048576 / ((Date.now() - started) / 1000)).toFixed(1)} MiB/s end to end`,
    );
  });

  it("a slow consumer paces the server and loses no frame", async () => {
    // 60 frames: the server is unpaced until the first ACK reaches it (protocol), so a few
    // frames go out before pacing starts; most must then be paced.
    const video = await motionVideo({ seconds: 4, fps: 15 });
    const session = await client(server.url).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
      readAhead: 0,
    });
    const ids: number[] = [];
    await session.run({
      onData: async (r) => {
        ids.push(r.frameId);
        await new Promise((res) => setTimeout(res, 40));
      },
    });
    expect(ids).toEqual(Array.from({ length: video.frames }, (_, i) => i + 1));
    const sent = server.events.filter((e) => e.type === "frame-sent");
    const mine = sent.filter((e) => e.sessionId === sent.at(-1)!.sessionId);
    const paced = mine.filter((e) => e.lastAck > 0);
    expect(paced.length).toBeGreaterThan(video.frames / 2);
    for (const e of paced) expect(e.frameId - e.lastAck).toBeLessThanOrEqual(1);
  });

  it("read-ahead credit: the server paces from frame 1 and stays within `frames` of a slow consumer", async () => {
    const F = 4;
    const video = await motionVideo({ seconds: 2, fps: 15 });
    const session = await client(server.url).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
      readAhead: { frames: F },
    });
    const ids: number[] = [];
    let sessionId: string | undefined;
    let maxAhead = 0;
    await session.run({
      onData: async (r) => {
        ids.push(r.frameId);
        await new Promise((res) => setTimeout(res, 30));
        const sent = server.events.filter((e) => e.type === "frame-sent");
        sessionId ??= sent.findLast((e) => e.frameId === r.frameId)?.sessionId;
        const mine = sent.filter((e) => e.sessionId === sessionId);
        const produced = Math.max(0, ...mine.map((e) => e.frameId));
        // Frames before r are consumed; the server may be at most F beyond them.
        expect(produced - (r.frameId - 1)).toBeLessThanOrEqual(F);
        maxAhead = Math.max(maxAhead, produced - (r.frameId - 1));
      },
    });
    expect(ids).toEqual(Array.from({ length: video.frames }, (_, i) => i + 1));
    const mine = server.events.filter(
      (e): e is Extract<typeof e, { type: "frame-sent" }> =>
        e.type === "frame-sent" && e.sessionId === sessionId,
    );
    expect(mine).toHaveLength(video.frames);
    // The first credit (F - 1: the server's window is 1) reached the server before frame 1.
    expect(mine[0]!.lastAck).toBe(F - 1);
    for (const e of mine) expect(e.frameId).toBeLessThanOrEqual(e.lastAck + 1);
    expect(maxAhead).toBeGreaterThanOrEqual(F - 1);
  });

  it("session.reconfigure changes data_output from the server's next frames on", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 });
    const session = await client(server.url).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
      readAhead: { frames: 2 },
    });
    const outputs: string[][] = [];
    await session.run({
      onData: async (r) => {
        outputs.push(Object.keys(r.outputs).sort());
        if (r.frameId === 5) session.reconfigure({ dataOutput: ["predictions"] });
        await new Promise((res) => setTimeout(res, 10));
      },
    });
    expect(outputs).toHaveLength(video.frames);
    // Up to frame 5 (and at most the read-ahead depth after it) the old outputs...
    for (const keys of outputs.slice(0, 5)) expect(keys).toEqual(["motion_score"]);
    // ...and once the server has the message, only the new one.
    for (const keys of outputs.slice(5 + 2 + 1)) expect(keys).toEqual(["predictions"]);
    expect(() => session.reconfigure({ dataOutput: ["predictions"] })).toThrow(VidrtcError);
  });

  it("aborts mid-upload within 1 s and the server cleans up", async () => {
    const video = await largeVideo(200, { kind: "padded" });
    const controller = new AbortController();
    let abortedAt = 0;
    const session = await client(server.url).webrtc.stream({
      source: video.path,
      workflow: "frame-stats",
      signal: controller.signal,
      onUploadProgress: (p) => {
        if (!abortedAt && p.bytesUploaded > 20 * 1024 * 1024) {
          abortedAt = Date.now();
          controller.abort();
        }
      },
    });
    const err = await session.done.catch((e) => e);
    expect(VidrtcError.hasCode(err, "ABORTED")).toBe(true);
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    await eventually(
      async () => server.sessions === 0 && (await server.tempFiles()).length === 0,
      15_000,
      "server cleaned up after abort",
    );
  });

  it("saves the returned video as a WebM whose frame count matches the processed frames", async () => {
    const video = await motionVideo({ seconds: 3, fps: 10 });
    const out = join(tmpdir(), `vidrtc-e2e-${process.pid}.webm`);
    try {
      const session = await client(server.url).webrtc.stream({
        source: video.path,
        workflow: "motion",
        dataOutput: ["predictions"],
        streamOutput: ["annotated"],
      });
      const saved = session.saveVideo(out);
      const summary = await session.run();
      await saved;
      const frames = await frameCount(out);
      // VP8 in real time over loopback: the encoder may drop a frame at the very start or the
      // recorder may miss the last one in flight when the session ends; allow 2 frames.
      expect(Math.abs(frames - summary.framesProcessed)).toBeLessThanOrEqual(2);
      expect(summary.framesProcessed).toBe(video.frames);
    } finally {
      await rm(out, { force: true });
    }
  });

  it("refuses empty, missing and over-cap files before connecting", async () => {
    const before = server.events.filter((e) => e.type === "session-start").length;
    const empty = await emptyFile();
    const c = client(server.url);
    await expect(c.webrtc.stream({ source: empty.path, workflow: "motion" })).rejects.toMatchObject({
      code: "EMPTY_FILE",
    });
    await expect(
      c.webrtc.stream({ source: "/nonexistent/clip.mp4", workflow: "motion" }),
    ).rejects.toMatchObject({
      code: "FILE_NOT_FOUND",
    });
    const big = await randomFile(2 * 1024 * 1024);
    await expect(
      c.webrtc.stream({
        source: new VideoFileSource(big.path),
        workflow: "motion",
        maxUploadBytes: 1024 * 1024,
      }),
    ).rejects.toMatchObject({ code: "FILE_TOO_LARGE" });
    expect(server.events.filter((e) => e.type === "session-start").length).toBe(before);
  });

  it("a server that never answers is a typed error within its bound", async () => {
    const hang = createHttpServer(() => {
      // never respond
    });
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    const port = (hang.address() as AddressInfo).port;
    try {
      const video = await tinyVideo();
      const t0 = Date.now();
      const err = await client(`http://127.0.0.1:${port}`)
        .webrtc.stream({ source: video.path, workflow: "motion", timeouts: { signalling: 1500 } })
        .catch((e) => e);
      expect(VidrtcError.hasCode(err, "SIGNALING_FAILED")).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      hang.closeAllConnections();
      hang.close();
    }
  });

  it("a server killed mid-upload is a typed error within its bound", async () => {
    const video = await largeVideo(200, { kind: "padded" });
    const port = 20_000 + (process.pid % 20_000);
    const child = spawn(process.execPath, [serverBin, "--port", String(port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      let ready = "";
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`server did not start: ${ready}`)), 15_000);
        child.stderr!.on("data", (d) => {
          ready += String(d);
          if (ready.includes("listening")) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      let killedAt = 0;
      const session = await client(`http://127.0.0.1:${port}`).webrtc.stream({
        source: video.path,
        workflow: "frame-stats",
        timeouts: { uploadStall: 3_000 },
        keepalive: { intervalMs: 500, maxMissed: 4 },
        onUploadProgress: (p) => {
          if (!killedAt && p.bytesUploaded > 10 * 1024 * 1024) {
            killedAt = Date.now();
            child.kill("SIGKILL");
          }
        },
      });
      const err = await session.done.catch((e) => e);
      expect(VidrtcError.isInstance(err)).toBe(true);
      expect(["UPLOAD_STALLED", "LIVENESS_LOST", "CONNECTION_FAILED", "CHANNEL_CLOSED"]).toContain(err.code);
      expect(Date.now() - killedAt).toBeLessThan(10_000);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("the CLI runs end to end: exit 0 and one JSON line per frame", async () => {
    const video = await tinyVideo();
    const jsonl = join(tmpdir(), `vidrtc-cli-${process.pid}.jsonl`);
    try {
      const { code, stderr } = await runCli([
        "run",
        video.path,
        "--api-url",
        server.url,
        "--workflow",
        "motion",
        "--data-output",
        "*",
        "--jsonl",
        jsonl,
      ]);
      expect(code, stderr).toBe(0);
      const lines = (await readFile(jsonl, "utf8")).trim().split("\n");
      expect(lines).toHaveLength(video.frames);
      expect(JSON.parse(lines[0]!).video_metadata.frame_id).toBe(1);
      expect(stderr).toContain(`${video.frames} frames`);
    } finally {
      await rm(jsonl, { force: true });
    }
  });

  it("the CLI fails readably on a bad URL", async () => {
    const video = await tinyVideo();
    const { code, stderr } = await runCli([
      "run",
      video.path,
      "--api-url",
      "http://127.0.0.1:1",
      "--workflow",
      "motion",
    ]);
    expect(code).toBe(5); // server down: a connection failure
    expect(stderr).toMatch(/^vidrtc: error CONNECTION_FAILED: Could not reach http:\/\/127\.0\.0\.1:1/m);
    expect(stderr).toContain("hint:");
  });

  it("the CLI: an unknown workflow exits 4 with a hint and leaves an existing -o file as it was", async () => {
    const video = await tinyVideo();
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-cli-wf-"));
    const jsonl = join(dir, "results.jsonl");
    await writeFile(jsonl, "kept\n");
    try {
      const { code, stderr } = await runCli(["run", video.path, "-u", server.url, "-w", "nope", "-o", jsonl]);
      expect(code, stderr).toBe(4);
      expect(stderr).toMatch(/^vidrtc: error NOT_FOUND: .*\n {2}hint: check --workflow/m);
      expect(await readFile(jsonl, "utf8")).toBe("kept\n");
      expect(await readdir(dir)).toEqual(["results.jsonl"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the CLI runs a directory of inputs with --concurrency 2: one JSONL and one WebM of the real size each, a table", async () => {
    const video = await tinyVideo();
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-cli-multi-"));
    const inputs = join(dir, "in");
    const out = join(dir, "out");
    await mkdir(inputs);
    await mkdir(out);
    await copyFile(video.path, join(inputs, "a.mp4"));
    await copyFile(video.path, join(inputs, "b.mp4"));
    try {
      const { code, stderr } = await runCli([
        "run",
        inputs,
        "-u",
        server.url,
        "-w",
        "motion",
        "-d",
        "motion_score",
        "-s",
        "annotated",
        "--out-dir",
        out,
        "--concurrency",
        "2",
      ]);
      expect(code, stderr).toBe(0);
      expect((await readdir(out)).sort()).toEqual(["a.jsonl", "a.webm", "b.jsonl", "b.webm"]);
      for (const name of ["a", "b"]) {
        const lines = (await readFile(join(out, `${name}.jsonl`), "utf8")).trim().split("\n");
        expect(lines).toHaveLength(video.frames);
        const probe = JSON.parse(
          execFileSync(
            "ffprobe",
            [
              "-v",
              "error",
              "-select_streams",
              "v:0",
              "-show_entries",
              "stream=width,height",
              "-of",
              "json",
              join(out, `${name}.webm`),
            ],
            { encoding: "utf8" },
          ),
        ) as { streams: { width: number; height: number }[] };
        expect(probe.streams[0]).toEqual({ width: 320, height: 240 }); // not werift's 640x360
      }
      expect(stderr).toMatch(/^input +status +frames +errors +time +output$/m);
      expect(stderr).toContain("vidrtc: 2 of 2 inputs ok");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += String(d)));
    child.stderr.on("data", (d) => (stderr += String(d)));
    child.on("exit", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
