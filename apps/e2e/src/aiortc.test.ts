/**
 * Interop with aiortc (the Python stack of Roboflow's server and Python SDK): the aiortc peer in
 * python/vidrtc_aiortc.py uploads into @vidrtc/server framed like Roboflow's Python SDK (48 KiB
 * chunks, 8-byte header, bufferedAmount polled every 10 ms above 256 KiB). aiortc ignores
 * loopback-only hosts, so this needs the sealed fake NIC (scripts/test.sh provides it).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
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
