// The checks of scripts/consumer-test.sh, run against a project where the packed tarballs are
// installed (DIR/project) and the tarballs themselves (DIR/tarballs). Needs no network: run it
// inside scripts/netns-run.sh. Exits non-zero if any check fails; prints one line per check.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const dir = resolve(process.argv[2] ?? "");
const project = join(dir, "project");
const tarballs = join(dir, "tarballs");
const root = resolve(import.meta.dirname, "../..");
const require = createRequire(join(root, "package.json"));
const bin = (name) => join(root, "node_modules/.bin", name);
const MAX_BROWSER_GZIP = 15_000;

let failures = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    console.log(`[consumer] ok   ${name}${detail ? `: ${detail}` : ""} (${Date.now() - started} ms)`);
  } catch (error) {
    failures++;
    const text = error?.stderr?.toString() || error?.stdout?.toString() || String(error?.message ?? error);
    console.log(`[consumer] FAIL ${name}: ${text.trim().split("\n").slice(0, 40).join("\n  ")}`);
  }
}

const run = (cmd, args, options = {}) =>
  execFileSync(cmd, args, { cwd: project, encoding: "utf8", stdio: "pipe", timeout: 180_000, ...options });

const deps = JSON.parse(readFileSync(join(project, "package.json"), "utf8")).dependencies;
const names = Object.keys(deps).filter((n) => n === "vidrtc" || n.startsWith("@vidrtc/"));
if (names.length === 0) throw new Error("no vidrtc packages installed in the consumer project");

// 1. Every entry point of every package imports in Node ESM, from the consumer project.
for (const name of names) {
  const pkg = JSON.parse(readFileSync(join(project, "node_modules", name, "package.json"), "utf8"));
  const subpaths = Object.keys(pkg.exports ?? { ".": null }).filter((k) => k !== "./package.json");
  for (const sub of subpaths) {
    const specifier = sub === "." ? name : `${name}${sub.slice(1)}`;
    await check(`import ${specifier}`, () => {
      const out = run(process.execPath, [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(specifier)}); const k = Object.keys(m);
         if (k.length === 0) throw new Error("no exports"); console.log(k.length);`,
      ]);
      return `${out.trim()} exports`;
    });
  }
}

// 2. A consumer file type-checks with nodenext and bundler resolution, skipLibCheck false.
const tsc = join(root, "node_modules/typescript/bin/tsc");
for (const [files, what] of [
  [["consumer-web.ts", "browser-entry.ts"], "@vidrtc/protocol + @vidrtc/browser"],
  [["consumer-node.ts"], "@vidrtc/node + @vidrtc/server + @vidrtc/transport"],
]) {
  for (const [label, compilerOptions] of [
    ["nodenext", { module: "nodenext", moduleResolution: "nodenext" }],
    ["bundler", { module: "esnext", moduleResolution: "bundler" }],
  ]) {
    const file = join(project, `tsconfig.${files[0].replace(/\.ts$/, "")}.${label}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        compilerOptions: {
          ...compilerOptions,
          target: "ES2022",
          lib: ["ES2023", "DOM", "DOM.Iterable"],
          types: files[0] === "consumer-web.ts" ? [] : ["node"],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
        },
        files,
      }),
    );
    await check(`tsc ${what}, moduleResolution ${label}, skipLibCheck false`, () => {
      run(process.execPath, [tsc, "-p", file]);
    });
  }
}

// 3. The browser entry bundles for the browser without Node built-ins or werift, small.
await check(`esbuild browser bundle (no node:*, no werift, gzip < ${MAX_BROWSER_GZIP} B)`, async () => {
  const esbuild = require("esbuild");
  const result = await esbuild.build({
    absWorkingDir: project,
    entryPoints: ["browser-entry.ts"],
    bundle: true,
    platform: "browser",
    format: "esm",
    minify: true,
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(result.metafile.inputs);
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  const bad = inputs.filter((p) => p.includes("werift") || builtins.has(p) || p.startsWith("node:"));
  if (bad.length > 0) throw new Error(`bundle pulls in ${bad.join(", ")}`);
  const vidrtcInputs = inputs.filter((p) => p.includes("@vidrtc"));
  if (
    !vidrtcInputs.some((p) => p.includes("@vidrtc/browser")) ||
    !vidrtcInputs.some((p) => p.includes("@vidrtc/protocol"))
  ) {
    throw new Error(`expected @vidrtc/browser and @vidrtc/protocol in the bundle, got ${inputs.join(", ")}`);
  }
  const gz = gzipSync(result.outputFiles[0].contents, { level: 9 }).length;
  if (gz >= MAX_BROWSER_GZIP) throw new Error(`gzipped bundle is ${gz} B`);
  return `${inputs.length} inputs, ${result.outputFiles[0].contents.length} B minified, ${gz} B gzipped`;
});

// 4. The installed vidrtc-server and `vidrtc run`, end to end (loopback only).
await check("vidrtc-server + vidrtc run end to end", async () => {
  const work = join(dir, "e2e");
  mkdirSync(work, { recursive: true });
  const clip = join(work, "clip.mp4");
  execFileSync(
    "ffmpeg",
    [
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=320x240:rate=10",
      "-t",
      "2",
      "-pix_fmt",
      "yuv420p",
      "-c:v",
      "libx264",
      clip,
    ],
    { timeout: 60_000 },
  );
  const server = spawn(join(project, "node_modules/.bin/vidrtc-server"), ["--port", "0"], {
    cwd: project,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  server.stdout.on("data", (d) => (log += d));
  server.stderr.on("data", (d) => (log += d));
  try {
    const url = await new Promise((resolveUrl, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`vidrtc-server did not start in 30 s:\n${log}`)),
        30_000,
      );
      const poll = setInterval(() => {
        const m = /http:\/\/127\.0\.0\.1:\d+/.exec(log);
        if (m) {
          clearInterval(poll);
          clearTimeout(timer);
          resolveUrl(m[0]);
        }
      }, 50);
      server.once("exit", (code) => {
        clearInterval(poll);
        clearTimeout(timer);
        reject(new Error(`vidrtc-server exited (${code}):\n${log}`));
      });
    });
    const out = join(work, "results.jsonl");
    run(
      join(project, "node_modules/.bin/vidrtc"),
      [
        "run",
        clip,
        "--api-url",
        url,
        "--workflow",
        "frame-stats",
        "--workspace",
        "local",
        "--data-output",
        "*",
        "--jsonl",
        out,
        "--no-progress",
        "--quiet",
      ],
      { timeout: 180_000 },
    );
    const lines = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const frames = new Set(lines.map((l) => l.frameId ?? l.frame_id).filter((f) => f !== undefined));
    if (frames.size !== 20)
      throw new Error(`expected results for 20 frames, got ${frames.size} (${lines.length} lines)`);
    return `${url}, ${frames.size} frames`;
  } finally {
    server.kill("SIGTERM");
  }
});

// Workspace package name -> its src/ directory.
const sourceDirs = new Map(
  readdirSync(join(root, "packages"))
    .filter((d) => existsSync(join(root, "packages", d, "package.json")))
    .map((d) => [
      JSON.parse(readFileSync(join(root, "packages", d, "package.json"), "utf8")).name,
      join(root, "packages", d, "src"),
    ]),
);

// 5. publint and @arethetypeswrong/cli (ESM-only profile) on every tarball.
for (const tgz of readdirSync(tarballs).filter((f) => f.endsWith(".tgz"))) {
  const extracted = join(dir, "extract", tgz.replace(/\.tgz$/, ""));
  mkdirSync(extracted, { recursive: true });
  execFileSync("tar", ["-xzf", join(tarballs, tgz), "-C", extracted]);
  const pkgDir = join(extracted, "package");
  await check(`publint ${tgz}`, () => {
    const out = run(bin("publint"), ["--strict", pkgDir]);
    return out.includes("All good") ? "all good" : out.trim().split("\n").slice(-1)[0];
  });
  await check(`attw --profile esm-only ${tgz}`, () => {
    run(bin("attw"), [join(tarballs, tgz), "--profile", "esm-only", "--format", "ascii"]);
  });
  await check(`tarball contents ${tgz}`, () => {
    const files = execFileSync("tar", ["-tzf", join(tarballs, tgz)], { encoding: "utf8" }).split("\n");
    for (const required of ["package/LICENSE", "package/README.md", "package/package.json"]) {
      if (!files.includes(required)) throw new Error(`missing ${required}`);
    }
    const leaked = files.filter((f) => /test-support|\.test\.[jt]s|\.test\.d\.ts/.test(f));
    if (leaked.length > 0) throw new Error(`test files shipped: ${leaked.join(", ")}`);
    // Every compiled file comes from a source of this tree: a stale dist/ file (of a deleted or
    // renamed source, e.g. restored by turbo's cache) must never reach a tarball.
    const { name } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
    const srcDir = sourceDirs.get(name);
    if (!srcDir) throw new Error(`no workspace package named ${name}`);
    const stale = files
      .filter((f) => /^package\/dist\/.*\.(js|d\.ts)(\.map)?$/.test(f))
      .map((f) => f.slice("package/dist/".length).replace(/\.(js|d\.ts)(\.map)?$/, ""))
      .filter((base) => !existsSync(join(srcDir, `${base}.ts`)));
    if (stale.length > 0) throw new Error(`dist files without a source: ${[...new Set(stale)].join(", ")}`);
    return `${files.filter(Boolean).length} files`;
  });
}

if (!existsSync(join(project, "node_modules/.bin/vidrtc-server"))) failures++;
console.log(failures === 0 ? "[consumer] all checks passed" : `[consumer] ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
