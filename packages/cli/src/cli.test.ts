import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { ResultMessage, SessionSummary, StreamOptions } from "@vidrtc/node";
import { VidrtcError } from "@vidrtc/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  buildProgram,
  type CliClient,
  type CliIo,
  type CliSession,
  EXIT,
  exitCodeFor,
  main,
  probeFrameCount,
  VERSION,
} from "./cli.js";

let dir: string;
let video: string;
let realVideo: string | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vidrtc-cli-test-"));
  video = join(dir, "clip.mp4");
  await writeFile(video, Buffer.alloc(4096, 7));
  try {
    realVideo = join(dir, "real.mp4");
    execFileSync("ffmpeg", [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=64x48:rate=10",
      "-frames:v",
      "12",
      "-pix_fmt",
      "yuv420p",
      realVideo,
    ]);
  } catch {
    realVideo = null;
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = undefined;
});

function result(frameId: number, errors: string[] = []): ResultMessage {
  return {
    frameId,
    errors,
    raw: { video_metadata: { frame_id: frameId }, serialized_output_data: { n: frameId }, errors },
  } as unknown as ResultMessage;
}

interface FakeBehaviour {
  frames?: number;
  /** Throw this after `frames` results instead of finishing. */
  failWith?: unknown;
  /** Throw this from stream() (signalling failed). */
  refuseWith?: unknown;
  frameDelayMs?: number;
  /** Pause after the last result before `done` settles (processing still running). */
  tailMs?: number;
}

class FakeClient implements CliClient {
  calls: StreamOptions[] = [];
  active = 0;
  maxActive = 0;
  /** Writes to stderr made while a session was still running. */
  constructor(private readonly behaviour: (input: string) => FakeBehaviour = () => ({})) {}
  webrtc = {
    stream: async (options: StreamOptions): Promise<CliSession> => {
      this.calls.push(options);
      const input = (options.source as { path: string }).path;
      const b = this.behaviour(input);
      if (b.refuseWith) throw b.refuseWith;
      this.active += 1;
      this.maxActive = Math.max(this.maxActive, this.active);
      const n = b.frames ?? 3;
      let settle!: (s: SessionSummary) => void;
      let fail!: (e: unknown) => void;
      const done = new Promise<SessionSummary>((res, rej) => {
        settle = res;
        fail = rej;
      });
      done.catch(() => {});
      const self = this;
      options.onUploadProgress?.({
        bytesUploaded: 4096,
        bytesDelivered: 4096,
        totalBytes: 4096,
        chunksUploaded: 1,
        totalChunks: 1,
        bytesPerSecond: 4096,
        etaSeconds: 0,
        elapsedMs: 1,
      });
      return {
        done,
        uploaded: Promise.resolve({ bytes: 4096, chunks: 1, durationMs: 1, bytesPerSecond: 4096 }),
        saveVideo: async (path) => {
          await done;
          await writeFile(path, "webm");
          return path;
        },
        async *[Symbol.asyncIterator]() {
          try {
            for (let i = 1; i <= n; i++) {
              if (b.frameDelayMs) await new Promise((r) => setTimeout(r, b.frameDelayMs));
              yield result(i, i === 2 ? ["boom"] : []);
            }
            if (b.tailMs) await new Promise((r) => setTimeout(r, b.tailMs));
            if (b.failWith) {
              fail(b.failWith);
              throw b.failWith;
            }
            settle({
              framesProcessed: n,
              resultsReceived: n,
              terminationReason: null,
              droppedResults: 0,
              upload: { bytes: 4096, chunks: 1, durationMs: 1, bytesPerSecond: 4096 },
              durationMs: 1,
            });
          } finally {
            self.active -= 1;
          }
        },
      };
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  client: FakeClient;
  /** stderr written while the fake session was still running */
  chunks: string[];
}

async function run(
  args: string[],
  options: {
    client?: FakeClient;
    tty?: boolean;
    env?: NodeJS.ProcessEnv;
    probeFrames?: (path: string) => Promise<number | null>;
  } = {},
): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  if (options.tty) {
    stderr.isTTY = true;
    stderr.columns = 120;
  }
  let out = "";
  let err = "";
  const chunks: string[] = [];
  stdout.on("data", (d) => (out += String(d)));
  stderr.on("data", (d) => {
    err += String(d);
    chunks.push(String(d));
  });
  const client = options.client ?? new FakeClient();
  const io: CliIo = {
    stdout,
    stderr,
    env: options.env ?? {},
    createClient: () => client,
    probeFrames: options.probeFrames ?? (async () => null),
  };
  process.exitCode = undefined;
  await main(["node", "vidrtc", ...args], io);
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stdout: out, stderr: err, client, chunks };
}

const base = ["run", "--api-url", "http://127.0.0.1:9", "--workflow", "motion"];

function expectOneLineError(r: Run, code: string, exit: number): void {
  expect(r.code, r.stderr).toBe(exit);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines[0]).toMatch(new RegExp(`^vidrtc: error ${code}: \\S`));
  expect(lines.length).toBeLessThanOrEqual(2);
  if (lines[1] !== undefined) expect(lines[1]).toMatch(/^ {2}hint: \S/);
  expect(r.client.calls).toHaveLength(0); // refused before connecting
}

describe("exitCodeFor", () => {
  it("maps error codes to the documented exit codes", () => {
    expect(exitCodeFor(new VidrtcError("FILE_NOT_FOUND", "x"))).toBe(EXIT.input);
    expect(exitCodeFor(new VidrtcError("NOT_FOUND", "x"))).toBe(EXIT.server);
    expect(exitCodeFor(new VidrtcError("MALFORMED_MESSAGE", "x"))).toBe(EXIT.server);
    expect(exitCodeFor(new VidrtcError("RESULT_DECODE_FAILED", "x"))).toBe(EXIT.server);
    expect(exitCodeFor(new VidrtcError("CONNECTION_FAILED", "x"))).toBe(EXIT.connection);
    expect(exitCodeFor(new VidrtcError("ABORTED", "x"))).toBe(EXIT.aborted);
    expect(exitCodeFor(new Error("x"))).toBe(EXIT.failure);
  });
});

describe("vidrtc CLI: checks before connecting", () => {
  it("--version prints the package version", async () => {
    const r = await run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("a missing video: exit 3, FILE_NOT_FOUND, one line and a hint", async () => {
    expectOneLineError(await run([...base, join(dir, "nope.mp4")]), "FILE_NOT_FOUND", 3);
  });

  it("an empty video: exit 3, EMPTY_FILE", async () => {
    const empty = join(dir, "empty.mp4");
    await writeFile(empty, "");
    expectOneLineError(await run([...base, empty]), "EMPTY_FILE", 3);
  });

  it("an unreadable video (a FIFO; permission denied when not root): exit 3, FILE_UNREADABLE", async () => {
    const fifo = join(dir, "fifo.mp4");
    execFileSync("mkfifo", [fifo]);
    expectOneLineError(await run([...base, fifo]), "FILE_UNREADABLE", 3);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, "locked.mp4");
      await writeFile(locked, "x");
      await chmod(locked, 0o000);
      expectOneLineError(await run([...base, locked]), "FILE_UNREADABLE", 3);
    }
  });

  it("a directory without videos: exit 3, NO_INPUTS", async () => {
    const d = join(dir, "nothing");
    await mkdir(d, { recursive: true });
    await writeFile(join(d, "notes.txt"), "x");
    expectOneLineError(await run([...base, d]), "NO_INPUTS", 3);
  });

  it("an unwritable output (missing directory, a directory, a file as directory): exit 3, OUTPUT_UNWRITABLE", async () => {
    for (const out of [join(dir, "missing", "out.jsonl"), dir, join(video, "out.jsonl")]) {
      expectOneLineError(await run([...base, video, "-o", out]), "OUTPUT_UNWRITABLE", 3);
    }
    expectOneLineError(
      await run([...base, video, "-s", "annotated", "--save-video", join(dir, "missing", "a.webm")]),
      "OUTPUT_UNWRITABLE",
      3,
    );
  });

  it("a bad --api-url: exit 2, INVALID_URL", async () => {
    for (const url of ["not a url", "ftp://127.0.0.1:9001", "127.0.0.1:9001"]) {
      const r = await run(["run", video, "--api-url", url, "--workflow", "motion"]);
      expectOneLineError(r, "INVALID_URL", 2);
    }
  });

  it("conflicting flags: exit 2, USAGE", async () => {
    const b = join(dir, "b.mp4");
    await writeFile(b, "b");
    const cases = [
      [...base, video, "--save-video", join(dir, "x.webm")], // no --stream-output
      [...base, video, "-s", "annotated", "--save-video", join(dir, "x.mp4")], // not .webm
      [...base, video, b, "-o", join(dir, "r.jsonl")], // one file, two inputs
      [...base, video, b, "-s", "annotated", "--save-video", join(dir, "x.webm")],
      [...base, video, "-o", join(dir, "r.jsonl"), "--out-dir", dir],
      [...base, video, "-o", video], // output over the input
    ];
    for (const args of cases) expectOneLineError(await run(args), "USAGE", 2);
  });

  it("a workflow spec file that is missing or not JSON: exit 3", async () => {
    expectOneLineError(
      await run([...base.slice(0, 3), "-w", join(dir, "none.json"), video]),
      "FILE_NOT_FOUND",
      3,
    );
    const bad = join(dir, "bad.json");
    await writeFile(bad, "{ not json");
    expectOneLineError(await run([...base.slice(0, 3), "-w", bad, video]), "INVALID_OPTIONS", 3);
  });

  it('refuses "*" mixed with output names before connecting (INVALID_OPTIONS, exit 3)', async () => {
    // The real client runs the protocol's option checks before creating a peer.
    const { InferenceClient } = await import("@vidrtc/node");
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = "";
    stderr.on("data", (d) => (err += String(d)));
    let fetched = 0;
    await main(["node", "vidrtc", ...base, video, "-d", "*,predictions"], {
      stdout,
      stderr,
      env: {},
      createClient: (o) =>
        new InferenceClient({
          ...o,
          fetch: async () => {
            fetched += 1;
            throw new Error("must not be called");
          },
        }) as unknown as CliClient,
    });
    expect(process.exitCode).toBe(3);
    expect(err).toMatch(/^vidrtc: error INVALID_OPTIONS: .*\["\*"\] alone/);
    expect(fetched).toBe(0);
  });
});

describe("vidrtc CLI: runs (fake client)", () => {
  it("writes JSONL atomically: a failed run leaves an existing file as it was, and no temp file", async () => {
    const d = await mkdtemp(join(dir, "atomic-"));
    const out = join(d, "results.jsonl");
    await writeFile(out, "previous results\n");
    const client = new FakeClient(() => ({
      frames: 2,
      failWith: new VidrtcError("MALFORMED_MESSAGE", "Result message is not JSON."),
    }));
    const r = await run([...base, video, "-o", out], { client });
    expect(r.code).toBe(4); // the server failed, not the connection
    expect(r.stderr).toMatch(/^vidrtc: error MALFORMED_MESSAGE: /m);
    expect(await readFile(out, "utf8")).toBe("previous results\n");
    expect(await readdir(d)).toEqual(["results.jsonl"]);
    // A successful run replaces it.
    const ok = await run([...base, video, "-o", out]);
    expect(ok.code, ok.stderr).toBe(0);
    const lines = (await readFile(out, "utf8")).trim().split("\n");
    expect(lines.map((l) => JSON.parse(l).frame_id)).toEqual([1, 2, 3]);
    expect(await readdir(d)).toEqual(["results.jsonl"]);
  });

  it("a server error that is multi-line, 1 MB long or HTML prints as one bounded line", async () => {
    const messages = [
      "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'x'",
      `${"x".repeat(1_000_000)}`,
      "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502</h1></body></html>",
    ];
    for (const message of messages) {
      const client = new FakeClient(() => ({ refuseWith: new VidrtcError("SERVER_ERROR", message) }));
      const r = await run([...base, video], { client });
      expect(r.code).toBe(4);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^vidrtc: error SERVER_ERROR: /);
      expect(lines[0]!.length).toBeLessThanOrEqual(1100);
      expect(lines[0]).not.toContain("<");
      expect(lines[1]).toMatch(/^ {2}hint: /);
    }
  });

  it("an unknown workflow (NOT_FOUND from the server) exits 4 with a hint", async () => {
    const client = new FakeClient(() => ({
      refuseWith: new VidrtcError("NOT_FOUND", "Signalling failed with HTTP 404: Workflow nope not found."),
    }));
    const r = await run([...base, video], { client });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^vidrtc: error NOT_FOUND: .*\n {2}hint: check --workflow/);
  });

  it("the summary shows the API URL without its query (?api_key=)", async () => {
    const r = await run([
      "run",
      video,
      "--api-url",
      "http://user:pw@127.0.0.1:9/?api_key=SECRET123",
      "--workflow",
      "motion",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("-> http://127.0.0.1:9/ (query and credentials hidden) workflow motion");
    expect(r.stderr).not.toContain("SECRET123");
    expect(r.stderr).not.toContain("pw@");
  });

  it("draws bars only on a terminal without NO_COLOR", async () => {
    const tty = await run([...base, video, "-o", join(dir, "t.jsonl")], {
      tty: true,
      client: new FakeClient(() => ({ frameDelayMs: 20, tailMs: 250 })),
    });
    expect(tty.code, tty.stderr).toBe(0);
    expect(tty.stderr).toContain("\u001b[");
    for (const opts of [
      { tty: true, env: { NO_COLOR: "1" } },
      { tty: false },
      { tty: true, env: { TERM: "dumb" } },
    ]) {
      const r = await run([...base, video, "-o", join(dir, "t.jsonl")], {
        ...opts,
        client: new FakeClient(() => ({ frameDelayMs: 20, tailMs: 250 })),
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain("\u001b[");
      expect(r.stderr).toContain("upload done");
    }
  });

  it("the frames bar shows the real total and never 100 % while processing runs", async () => {
    const client = new FakeClient(() => ({ frames: 10, frameDelayMs: 15, tailMs: 400 }));
    let doneAt = -1;
    const r = await run([...base, video, "-o", join(dir, "f.jsonl")], {
      tty: true,
      client,
      probeFrames: async () => 10,
    });
    expect(r.code, r.stderr).toBe(0);
    // Everything drawn before the summary: the last redraw while the session still ran had 10/10.
    const summaryAt = r.chunks.findIndex((c) => c.includes("vidrtc: clip.mp4"));
    doneAt = summaryAt;
    const whileRunning = r.chunks.slice(0, doneAt).join("");
    expect(whileRunning).toContain("10/10 frames");
    const framesLines = whileRunning
      .split(new RegExp(`\r|\n|${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`))
      .filter((l) => l.includes("frames"));
    const lastRunning = framesLines.filter((l) => l.includes("10/10 frames"));
    expect(lastRunning.length).toBeGreaterThan(0);
    for (const l of lastRunning) expect(l).not.toMatch(/100%/);
    expect(whileRunning).toMatch(/frames \[[^\]]*\] 100% \| 10 frames/); // once finished
  });

  it("without a known total, frames are a counter with fps", async () => {
    const r = await run([...base, video, "-o", join(dir, "c.jsonl")], {
      tty: true,
      client: new FakeClient(() => ({ frames: 5, frameDelayMs: 20, tailMs: 250 })),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/frames 5 frames \d+\.\d fps/);
    expect(r.stderr).not.toMatch(/frames \[/);
  });

  it("several inputs (files and a directory): --concurrency bound, one JSONL each, a table, exit code of the first failure", async () => {
    const inDir = await mkdtemp(join(dir, "inputs-"));
    for (const n of ["a", "b", "c"]) await writeFile(join(inDir, `${n}.mp4`), n);
    await writeFile(join(inDir, "readme.txt"), "not a video");
    const extra = join(dir, "d.mov");
    await writeFile(extra, "d");
    const outDir = await mkdtemp(join(dir, "out-"));
    await writeFile(join(outDir, "b.jsonl"), "old b\n");
    const client = new FakeClient((input) =>
      input.endsWith("b.mp4")
        ? { frames: 1, frameDelayMs: 30, failWith: new VidrtcError("CONNECTION_FAILED", "ICE failed.") }
        : { frames: 2, frameDelayMs: 40 },
    );
    const r = await run([...base, inDir, extra, "--out-dir", outDir, "--concurrency", "2"], { client });
    expect(r.code).toBe(5);
    expect(client.calls.map((c) => (c.source as { path: string }).path)).toEqual([
      join(inDir, "a.mp4"),
      join(inDir, "b.mp4"),
      join(inDir, "c.mp4"),
      extra,
    ]);
    expect(client.maxActive).toBe(2);
    expect((await readdir(outDir)).sort()).toEqual(["a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl"]);
    expect(await readFile(join(outDir, "b.jsonl"), "utf8")).toBe("old b\n");
    expect((await readFile(join(outDir, "d.jsonl"), "utf8")).trim().split("\n")).toHaveLength(2);
    expect(r.stderr).toMatch(/^vidrtc: .*b\.mp4: error CONNECTION_FAILED: ICE failed\./m);
    expect(r.stderr).toMatch(/^input +status +frames +errors +time +output$/m);
    expect(r.stderr).toMatch(/a\.mp4 +ok +2 +1 /);
    expect(r.stderr).toMatch(/b\.mp4 +failed CONNECTION_FAILED/);
    expect(r.stderr).toContain("vidrtc: 3 of 4 inputs ok, 1 failed");
    // All ok: exit 0.
    const ok = await run([...base, inDir, "--out-dir", outDir, "-q"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe("");
  });
});

describe("probeFrameCount", () => {
  it("reads the frame count of a real file (ffprobe), null for a non-video", async () => {
    expect(realVideo, "ffmpeg is needed to make the test clip").not.toBeNull();
    expect(await probeFrameCount(realVideo!)).toBe(12);
    expect(await probeFrameCount(video)).toBeNull();
  });
});

describe("--transport", () => {
  it("maps TRANSPORT_UNAVAILABLE to the usage exit code", () => {
    expect(exitCodeFor(new VidrtcError("TRANSPORT_UNAVAILABLE", "x"))).toBe(EXIT.usage);
  });

  it("accepts werift and node-datachannel and refuses other stacks before connecting", async () => {
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) > 0 } };
    const program = buildProgram(io as unknown as CliIo);
    await expect(
      program.parseAsync(["run", "clip.mp4", "-w", "motion", "--transport", "libwebrtc"], { from: "user" }),
    ).rejects.toMatchObject({ code: "commander.invalidArgument" });
    expect(err.join("")).toMatch(/werift, node-datachannel/);
    const run = program.commands.find((c) => c.name() === "run")!;
    expect(run.options.find((o) => o.long === "--transport")?.defaultValue).toBe("werift");
  });
});
