import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MediaStreamTrack } from "werift";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { channelOpen } from "../test-support/werift-pair.js";
import { createWeriftAnswerer, weriftAnswererConfig } from "./answerer.js";
import { NO_STUN_SERVER } from "./ice.js";
import { weriftOfferer } from "./index.js";
import type { WeriftPeer } from "./peer.js";

const udpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "UDPWrap").length;

describe("weriftAnswererConfig", () => {
  it("defaults to ICE-lite on 127.0.0.1 with the no-STUN sentinel", () => {
    const c = weriftAnswererConfig();
    expect(c.iceLite).toBe(true);
    expect(c.iceServers).toEqual([{ urls: NO_STUN_SERVER }]);
    expect(c.iceAdditionalHostAddresses).toEqual(["127.0.0.1"]);
    expect(c.iceInterfaceAddresses).toEqual({ udp4: "127.0.0.1" });
    expect(c.iceUseIpv4).toBe(false);
  });

  it("uses a real STUN server as given, as a full agent", () => {
    const c = weriftAnswererConfig({
      iceServers: [{ urls: "stun:stun.example.org:3478" }],
      portRange: [40000, 40100],
    });
    expect(c.iceLite).toBe(false);
    expect(c.iceServers).toEqual([{ urls: "stun:stun.example.org:3478" }]);
    expect(c.icePortRange).toEqual([40000, 40100]);
  });

  it("adds the sentinel to TURN-only lists and gathers on interfaces when asked", () => {
    const c = weriftAnswererConfig({
      iceServers: [{ urls: "turn:turn.example.org", username: "u", credential: "p" }],
      hostAddresses: ["192.0.2.10", "127.0.0.1"],
      useInterfaceAddresses: true,
    });
    expect(c.iceServers).toContainEqual({ urls: NO_STUN_SERVER });
    expect(c.iceInterfaceAddresses).toBeUndefined();
    expect(c.iceUseIpv4).toBe(true);
  });

  it("rejects a bad port range with INVALID_OPTIONS", () => {
    expect(() => weriftAnswererConfig({ portRange: [5000, 10] })).toThrowError(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
  });
});

describe("werift answerer", () => {
  beforeAll(() => assertIsolatedNetwork());
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it("answers an offer, hands over the client's channels, sends VP8 RTP, and releases its sockets", async () => {
    const before = udpHandles();
    const client = weriftOfferer({ loopbackOnly: true }) as WeriftPeer;
    const server = createWeriftAnswerer({ loopbackOnly: true });
    cleanups.push(async () => {
      await client.closeAndWait();
      await server.close();
    });
    client.addVideoReceiver();
    const up = client.createDataChannel("video_upload");
    const offer = await client.createOffer({ timeoutMs: 5_000 });
    const answer = await server.answer(offer, { timeoutMs: 5_000, sendVideo: true });
    expect(answer.type).toBe("answer");
    expect(answer.sdp).toMatch(/a=ice-lite/);
    expect(answer.sdp).toMatch(/^a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 /im);
    const sender = server.videoSender;
    expect(sender?.mimeType).toBe("video/VP8");
    const offeredVp8 = /^a=rtpmap:(\d+) VP8\/90000/m.exec(offer.sdp)?.[1];
    expect(sender?.payloadType).toBe(Number(offeredVp8));

    const channels: string[] = [];
    const serverChannel = new Promise<import("@vidrtc/protocol").DataChannelLike>((resolve) =>
      server.onDataChannel((ch) => {
        channels.push(ch.label);
        resolve(ch);
      }),
    );
    await client.setAnswer(answer);
    await channelOpen(up);
    const remote = await serverChannel;
    const got = new Promise<Uint8Array | string>((resolve) => remote.on("message", (e) => resolve(e.data)));
    up.send(new Uint8Array([1, 2, 3]));
    expect(await got).toEqual(new Uint8Array([1, 2, 3]));
    expect(channels).toEqual(["video_upload"]);

    const track = (await client.videoTrack!) as MediaStreamTrack;
    const rtp = new Promise<number>((resolve) =>
      track.onReceiveRtp.subscribe((p) => resolve(p.header.payloadType)),
    );
    const packet = new Uint8Array(20);
    packet[0] = 0x80;
    const send = setInterval(() => {
      packet[1] = sender!.payloadType;
      sender!.writeRtp(packet);
    }, 20);
    try {
      expect(await rtp).toBe(sender!.payloadType);
    } finally {
      clearInterval(send);
    }
    expect(udpHandles()).toBeGreaterThan(before);
    await client.closeAndWait();
    await server.close();
    sender!.writeRtp(packet); // dropped, never throws
    // werift closes its sockets asynchronously after close() resolves; allow a short bound.
    const deadline = Date.now() + 3_000;
    while (udpHandles() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(udpHandles()).toBe(before);
  });

  it("refuses a malformed offer with SIGNALING_FAILED and a second answer with INVALID_OPTIONS", async () => {
    const server = createWeriftAnswerer({ loopbackOnly: true });
    cleanups.push(() => server.close());
    const error = await server
      .answer({ type: "offer", sdp: "hello" }, { timeoutMs: 1_000, sendVideo: false })
      .catch((e: unknown) => e);
    expect(VidrtcError.isInstance(error) && error.code).toBe("SIGNALING_FAILED");
    const again = await server
      .answer({ type: "offer", sdp: "hello" }, { timeoutMs: 1_000, sendVideo: false })
      .catch((e: unknown) => e);
    expect(VidrtcError.isInstance(again) && again.code).toBe("INVALID_OPTIONS");
  });

  it("strips mDNS candidates from offers by default", async () => {
    const client = weriftOfferer({ loopbackOnly: true });
    const server = createWeriftAnswerer({ loopbackOnly: true });
    cleanups.push(async () => {
      await client.closeAndWait();
      await server.close();
    });
    client.createDataChannel("inference");
    const offer = await client.createOffer({ timeoutMs: 5_000 });
    const sdp = offer.sdp.replace(
      /^(a=candidate:\S+ \d+ udp \d+ )127\.0\.0\.1( .*)$/im,
      "$1" + "127.0.0.1$2\r\n$1" + "0b1f2c3d-aaaa-bbbb-cccc-000000000000.local$2",
    );
    expect(sdp).toMatch(/\.local /);
    const answer = await server.answer({ type: "offer", sdp }, { timeoutMs: 5_000, sendVideo: false });
    expect(answer.sdp).not.toMatch(/\.local/);
    expect(server.videoSender).toBeNull();
  });
});
