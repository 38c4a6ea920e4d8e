/**
 * The DataChannelLike contract (packages/transport/src/test-support/contract.ts) for the browser
 * adapter, in Chromium: two RTCPeerConnections in one page, connected on 127.0.0.1, each end
 * wrapped with `fromRTCDataChannel`. The page runs the same checks and reports what it saw: open
 * on both ends, binary as Uint8Array and text as string in order both ways, bufferedAmount and the
 * low event, max message size (a send above it throws, the channel stays usable), close surfaced
 * on both ends and sends refused afterwards. The browser adapter throws the browser's own errors
 * (TypeError / InvalidStateError), not VidrtcErrors.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_DIST, ensureDemoBuilt, launchWebRtcChromium } from "./support/browser-harness.js";
import type { ChromiumSession } from "./support/chromium.js";
import { startTestServer, type TestServer } from "./support/server.js";

let chromium: ChromiumSession;
let server: TestServer;
let page: Page;

beforeAll(async () => {
  await ensureDemoBuilt();
  chromium = await launchWebRtcChromium();
  server = await startTestServer({ staticDir: DEMO_DIST });
  page = await chromium.newPage();
  await page.goto(`${server.url}/test.html`);
  await page.waitForFunction(() => typeof (window as unknown as { vidrtc?: unknown }).vidrtc === "object");
});

afterAll(async () => {
  await page?.close().catch(() => {});
  await chromium?.close();
  await server?.close();
});

describe("DataChannelLike contract: @vidrtc/browser in Chromium", () => {
  it("holds for fromRTCDataChannel on both ends of a local pair", async () => {
    const report = await page.evaluate(async () => {
      type Ch = {
        label: string;
        readyState: string;
        bufferedAmount: number;
        bufferedAmountLowThreshold: number;
        maxMessageSize: number;
        send(d: Uint8Array | string): void;
        close(): void;
        on(t: string, l: (e: unknown) => void): () => void;
      };
      const v = (
        window as unknown as { vidrtc: { fromRTCDataChannel(dc: RTCDataChannel, pc: RTCPeerConnection): Ch } }
      ).vidrtc;
      const bound = <T>(p: Promise<T>, what: string, ms = 15_000) =>
        Promise.race([
          p,
          new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms)),
        ]);
      const once = (ch: Ch, type: string) =>
        bound(
          new Promise<unknown>((resolve) => {
            const off = ch.on(type, (e) => {
              off();
              resolve(e);
            });
          }),
          `${type} on ${ch.label}`,
        );
      const collect = (ch: Ch, n: number) =>
        bound(
          new Promise<(Uint8Array | string)[]>((resolve) => {
            const got: (Uint8Array | string)[] = [];
            const off = ch.on("message", (e) => {
              got.push((e as { data: Uint8Array | string }).data);
              if (got.length === n) {
                off();
                resolve(got);
              }
            });
          }),
          `${n} messages on ${ch.label}`,
        );
      const gathered = (pc: RTCPeerConnection) =>
        bound(
          new Promise<void>((resolve) => {
            if (pc.iceGatheringState === "complete") resolve();
            pc.addEventListener("icegatheringstatechange", () => {
              if (pc.iceGatheringState === "complete") resolve();
            });
          }),
          "gathering",
        );
      async function pair(label: string) {
        const a = new RTCPeerConnection();
        const b = new RTCPeerConnection();
        const dcA = a.createDataChannel(label, { ordered: true });
        const remote = new Promise<RTCDataChannel>((resolve) =>
          b.addEventListener("datachannel", (e) => resolve(e.channel)),
        );
        await a.setLocalDescription(await a.createOffer());
        await gathered(a);
        await b.setRemoteDescription(a.localDescription!);
        await b.setLocalDescription(await b.createAnswer());
        await gathered(b);
        await a.setRemoteDescription(b.localDescription!);
        const local = v.fromRTCDataChannel(dcA, a);
        if (local.readyState !== "open") await once(local, "open");
        const dcB = await bound(remote, "remote channel");
        const far = v.fromRTCDataChannel(dcB, b);
        if (far.readyState !== "open") await once(far, "open");
        return { local, far, close: () => (a.close(), b.close()) };
      }
      const throws = (fn: () => void) => {
        try {
          fn();
          return null;
        } catch (e) {
          return e instanceof Error ? e.name : String(e);
        }
      };
      const out: Record<string, unknown> = {};

      // 1. open, labels, message types and order, both ways
      {
        const { local, far, close } = await pair("inference");
        out.states = [local.readyState, far.readyState, local.label, far.label];
        const atFar = collect(far, 3);
        local.send(new Uint8Array([1, 2, 3]));
        local.send("héllo ✓");
        local.send(new Uint8Array(48 * 1024).fill(7));
        const [x, y, z] = await atFar;
        out.binary = x instanceof Uint8Array ? [...x] : typeof x;
        out.text = y;
        out.big = z instanceof Uint8Array && z.byteLength === 48 * 1024 && z.every((n) => n === 7);
        const atLocal = collect(local, 2);
        far.send('{"ack":1}');
        far.send(new Uint8Array([9]));
        const [p, q] = await atLocal;
        out.back = [p, q instanceof Uint8Array ? [...q] : typeof q];
        close();
      }
      // 2. buffered amount and low event
      {
        const { local, far, close } = await pair("video_upload");
        local.bufferedAmountLowThreshold = 64 * 1024;
        let received = 0;
        far.on("message", () => received++);
        const low = once(local, "bufferedamountlow");
        let peak = 0;
        let sent = 0;
        while (peak <= 256 * 1024 && sent < 256) {
          local.send(new Uint8Array(48 * 1024));
          sent++;
          peak = Math.max(peak, local.bufferedAmount);
        }
        await low;
        out.buffer = { peak, afterLow: local.bufferedAmount, threshold: local.bufferedAmountLowThreshold };
        const deadline = Date.now() + 15_000;
        while (received < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        out.delivered = [received, sent];
        close();
      }
      // 3. max message size
      {
        const { local, far, close } = await pair("inference");
        const max = local.maxMessageSize;
        out.max = max;
        out.tooLarge = Number.isFinite(max) ? throws(() => local.send(new Uint8Array(max + 1))) : "unbounded";
        const next = once(far, "message");
        local.send("still open");
        out.afterTooLarge = ((await next) as { data: string }).data;
        close();
      }
      // 4. close surfaced on both ends; sends refused afterwards
      {
        const { local, far, close } = await pair("inference");
        const closed = Promise.all([once(local, "close"), once(far, "close")]);
        local.close();
        await closed;
        out.closed = [local.readyState, far.readyState];
        out.sendAfterClose = [throws(() => local.send("x")), throws(() => far.send("x"))];
        close();
      }
      // 5. close from the remote end
      {
        const { local, far, close } = await pair("video_upload");
        const closed = once(local, "close");
        far.close();
        await closed;
        out.remoteClose = local.readyState;
        close();
      }
      return out;
    });
    expect(report.states).toEqual(["open", "open", "inference", "inference"]);
    expect(report.binary).toEqual([1, 2, 3]);
    expect(report.text).toBe("héllo ✓");
    expect(report.big).toBe(true);
    expect(report.back).toEqual(['{"ack":1}', [9]]);
    const buffer = report.buffer as { peak: number; afterLow: number; threshold: number };
    expect(buffer.peak).toBeGreaterThan(4 * buffer.threshold);
    expect(buffer.afterLow).toBeLessThanOrEqual(buffer.threshold);
    const [received, sent] = report.delivered as [number, number];
    expect(received).toBe(sent);
    expect(report.max as number).toBeGreaterThanOrEqual(16 * 1024);
    expect(report.tooLarge).not.toBeNull();
    expect(report.afterTooLarge).toBe("still open");
    expect(report.closed).toEqual(["closed", "closed"]);
    expect(report.sendAfterClose).toEqual(["InvalidStateError", "InvalidStateError"]);
    expect(report.remoteClose).toBe("closed");
  });
});
