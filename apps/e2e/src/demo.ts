/**
 * `pnpm demo`: the main job end to end on one machine. Starts `@vidrtc/server` on a free
 * loopback port, makes a short video with motion (ffmpeg), runs the `vidrtc` CLI with the
 * `motion` workflow and the annotated video coming back, writes the JSONL results and the WebM,
 * prints a summary and stops the server. Run it inside a network namespace (scripts/demo.sh).
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "@vidrtc/server";
import { frameCount, motionVideo } from "./support/fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../../..");
const outDir = resolve(process.env.VIDRTC_DEMO_OUT ?? join(repoRoot, "demo-output"));

function cliPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("vidrtc/package.json");
  return join(dirname(pkg), "dist", "bin.js");
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: "inherit" });
    child.on("error", reject);
    child.on("exit", (code, sig) => resolveRun(code ?? (sig ? 128 : 1)));
  });
}

async function main(): Promise<number> {
  await mkdir(outDir, { recursive: true });
  console.log("vidrtc demo: making a 6 s sample video with a moving square (ffmpeg)...");
  const video = await motionVideo({ seconds: 6, fps: 15, size: "640x360" });
  const server = createServer({ host: "127.0.0.1", port: 0 });
  const { url } = await server.listen();
  console.log(`vidrtc demo: vidrtc-server listening on ${url}`);
  const jsonl = join(outDir, "results.jsonl");
  const webm = join(outDir, "annotated.webm");
  try {
    const code = await run(process.execPath, [
      cliPath(),
      "run",
      video.path,
      "--api-url",
      url,
      "--workflow",
      "motion",
      "--data-output",
      "predictions,motion_score",
      "--stream-output",
      "annotated",
      "--save-video",
      webm,
      "--jsonl",
      jsonl,
    ]);
    if (code !== 0) {
      console.error(`vidrtc demo: the CLI failed with exit code ${code}`);
      return code;
    }
  } finally {
    await server.close();
  }
  const lines = (await readFile(jsonl, "utf8")).trim().split("\n").filter(Boolean);
  let boxes = 0;
  for (const line of lines) {
    const preds = JSON.parse(line).serialized_output_data?.predictions?.predictions;
    if (Array.isArray(preds)) boxes += preds.length;
  }
  const webmFrames = await frameCount(webm).catch(() => 0);
  const webmSize = await stat(webm)
    .then((s) => s.size)
    .catch(() => 0);
  const rel = (p: string) => relative(process.cwd(), p) || p;
  console.log("");
  console.log("vidrtc demo summary");
  console.log(
    `  input        ${video.frames} frames ${video.width}x${video.height} @ ${video.fps} fps, ${video.bytes} bytes`,
  );
  console.log(`  results      ${lines.length} JSON lines, ${boxes} motion boxes -> ${rel(jsonl)}`);
  console.log(`  video back   ${webmFrames} VP8 frames, ${webmSize} bytes -> ${rel(webm)}`);
  if (lines.length !== video.frames) {
    console.error(`vidrtc demo: expected ${video.frames} results, got ${lines.length}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`vidrtc demo failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exitCode = 1;
  },
);
