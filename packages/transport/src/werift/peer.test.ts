import { createSocket } from "node:dgram";
import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RTCPeerConnection } from "werift";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { channelOpen, createPair, nextEvent, type WeriftPair } from "../test-support/werift-pair.js";
import { loopbackIceOptions, loopbackPeerOptions, sdpCandidates } from "./ice.js";
import {
  createWeriftPeer,
  injectCandidates,
  setWeriftSocketBuffers,
  WERIFT_DEFAULT_MAX_MESSAGE_SIZE,
} from "./peer.js";

beforeAll(() => {
  assertIsolatedNetwork();
});

let pair: (WeriftPair & { channels: import("@vidrtc/protocol").DataChannelLike[] }) | null = null;

afterEach(async () => {
  await pair?.close();
  pair = null;
});

function collect(channel: import("@vidrtc/protocol").DataChannelLike): (Uint8Array | string)[] {
  const out: (Uint8Array | string)[] = [];
  channel.on("message", ({ data }) => out.push(data));
  return out;
}

async function until(predicate: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("wrapWeriftChannel", () => {
  it("carries binary and text messages both ways, binary as Uint8Array views", async () => {
    pair = await createPair({ labels: ["data"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("data");
    expect(client.readyState).toBe("open");
    expect(server.readyState).toBe("open");
    expect(client.label).toBe("data");
    expect(server.label).toBe("data");
    const atServer = collect(server);
    const atClient = collect(client);

    // A view into a bigger buffer: only the view's bytes may go out.
    const backing = new Uint8Array(64).map((_, i) => i);
    client.send(backing.subarray(10, 20));
    client.send("héllo");
    client.send(new Uint8Array([0x70]));
    server.send(new Uint8Array([1, 2, 3]));
    server.send("from server");
    await until(() => atServer.length === 3 && atClient.length === 2, 5_000, "messages");

    expect(atServer[0]).toBeInstanceOf(Uint8Array);
    expect(Array.from(atServer[0] as Uint8Array)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(atServer[1]).toBe("héllo");
    expect(Array.from(atServer[2] as Uint8Array)).toEqual([0x70]);
    expect(Array.from(atClient[0] as Uint8Array)).toEqual([1, 2, 3]);
    expect(atClient[1]).toBe("from server");
  });

  it("reports bufferedAmount and fires bufferedamountlow when the queue drains", async () => {
    pair = await createPair({ labels: ["bulk"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("bulk");
    let received = 0;
    let order = true;
    server.on("message", ({ data }) => {
      const bytes = data as Uint8Array;
      if (bytes[0] !== (received & 0xff)) order = false;
      received++;
    });
    client.bufferedAmountLowThreshold = 16 * 1024;
    expect(client.bufferedAmountLowThreshold).toBe(16 * 1024);
    let lows = 0;
    client.on("bufferedamountlow", () => lows++);
    const size = 8 + 49_152;
    const count = 24;
    for (let i = 0; i < count; i++) client.send(new Uint8Array(size).fill(i & 0xff));
    // Nothing can have left synchronously: everything is still counted.
    expect(client.bufferedAmount).toBe(count * size);
    await nextEvent(client, "bufferedamountlow", 15_000).catch(() => {});
    await until(() => client.bufferedAmount === 0 && received === count, 15_000, "drain");
    expect(lows).toBeGreaterThanOrEqual(1);
    expect(order).toBe(true);
  });

  it("moves 8 MiB intact, in order, with loopback SCTP packets and backpressure", async () => {
    pair = await createPair({
      labels: ["video_upload"],
      client: { werift: loopbackPeerOptions() },
      server: loopbackPeerOptions(),
    });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("video_upload");
    const size = 8 + 49_152;
    const count = 171; // 8 MiB
    let received = 0;
    let corrupt = 0;
    server.on("message", ({ data }) => {
      const bytes = data as Uint8Array;
      const index = bytes[0]! | (bytes[1]! << 8);
      if (bytes.byteLength !== size || index !== received || bytes[size - 1] !== (index & 0xff)) corrupt++;
      received++;
    });
    const high = 1024 * 1024;
    client.bufferedAmountLowThreshold = high / 4;
    for (let i = 0; i < count; i++) {
      if (client.bufferedAmount > high) await nextEvent(client, "bufferedamountlow", 10_000);
      const message = new Uint8Array(size);
      message[0] = i & 0xff;
      message[1] = i >> 8;
      message[size - 1] = i & 0xff;
      client.send(message);
    }
    await until(() => received === count, 20_000, "all messages");
    expect(corrupt).toBe(0);
  });

  it("unsubscribes listeners", async () => {
    pair = await createPair({ labels: ["u"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("u");
    let calls = 0;
    const off = server.on("message", () => calls++);
    const all = collect(server);
    client.send("a");
    await until(() => all.length === 1);
    off();
    off();
    client.send("b");
    await until(() => all.length === 2);
    expect(calls).toBe(1);
  });

  it("knows the peer's max message size and refuses bigger messages with MESSAGE_TOO_LARGE", async () => {
    pair = await createPair({ labels: ["big"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("big");
    expect(client.maxMessageSize).toBe(WERIFT_DEFAULT_MAX_MESSAGE_SIZE);
    expect(server.maxMessageSize).toBe(65_536);
    const got = collect(server);
    let error: unknown;
    try {
      client.send(new Uint8Array(65_537));
    } catch (e) {
      error = e;
    }
    expect(VidrtcError.hasCode(error, "MESSAGE_TOO_LARGE")).toBe(true);
    expect(() => client.send("x".repeat(65_537))).toThrow(/max message size/);
    // The largest allowed message goes through, and the channel still works afterwards.
    client.send(new Uint8Array(65_536).fill(7));
    client.send("after");
    await until(() => got.length === 2, 10_000, "messages");
    expect((got[0] as Uint8Array).byteLength).toBe(65_536);
    expect(got[1]).toBe("after");
  });

  it("follows a larger a=max-message-size from the remote SDP", async () => {
    pair = await createPair({ labels: ["m"], server: { maxMessageSize: 262_144 } });
    const client = pair.channels[0]!;
    await channelOpen(client);
    expect(client.maxMessageSize).toBe(262_144);
  });

  it("refuses empty messages (werift would stall the stream)", async () => {
    pair = await createPair({ labels: ["e"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    expect(() => client.send(new Uint8Array(0))).toThrow(VidrtcError);
    expect(() => client.send("")).toThrow(/empty/);
  });

  it("emits close on both sides and throws CHANNEL_CLOSED on send after close", async () => {
    pair = await createPair({ labels: ["c"] });
    const client = pair.channels[0]!;
    await channelOpen(client);
    const server = await pair.serverChannel("c");
    const clientClosed = nextEvent(client, "close");
    const serverClosed = nextEvent(server, "close");
    client.close();
    client.close();
    await Promise.all([clientClosed, serverClosed]);
    expect(client.readyState).toBe("closed");
    expect(server.readyState).toBe("closed");
    let error: unknown;
    try {
      client.send("late");
    } catch (e) {
      error = e;
    }
    expect(VidrtcError.hasCode(error, "CHANNEL_CLOSED")).toBe(true);
    expect(() => server.send(new Uint8Array([1]))).toThrow(/closed/);
  });
});

describe("injectCandidates", () => {
  it("adds candidates to their m-section, before end-of-candidates, once", () => {
    const sdp = [
      "v=0",
      "a=group:BUNDLE 0 1",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=mid:0",
      "a=end-of-candidates",
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:1",
      "",
    ].join("\r\n");
    const host = "candidate:1 1 udp 2116026367 127.0.0.1 5000 typ host";
    const out = injectCandidates(sdp, [
      { candidate: host, sdpMLineIndex: 0 },
      { candidate: host, sdpMLineIndex: 0 },
      { candidate: "candidate:2 1 udp 1 10.0.0.1 6000 typ host", sdpMid: "1" },
    ]);
    expect(out.split("\r\n")).toEqual([
      "v=0",
      "a=group:BUNDLE 0 1",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=mid:0",
      `a=${host}`,
      "a=end-of-candidates",
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:1",
      "a=candidate:2 1 udp 1 10.0.0.1 6000 typ host",
      "",
    ]);
  });
});

describe("createWeriftPeer", () => {
  it("connects, reports connection states, and closes idempotently", async () => {
    pair = await createPair({ labels: ["inference", "video_upload"] });
    const { client } = pair;
    const states: string[] = [];
    client.onConnectionStateChange((s) => states.push(s));
    await Promise.all(pair.channels.map((c) => channelOpen(c)));
    await until(() => client.connectionState === "connected", 5_000, "connected");
    const [inference, upload] = pair.channels;
    expect(inference!.label).toBe("inference");
    expect(upload!.label).toBe("video_upload");
    // Channels reach the server in creation order (ids 1 and 3 from the DTLS client).
    const serverUpload = await pair.rawServerChannel("video_upload");
    const serverInference = await pair.rawServerChannel("inference");
    expect(serverInference.ordered).toBe(true);
    expect(serverUpload.ordered).toBe(true);
    expect(serverUpload.maxRetransmits).toBeNull();
    const closed = nextEvent(upload!, "close");
    client.close();
    client.close();
    await closed;
    await until(() => client.connectionState === "closed", 5_000, "closed");
    expect(states).toContain("closed");
    expect(() => client.createDataChannel("late")).toThrow(VidrtcError);
  });

  it("enlarges werift's UDP socket buffers after gathering", async () => {
    pair = await createPair({ labels: ["s"], client: { socketBufferBytes: 1024 * 1024 } });
    const sockets = (pair.client.raw as RTCPeerConnection).iceTransports.flatMap((t) =>
      (
        (t.connection as unknown as { protocols: { transport?: { socket?: import("node:dgram").Socket } }[] })
          .protocols ?? []
      ).flatMap((p) => (p.transport?.socket ? [p.transport.socket] : [])),
    );
    expect(sockets.length).toBeGreaterThan(0);
    // Linux doubles the value it stores; a cap below 1 MiB (rmem_max) still beats the 208 KiB default.
    for (const socket of sockets) expect(socket.getRecvBufferSize()).toBeGreaterThan(212_992);
    expect(setWeriftSocketBuffers(pair.server, 0)).toBe(0);
    expect(setWeriftSocketBuffers(pair.server, 512 * 1024)).toBeGreaterThan(0);
  });

  it("offers a recvonly video m-line with VP8 first and H264", async () => {
    const peer = createWeriftPeer({ werift: loopbackIceOptions() });
    try {
      expect(peer.videoTrack).toBeNull();
      peer.addVideoReceiver();
      peer.addVideoReceiver();
      peer.createDataChannel("inference");
      const offer = await peer.createOffer({ timeoutMs: 5_000 });
      expect(offer.type).toBe("offer");
      const video = offer.sdp.split(/\r\n/);
      expect(video.filter((l) => l.startsWith("m=video"))).toHaveLength(1);
      expect(video).toContain("a=recvonly");
      const rtpmaps = video.filter((l) => l.startsWith("a=rtpmap:")).map((l) => l.split(" ")[1]);
      expect(rtpmaps.indexOf("VP8/90000")).toBeGreaterThanOrEqual(0);
      expect(rtpmaps.indexOf("H264/90000")).toBeGreaterThan(rtpmaps.indexOf("VP8/90000"));
      expect(offer.sdp).toMatch(/m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/);
      expect(offer.sdp).toContain("a=end-of-candidates");
      expect(peer.videoTrack).toBeInstanceOf(Promise);
    } finally {
      peer.close();
    }
    await expect(peer.videoTrack).rejects.toSatisfy((e: unknown) =>
      VidrtcError.hasCode(e, "CONNECTION_FAILED"),
    );
  });

  it("createOffer times out without candidates, returns partial candidates, and honours abort", async () => {
    // A loopback UDP socket that swallows every request: STUN/TURN transactions hang until werift's own
    // (long) timeouts, so gathering cannot complete within the test's bounds.
    const blackHole = createSocket("udp4");
    await new Promise<void>((resolve) => blackHole.bind(0, "127.0.0.1", resolve));
    const port = blackHole.address().port;
    const noHost = () =>
      createWeriftPeer({
        iceServers: [{ urls: `turn:127.0.0.1:${port}?transport=udp`, username: "u", credential: "p" }],
        werift: { iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: [] },
      });
    const a = noHost();
    const b = noHost();
    const c = createWeriftPeer({
      iceServers: [{ urls: `stun:127.0.0.1:${port}` }],
      werift: {
        ...loopbackIceOptions(),
        iceServers: [{ urls: `stun:127.0.0.1:${port}` }],
        iceStunGatherTimeout: 5,
      },
    });
    try {
      a.createDataChannel("x");
      let started = performance.now();
      await expect(a.createOffer({ timeoutMs: 200 })).rejects.toSatisfy((e: unknown) =>
        VidrtcError.hasCode(e, "ICE_GATHERING_TIMEOUT"),
      );
      expect(performance.now() - started).toBeLessThan(1_500);

      // Host candidate present, STUN hanging: the offer comes back at the timeout with what it has.
      c.createDataChannel("x");
      started = performance.now();
      const partial = await c.createOffer({ timeoutMs: 300 });
      expect(performance.now() - started).toBeLessThan(1_500);
      expect(sdpCandidates(partial.sdp).map((x) => x.address)).toEqual(["127.0.0.1"]);

      b.createDataChannel("x");
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      await expect(b.createOffer({ timeoutMs: 5_000, signal: controller.signal })).rejects.toSatisfy(
        (e: unknown) => VidrtcError.hasCode(e, "ABORTED"),
      );
      const aborted = new AbortController();
      aborted.abort();
      await expect(b.createOffer({ timeoutMs: 5_000, signal: aborted.signal })).rejects.toSatisfy(
        (e: unknown) => VidrtcError.hasCode(e, "ABORTED"),
      );
    } finally {
      a.close();
      b.close();
      c.close();
      blackHole.close();
    }
  });

  it("fails fast with CONNECTION_FAILED when there is no candidate at all", async () => {
    const peer = createWeriftPeer({
      werift: { iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: [] },
    });
    try {
      peer.createDataChannel("x");
      await expect(peer.createOffer({ timeoutMs: 2_000 })).rejects.toSatisfy((e: unknown) =>
        VidrtcError.hasCode(e, "CONNECTION_FAILED"),
      );
    } finally {
      peer.close();
    }
  });

  it("rejects a malformed answer with SIGNALING_FAILED", async () => {
    const peer = createWeriftPeer({ werift: loopbackIceOptions() });
    try {
      peer.createDataChannel("x");
      await peer.createOffer({ timeoutMs: 5_000 });
      for (const bad of [
        { type: "answer" as const, sdp: "v=0\r\nnot an sdp\r\n" },
        { type: "offer" as const, sdp: "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" },
      ]) {
        await expect(peer.setAnswer(bad)).rejects.toSatisfy((e: unknown) =>
          VidrtcError.hasCode(e, "SIGNALING_FAILED"),
        );
      }
    } finally {
      peer.close();
    }
  });
});
