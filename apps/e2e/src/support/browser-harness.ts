/**
 * Helpers for driving @vidrtc/browser in Chromium: where the built demo bundle lives, a
 * launcher that lets WebRTC use 127.0.0.1 host candidates, and an in-page wire tap that records
 * what crosses the result channel (for gzip and ACK-pacing checks).
 */
import { access } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { type ChromiumSession, type LaunchChromiumOptions, launchChromium } from "./chromium.js";

/** `packages/browser/demo-dist/`: the demo page, `vidrtc.js` (window.vidrtc) and `test.html`. */
export const DEMO_DIST = fileURLToPath(new URL("../../../../packages/browser/demo-dist/", import.meta.url));

/** Throws a readable error when the demo bundle has not been built. */
export async function ensureDemoBuilt(): Promise<void> {
  for (const file of ["index.html", "demo.js", "vidrtc.js", "test.html"]) {
    try {
      await access(`${DEMO_DIST}${file}`);
    } catch {
      throw new Error(
        `packages/browser/demo-dist/${file} is missing: build it with \`pnpm --filter @vidrtc/browser build\` (or \`pnpm build\`).`,
      );
    }
  }
}

/**
 * Launches Chromium for WebRTC tests. Besides the harness flags, the context is granted camera
 * and microphone permission: without a media permission Chromium does not enumerate network
 * interfaces for WebRTC (it would offer only mDNS names, which the flags turn off), so it would
 * gather no candidate at all on a loopback-only machine.
 */
export async function launchWebRtcChromium(options: LaunchChromiumOptions = {}): Promise<ChromiumSession> {
  const chromium = await launchChromium(options);
  try {
    await chromium.context.grantPermissions(["camera", "microphone"]);
  } catch (error) {
    await chromium.close();
    throw error;
  }
  return chromium;
}

/** One message seen on a data channel in the page. */
export interface TappedMessage {
  /** `performance.now()` in the page. */
  t: number;
  /** `"in"` = received from the server, `"out"` = sent by the page. */
  dir: "in" | "out";
  label: string;
  bytes: number;
  /** Binary result-channel messages: the 12-byte header's frame id and chunk index. */
  frameId?: number;
  chunkIndex?: number;
  /** First chunk of a result whose payload starts with the gzip magic bytes. */
  gzip?: boolean;
  /** Text messages (ACKs). */
  text?: string;
}

/**
 * Installs, before any page script runs, a tap on every `RTCDataChannel` the page creates:
 * incoming messages and outgoing text messages are recorded in `window.__wire`. Passive: it
 * neither changes nor delays traffic.
 */
export async function installWireTap(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const log: unknown[] = [];
    (window as unknown as { __wire: unknown[] }).__wire = log;
    const create = RTCPeerConnection.prototype.createDataChannel;
    RTCPeerConnection.prototype.createDataChannel = function (this: RTCPeerConnection, ...args) {
      const dc = create.apply(this, args as Parameters<typeof create>);
      const label = dc.label;
      dc.addEventListener("message", (event: MessageEvent) => {
        const t = performance.now();
        const data: unknown = event.data;
        if (typeof data === "string") {
          log.push({ t, dir: "in", label, bytes: data.length, text: data });
        } else if (data instanceof ArrayBuffer) {
          const b = new Uint8Array(data);
          const entry: Record<string, unknown> = { t, dir: "in", label, bytes: b.byteLength };
          if (label === "inference" && b.byteLength >= 12) {
            const v = new DataView(data);
            entry.frameId = v.getUint32(0, true);
            entry.chunkIndex = v.getUint32(4, true);
            if (entry.chunkIndex === 0) entry.gzip = b[12] === 0x1f && b[13] === 0x8b;
          }
          log.push(entry);
        }
      });
      const send = dc.send;
      dc.send = function (this: RTCDataChannel, data: never) {
        if (typeof data === "string")
          log.push({ t: performance.now(), dir: "out", label, bytes: (data as string).length, text: data });
        return send.call(this, data);
      } as typeof dc.send;
      return dc;
    };
  });
}

/** The messages recorded by {@link installWireTap}. */
export function readWireTap(page: Page): Promise<TappedMessage[]> {
  return page.evaluate(() => (window as unknown as { __wire: TappedMessage[] }).__wire);
}
