/**
 * Hostile and broken peers against a real @vidrtc/server over real werift WebRTC (inside the
 * network namespace, see setup/global.ts): an HLS playlist naming another local video, an offer
 * with 3000 m-sections while /healthz is timed, malformed offers and cross-origin browsers that
 * must not take a session slot, and a fuzz run of the signalling endpoint.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { loopbackIceOptions } from "@vidrtc/node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RTCPeerConnection } from "werift";
import { tinyVideo } from "./support/fixtures.js";
import { initialiseBody } from "./support/http.js";
import { RawClient } from "./support/raw-client.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const run = promisify(execFile);

async function post(
  url: string,
  body: string | Record<string, unknown>,
  headers: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<{ status: number; text: string; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${url}/initialise_webrtc_worker`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - started };
}

/** A real werift offer (both channels, loopback ICE, gathering complete); the peer is then closed. */
async function realOffer(): Promise<string> {
  const pc = new RTCPeerConnection({ ...loopbackIceOptions() });
  try {
    pc.createDataChannel("inference", { ordered: true });
    pc.createDataChannel("video_upload", { ordered: true });
    await pc.setLocalDescription(await pc.createOffer());
    await eventually(() => pc.iceGatheringState === "complete", 5_000, "ICE gathering complete");
    const sdp = pc.localDescription?.sdp;
    if (!sdp) throw new Error("werift produced no offer");
    return sdp;
  } finally {
    await pc.close();
  }
}

describe("hardening against hostile peers", () => {
  let server: TestServer;
  let offer: string;
  beforeAll(async () => {
    server = await startTestServer({ idleTimeoutMs: 5_000, lingerMs: 1_000, maxSessions: 4 });
    offer = await realOffer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("an uploaded HLS playlist naming a real video on the machine gives a typed error and none of its frames", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vidrtc-e2e-hls-"));
    try {
      // The "other file": a real, decodable 40-frame video, at an absolute path on this machine.
      const secret = join(dir, "s.ts");
      await run("ffmpeg", [
        ...["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-t", "4"],
        ...["-pix_fmt", "yuv420p", "-f", "mpegts", secret],
      ]);
      const playlist = join(dir, "upload.m3u8");
      await writeFile(
        playlist,
        `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${secret}\n#EXT-X-ENDLIST\n`,
      );
      const bytes = (await stat(playlist)).size;
      expect(bytes).toBeLessThan(200);
      console.log(`[hardening] HLS playlist upload: ${bytes} bytes naming ${secret}`);
      const since = server.events.length;
      const client = await RawClient.connect({ url: server.url });
      try {
        await client.uploadFile(playlist);
        const complete = await client.waitComplete(30_000);
        const errors = client.results.flatMap((r) => r.output.errors);
        expect(errors.join(" ")).toMatch(/not a decodable video/);
        expect(errors.join(" ")).toMatch(/whitelist|not allowed/);
        // Not one frame of the other file came back.
        expect(client.frames.every((r) => r.output.errors.length > 0)).toBe(true);
        expect(client.frames.length).toBeLessThanOrEqual(1);
        expect(complete.output.video_metadata?.frame_id).toBe(0);
        expect(complete.output.termination_reason).toBeTruthy();
        const upload = server.events.slice(since).find((e) => e.type === "upload-complete");
        expect(upload).toBeDefined();
      } finally {
        await client.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("an offer with 3000 m=video lines gets a 4xx at once while /healthz stays responsive", async () => {
    const section = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v\r\na=recvonly\r\n";
    const sdp = offer + section.repeat(3000);
    expect(sdp.length).toBeGreaterThan(200 * 1024);
    let worst = 0;
    let polls = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t = performance.now();
        const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
        await res.text();
        worst = Math.max(worst, performance.now() - t);
        polls++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 100));
      const res = await post(server.url, initialiseBody(sdp));
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.text).toMatch(/media sections|bytes|lines/);
      expect(res.ms).toBeLessThan(2_000);
      await new Promise((r) => setTimeout(r, 200));
      console.log(
        `[hardening] 3000 m-line offer (${(sdp.length / 1024).toFixed(0)} KiB): HTTP ${res.status} in ${res.ms.toFixed(0)} ms; /healthz worst ${worst.toFixed(0)} ms over ${polls} polls`,
      );
    } finally {
      polling = false;
      await poller;
    }
    expect(polls).toBeGreaterThan(2);
    expect(worst).toBeLessThan(1_000);
    expect(server.sessions).toBe(0);
  });

  it("malformed offers (v=0 alone, binary junk) are refused at once and never hold a slot", async () => {
    for (const sdp of [
      "v=0",
      "v=0\r\n",
      `v=0\r\n${"\u0000\u0001\u00fe\u00ff".repeat(64)}`,
      offer.slice(0, 40),
    ]) {
      const res = await post(server.url, initialiseBody(sdp));
      expect(res.status).toBe(400);
      expect(res.ms).toBeLessThan(1_000);
      expect(server.sessions).toBe(0);
    }
  });

  it("text/plain bodies are refused (no CORS simple request can start a session)", async () => {
    const res = await post(server.url, initialiseBody(offer), { "content-type": "text/plain;charset=UTF-8" });
    expect(res.status).toBe(415);
    expect(server.sessions).toBe(0);
  });

  it("beyond loopback, or with an API key: other origins get no CORS and no session; unauthenticated POSTs take no slot", async () => {
    // 0.0.0.0 inside the test's network namespace: only loopback is up there.
    const wide = await startTestServer({ host: "0.0.0.0", maxSessions: 1, idleTimeoutMs: 5_000 });
    const keyed = await startTestServer({ apiKey: "k-123", maxSessions: 1, idleTimeoutMs: 5_000 });
    try {
      const url = `http://127.0.0.1:${wide.port}`;
      const pre = await fetch(`${url}/initialise_webrtc_worker`, {
        method: "OPTIONS",
        headers: { origin: "http://evil.test", "access-control-request-method": "POST" },
      });
      expect(pre.headers.get("access-control-allow-origin")).toBeNull();
      const fromPage = await post(url, initialiseBody(offer), { origin: "http://evil.test" });
      expect(fromPage.status).toBe(403);
      expect(wide.sessions).toBe(0);
      // A non-browser client (no Origin) still gets a session.
      const client = await RawClient.connect({ url });
      await client.close();
      await eventually(() => wide.sessions === 0, 15_000, "the session ended");

      for (let i = 0; i < 3; i++) {
        const res = await post(keyed.url, initialiseBody(offer));
        expect(res.status).toBe(401);
        expect(res.text).not.toContain("a=ice-pwd");
      }
      expect(keyed.sessions).toBe(0);
      const authed = await RawClient.connect({ url: keyed.url, request: { apiKey: "k-123" } });
      expect(keyed.sessions).toBe(1);
      await authed.close();
    } finally {
      await wide.close();
      await keyed.close();
    }
  });

  it("processing_timeout past the 32-bit timer range is honoured, not fired after 1 ms: the session runs to the end", async () => {
    const video = await tinyVideo();
    // 2147484 s is the first whole second past 2^31 - 1 ms; the others are far past it.
    for (const seconds of [2_147_484, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const since = server.events.length;
      const client = await RawClient.connect({
        url: server.url,
        ackDelayMs: 0,
        request: { processingTimeoutSeconds: seconds },
      });
      try {
        // Well past the 1 ms a plain setTimeout would have waited: the channels are open and stay so.
        await new Promise((r) => setTimeout(r, 100));
        expect(client.inference.readyState).toBe("open");
        await client.uploadFile(video.path);
        const complete = await client.waitComplete(30_000);
        expect(complete.output.termination_reason).toBeNull();
        expect(complete.output.errors).toEqual([]);
        expect(client.frames.length).toBe(video.frames);
        const events = server.events.slice(since);
        expect(events.some((e) => e.type === "error")).toBe(false);
        expect(
          events.some((e) => e.type === "processing-complete" && e.terminationReason === "timeout_reached"),
        ).toBe(false);
        console.log(
          `[hardening] processing_timeout ${seconds} s: ${client.frames.length}/${video.frames} frames, termination ${complete.output.termination_reason}`,
        );
      } finally {
        await client.close();
      }
      await eventually(() => server.sessions === 0, 15_000, "the session ended");
    }
  });

  it("fuzz: random and mutated bodies and offers are each answered within 1 s with 2xx/4xx, never 5xx", async () => {
    const lines = offer.split("\r\n").filter((l) => l.length > 0);
    const mutatedSdp = fc.oneof(
      // drop, duplicate or replace lines of a real offer
      fc
        .array(fc.nat({ max: lines.length - 1 }), { minLength: 1, maxLength: 4 })
        .map((drop) => `${lines.filter((_, i) => !drop.includes(i)).join("\r\n")}\r\n`),
      fc
        .tuple(fc.nat({ max: lines.length - 1 }), fc.string({ maxLength: 80 }))
        .map(([i, text]) => `${lines.map((l, j) => (j === i ? text : l)).join("\r\n")}\r\n`),
      fc
        .tuple(fc.nat({ max: lines.length - 1 }), fc.nat({ max: 40 }))
        .map(
          ([i, n]) =>
            `${[...lines.slice(0, i + 1), ...Array(n).fill(lines[i]), ...lines.slice(i + 1)].join("\r\n")}\r\n`,
        ),
      fc.nat({ max: offer.length }).map((n) => offer.slice(0, n)),
      fc.uint8Array({ maxLength: 2048 }).map((b) => `v=0\r\n${Buffer.from(b).toString("latin1")}`),
      fc.string({ maxLength: 400 }),
    );
    const mutatedBody = fc.oneof(
      { arbitrary: mutatedSdp.map((sdp) => JSON.stringify(initialiseBody(sdp))), weight: 6 },
      fc
        .tuple(
          fc.constantFrom(
            "workflow_configuration",
            "webrtc_offer",
            "stream_output",
            "data_output",
            "webrtc_config",
            "processing_timeout",
            "declared_fps",
            "webrtc_realtime_processing",
            "api_key",
          ),
          fc.jsonValue({ maxDepth: 4 }),
        )
        .map(([key, value]) => JSON.stringify(initialiseBody(offer, { [key]: value }))),
      fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 300 }),
      fc.nat({ max: 200 }).map((n) => JSON.stringify(initialiseBody(offer)).slice(0, n)),
    );
    const fuzzServer = await startTestServer({ maxSessions: 64, idleTimeoutMs: 3_000, lingerMs: 500 });
    const statuses = new Map<number, number>();
    let slowest = 0;
    const started = performance.now();
    try {
      await fc.assert(
        fc.asyncProperty(mutatedBody, async (text) => {
          const res = await post(fuzzServer.url, text, {}, 1_000);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          slowest = Math.max(slowest, res.ms);
          expect(res.status).toBeLessThan(500);
          expect(res.status === 200 || (res.status >= 400 && res.status < 500)).toBe(true);
          expect(res.ms).toBeLessThan(1_000);
          expect(res.text.length).toBeLessThan(64 * 1024);
        }),
        { numRuns: 300, interruptAfterTimeLimit: 90_000, seed: 20261203 },
      );
      const health = await fetch(`${fuzzServer.url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      expect(health.status).toBe(200);
      console.log(
        `[hardening] fuzz: ${[...statuses.values()].reduce((a, b) => a + b, 0)} requests in ${((performance.now() - started) / 1000).toFixed(1)} s, statuses ${JSON.stringify(Object.fromEntries(statuses))}, slowest ${slowest.toFixed(0)} ms`,
      );
      // Sessions that did start (valid mutations) end on their own; nothing is left behind.
      await eventually(
        async () => fuzzServer.sessions === 0 && (await fuzzServer.tempFiles()).length === 0,
        30_000,
        "fuzz sessions ended and temp dir empty",
      );
    } finally {
      await fuzzServer.close();
    }
  });
});
