/**
 * Builds the app with Vite, serves the build from vidrtc-server (--static-dir, same origin as
 * the API), and drives it in headless Chromium: pick a generated video in the file input, wait
 * for the page to finish, then check the upload progress reads 100 %, the results list has one
 * item per frame (ffprobe's count, ids 1..n), and the <video> presented frames of the processed
 * video at the source's size.
 *
 * Chromium is Debian's /usr/bin/chromium (or $VIDRTC_CHROMIUM) through playwright-core, started
 * as apps/e2e starts it: no background traffic, loopback ICE candidates allowed. Run inside the
 * network namespace: `bash scripts/netns-run.sh pnpm --filter @vidrtc-examples/browser-vite start`.
 */
import { access, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build } from "vite";
import { Checks, countFrames, makeTestVideo, startServer, tempDir } from "../../runner/runner.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PAGE_BOUND_MS = 120_000;
const FRAMES = 60;
const SIZE = "320x240";

/**
 * The switches apps/e2e/src/support/chromium.ts explains: loopback host candidates not hidden
 * behind mDNS names, headless, no sandbox (root in CI), no GPU, no background traffic. Chromium
 * honours only the last --disable-features, so it repeats Playwright's own list.
 */
const CHROMIUM_FLAGS = [
  "--allow-loopback-in-peer-connection",
  `--disable-features=${[
    "WebRtcHideLocalIpsWithMdns",
    "NetworkTimeServiceQuerying",
    "OptimizationHints",
    "AimEnabled",
    "PreconnectToSearch",
    "MediaRouter",
    "LensOverlay",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
  ].join(",")}`,
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const checks = new Checks("browser-vite");
const tmp = await tempDir("browser-vite");
const dist = join(tmp.dir, "dist");
await build({ root: ROOT, logLevel: "warn", build: { outDir: dist, emptyOutDir: true } });
const assets = await readdir(join(dist, "assets"));
checks.check(
  (await exists(join(dist, "index.html"))) && assets.some((f) => f.endsWith(".js")),
  `vite build wrote index.html and a bundle (${assets.join(", ")})`,
);

const video = join(tmp.dir, "clip.mp4");
await makeTestVideo(video, FRAMES, SIZE, 15);
const frames = await countFrames(video);
const server = await startServer(["--static-dir", dist]);
const profile = await mkdtemp(join(tmpdir(), "vidrtc-example-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.VIDRTC_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_FLAGS,
  timeout: 60_000,
});
try {
  // Without a media permission Chromium gathers no host candidate on a loopback-only machine
  // (no device is opened).
  await browser.grantPermissions(["camera", "microphone"], { origin: server.url });
  const page = await browser.newPage();
  page.on("console", (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
  await page.goto(server.url);
  checks.check(
    (await page.textContent("#percent")) === "0 %" && (await page.textContent("#count")) === "0",
    "the page loads with 0 % and no results",
  );

  await page.setInputFiles("#file", video);
  await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state ?? ""), undefined, {
    timeout: PAGE_BOUND_MS,
    polling: 100,
  });
  // No named functions inside evaluate(): tsx's keepNames would reference a helper the page lacks.
  const out = await page.evaluate(() => ({
    state: document.body.dataset.state,
    status: document.getElementById("status")?.textContent ?? "",
    progress: (document.getElementById("progress") as HTMLProgressElement).value,
    percent: document.getElementById("percent")?.textContent ?? "",
    count: document.getElementById("count")?.textContent ?? "",
    ids: [...document.querySelectorAll<HTMLLIElement>("#results li")].map((li) => Number(li.dataset.frameId)),
    motion: [...document.querySelectorAll("#results li")].every((li) =>
      / motion \d/.test(li.textContent ?? ""),
    ),
    framesShown: Number(document.getElementById("frames-shown")?.textContent),
    size: document.getElementById("frames-shown")?.dataset.size ?? "",
  }));
  checks.check(out.state === "done", `the page reaches "done" (${out.state}: ${out.status})`);
  checks.check(
    out.progress === 100 && out.percent === "100 %",
    `upload progress reads 100 % (got ${out.progress}, "${out.percent}")`,
  );
  checks.check(
    out.ids.length === frames && out.ids.every((id, i) => id === i + 1) && out.count === String(frames),
    `results list: ${out.ids.length} items = ffprobe's ${frames} frames, ids 1..${frames}, count "${out.count}"`,
  );
  checks.check(out.motion, "every item shows the motion workflow's score");
  checks.check(
    out.status.includes(`${frames} frames processed`),
    `status says "${frames} frames processed" (${out.status})`,
  );
  checks.check(
    out.framesShown > 0 && out.size === SIZE,
    `the <video> presented ${out.framesShown} processed frames at ${out.size} (source ${SIZE})`,
  );
} finally {
  await browser.close();
  await rm(profile, { recursive: true, force: true, maxRetries: 3 });
  await server.stop();
  await tmp.remove();
}
process.exitCode = checks.finish();

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
