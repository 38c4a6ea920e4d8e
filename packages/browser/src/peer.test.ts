import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createBrowserPeer } from "./peer.js";

const HOST = "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0";
const BASE_SDP =
  "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

/**
 * A scripted RTCPeerConnection: `gather` decides what ICE gathering does after
 * setLocalDescription (candidates to add, and whether and when it completes).
 */
class FakePeerConnection extends EventTarget {
  static last: FakePeerConnection | null = null;
  static gather: { candidates: string[]; completeAfterMs: number | null } = {
    candidates: [HOST],
    completeAfterMs: 5,
  };
  config: RTCConfiguration;
  iceGatheringState: RTCIceGatheringState = "new";
  connectionState: RTCPeerConnectionState = "new";
  localDescription: { type: "offer"; sdp: string } | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  transceivers: Array<{ kind: string; init?: RTCRtpTransceiverInit }> = [];
  channels: Array<{ label: string; init?: RTCDataChannelInit }> = [];
  closed = false;
  sctp = null;

  constructor(config: RTCConfiguration) {
    super();
    this.config = config;
    FakePeerConnection.last = this;
  }
  addTransceiver(kind: string, init?: RTCRtpTransceiverInit) {
    this.transceivers.push({ kind, init });
  }
  createDataChannel(label: string, init?: RTCDataChannelInit) {
    this.channels.push({ label, init });
    const dc = new EventTarget() as EventTarget & Record<string, unknown>;
    Object.assign(dc, {
      label,
      readyState: "connecting",
      bufferedAmount: 0,
      bufferedAmountLowThreshold: 0,
      binaryType: "blob",
    });
    return dc;
  }
  async createOffer() {
    return { type: "offer" as const, sdp: BASE_SDP };
  }
  async setLocalDescription(desc: { type: "offer"; sdp: string }) {
    this.localDescription = { ...desc };
    this.iceGatheringState = "gathering";
    const { candidates, completeAfterMs } = FakePeerConnection.gather;
    setTimeout(() => {
      for (const c of candidates) this.localDescription!.sdp += `${c}\r\n`;
    }, 1);
    if (completeAfterMs !== null) {
      setTimeout(() => {
        this.iceGatheringState = "complete";
        this.dispatchEvent(new Event("icegatheringstatechange"));
      }, completeAfterMs);
    }
  }
  async setRemoteDescription(desc: RTCSessionDescriptionInit) {
    this.remoteDescription = desc;
  }
  setConnectionState(state: RTCPeerConnectionState) {
    this.connectionState = state;
    this.dispatchEvent(new Event("connectionstatechange"));
  }
  close() {
    this.closed = true;
    this.connectionState = "closed";
  }
}

const Ctor = FakePeerConnection as unknown as typeof RTCPeerConnection;
const fake = () => FakePeerConnection.last!;

afterEach(() => {
  FakePeerConnection.gather = { candidates: [HOST], completeAfterMs: 5 };
  vi.useRealTimers();
});

describe("createBrowserPeer", () => {
  it("passes ICE servers and extra RTCConfiguration to the peer connection", () => {
    createBrowserPeer({
      iceServers: [{ urls: "turn:turn.example:3478", username: "u", credential: "c" }],
      rtcConfiguration: { iceTransportPolicy: "relay", iceServers: [{ urls: "stun:ignored" }] },
      RTCPeerConnection: Ctor,
    });
    expect(fake().config).toEqual({
      iceTransportPolicy: "relay",
      iceServers: [{ urls: "turn:turn.example:3478", username: "u", credential: "c" }],
    });
  });

  it("creates reliable ordered data channels and a recv-only video transceiver", () => {
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    expect(peer.remoteStream).toBeNull();
    peer.addVideoReceiver();
    peer.addVideoReceiver(); // idempotent
    const channel = peer.createDataChannel("inference");
    expect(channel.label).toBe("inference");
    expect(fake().transceivers).toEqual([{ kind: "video", init: { direction: "recvonly" } }]);
    expect(fake().channels).toEqual([{ label: "inference", init: { ordered: true } }]);
    expect(peer.remoteStream).toBeInstanceOf(Promise);
  });

  it("waits for complete gathering and returns the offer with its host candidates", async () => {
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    const offer = await peer.createOffer({ timeoutMs: 5000 });
    expect(offer.type).toBe("offer");
    expect(offer.sdp).toContain(HOST);
  });

  it("does not need a server-reflexive candidate: host candidates after the bound are enough", async () => {
    // An unreachable STUN server keeps gathering going; only host candidates exist.
    FakePeerConnection.gather = { candidates: [HOST], completeAfterMs: null };
    const peer = createBrowserPeer({
      iceServers: [{ urls: "stun:stun.unreachable:3478" }],
      RTCPeerConnection: Ctor,
    });
    const started = Date.now();
    const offer = await peer.createOffer({ timeoutMs: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(offer.sdp).toContain("typ host");
    expect(offer.sdp).not.toContain("typ srflx");
  });

  it("fails with ICE_GATHERING_TIMEOUT when no candidate at all was gathered", async () => {
    FakePeerConnection.gather = { candidates: [], completeAfterMs: null };
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    const error = await peer.createOffer({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "ICE_GATHERING_TIMEOUT")).toBe(true);
  });

  it("rejects gathering with ABORTED when the signal fires", async () => {
    FakePeerConnection.gather = { candidates: [HOST], completeAfterMs: null };
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const error = await peer
      .createOffer({ timeoutMs: 10_000, signal: controller.signal })
      .catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "ABORTED")).toBe(true);
  });

  it("applies the answer and reports connection state changes", async () => {
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    await peer.setAnswer({ type: "answer", sdp: "v=0\r\n" });
    expect(fake().remoteDescription).toEqual({ type: "answer", sdp: "v=0\r\n" });
    const states: string[] = [];
    const off = peer.onConnectionStateChange((s) => states.push(s));
    fake().setConnectionState("connecting");
    fake().setConnectionState("connected");
    off();
    fake().setConnectionState("disconnected");
    expect(states).toEqual(["connecting", "connected"]);
    expect(peer.connectionState).toBe("disconnected");
  });

  it("resolves remoteStream with the server's video track", async () => {
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    peer.addVideoReceiver();
    const stream = { id: "server-stream" };
    const audio = Object.assign(new Event("track"), { track: { kind: "audio" }, streams: [{ id: "audio" }] });
    const video = Object.assign(new Event("track"), { track: { kind: "video" }, streams: [stream] });
    fake().dispatchEvent(audio);
    fake().dispatchEvent(video);
    await expect(peer.remoteStream).resolves.toBe(stream);
  });

  it("close() is idempotent and ends a pending remoteStream with CONNECTION_FAILED", async () => {
    const peer = createBrowserPeer({ iceServers: [], RTCPeerConnection: Ctor });
    peer.addVideoReceiver();
    peer.close();
    peer.close();
    expect(fake().closed).toBe(true);
    expect(peer.connectionState).toBe("closed");
    const error = await peer.remoteStream!.catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "CONNECTION_FAILED")).toBe(true);
  });

  it("says so when WebRTC is unavailable", () => {
    expect(() => createBrowserPeer({ iceServers: [] })).toThrow(/RTCPeerConnection is not available/);
  });
});
