/**
 * Runs batch-folder end to end against a local vidrtc-server and checks what it did: a folder of
 * four generated videos and one text file, processed with --concurrency 2. Every video gets a
 * JSONL with one line per frame (ffprobe's count), the text file is reported as an error while
 * the files after it still succeed, the summary and exit code say so, and no more than two
 * sessions ran at once: the server's /healthz session count, polled during the run, never passes
 * 2, and the program's own start/end times overlap two deep (so it really ran two at a time).
 */
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Checks, countFrames, makeTestVideo, runProgram, startServer, tempDir } from "../../runner/runner.ts";
import type { FileReport } from "./main.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const EXIT_BOUND_MS = 180_000;
const CONCURRENCY = 2;
/** Sorted by name: the bad file sits in the middle, so files after it show the batch went on. */
const VIDEOS: Array<[name: string, frames: number]> = [
  ["a.mp4", 20],
  ["b.mp4", 30],
  ["d.mp4", 40],
  ["e.mp4", 50],
];
const BAD = "c-notes.txt";

const checks = new Checks("batch-folder");
const tmp = await tempDir("batch-folder");
const server = await startServer();
try {
  const folder = join(tmp.dir, "in");
  const out = join(tmp.dir, "out");
  await mkdir(folder);
  for (const [name, frames] of VIDEOS) await makeTestVideo(join(folder, name), frames);
  await writeFile(join(folder, BAD), "meeting notes, not a video\n");
  const expected = new Map<string, number>();
  for (const [name] of VIDEOS) expected.set(name, await countFrames(join(folder, name)));

  // Watch the server's live session count while the batch runs (every wait bounded).
  const counts: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
        counts.push(((await res.json()) as { sessions: number }).sessions);
      } catch {
        // a missed sample is not a failure; the run goes on
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const r = await runProgram(
    MAIN,
    [folder, "--api-url", server.url, "--out", out, "--concurrency", String(CONCURRENCY)],
    EXIT_BOUND_MS,
  );
  polling = false;
  await poller;

  checks.check(
    r.code === 1,
    `exits by itself with code 1 because one file failed (got ${r.code ?? r.signal})`,
  );
  checks.check(
    r.stdout.includes(`${VIDEOS.length} ok, 1 failed`),
    `the table ends with "${VIDEOS.length} ok, 1 failed"`,
  );

  const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8")) as {
    files: FileReport[];
  };
  const byName = new Map(summary.files.map((f) => [f.file.slice(folder.length + 1), f]));
  checks.check(summary.files.length === VIDEOS.length + 1, `summary.json has ${VIDEOS.length + 1} files`);

  for (const [name] of VIDEOS) {
    const frames = expected.get(name)!;
    const text = await readFile(join(out, `${name}.jsonl`), "utf8").catch(() => ""); // missing: checked below
    const lines = text
      .trim()
      .split("\n")
      .filter((l) => l !== "");
    const results = lines.map((l) => JSON.parse(l) as { frameId: number; errors: string[] });
    checks.check(
      results.length === frames && results.every((x, i) => x.frameId === i + 1 && x.errors.length === 0),
      `${name}.jsonl: ${results.length} lines = ffprobe's ${frames} frames, ids 1..${frames}, no errors`,
    );
    const f = byName.get(name);
    const size = (await stat(join(folder, name))).size;
    checks.check(
      f?.ok === true && f.frames === frames && f.results === frames && f.bytes === size && f.ms > 0,
      `summary ${name}: ok, frames = results = ${frames}, bytes = ${size} (got ${JSON.stringify(f && { ok: f.ok, frames: f.frames, results: f.results, bytes: f.bytes })})`,
    );
  }

  const bad = byName.get(BAD);
  checks.check(
    bad?.ok === false &&
      bad.error?.code === "PROCESSING_FAILED" &&
      /not a decodable video/.test(bad.error.message),
    `${BAD} is reported as an error: PROCESSING_FAILED "not a decodable video" (got ${JSON.stringify(bad?.error)})`,
  );
  checks.check(r.stderr.includes(`${BAD}: failed: PROCESSING_FAILED`), `${BAD}'s error is printed on stderr`);
  const written = (await readdir(out)).sort();
  checks.check(
    JSON.stringify(written) === JSON.stringify([...VIDEOS.map(([n]) => `${n}.jsonl`), "summary.json"].sort()),
    `out/ holds one JSONL per video, none for ${BAD}, no .partial left (got ${written.join(", ")})`,
  );

  // Concurrency, seen from the server and from the program's own timestamps.
  const maxServer = Math.max(0, ...counts);
  checks.check(
    counts.length > 0 && maxServer <= CONCURRENCY,
    `server /healthz never saw more than ${CONCURRENCY} sessions (max ${maxServer} over ${counts.length} samples)`,
  );
  const maxOverlap = deepestOverlap(summary.files);
  checks.check(
    maxOverlap === CONCURRENCY,
    `the files' start/end times overlap exactly ${CONCURRENCY} deep (got ${maxOverlap})`,
  );
} finally {
  await server.stop();
  await tmp.remove();
}
process.exitCode = checks.finish();

/** Most intervals [startedAt, endedAt) open at one instant. */
function deepestOverlap(files: FileReport[]): number {
  const events = files.flatMap((f) => [
    { t: f.startedAt, d: 1 },
    { t: f.endedAt, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d); // an end before a start at the same ms
  let open = 0;
  let max = 0;
  for (const e of events) {
    open += e.d;
    max = Math.max(max, open);
  }
  return max;
}
