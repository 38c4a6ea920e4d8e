/**
 * The browser's `PeerConnectionLike`: the native `RTCPeerConnection`, with complete (non-trickle)
 * ICE gathering that never requires a server-reflexive candidate.
 */
import { abortError, type DataChannelLike, throwIfAborted, VidrtcError } from "@vidrtc/protocol";
import type {
  IceServerLike,
  PeerConnectionLike,
  PeerConnectionState,
  SessionDescriptionLike,
} from "@vidrtc/protocol/session";
import { fromRTCDataChannel } from "./channel.js";

/** Options of {@link createBrowserPeer}. */
export interface BrowserPeerConfig {
  /** ICE servers (STUN/TURN). Empty = host candidates only, which is what a local or LAN server needs. */
  iceServers: IceServerLike[];
  /** Extra `RTCConfiguration` fields (`iceTransportPolicy`, `certificates`, ...); `iceServers` above wins. */
  rtcConfiguration?: RTCConfiguration;
  /** The `RTCPeerConnection` constructor to use; defaults to the global one (for tests and polyfills). */
  RTCPeerConnection?: typeof RTCPeerConnection;
}

/** A `PeerConnectionLike` over a native `RTCPeerConnection`, with access to the returned video. */
export interface BrowserPeer extends PeerConnectionLike {
  /** The underlying peer connection (for `getStats()` and the like). */
  readonly raw: RTCPeerConnection;
  /**
   * The processed video coming back from the server: set once a video receiver was added
   * (`addVideoReceiver()`), resolved with a `MediaStream` when the server's track arrives; `null`
   * when no video was requested. Rejects with `CONNECTION_FAILED` if the connection closes first.
   */
  readonly remoteStream: Promise<MediaStream> | null;
}

/** True when an SDP holds at least one ICE candidate line. */
function hasCandidate(sdp: string | undefined): boolean {
  return typeof sdp === "string" && /^a=candidate:/m.test(sdp);
}

/**
 * Creates a {@link BrowserPeer}: `addVideoReceiver()` adds a recv-only video transceiver,
 * `createDataChannel()` a reliable ordered channel wrapped by `fromRTCDataChannel`, and
 * `createOffer()` sets the local offer and waits for ICE gathering to complete, bounded by its
 * `timeoutMs`. When the bound passes it proceeds with the candidates gathered so far (host
 * candidates are enough for a loopback or LAN server; an unreachable STUN server must not block
 * the session) and fails with `ICE_GATHERING_TIMEOUT` only when there is no candidate at all.
 */
export function createBrowserPeer(config: BrowserPeerConfig): BrowserPeer {
  const Ctor = config.RTCPeerConnection ?? globalThis.RTCPeerConnection;
  if (typeof Ctor !== "function") {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      "RTCPeerConnection is not available in this environment (WebRTC disabled?).",
    );
  }
  const pc = new Ctor({ ...config.rtcConfiguration, iceServers: config.iceServers as RTCIceServer[] });
  let closed = false;
  let remoteStream: Promise<MediaStream> | null = null;
  /** Ends a pending `remoteStream` (close() fires no `connectionstatechange` in browsers). */
  let endRemoteStream: (() => void) | null = null;

  return {
    raw: pc,
    get remoteStream() {
      return remoteStream;
    },
    addVideoReceiver() {
      if (remoteStream) return;
      pc.addTransceiver("video", { direction: "recvonly" });
      remoteStream = new Promise<MediaStream>((resolve, reject) => {
        const listening = new AbortController();
        const off = () => {
          endRemoteStream = null;
          listening.abort();
        };
        const fail = () => {
          off();
          reject(
            new VidrtcError(
              "CONNECTION_FAILED",
              "The connection ended before the server's video track arrived.",
            ),
          );
        };
        endRemoteStream = fail;
        pc.addEventListener(
          "track",
          (event) => {
            if (event.track.kind !== "video") return;
            off();
            resolve(event.streams[0] ?? new MediaStream([event.track]));
          },
          listening,
        );
        pc.addEventListener(
          "connectionstatechange",
          () => {
            if (pc.connectionState === "closed" || pc.connectionState === "failed") fail();
          },
          listening,
        );
      });
      remoteStream.catch(() => {});
    },
    createDataChannel(label: string): DataChannelLike {
      return fromRTCDataChannel(pc.createDataChannel(label, { ordered: true }), pc);
    },
    async createOffer({ timeoutMs, signal }): Promise<SessionDescriptionLike> {
      throwIfAborted(signal, "ICE gathering");
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await waitForGathering(pc, timeoutMs, signal);
      const local = pc.localDescription;
      if (!local || !hasCandidate(local.sdp)) {
        throw new VidrtcError(
          "ICE_GATHERING_TIMEOUT",
          `No ICE candidate was gathered within ${timeoutMs} ms. The browser found no usable network interface; check its WebRTC settings (IP handling policy) and the ICE servers.`,
        );
      }
      return { type: "offer", sdp: local.sdp };
    },
    async setAnswer(answer: SessionDescriptionLike): Promise<void> {
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    },
    get connectionState() {
      // A closed RTCPeerConnection keeps reporting its last state in some browsers; our close() wins.
      return closed ? "closed" : (pc.connectionState as PeerConnectionState);
    },
    onConnectionStateChange(listener: (state: PeerConnectionState) => void) {
      const handler = () => listener(pc.connectionState as PeerConnectionState);
      pc.addEventListener("connectionstatechange", handler);
      return () => pc.removeEventListener("connectionstatechange", handler);
    },
    close() {
      if (closed) return;
      closed = true;
      pc.close();
      endRemoteStream?.();
    },
  };
}

/**
 * Resolves when `iceGatheringState` is `complete` or after `timeoutMs` (whichever comes first);
 * rejects with `ABORTED` on the signal. Never rejects on the time bound: the caller decides whether
 * the candidates gathered so far are enough.
 */
function waitForGathering(
  pc: RTCPeerConnection,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    // One controller removes every listener below at once (it is passed as the listener options:
    // its `signal` property is what addEventListener reads).
    const listening = new AbortController();
    const finish = (error?: unknown) => {
      clearTimeout(timer);
      listening.abort();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(), timeoutMs);
    pc.addEventListener(
      "icegatheringstatechange",
      () => {
        if (pc.iceGatheringState === "complete") finish();
      },
      listening,
    );
    // A null candidate marks the end of gathering (some browsers skip the state event).
    pc.addEventListener(
      "icecandidate",
      (event) => {
        if (event.candidate === null) finish();
      },
      listening,
    );
    signal?.addEventListener("abort", () => finish(abortError(signal, "ICE gathering")), listening);
  });
}
