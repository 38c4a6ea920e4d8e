/**
 * `pnpm bench`: runs the benchmarks one after another, each in its own child process so that one
 * failing (or crashing) does not hide the others, then prints a summary and exits 1 if any failed.
 *
 *   pnpm -r --filter "./packages/*" build
 *   bash scripts/netns-run.sh pnpm bench [--all] [--quick] [--only pipeline,node-upload]
 *
 * Default: the upload pipeline benchmark (src/bench/pipeline.ts) and the @vidrtc/node benchmarks
 * (src/bench/node-upload.ts: throughput ratio against bare werift, sender RSS for 1 GiB, setup
 * latency); about 10 minutes on a 2-core machine. `--all` also runs the browser upload benchmark
 * (src/bench/browser-upload.ts, Chromium), the network benchmark (src/bench/net.ts, also
 * `pnpm bench:net`; run it with `netns-run.sh --nic 192.0.2.10/24` to include node-datachannel),
 * the transport table (src/bench/transport.ts: werift, node-datachannel and aiortc uploads and
 * their ratios; it needs that fake NIC too, so run the suite as
 * `bash scripts/netns-run.sh --nic 192.0.2.10/24 pnpm bench --all`) and the browser bundle size
 * (src/bench/bundle-size.ts).
 * `--quick` runs smaller sizes (a smoke test of the commands, not the targets' sizes).
 * Must run inside an isolated network namespace (scripts/netns-run.sh); refuses otherwise.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { assertIsolatedNetwork, NetworkNotIsolatedError } from "../support/netns.js";

/** One benchmark command of the suite. */
interface Bench {
  name: string;
  /** Script, relative to this directory. */
  script: string;
  args: string[];
  /** Smaller arguments for `--quick`. */
  quickArgs: string[];
  /** Only with `--all`. */
  extra: boolean;
  /** Kill it after this long (ms). */
  timeoutMs: number;
  /** What it measures, for the listing. */
  about: string;
}

const MINUTE = 60_000;

const BENCHES: Bench[] = [
  {
    name: "pipeline",
    script: "pipeline.ts",
    args: [],
    quickArgs: ["--mib", "128"],
    extra: false,
    timeoutMs: 10 * MINUTE,
    about: "upload pipeline over an instant channel: MiB/s and RSS growth",
  },
  {
    name: "node-upload",
    script: "node-upload.ts",
    args: [],
    quickArgs: ["--mib", "32", "--rounds", "1", "--rss-mib", "64", "--setup-runs", "3"],
    extra: false,
    timeoutMs: 30 * MINUTE,
    about: "@vidrtc/node: throughput vs bare werift, sender RSS for 1 GiB, setup latency",
  },
  {
    name: "browser-upload",
    script: "browser-upload.ts",
    args: [],
    quickArgs: ["--mib", "32", "--rounds", "1"],
    extra: true,
    timeoutMs: 30 * MINUTE,
    about: "@vidrtc/browser in Chromium: throughput vs a bare RTCDataChannel loop",
  },
  {
    name: "net",
    script: "net.ts",
    args: [],
    quickArgs: ["--quick"],
    extra: true,
    timeoutMs: 40 * MINUTE,
    about: "network conditions (pnpm bench:net): results rate vs RTT, 1080p vs ffmpeg, impaired uploads",
  },
  {
    name: "transport",
    script: "transport.ts",
    args: [],
    quickArgs: ["--quick"],
    extra: true,
    timeoutMs: 40 * MINUTE,
    about: "WebRTC stacks: werift vs node-datachannel vs aiortc, one table (needs --nic 192.0.2.10/24)",
  },
  {
    name: "bundle-size",
    script: "bundle-size.ts",
    args: [],
    quickArgs: [],
    extra: true,
    timeoutMs: 5 * MINUTE,
    about: "@vidrtc/browser bundle size, minified + gzip",
  },
];

/** Built packages the benchmarks import. */
const REQUIRED_BUILDS = ["protocol", "node", "server", "browser"].map((p) =>
  fileURLToPath(new URL(`../../../../packages/${p}/dist/index.js`, import.meta.url)),
);

/** Exit status and duration of one benchmark. */
interface Outcome {
  bench: Bench;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  seconds: number;
}

function runBench(bench: Bench, quick: boolean): Promise<Outcome> {
  const script = fileURLToPath(new URL(bench.script, import.meta.url));
  const args = [...process.execArgv, script, ...(quick ? bench.quickArgs : bench.args)];
  const started = performance.now();
  console.log(`\n=== ${bench.name}: ${bench.about}`);
  console.log(`    node src/bench/${bench.script} ${(quick ? bench.quickArgs : bench.args).join(" ")}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: "inherit",
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      env: process.env,
    });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`\n${bench.name}: no result after ${bench.timeoutMs / MINUTE} min, stopping it`);
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    }, bench.timeoutMs);
    const finish = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve({ bench, code, signal, timedOut, seconds: (performance.now() - started) / 1000 });
    };
    child.on("error", (error) => {
      console.error(`${bench.name}: could not start: ${error.message}`);
      finish(null, null);
    });
    child.on("exit", (code, signal) => finish(code, signal));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    // `pnpm bench -- --all` passes the "--" through.
    args: process.argv.slice(2).filter((a) => a !== "--"),
    options: {
      all: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log("usage: bash scripts/netns-run.sh pnpm bench [--all] [--quick] [--only a,b]");
    for (const b of BENCHES) console.log(`  ${b.name.padEnd(15)} ${b.extra ? "(--all) " : ""}${b.about}`);
    return 0;
  }
  try {
    assertIsolatedNetwork();
  } catch (error) {
    if (error instanceof NetworkNotIsolatedError) {
      console.error(
        "pnpm bench: refusing to run outside an isolated network namespace (WebRTC benchmarks must not be able " +
          "to reach any network).\nRun it as: bash scripts/netns-run.sh pnpm bench\n" +
          `(${error.message})`,
      );
      return 2;
    }
    throw error;
  }
  const missing = REQUIRED_BUILDS.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    console.error(
      `pnpm bench: packages are not built (${missing.length} dist entry points missing). ` +
        'Run: pnpm -r --filter "./packages/*" build',
    );
    return 2;
  }
  let selected = BENCHES.filter((b) => values.all || !b.extra);
  if (values.only !== undefined) {
    const names = values.only.split(",").map((s) => s.trim());
    const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
    if (unknown.length > 0) {
      console.error(
        `unknown benchmark(s): ${unknown.join(", ")}; known: ${BENCHES.map((b) => b.name).join(", ")}`,
      );
      return 2;
    }
    selected = BENCHES.filter((b) => names.includes(b.name));
  }

  const outcomes: Outcome[] = [];
  for (const bench of selected) outcomes.push(await runBench(bench, values.quick));

  console.log("\n=== summary");
  for (const o of outcomes) {
    const status = o.timedOut
      ? "TIMEOUT"
      : o.code === 0
        ? "PASS"
        : o.signal
          ? `FAIL (killed by ${o.signal})`
          : `FAIL (exit ${o.code ?? "?"})`;
    console.log(`  ${o.bench.name.padEnd(15)} ${status.padEnd(22)} ${o.seconds.toFixed(0).padStart(5)} s`);
  }
  const skipped = BENCHES.filter((b) => !selected.includes(b));
  for (const b of skipped) {
    console.log(
      `  ${b.name.padEnd(15)} ${"not run".padEnd(22)}       (src/bench/${b.script}; ${b.extra ? "pnpm bench --all" : "--only"})`,
    );
  }
  console.log(
    "  also available: src/bench/werift-raw.ts (werift-to-werift baseline), src/bench/server-memory.ts (server RSS, 1 GiB)",
  );
  if (values.quick) console.log("  --quick: smaller sizes than the targets are defined for; not a verdict.");
  return outcomes.every((o) => o.code === 0 && !o.timedOut) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
