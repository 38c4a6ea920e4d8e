/**
 * Runs node-basic end to end against a local vidrtc-server and checks what it wrote:
 * a results line per frame, a decodable VP8 WebM, an exit by itself within a bound, and a
 * Ctrl-C (SIGINT) that cancels a running session with exit code 130.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Checks,
  countFrames,
  makeTestVideo,
  run,
  runProgram,
  startServer,
  tempDir,
} from "../../runner/runner.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
/** The program must have exited this long after it started (it would hang on an open socket). */
const EXIT_BOUND_MS = 90_000;
const FRAMES = 30;

const checks = new Checks("node-basic");
const tmp = await tempDir("node-basic");
const server = await startServer();
try {
  const video = join(tmp.dir, "clip.mp4");
  await makeTestVideo(video, FRAMES);
  const out = join(tmp.dir, "out");

  const r = await runProgram(MAIN, [video, "--api-url", server.url, "--out", out], EXIT_BOUND_MS);
  checks.check(
    r.code === 0,
    `exits by itself with code 0 (got ${r.code ?? r.signal}) in ${r.ms} ms (bound ${EXIT_BOUND_MS} ms)`,
  );
  checks.check(/upload \d+\/\d+/.test(r.stderr), "reports upload progress on stderr");
  const lines = (await readFile(join(out, "results.jsonl"), "utf8")).trim().split("\n");
  const results = lines.map(
    (l) => JSON.parse(l) as { frameId: number; outputs: Record<string, unknown>; errors: string[] },
  );
  const frameIds = results.map((x) => x.frameId);
  checks.check(
    results.length === FRAMES && frameIds.every((id, i) => id === i + 1),
    `results.jsonl has one line per frame, ids 1..${FRAMES} in order (got ${results.length})`,
  );
  checks.check(
    results.every((x) => x.errors.length === 0 && "motion_score" in x.outputs),
    "every result carries the motion workflow's outputs and no errors",
  );
  const codec = (
    await run("ffprobe", [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=codec_name",
      "-of",
      "csv=p=0",
      join(out, "annotated.webm"),
    ])
  ).trim();
  const webmFrames = await countFrames(join(out, "annotated.webm"));
  checks.check(
    codec === "vp8" && webmFrames > 0,
    `annotated.webm is VP8 and decodes (${codec}, ${webmFrames} frames)`,
  );

  // Ctrl-C: a long clip, SIGINT as soon as the upload has started.
  const long = join(tmp.dir, "long.mp4");
  await makeTestVideo(long, 600, "640x480", 30);
  const c = await runProgram(
    MAIN,
    [long, "--api-url", server.url, "--out", join(tmp.dir, "cancel")],
    EXIT_BOUND_MS,
    (child) => {
      child.stderr?.on("data", function onData(d: Buffer) {
        if (d.toString().includes("upload ")) {
          child.stderr?.off("data", onData);
          child.kill("SIGINT");
        }
      });
    },
  );
  checks.check(
    c.code === 130 && c.stderr.includes("cancelled"),
    `SIGINT cancels: exit 130, "cancelled" (got ${c.code ?? c.signal}) in ${c.ms} ms`,
  );
} finally {
  await server.stop();
  await tmp.remove();
}
process.exitCode = checks.finish();
