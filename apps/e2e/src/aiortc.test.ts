/**
 * Interop with aiortc (the Python stack of Roboflow's server and Python SDK): the aiortc peer in
 * python/vidrtc_aiortc.py uploads into @vidrtc/server framed like Roboflow's Python SDK (48 KiB
 * chunks, 8-byte header, bufferedAmount polled every 10 ms above 256 KiB). aiortc ignores
 * loopback-only hosts, so this needs the sealed fake NIC (scripts/test.sh provides it).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { InferenceClient } from "@vidrtc/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tinyVideo } from "./support/fixtures.js";
import { inspectNetwork } from "./support/netns.js";
import { startTestServer, type TestServer } from "./support/server.js";

const SCRIPT = fileURLToPath(new URL("../python/vidrtc_aiortc.py", import.meta.url));
const PYTHON = process.env.VIDRTC_PYTHON ?? "/usr/bin/python3";

function runPython(args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [SCRIPT, ...args],
      { timeout: timeoutMs, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => {
        const last = stdout.trim().split("\n").pop() ?? "";
        if (error && last === "") return reject(new Error(`${error.message}\n${stderr.slice(-2000)}`));
        try {
          resolve(JSON.parse(last) as Record<string, unknown>);
        } catch {
          reject(new Error(`no JSON result from the aiortc peer: ${stdout}\n${stderr.slice(-2000)}`));
        }
      },
    );
  });
}

describe.skipIf(inspectNetwork().fakeNicAddress === null)("aiortc SDK-style sender -> @vidrtc/server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("uploads byte-exact and gets one result per frame, in order, gzip-decoded", async () => {
    const video = await tinyVideo();
    const out = await runPython(
      ["upload", "--url", server.url, "--file", video.path, "--timeout", "60"],
      90_000,
    );
    expect(out.ok).toBe(true);
    expect(out.bytes).toBe(video.bytes);
    expect(out.results).toBe(video.frames);
    expect(out.inOrder).toBe(true);
    expect(out.errors).toBe(0);
    const upload = await server.waitFor("upload-complete", 5_000, (e) => e.bytes === video.bytes);
    expect(upload.sha256).toBe(video.sha256);
  });
});

describe.skipIf(inspectNetwork().fakeNicAddress === null)("@vidrtc/node -> aiortc receiver", () => {
  let child: ChildProcess;
  let url: string;
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  beforeAll(async () => {
    child = spawn(PYTHON, [SCRIPT, "receive", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
        for (const w of waiters.splice(0)) w();
      }
    });
    url = (await nextLine(30_000)).listening as string;
  });
  afterAll(() => {
    child?.kill("SIGTERM");
  });
  function nextLine(timeoutMs: number): Promise<Record<string, unknown>> {
    const seen = lines.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no line from the aiortc receiver")), timeoutMs);
      const check = () => {
        if (lines.length > seen) {
          clearTimeout(timer);
          resolve(lines[seen]!);
        } else waiters.push(check);
      };
      if (lines.length > 0 && seen === 0 && lines[0]) check();
      else waiters.push(check);
    });
  }

  for (const transport of ["werift", "node-datachannel"] as const) {
    it(`${transport}: the receiver's SHA-256 equals the file's and every frame's result arrives`, async () => {
      const video = await tinyVideo();
      const line = nextLine(60_000);
      const session = await new InferenceClient({ apiUrl: url, transport }).webrtc.stream({
        source: video.path,
        workflow: "frame-stats",
        dataOutput: ["*"],
      });
      const shas = new Set<unknown>();
      for await (const r of session) shas.add(r.outputs.sha256);
      const got = await line;
      expect(got.ok).toBe(true);
      expect(got.sha256).toBe(video.sha256);
      expect(got.bytes).toBe(video.bytes);
      expect(got.frames).toBe(video.frames);
      expect([...shas]).toEqual([video.sha256]);
    });
  }
});
