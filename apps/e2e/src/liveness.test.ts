/**
 * The server's per-session liveness bound (issue: a client SIGKILLed during processing while ACK
 * pacing was on was never noticed: the server waited for the next ACK without a bound, its ICE-lite
 * agent runs no consent checks, and the session, its ffmpeg child and its temp file lived until
 * `processing_timeout`). The client is a real child process running @vidrtc/node with
 * `readAhead: 0` (strict ACK-after-consume) against @vidrtc/server, inside the test's network
 * namespace: on the server's default transport (werift), and on node-datachannel when the sealed
 * fake NIC is there (libjuice skips loopback).
 *
 * The bound used here is 10 s: a live werift client's only traffic while it holds back its ACK is
 * its RFC 7675 consent check every 4–6 s (5 s randomised by ±20 %) and, unless disabled, its
 * keepalive ping every 3 s; a bound much shorter than the consent period would end live sessions.
 * On node-datachannel the server cannot see STUN or SCTP control traffic (only payload bytes and the
 * connection state), so a vanished client is noticed when libjuice's own consent checks fail: that
 * bound (measured 25–30 s after the kill) is checked, not the configured one.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { SessionEvent } from "@vidrtc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { motionVideo, type VideoFixture } from "./support/fixtures.js";
import { inspectNetwork } from "./support/netns.js";
import { childProcesses, collectOutput } from "./support/processes.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const require = createRequire(import.meta.url);
const nodeEntry = pathToFileURL(require.resolve("@vidrtc/node")).href;

const LIVENESS_MS = 10_000;
/** Slack on top of the bound: the watchdog's poll period (1 s), closing the peer, a loaded box. */
const SLACK_MS = 7_000;
/** node-datachannel: libjuice's consent failure (about 25–30 s after the last answer) plus slack. */
const NDC_BOUND_MS = 45_000;

const nic = inspectNetwork().fakeNicAddress;
const serverTransports = nic ? (["werift", "node-datachannel"] as const) : (["werift"] as const);

/**
 * A client program: streams `video` with strict ACK pacing (`readAhead: 0`), takes the first
 * result and asks for the second (which acknowledges the first: from then on the server sends
 * nothing more until the next ACK), prints `{"event":"holding"}` and holds back every further ACK
 * for `holdMs` (forever when negative: it waits to be killed), then prints `{"event":"resuming"}`,
 * consumes all results and prints a summary line.
 */
function clientProgram(url: string, video: string, holdMs: number, keepalive: boolean): string {
  return `
import { InferenceClient, loopbackIceOptions } from ${JSON.stringify(nodeEntry)};

const client = new InferenceClient({ apiUrl: ${JSON.stringify(url)}, werift: loopbackIceOptions() });
const session = await client.webrtc.stream({
  source: ${JSON.stringify(video)},
  workflow: "motion", workspace: "local", dataOutput: ["*"],
  readAhead: 0,
  ${keepalive ? "" : "keepalive: false,"}
  signal: AbortSignal.timeout(120_000),
});
const iterator = session[Symbol.asyncIterator]();
let results = 0;
for (let i = 0; i < 2; i++) if (!(await iterator.next()).done) results++;
console.log(JSON.stringify({ event: "holding", results }));
const holdMs = ${holdMs};
if (holdMs < 0) {
  setInterval(() => {}, 1_000);
} else {
  await new Promise((resolve) => setTimeout(resolve, holdMs));
  console.log(JSON.stringify({ event: "resuming" }));
  while (!(await iterator.next()).done) results++;
  const summary = await session.done;
  console.log(JSON.stringify({ event: "done", results, frames: summary.framesProcessed }));
}
`;
}

interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function startChild(file: string): Child {
  const proc = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, ...collectOutput(proc), exited };
}

describe.each(serverTransports)("per-session liveness bound, server on %s", (transport) => {
  let server: TestServer;
  let dir: string;
  let video: VideoFixture;
  const children: Child[] = [];

  beforeAll(async () => {
    // 300 frames: processing, paced by ACKs that never come, outlives every step of the test.
    video = await motionVideo({ seconds: 20, fps: 15 });
    dir = await mkdtemp(join(tmpdir(), "vidrtc-liveness-"));
    server = await startTestServer({
      livenessTimeoutMs: LIVENESS_MS,
      idleTimeoutMs: 10_000,
      lingerMs: 2_000,
      ...(transport === "node-datachannel" ? { transport, iceHostAddresses: [nic as string] } : {}),
    });
  });
  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Frames the server has handed to the result channel in session `id` so far. */
  const framesSent = (id: string) =>
    server.events.filter((e) => e.type === "frame-sent" && e.sessionId === id) as Extract<
      SessionEvent,
      { type: "frame-sent" }
    >[];

  /** Starts a client program; resolves once it holds back its ACK and the server has stopped sending. */
  async function startHolding(name: string, holdMs: number, keepalive: boolean) {
    const file = join(dir, `${name}.mjs`);
    await writeFile(file, clientProgram(server.url, video.path, holdMs, keepalive));
    const since = server.events.length;
    const child = startChild(file);
    children.push(child);
    const start = await server.waitFor("session-start", 30_000, (e) => server.events.indexOf(e) >= since);
    const id = start.sessionId;
    await eventually(
      () => child.lines.some((l) => l.includes('"holding"')) || child.proc.exitCode !== null,
      30_000,
      "the client holds back its ACK",
    );
    expect(child.proc.exitCode, child.stderr()).toBeNull();
    // The server stops once it has used the credit of the client's last ACK. Stable for 2 s: on a
    // loaded machine the last credited frame was seen leaving more than 500 ms after the one before.
    let count = -1;
    await eventually(
      async () => {
        const now = framesSent(id).length;
        if (now === count) return true;
        count = now;
        await new Promise((r) => setTimeout(r, 2_000));
        return false;
      },
      30_000,
      "the server stopped sending",
    );
    // Frames before the first ACK are not paced: a few went out before ACK 1 arrived.
    expect(framesSent(id).length).toBeLessThan(video.frames);
    const events = () => server.events.slice(since).filter((e) => e.sessionId === id);
    return { child, id, events };
  }

  it("a client SIGKILLed while the server waits for its ACK: the session, its ffmpeg child and its temp file are gone within the bound", async () => {
    const { child, id, events } = await startHolding("killed", -1, true);
    const sentBefore = framesSent(id).length;
    // Holding back the ACK for longer than the bound: a live client is not ended.
    await new Promise((r) => setTimeout(r, LIVENESS_MS + 2_000));
    expect(events().filter((e) => e.type === "error" || e.type === "session-end")).toEqual([]);
    expect(framesSent(id).length).toBe(sentBefore);
    expect(server.sessions).toBe(1);
    expect((await childProcesses("ffmpeg")).length).toBeGreaterThan(0);
    expect((await server.tempFiles()).length).toBeGreaterThan(0);

    child.proc.kill("SIGKILL");
    const killedAt = Date.now();
    await child.exited;
    const bound = transport === "werift" ? LIVENESS_MS + SLACK_MS : NDC_BOUND_MS;
    const end = await server.waitFor("session-end", bound, (e) => e.sessionId === id);
    const endedAfterMs = Date.now() - killedAt;
    if (transport === "werift") {
      expect(events().find((e) => e.type === "error")).toMatchObject({
        code: "LIVENESS_LOST",
        terminationReason: "liveness_lost",
      });
      expect(end.reason).toMatch(/^liveness_lost/);
    } else {
      // libjuice's consent checks failed: the peer connection failed and the session closed.
      expect(end.reason).toMatch(/^peer connection (failed|closed)|^liveness_lost/);
    }
    expect(server.sessions).toBe(0);
    expect(await childProcesses("ffmpeg")).toEqual([]);
    expect(await server.tempFiles()).toEqual([]);
    // The server still answers (node-datachannel's cleanup after a failed peer once ended the process).
    const health = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    expect(health.status).toBe(200);
    console.log(
      `[liveness] ${transport}: SIGKILLed client after ${sentBefore} of ${video.frames} frames (bound ${LIVENESS_MS} ms): session (${end.reason.split(":")[0]}), ffmpeg child and temp file gone ${endedAfterMs} ms after the kill`,
    );
    expect(endedAfterMs).toBeLessThan(bound);
  }, 120_000);

  it("an idle but live client (no ACK and no keepalive pings for 2.5x the bound) is not ended and gets every result", async () => {
    const holdMs = Math.round(LIVENESS_MS * 2.5);
    const { child, id, events } = await startHolding("idle", holdMs, false);
    const sentWhileHolding = framesSent(id).length;
    // Checked while the client still holds (startHolding took well under 8 s of the hold): once it
    // prints "resuming" it asks for the next result at once, and that ACK lets the server send again.
    await new Promise((r) => setTimeout(r, holdMs - 8_000));
    expect(child.lines.some((l) => l.includes('"resuming"'))).toBe(false);
    // Nothing was sent while the client held back its ACK, and the session was not ended.
    expect(events().filter((e) => e.type === "error" || e.type === "session-end")).toEqual([]);
    expect(framesSent(id).length).toBe(sentWhileHolding);
    await eventually(
      () => child.lines.some((l) => l.includes('"resuming"')) || child.proc.exitCode !== null,
      30_000,
      "the client resumes",
    );
    expect(events().filter((e) => e.type === "error" || e.type === "session-end")).toEqual([]);
    const code = await Promise.race([
      child.exited,
      new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 60_000)),
    ]);
    expect(code, child.stderr()).toBe(0);
    const done = JSON.parse(child.lines.at(-1) ?? "{}") as {
      event?: string;
      results?: number;
      frames?: number;
    };
    expect(done).toEqual({ event: "done", results: video.frames, frames: video.frames });
    expect(events().filter((e) => e.type === "error")).toEqual([]);
    expect(events().find((e) => e.type === "processing-complete")).toMatchObject({
      frames: video.frames,
      terminationReason: null,
    });
    console.log(
      `[liveness] ${transport}: idle client held its ACK ${holdMs} ms (bound ${LIVENESS_MS} ms) after ${sentWhileHolding} frames, then got all ${video.frames}`,
    );
    await eventually(() => server.sessions === 0, 30_000, "the session ended after the client closed");
  }, 150_000);
});
