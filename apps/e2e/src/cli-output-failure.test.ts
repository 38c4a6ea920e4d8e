/**
 * The `vidrtc` CLI against vidrtc-server when its JSONL output fails mid-run: standard output
 * whose reader goes away (EPIPE), and `-o` onto `/dev/full` (ENOSPC, reached through a symlink so
 * a regressed CLI could only replace the link). The CLI must print one error line and a hint,
 * exit 3 by itself within a bound (no process.exit), and close its session, so that the server
 * ends it ("client closed ...") long before the video is through, with its temp files removed.
 * Realtime mode paces the server at the file's frame rate, so the run is still going when the
 * output fails.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { motionVideo, type VideoFixture } from "./support/fixtures.js";
import { startTestServer, type TestServer } from "./support/server.js";

const require = createRequire(import.meta.url);
const cliBin = join(dirname(require.resolve("vidrtc/package.json")), "dist", "bin.js");

/** Bound for the CLI to end by itself once its output failed (werift's close is asynchronous). */
const EXIT_BOUND_MS = 45_000;
/** Preloaded into the CLI: `process.exit` does nothing but report that it was called. */
const NO_EXIT = `process.exit = (code) => { process.stderr.write("process.exit was called with " + code + "\\n"); };`;

interface ChildRun {
  code: number | null;
  stderr: string;
  stdoutBytes: number;
  killed: boolean;
}

function runCli(args: string[], closeStdoutAfterFirstChunk: boolean): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", `data:text/javascript,${encodeURIComponent(NO_EXIT)}`, cliBin, ...args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    let stdoutBytes = 0;
    let killed = false;
    child.stdout.on("error", () => {});
    child.stdout.on("data", (d: Buffer) => {
      stdoutBytes += d.length;
      // The reader goes away after the first result, as `vidrtc run ... | head -1` does.
      if (closeStdoutAfterFirstChunk) child.stdout.destroy();
    });
    child.stderr.on("data", (d) => (stderr += String(d)));
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, EXIT_BOUND_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdoutBytes, killed });
    });
  });
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectOneErrorLine(run: ChildRun, pattern: RegExp): void {
  expect(run.killed, `still running after ${EXIT_BOUND_MS} ms; stderr: ${run.stderr}`).toBe(false);
  expect(run.stderr).not.toContain("process.exit was called");
  expect(run.code, run.stderr).toBe(3);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines, run.stderr).toHaveLength(2);
  expect(lines[0]).toMatch(pattern);
  expect(lines[1]).toMatch(/^ {2}hint: \S/);
}

/** The server ended the one session because the client closed it, before processing completed. */
async function expectServerCancelled(server: TestServer, video: VideoFixture): Promise<void> {
  const end = await server.waitFor("session-end", 30_000);
  expect(end.reason).toMatch(/^client closed/);
  await waitUntil("the server to hold no session", () => server.sessions === 0);
  expect(server.events.some((e) => e.type === "processing-complete")).toBe(false);
  const sent = server.events.filter((e) => e.type === "frame-sent").length;
  expect(sent).toBeLessThan(video.frames);
  await waitUntil(
    "the server's temp files to be removed",
    async () => (await server.tempFiles()).length === 0,
  );
}

describe("vidrtc CLI: the JSONL output fails mid-run against vidrtc-server", () => {
  let video: VideoFixture;
  let server: TestServer | null = null;
  beforeAll(async () => {
    video = await motionVideo({ seconds: 10, fps: 15 }); // 150 frames, 10 s in realtime mode
  });
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it("standard output's reader goes away (EPIPE): one line, exit 3, the server ends the session", async () => {
    server = await startTestServer();
    const run = await runCli(
      ["run", video.path, "-u", server.url, "-w", "motion", "--realtime", "--no-progress"],
      true,
    );
    expect(run.stdoutBytes).toBeGreaterThan(0);
    expectOneErrorLine(
      run,
      /^vidrtc: error OUTPUT_WRITE_FAILED: Writing the JSONL results to standard output failed: the program reading the output closed it \(EPIPE\)\. The run was stopped\.$/,
    );
    await expectServerCancelled(server, video);
  });

  it.skipIf(!existsSync("/dev/full"))(
    "-o to /dev/full (ENOSPC): one line, exit 3, the server ends the session, the device written in place",
    async () => {
      server = await startTestServer();
      const dir = await mkdtemp(join(tmpdir(), "vidrtc-e2e-outfail-"));
      try {
        const link = join(dir, "results.jsonl");
        await symlink("/dev/full", link);
        const run = await runCli(
          ["run", video.path, "-u", server.url, "-w", "motion", "--realtime", "--no-progress", "-o", link],
          false,
        );
        expectOneErrorLine(
          run,
          /^vidrtc: error OUTPUT_WRITE_FAILED: Writing the JSONL results to \S+results\.jsonl failed: no space left on the device \(ENOSPC\)\. The run was stopped\.$/,
        );
        await expectServerCancelled(server, video);
        expect((await lstat(link)).isSymbolicLink()).toBe(true);
        expect(await readdir(dir)).toEqual(["results.jsonl"]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
