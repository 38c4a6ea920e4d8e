/**
 * Keys off browsers: Chromium loads a page from a backend that serves the demo bundle and mounts
 * `@vidrtc/server/proxy` at /api/vidrtc; the backend forwards the offer to a `vidrtc-server`
 * started with `--api-key`. The page talks HTTP only to the backend, WebRTC to the server, and
 * never holds or sees the key. Run inside an isolated network namespace:
 * `bash scripts/netns-run.sh pnpm --filter @vidrtc/e2e exec vitest run src/proxy.test.ts`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as Vidrtc from "@vidrtc/browser";
import { createSignallingProxy } from "@vidrtc/server/proxy";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  DEMO_DIST,
  ensureDemoBuilt,
  installWireTap,
  launchWebRtcChromium,
  readWireTap,
} from "./support/browser-harness.js";
import type { ChromiumSession } from "./support/chromium.js";
import { frameCount, motionVideo } from "./support/fixtures.js";
import { type LocalHttpServer, startHttpServer } from "./support/http.js";

declare global {
  interface Window {
    vidrtc: typeof Vidrtc;
  }
}

const require = createRequire(import.meta.url);
const serverBin = join(dirname(require.resolve("@vidrtc/server/package.json")), "dist", "cli.js");
const KEY = `rf_e2e_${process.pid}_d0n0tl3ak_${Date.now().toString(36)}`;

let chromium: ChromiumSession;
let server: { url: string; child: ChildProcess; stderr: string[] };
let backend: LocalHttpServer;
let page: Page | null = null;
const proxyLogs: string[] = [];
const consoleLines: string[] = [];

/** Starts `vidrtc-server --api-key KEY --port 0` and resolves with its URL from the ready line. */
async function startKeyedServer(): Promise<typeof server> {
  const child = spawn(process.execPath, [serverBin, "--port", "0", "--api-key", KEY], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stderr: string[] = [];
  child.stderr!.on("data", (d) => stderr.push(String(d)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`vidrtc-server did not start: ${stderr.join("")}`)),
      20_000,
    );
    child.once("exit", (code) => reject(new Error(`vidrtc-server exited with ${code}: ${stderr.join("")}`)));
    child.stdout!.on("data", (d) => {
      out += String(d);
      const m = /ready: (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  return { url, child, stderr };
}

beforeAll(async () => {
  await ensureDemoBuilt();
  server = await startKeyedServer();
  const proxy = createSignallingProxy({ apiUrl: server.url, apiKey: KEY, onLog: (l) => proxyLogs.push(l) });
  const file = (name: string, contentType: string) => ({ file: `${DEMO_DIST}${name}`, contentType });
  backend = await startHttpServer(
    {
      "/": file("index.html", "text/html"),
      "/demo.js": file("demo.js", "text/javascript"),
      "/style.css": file("style.css", "text/css"),
      "/test.html": file("test.html", "text/html"),
      "/vidrtc.js": file("vidrtc.js", "text/javascript"),
    },
    (req, res) => {
      if (new URL(req.url ?? "/", "http://x").pathname === "/api/vidrtc") void proxy.node(req, res);
      else res.writeHead(404).end();
    },
  );
  chromium = await launchWebRtcChromium({ onConsole: (line) => consoleLines.push(line) });
});

afterAll(async () => {
  await chromium?.close();
  await backend?.close();
  if (server?.child.exitCode === null) {
    const exited = new Promise((resolve) => server.child.once("exit", resolve));
    server.child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    server.child.kill("SIGKILL");
  }
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail") {
    console.log(`[browser console]\n${consoleLines.slice(-40).join("\n")}\n[proxy]\n${proxyLogs.join("\n")}`);
    console.log(`[vidrtc-server stderr]\n${server.stderr.join("").slice(-4000)}`);
  }
  consoleLines.length = 0;
  await page?.close().catch(() => {});
  page = null;
});

/** Everything the page sent and received over HTTP, bodies included. */
function recordHttp(p: Page) {
  const seen: Array<{
    url: string;
    method: string;
    requestBody: string;
    status: number;
    body: Promise<string>;
  }> = [];
  p.on("response", (response) => {
    const request = response.request();
    seen.push({
      url: response.url(),
      method: request.method(),
      requestBody: request.postData() ?? "",
      status: response.status(),
      body: response.text().catch(() => ""),
    });
  });
  return seen;
}

describe("@vidrtc/browser through a signalling proxy (vidrtc-server --api-key)", () => {
  it("the server refuses keyless signalling, so only the proxy can have added the key", async () => {
    const response = await fetch(`${server.url}/initialise_webrtc_worker`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ webrtc_offer: { type: "offer", sdp: "v=0\r\n" } }),
    });
    expect(response.status).toBe(401);
  });

  it("uploads, gets one result per frame, and the page never sees the key", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 });
    const frames = await frameCount(video.path);
    page = await chromium.newPage();
    await installWireTap(page);
    const http = recordHttp(page);
    await page.goto(`${backend.url}/test.html`);
    await page.waitForFunction(() => typeof window.vidrtc === "object");
    await page.setInputFiles("#file", video.path);

    const out = await page.evaluate(async () => {
      const file = (document.getElementById("file") as HTMLInputElement).files![0]!;
      const client = new window.vidrtc.InferenceClient({ proxyUrl: "/api/vidrtc" });
      const session = await client.webrtc.stream({
        source: file,
        workflow: "frame-stats",
        dataOutput: ["*"],
      });
      const ids: number[] = [];
      const summary = await session.run({
        onData: (r) => {
          if (typeof (r.outputs.stats as { brightness?: unknown } | undefined)?.brightness === "number") {
            ids.push(r.frameId);
          }
        },
      });
      const uploaded = await session.uploaded;
      // And the key cannot be handed to the browser client alongside a proxy.
      const keyed = await new window.vidrtc.InferenceClient({ proxyUrl: "/api/vidrtc", apiKey: "k" }).webrtc
        .stream({ source: file, workflow: "frame-stats" })
        .then(() => "connected")
        .catch((e: { code?: string }) => e.code);
      return { ids, summary, uploadedBytes: uploaded.bytes, size: file.size, keyed };
    });

    expect(out.uploadedBytes).toBe(out.size);
    expect(out.ids).toEqual(Array.from({ length: frames }, (_, i) => i + 1));
    expect(out.summary.framesProcessed).toBe(frames);
    expect(out.summary.resultsReceived).toBe(frames);
    expect(out.keyed).toBe("INVALID_OPTIONS");

    // HTTP: only the backend's origin, the proxy's GET (ICE) and POST (offer), no key anywhere.
    const exchanges = await Promise.all(http.map(async (h) => ({ ...h, body: await h.body })));
    expect(exchanges.every((h) => h.url.startsWith(`${backend.url}/`))).toBe(true);
    const signalling = exchanges.filter((h) => h.url === `${backend.url}/api/vidrtc`);
    expect(signalling.filter((h) => h.method === "GET" && h.status === 200).length).toBeGreaterThanOrEqual(1);
    expect(signalling.filter((h) => h.method === "POST" && h.status === 200).length).toBeGreaterThanOrEqual(
      1,
    );
    for (const h of exchanges) {
      expect(h.body).not.toContain(KEY);
      expect(h.requestBody).not.toContain(KEY);
      expect(h.requestBody).not.toContain("api_key");
    }
    const wire = await readWireTap(page);
    expect(wire.some((m) => m.text?.includes(KEY))).toBe(false);
    expect(await page.content()).not.toContain(KEY);
    expect(proxyLogs.join("\n")).not.toContain(KEY);
  });

  it("the demo page runs through the proxy with ?proxy=/api/vidrtc", async () => {
    const video = await motionVideo({ seconds: 2, fps: 15 });
    page = await chromium.newPage();
    const http = recordHttp(page);
    await page.goto(`${backend.url}/?proxy=/api/vidrtc`);
    await expect.poll(() => page!.getAttribute("#server-status", "data-ok")).toBe("yes");
    await page.setInputFiles("#file", video.path);
    await page.selectOption("#workflow", "motion");
    await page.click("#start");
    await page.waitForFunction(
      () => ["done", "error"].includes(document.body.dataset.state ?? ""),
      undefined,
      {
        timeout: 120_000,
      },
    );
    const error = await page.textContent("#error");
    expect(await page.getAttribute("body", "data-state"), error ?? "").toBe("done");
    expect(await page.locator("#results li").count()).toBe(video.frames);
    const exchanges = await Promise.all(http.map(async (h) => ({ ...h, body: await h.body })));
    expect(exchanges.every((h) => h.url.startsWith(`${backend.url}/`))).toBe(true);
    for (const h of exchanges) expect(h.body).not.toContain(KEY);
  });
});
