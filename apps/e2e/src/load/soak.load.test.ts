/**
 * Soak: 200 short sessions back to back against one in-process @vidrtc/server over real werift
 * WebRTC, then file descriptors, RSS, temp files and child processes must be back to their
 * baseline (taken after one warm-up session). Run with `pnpm test:load`.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawClient } from "../support/raw-client.js";
import { eventually, startTestServer, type TestServer } from "../support/server.js";

const SESSIONS = Number(process.env.VIDRTC_SOAK_SESSIONS ?? 200);
const MiB = 1024 * 1024;

const openFds = async (): Promise<number> => (await readdir("/proc/self/fd")).length;

/** Live child processes of this process (ppid from /proc/<pid>/stat), with their names. */
async function childProcesses(): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (Number(fields[1]) === process.pid && fields[0] !== "Z") {
        out.push(`${entry} ${stat.slice(stat.indexOf("(") + 1, close)}`);
      }
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

describe("soak", () => {
  let server: TestServer;
  let dir: string;
  let clip: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vidrtc-soak-"));
    clip = join(dir, "clip.mp4");
    // A short session: 10 frames of 96x64 H.264.
    await promisify(execFile)("ffmpeg", [
      ...["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-t", "1"],
      ...["-c:v", "libx264", "-pix_fmt", "yuv420p", clip],
    ]);
    server = await startTestServer({ idleTimeoutMs: 10_000, lingerMs: 200, maxSessions: 4 });
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function oneSession(): Promise<void> {
    const client = await RawClient.connect({ url: server.url });
    try {
      await client.uploadFile(clip);
      const complete = await client.waitComplete(30_000);
      expect(complete.output.processing_complete).toBe(true);
      expect(client.frames).toHaveLength(10);
      expect(client.frames.every((r) => r.output.errors.length === 0)).toBe(true);
    } finally {
      await client.close();
    }
  }

  async function settled(): Promise<void> {
    await eventually(
      async () =>
        server.sessions === 0 &&
        (await server.tempFiles()).length === 0 &&
        (await childProcesses()).length === 0,
      30_000,
      "no session, temp file or child process left",
    );
  }

  it(`${SESSIONS} short sessions back to back leave fds, RSS, temp files and child processes at baseline`, async () => {
    // Warm-up: first-use allocations (werift, ffmpeg spawn paths, JIT) are not leaks.
    for (let i = 0; i < 3; i++) await oneSession();
    await settled();
    gc();
    const base = { fds: await openFds(), rss: process.memoryUsage().rss, children: await childProcesses() };
    const started = performance.now();
    let peakRss = base.rss;
    for (let i = 0; i < SESSIONS; i++) {
      await oneSession();
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    const seconds = (performance.now() - started) / 1000;
    await settled();
    // Sockets and handles closed asynchronously: give them a moment, then compare.
    await eventually(async () => (await openFds()) <= base.fds + 8, 15_000, "fds back to baseline");
    gc();
    const after = { fds: await openFds(), rss: process.memoryUsage().rss, children: await childProcesses() };
    console.log(
      `[soak] ${SESSIONS} sessions in ${seconds.toFixed(1)} s (${((seconds * 1000) / SESSIONS).toFixed(0)} ms each); fds ${base.fds} -> ${after.fds}; RSS ${(base.rss / MiB).toFixed(0)} -> ${(after.rss / MiB).toFixed(0)} MiB (peak ${(peakRss / MiB).toFixed(0)} MiB); temp files ${(await server.tempFiles()).length}; children ${after.children.length}`,
    );
    expect(after.fds).toBeLessThanOrEqual(base.fds + 8);
    expect(after.children).toEqual(base.children);
    expect(await server.tempFiles()).toEqual([]);
    expect(server.sessions).toBe(0);
    // 200 sessions of 10 frames each: a leak of even 1 MiB per session would show.
    expect(after.rss - base.rss).toBeLessThan(150 * MiB);
  });
});
