/**
 * The e2e harness itself: network isolation, ffmpeg fixtures, and Chromium with loopback WebRTC.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { UPLOAD_CHUNK_SIZE } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_FLAGS, type ChromiumSession, launchChromium } from "./support/chromium.js";
import {
  emptyFile,
  exactMultipleFile,
  frameCount,
  largeVideo,
  motionVideo,
  randomFile,
  sha256File,
  tinyVideo,
} from "./support/fixtures.js";
import { type LocalHttpServer, startHttpServer } from "./support/http.js";
import { assertIsolatedNetwork, classifyLinks, type IpLink, inspectNetwork } from "./support/netns.js";

const lo: IpLink = {
  ifname: "lo",
  flags: ["LOOPBACK", "UP", "LOWER_UP"],
  link_type: "loopback",
  addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }],
};

function vethPair(address: string, peerNetns?: number): IpLink[] {
  const a: IpLink = {
    ifname: "vnic0",
    link: "vnic0peer",
    flags: ["BROADCAST", "UP", "LOWER_UP"],
    link_type: "ether",
    linkinfo: { info_kind: "veth" },
    addr_info: [
      { family: "inet", local: address, prefixlen: 24, scope: "global" },
      { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" },
    ],
  };
  const b: IpLink = {
    ifname: "vnic0peer",
    link: "vnic0",
    flags: ["BROADCAST", "UP", "LOWER_UP"],
    link_type: "ether",
    linkinfo: { info_kind: "veth" },
    addr_info: [{ family: "inet6", local: "fe80::2", prefixlen: 64, scope: "link" }],
  };
  if (peerNetns !== undefined) {
    a.link_netnsid = peerNetns;
    return [a];
  }
  return [a, b];
}

describe("network isolation", () => {
  it("runs in a namespace where only loopback (or a sealed fake NIC) is up", () => {
    const report = assertIsolatedNetwork();
    expect(report.isolated).toBe(true);
    expect(report.interfaces.some((i) => i.name === "lo" && i.kind === "loopback")).toBe(true);
    for (const i of report.interfaces) expect(["loopback", "sealed-veth"]).toContain(i.kind);
  });

  it("cannot open a connection to an address beyond loopback", async () => {
    if (inspectNetwork().fakeNicAddress !== null) return; // with a fake NIC a SYN just goes nowhere
    const code = await new Promise<string>((resolve) => {
      const socket = connect({ host: "203.0.113.1", port: 80, timeout: 5_000 });
      socket.once("connect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("timeout", () => {
        socket.destroy();
        resolve("timeout");
      });
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    });
    expect(code).toBe("ENETUNREACH");
  });

  it("classifies interfaces: host NICs and veths into other namespaces are not isolated", () => {
    expect(classifyLinks([lo]).isolated).toBe(true);

    const sealed = classifyLinks([lo, ...vethPair("192.0.2.10")]);
    expect(sealed.isolated).toBe(true);
    expect(sealed.fakeNicAddress).toBe("192.0.2.10");

    const eth0: IpLink = {
      ifname: "eth0",
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      link_type: "ether",
      addr_info: [{ family: "inet", local: "10.0.0.5", prefixlen: 24, scope: "global" }],
    };
    const host = classifyLinks([lo, eth0]);
    expect(host.isolated).toBe(false);
    expect(host.interfaces.find((i) => i.name === "eth0")?.problem).toMatch(/reach other hosts/);

    // Down interfaces do not count.
    expect(classifyLinks([lo, { ...eth0, flags: ["BROADCAST"] }]).isolated).toBe(true);
    // A container's veth whose peer lives in the host namespace.
    expect(classifyLinks([lo, ...vethPair("192.0.2.10", 0)]).isolated).toBe(false);
    // A sealed pair carrying a routable address.
    expect(classifyLinks([lo, ...vethPair("172.17.0.2")]).isolated).toBe(false);
  });
});

/** Bounding box of the bright pixels of one decoded frame (gray > 128). */
async function brightBox(
  path: string,
  frame: number,
  width: number,
  height: number,
): Promise<{ x: number; y: number; w: number; h: number }> {
  const pixels = await new Promise<Buffer>((resolve, reject) => {
    execFile(
      "ffmpeg",
      ["-v", "error", "-nostdin", "-i", path, "-vf", `select=eq(n\\,${frame})`, "-frames:v", "1"].concat([
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-",
      ]),
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
  });
  expect(pixels.length).toBe(width * height);
  let minX = width;
  let minY = height;
  let maxX = -1;
  let maxY = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (pixels[y * width + x]! > 128) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  return { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 };
}

describe("ffmpeg fixtures", () => {
  it("tinyVideo: 320x240, 15 fps, 2 s; ffprobe counts 30 frames; metadata matches the file", async () => {
    const tiny = await tinyVideo();
    expect({ w: tiny.width, h: tiny.height, fps: tiny.fps, frames: tiny.frames }).toEqual({
      w: 320,
      h: 240,
      fps: 15,
      frames: 30,
    });
    expect(tiny.codec).toBe("h264");
    expect(await frameCount(tiny.path)).toBe(tiny.fps * tiny.seconds);
    expect(await sha256File(tiny.path)).toBe(tiny.sha256);
    expect(tiny.path).toContain(".fixtures");
  });

  it("the white square moves from the left edge to the right edge, vertically centred", async () => {
    const tiny = await tinyVideo();
    const first = await brightBox(tiny.path, 0, tiny.width, tiny.height);
    const last = await brightBox(tiny.path, tiny.frames - 1, tiny.width, tiny.height);
    const side = tiny.squareSize;
    for (const box of [first, last]) {
      expect(Math.abs(box.w - side)).toBeLessThanOrEqual(2);
      expect(Math.abs(box.h - side)).toBeLessThanOrEqual(2);
      expect(Math.abs(box.y - (tiny.height - side) / 2)).toBeLessThanOrEqual(2);
    }
    expect(first.x).toBeLessThanOrEqual(1);
    expect(last.x + last.w).toBeGreaterThanOrEqual(tiny.width - 1);
  });

  it("motionVideo honours seconds, fps, size and codec", async () => {
    const video = await motionVideo({ seconds: 1, fps: 10, size: "160x120", codec: "vp8" });
    expect(video.path.endsWith(".webm")).toBe(true);
    expect(video.codec).toBe("vp8");
    expect(await frameCount(video.path)).toBe(10);
    expect(video.width).toBe(160);
  });

  it("exactMultipleFile is a whole number of upload chunks and still decodes", async () => {
    const exact = await exactMultipleFile();
    expect(exact.bytes % UPLOAD_CHUNK_SIZE).toBe(0);
    expect(exact.bytes).toBeGreaterThanOrEqual(4 * UPLOAD_CHUNK_SIZE);
    expect(await frameCount(exact.path)).toBe(30);
    const six = await exactMultipleFile({ chunks: 6 });
    expect(six.bytes).toBe(6 * UPLOAD_CHUNK_SIZE);
  });

  it("largeVideo: about 200 MiB of real frames, counted by ffprobe", async () => {
    const large = await largeVideo();
    expect(large.bytes).toBeGreaterThanOrEqual(200 * 1024 * 1024);
    expect(large.bytes).toBeLessThan(202 * 1024 * 1024);
    expect(await frameCount(large.path)).toBe(large.frames);
    expect(large.codec).toBe("rawvideo");
  });

  it("largeVideo padded: exactly the size asked for, decodes to the tiny video's frames", async () => {
    const padded = await largeVideo(8, { kind: "padded" });
    expect(padded.bytes).toBe(8 * 1024 * 1024);
    expect(await frameCount(padded.path)).toBe(30);
  });

  it("randomFile is deterministic per seed; emptyFile is empty", async () => {
    const a = await randomFile(100_000);
    const b = await randomFile(100_000, { seed: 2 });
    expect(a.bytes).toBe(100_000);
    expect(a.sha256).not.toBe(b.sha256);
    expect(await sha256File(a.path)).toBe(a.sha256);
    const empty = await emptyFile();
    expect(empty.bytes).toBe(0);
    expect(empty.sha256).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});

describe("Chromium", () => {
  let browser: ChromiumSession;
  let server: LocalHttpServer;

  beforeAll(async () => {
    server = await startHttpServer({
      "/": {
        body: "<!doctype html><title>vidrtc infra</title><p id=hello>hello from 127.0.0.1</p>",
        contentType: "text/html; charset=utf-8",
      },
    });
    browser = await launchChromium({ webrtcOrigins: [server.url] });
  });

  afterAll(async () => {
    const dir = browser?.userDataDir;
    await browser?.close();
    await server?.close();
    if (dir) expect(existsSync(dir)).toBe(false);
  });

  it("launches with exactly the agreed switches and a fresh profile directory", () => {
    expect(CHROMIUM_FLAGS).toEqual([
      "--allow-loopback-in-peer-connection",
      expect.stringMatching(/^--disable-features=WebRtcHideLocalIpsWithMdns,.*NetworkTimeServiceQuerying/),
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ]);
    expect(existsSync(browser.userDataDir)).toBe(true);
  });

  it("loads a page from a local node:http server", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    expect(await page.title()).toBe("vidrtc infra");
    expect(await page.textContent("#hello")).toBe("hello from 127.0.0.1");
    expect(server.requests).toContain("GET /");
    await page.close();
  });

  it("connects an in-page RTCPeerConnection pair over 127.0.0.1 host candidates (no mDNS)", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    const result = await page.evaluate(async () => {
      const deadline = (ms: number, what: string) =>
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
      const gathered = (pc: RTCPeerConnection) =>
        new Promise<void>((resolve) => {
          if (pc.iceGatheringState === "complete") resolve();
          pc.addEventListener("icegatheringstatechange", () => {
            if (pc.iceGatheringState === "complete") resolve();
          });
        });
      const a = new RTCPeerConnection({ iceServers: [] });
      const b = new RTCPeerConnection({ iceServers: [] });
      try {
        const received = new Promise<string>((resolve) => {
          b.addEventListener("datachannel", (event) => {
            event.channel.addEventListener("message", (m) => {
              event.channel.send(`echo: ${String(m.data)}`);
            });
          });
          const channel = a.createDataChannel("infra", { ordered: true });
          channel.addEventListener("open", () => channel.send("ping over loopback"));
          channel.addEventListener("message", (m) => resolve(String(m.data)));
        });
        // Non-trickle, like the vidrtc signalling: candidates travel inside the SDP.
        await a.setLocalDescription();
        await Promise.race([gathered(a), deadline(10_000, "gathering (offer)")]);
        await b.setRemoteDescription(a.localDescription!);
        await b.setLocalDescription();
        await Promise.race([gathered(b), deadline(10_000, "gathering (answer)")]);
        await a.setRemoteDescription(b.localDescription!);
        const message = await Promise.race([
          received,
          deadline(20_000, `data channel (${a.connectionState})`),
        ]);
        const candidates = [a.localDescription!.sdp, b.localDescription!.sdp].flatMap((sdp) =>
          sdp.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:")),
        );
        let selectedLocal: string | null = null;
        const stats = await a.getStats();
        stats.forEach((report: { type: string; id: string; [k: string]: unknown }) => {
          if (report.type === "transport" && typeof report.selectedCandidatePairId === "string") {
            const pair = stats.get(report.selectedCandidatePairId) as
              | { localCandidateId?: string }
              | undefined;
            const local = pair?.localCandidateId ? stats.get(pair.localCandidateId) : undefined;
            selectedLocal = (local as { address?: string } | undefined)?.address ?? null;
          }
        });
        return { message, candidates, selectedLocal, state: a.connectionState };
      } finally {
        a.close();
        b.close();
      }
    });
    expect(result.message).toBe("echo: ping over loopback");
    expect(result.state).toBe("connected");
    expect(result.candidates.length).toBeGreaterThan(0);
    expect(result.candidates.some((c) => c.includes(" 127.0.0.1 "))).toBe(true);
    expect(result.candidates.some((c) => c.includes(".local"))).toBe(false);
    expect(result.selectedLocal).toBe("127.0.0.1");
    await page.close();
  });
});
