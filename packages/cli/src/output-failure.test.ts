/**
 * A JSONL output that fails mid-run (disk full, a closed pipe) ends the run with one error line
 * and a hint, exit 3 (OUTPUT_WRITE_FAILED), the session's signal aborted and its results no longer
 * read, an existing file left as it was, no unhandled 'error' event and no hang.
 *
 * The failures are the kernel's: standard output of a child process whose reader closed the
 * pipe (EPIPE), `/dev/full` (every write fails with ENOSPC), and a 32 KiB tmpfs mounted in a
 * private mount namespace (`unshare -rm`, skipped where that is not allowed). Character devices
 * are written in place (never replaced by a rename); a FIFO is refused before connecting.
 *
 * The devices are reached through symlinks in a temp directory: a CLI that wrongly renamed a
 * temp file over its output (as root) then replaces only the symlink, never `/dev/full` itself.
 */
import { execFileSync, spawn } from "node:child_process";
import { lstat, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import type { ResultMessage, StreamOptions } from "@vidrtc/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CliClient, type CliSession, EXIT, main } from "./cli.js";

const DIST_CLI = join(import.meta.dirname, "..", "dist", "cli.js");
/** Bound for a child process to end by itself (the box may be loaded). */
const CHILD_BOUND_MS = 30_000;

/** True when this machine lets us mount a tmpfs in a private mount namespace. */
function canMountTmpfs(): boolean {
  const probe = join(tmpdir(), `vidrtc-tmpfs-probe-${process.pid}`);
  try {
    execFileSync("mkdir", ["-p", probe]);
    execFileSync("unshare", ["-rm", "sh", "-c", `mount -t tmpfs -o size=4k none '${probe}'`], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      execFileSync("rmdir", [probe]);
    } catch {}
  }
}

function isCharDevice(path: string): boolean {
  try {
    return execFileSync("stat", ["-c", "%F", path], { encoding: "utf8" }).trim() === "character special file";
  } catch {
    return false;
  }
}

interface FakeState {
  consumed: number;
  aborted: boolean;
  returned: boolean;
}

/**
 * A fake session with `count` results of about `pad` bytes each, `delayMs` apart. `done` settles
 * only after the last result, so only a stopped run ends early. Records how many results were
 * read, whether the session's signal was aborted and whether the iteration was stopped.
 */
function fakeClient(state: FakeState, count: number, pad: number, delayMs: number): CliClient {
  return {
    webrtc: {
      stream: async (options: StreamOptions): Promise<CliSession> => {
        options.signal?.addEventListener("abort", () => (state.aborted = true), { once: true });
        let settle!: (v: never) => void;
        const done = new Promise<never>((r) => (settle = r));
        return {
          done,
          uploaded: Promise.resolve({ bytes: 4096, chunks: 1, durationMs: 1, bytesPerSecond: 4096 }),
          saveVideo: async (p: string) => p,
          [Symbol.asyncIterator]() {
            let i = 0;
            return {
              next: async () => {
                if (options.signal?.aborted) throw options.signal.reason;
                if (i >= count) {
                  settle({
                    framesProcessed: count,
                    resultsReceived: count,
                    terminationReason: null,
                    droppedResults: 0,
                    upload: null,
                    durationMs: 1,
                  } as never);
                  return { done: true, value: undefined };
                }
                await new Promise((r) => setTimeout(r, delayMs));
                i += 1;
                state.consumed = i;
                const raw = {
                  video_metadata: { frame_id: i },
                  serialized_output_data: { pad: "x".repeat(pad) },
                  errors: [],
                };
                const value = {
                  frameId: i,
                  errors: [],
                  outputs: raw.serialized_output_data,
                  metadata: raw.video_metadata,
                  raw,
                };
                return { done: false, value: value as unknown as ResultMessage };
              },
              return: async () => {
                state.returned = true;
                return { done: true, value: undefined };
              },
            };
          },
        };
      },
    },
  };
}

/** Source of a driver module that runs the built CLI's main() in a child process with a fake client. */
function driverSource(
  args: string[],
  reportPath: string,
  fake: { count: number; pad: number; delayMs: number },
  extra: { before?: string; after?: string } = {},
): string {
  const { count, pad, delayMs } = fake;
  return `import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { main } from ${JSON.stringify(pathToFileURL(DIST_CLI).href)};
${extra.before ?? ""}
const state = { consumed: 0, aborted: false, returned: false };
${fakeClient.toString()}
let err = "";
const stderr = { write: (s) => { err += String(s); return true; } };
await main(["node", "vidrtc", ${args.map((a) => JSON.stringify(a)).join(", ")}], {
  stdout: process.stdout, stderr, env: {}, createClient: () => fakeClient(state, ${count}, ${pad}, ${delayMs}), probeFrames: async () => null,
});
writeFileSync(${JSON.stringify(reportPath)}, JSON.stringify({ code: process.exitCode ?? 0, stderr: err, ...state }));
${extra.after ?? ""}
`;
}

interface Report extends FakeState {
  code: number;
  stderr: string;
}

/** Spawns a command; `onStdout` sees the child's stdout. Resolves when it exits, or kills it after the bound. */
function runChild(
  command: string,
  args: string[],
  onStdout: (child: ReturnType<typeof spawn>, data: Buffer) => void = () => {},
): Promise<{ code: number | null; signal: string | null; stderr: string; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let killed = false;
    child.stdout!.on("data", (d: Buffer) => onStdout(child, d));
    child.stdout!.on("error", () => {});
    child.stderr!.on("data", (d) => (stderr += String(d)));
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, CHILD_BOUND_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, killed });
    });
  });
}

function expectOneErrorLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(2);
  expect(lines[0]).toMatch(pattern);
  expect(lines[1]).toMatch(/^ {2}hint: \S/);
}

let dir: string;
let video: string;

/** A symlink to `device` in a new temp directory (see the file comment: never the device itself). */
async function deviceLink(device: string, name: string): Promise<string> {
  const d = await mkdtemp(join(dir, "dev-"));
  const link = join(d, name);
  await symlink(device, link);
  return link;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vidrtc-cli-outfail-"));
  video = join(dir, "clip.mp4");
  await writeFile(video, Buffer.alloc(4096, 7));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = undefined;
});

const base = ["run", "-u", "http://127.0.0.1:9", "-w", "motion", "--no-progress"];

async function runInProcess(
  args: string[],
  client: CliClient,
  stdout: NodeJS.WritableStream = new PassThrough(),
): Promise<{ code: number; stderr: string }> {
  const stderr = new PassThrough();
  let err = "";
  stderr.on("data", (d) => (err += String(d)));
  process.exitCode = undefined;
  await main(["node", "vidrtc", ...args], {
    stdout,
    stderr,
    env: {},
    createClient: () => client,
    probeFrames: async () => null,
  });
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stderr: err };
}

describe("vidrtc CLI: the JSONL output fails mid-run", () => {
  it("standard output whose reader closed the pipe (EPIPE): one line, exit 3, the session stopped, the process ends by itself", async () => {
    const report = join(dir, "epipe-report.json");
    const driver = join(dir, "epipe-driver.mjs");
    await writeFile(driver, driverSource([...base, video], report, { count: 5000, pad: 64, delayMs: 2 }));
    let seen = 0;
    const run = await runChild(process.execPath, [driver], (child, data) => {
      seen += data.length;
      child.stdout!.destroy(); // the reader goes away after the first output, like `| head -1`
    });
    expect(run.killed, `still running after ${CHILD_BOUND_MS} ms: ${run.stderr}`).toBe(false);
    expect(run.stderr).toBe(""); // no unhandled 'error' event, no stack trace
    expect(run.code).toBe(EXIT.input); // the process exit code (process.exitCode, no process.exit)
    expect(seen).toBeGreaterThan(0);
    const r = JSON.parse(await readFile(report, "utf8")) as Report;
    expect(r.code, r.stderr).toBe(EXIT.input);
    expectOneErrorLine(
      r.stderr,
      /^vidrtc: error OUTPUT_WRITE_FAILED: Writing the JSONL results to standard output failed: the program reading the output closed it \(EPIPE\)\. The run was stopped\.$/,
    );
    expect(r.aborted).toBe(true); // the session's signal: the peer connection closes, the server ends it
    expect(r.consumed).toBeLessThan(5000); // stopped, not read to the end
  });

  it("a standard output stream that errors is reported, and later errors on it do not crash", async () => {
    const state: FakeState = { consumed: 0, aborted: false, returned: false };
    let writes = 0;
    const stdout = new Writable({
      write(_chunk, _encoding, callback) {
        writes += 1;
        if (writes < 3) callback();
        else callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
      },
    });
    const r = await runInProcess([...base, video], fakeClient(state, 1000, 16, 1), stdout);
    expect(r.code, r.stderr).toBe(EXIT.input);
    expectOneErrorLine(
      r.stderr,
      /^vidrtc: error OUTPUT_WRITE_FAILED: .*standard output failed: .*\(EPIPE\)\./,
    );
    expect(state.aborted).toBe(true);
    expect(state.consumed).toBeLessThan(10); // stopped at once, not after 1000 results
    // A pipe's later writes fail too: an 'error' after the run must not be unhandled.
    expect(() =>
      stdout.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" })),
    ).not.toThrow();
  });

  it.skipIf(!isCharDevice("/dev/full"))(
    "-o to /dev/full (ENOSPC on every write): one line, exit 3, the session stopped, the device written in place",
    async () => {
      const state: FakeState = { consumed: 0, aborted: false, returned: false };
      const link = await deviceLink("/dev/full", "full.jsonl");
      const r = await runInProcess([...base, video, "-o", link], fakeClient(state, 2000, 1024, 1));
      expect(r.code, r.stderr).toBe(EXIT.input);
      expectOneErrorLine(
        r.stderr,
        /^vidrtc: error OUTPUT_WRITE_FAILED: Writing the JSONL results to \S+full\.jsonl failed: no space left on the device \(ENOSPC\)\. The run was stopped\.$/,
      );
      expect(state.aborted).toBe(true);
      expect(state.consumed).toBeLessThan(200); // a 16 KiB stream buffer holds ~16 results
      expect((await lstat(link)).isSymbolicLink()).toBe(true); // written in place, never renamed over
      expect(await readdir(dirname(link))).toEqual(["full.jsonl"]); // no temp file
    },
  );

  it.skipIf(!canMountTmpfs())(
    "disk full (a real 32 KiB tmpfs): one line, exit 3, the existing file untouched, no temp file left",
    async () => {
      const mount = await mkdtemp(join(dir, "tmpfs-"));
      const out = join(mount, "results.jsonl");
      const report = join(dir, "enospc-report.json");
      const driver = join(dir, "enospc-driver.mjs");
      const listing = join(dir, "enospc-listing.json");
      await writeFile(
        driver,
        driverSource(
          [...base, "-o", out, video],
          report,
          { count: 500, pad: 1024, delayMs: 1 },
          {
            before: `writeFileSync(${JSON.stringify(out)}, "previous results\\n");`,
            after: `writeFileSync(${JSON.stringify(listing)}, JSON.stringify({ kept: readFileSync(${JSON.stringify(out)}, "utf8"), files: readdirSync(${JSON.stringify(mount)}) }));`,
          },
        ),
      );
      const run = await runChild("unshare", [
        "-rm",
        "sh",
        "-c",
        `mount -t tmpfs -o size=32k none "$1" && exec "$2" "$3"`,
        "sh",
        mount,
        process.execPath,
        driver,
      ]);
      expect(run.killed, `still running after ${CHILD_BOUND_MS} ms: ${run.stderr}`).toBe(false);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(EXIT.input);
      const r = JSON.parse(await readFile(report, "utf8")) as Report;
      expect(r.code, r.stderr).toBe(EXIT.input);
      expectOneErrorLine(
        r.stderr,
        /^vidrtc: error OUTPUT_WRITE_FAILED: Writing the JSONL results to \S+results\.jsonl failed: no space left on the device \(ENOSPC\)\. The run was stopped; an existing file at that path was left as it was\.$/,
      );
      const l = JSON.parse(await readFile(listing, "utf8")) as { kept: string; files: string[] };
      expect(l.kept).toBe("previous results\n");
      expect(l.files).toEqual(["results.jsonl"]);
      expect(r.aborted).toBe(true);
      // 32 KiB holds about 30 results of 1 KiB: the run stopped near there, not after 500.
      expect(r.consumed).toBeLessThan(100);
    },
  );
});

describe("vidrtc CLI: outputs that are not regular files", () => {
  it.skipIf(!isCharDevice("/dev/null"))("-o /dev/null is written in place and stays a device", async () => {
    const state: FakeState = { consumed: 0, aborted: false, returned: false };
    const link = await deviceLink("/dev/null", "null.jsonl");
    const r = await runInProcess([...base, video, "-o", link], fakeClient(state, 5, 16, 1));
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(state.consumed).toBe(5);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readdir(dirname(link))).toEqual(["null.jsonl"]);
  });

  it("-o onto a FIFO is refused before connecting (OUTPUT_UNWRITABLE, exit 3)", async () => {
    const fifo = join(dir, "results.fifo");
    execFileSync("mkfifo", [fifo]);
    let connected = false;
    const client: CliClient = {
      webrtc: {
        stream: async () => {
          connected = true;
          throw new Error("must not connect");
        },
      },
    };
    const r = await runInProcess([...base, video, "-o", fifo], client);
    expect(r.code, r.stderr).toBe(EXIT.input);
    expectOneErrorLine(
      r.stderr,
      /^vidrtc: error OUTPUT_UNWRITABLE: Cannot write the JSONL output \S+: it is not a regular file/,
    );
    expect(connected).toBe(false);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
  });
});
