/**
 * Process lifetime (issue: the README's Node example never exited with video back, because werift
 * left UDP sockets open): the README's Node example runs in a child process against
 * vidrtc-server, on each client transport, with and without processed video, and must exit by
 * itself (no process.exit) within a bound, with its summary printed and its WebM written.
 * node-datachannel needs the sealed fake NIC (scripts/test.sh provides it).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { networkInterfaces, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tinyVideo, type VideoFixture } from "./support/fixtures.js";
import { startTestServer, type TestServer } from "./support/server.js";

const require = createRequire(import.meta.url);
const nodeEntry = pathToFileURL(require.resolve("@vidrtc/node")).href;
const cliBin = join(dirname(require.resolve("vidrtc/package.json")), "dist", "bin.js");

/** Exit bound: the session itself takes about a second; werift's close is asynchronous. */
const EXIT_BOUND_MS = 45_000;

function fakeNic(): string | null {
  for (const infos of Object.values(networkInterfaces()))
    for (const i of infos ?? [])
      if (i.family === "IPv4" && i.address.startsWith("192.0.2.")) return i.address;
  return null;
}

/** The README's Node example (paths and URL filled in), plus the transport option. */
function example(url: string, video: string, transport: string, webm: string | null): string {
  return `
import { InferenceClient, VideoFileSource } from ${JSON.stringify(nodeEntry)};

const client = new InferenceClient({ apiUrl: ${JSON.stringify(url)}, transport: ${JSON.stringify(transport)} });
const session = await client.webrtc.stream({
  source: new VideoFileSource(${JSON.stringify(video)}),
  workflow: "motion", workspace: "local", dataOutput: ["*"],
  ${webm ? 'streamOutput: ["annotated"],' : ""}
  signal: AbortSignal.timeout(600_000),
  onUploadProgress: (p) => console.log(\`\${p.bytesDelivered}/\${p.totalBytes} ETA \${p.etaSeconds}s\`),
});
${webm ? `void session.saveVideo(${JSON.stringify(webm)});` : ""}
let n = 0;
for await (const result of session) n++;
console.log(JSON.stringify({ summary: await session.done, results: n, transport: session.transport }));
`;
}

function runChild(
  ...args: string[]
): Promise<{ code: number | null; ms: number; stdout: string; stderr: string; killed: boolean }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, EXIT_BOUND_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - start, stdout, stderr, killed });
    });
  });
}

/** Per describe block: a test server (with the fake NIC's address when there is one), a temp dir, the tiny video. */
function useServerAndDir(prefix: string): { server: TestServer; dir: string; video: VideoFixture } {
  const fx = {} as { server: TestServer; dir: string; video: VideoFixture };
  beforeAll(async () => {
    const nic = fakeNic();
    fx.server = await startTestServer({ iceHostAddresses: nic ? ["127.0.0.1", nic] : ["127.0.0.1"] });
    fx.dir = await mkdtemp(join(tmpdir(), prefix));
    fx.video = await tinyVideo();
  });
  afterAll(async () => {
    await fx.server?.close();
    if (fx.dir) await rm(fx.dir, { recursive: true, force: true });
  });
  return fx;
}

/** The client transports this machine can test: node-datachannel needs the sealed fake NIC. */
const transports = fakeNic() ? ["werift", "node-datachannel"] : ["werift"];

describe("the README's Node example exits by itself", () => {
  const fx = useServerAndDir("vidrtc-lifetime-");
  for (const transport of transports) {
    for (const withVideo of [true, false]) {
      it(`${transport}, ${withVideo ? "with" : "without"} processed video`, async () => {
        const webm = withVideo ? join(fx.dir, `${transport}.webm`) : null;
        const file = join(fx.dir, `${transport}-${withVideo}.mjs`);
        await writeFile(file, example(fx.server.url, fx.video.path, transport, webm));
        const run = await runChild(file);
        expect(run.killed, `still running after ${EXIT_BOUND_MS} ms; stderr: ${run.stderr}`).toBe(false);
        expect(run.code, run.stderr).toBe(0);
        const last = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
          summary: { framesProcessed: number };
          results: number;
          transport: string;
        };
        expect(last.transport).toBe(transport);
        expect(last.results).toBe(fx.video.frames);
        expect(last.summary.framesProcessed).toBe(fx.video.frames);
        if (webm) expect((await stat(webm)).size).toBeGreaterThan(500);
      });
    }
  }
});

/** Preloaded into the CLI: `process.exit` does nothing but report that it was called. */
const NO_EXIT = `process.exit = (code) => { process.stderr.write("process.exit was called with " + code + "\\n"); };`;

describe("the vidrtc CLI exits by itself (no process.exit in its bin)", () => {
  const fx = useServerAndDir("vidrtc-lifetime-cli-");
  for (const transport of transports) {
    it(`${transport}: a successful run with video back, then exit 0 within the bound`, async () => {
      const webm = join(fx.dir, `${transport}.webm`);
      const jsonl = join(fx.dir, `${transport}.jsonl`);
      // process.exit made a no-op that tells on itself: the CLI must end by draining its loop.
      const run = await runChild(
        "--import",
        `data:text/javascript,${encodeURIComponent(NO_EXIT)}`,
        cliBin,
        "run",
        fx.video.path,
        "-u",
        fx.server.url,
        "-w",
        "motion",
        "-s",
        "annotated",
        "--save-video",
        webm,
        "-o",
        jsonl,
        "--transport",
        transport,
      );
      expect(run.killed, `still running after ${EXIT_BOUND_MS} ms; stderr: ${run.stderr}`).toBe(false);
      expect(run.stderr).not.toContain("process.exit was called");
      expect(run.code, run.stderr).toBe(0);
      expect((await readFile(jsonl, "utf8")).trim().split("\n")).toHaveLength(fx.video.frames);
      expect((await stat(webm)).size).toBeGreaterThan(500);
      expect(run.stderr).toContain(`${fx.video.frames} frames`);
    });
  }
});
