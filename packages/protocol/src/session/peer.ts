/**
 * The seam between the shared session and a WebRTC stack's peer connection.
 * `PeerConnectionLike` is the offering side (clients); `AnsweringPeerLike` the answering side (servers).
 * Node stacks implement both; `@vidrtc/browser` implements the offering side on RTCPeerConnection.
 */
import type { DataChannelLike, Unsubscribe } from "../channel.js";

/** An SDP offer or answer, as in `RTCSessionDescriptionInit` (the `webrtc_offer` and answer of PROTOCOL.md §2). */
export interface SessionDescriptionLike {
  /** Whether this is the offer (client) or the answer (server). */
  type: "offer" | "answer";
  /** The SDP text, with ICE candidates included (no trickle). */
  sdp: string;
}

/** An ICE server as in `RTCIceServer` (and the `webrtc_config.iceServers` entries of the signalling request). */
export interface IceServerLike {
  /** One or more `stun:`/`turn:` URLs. */
  urls: string | string[];
  /** TURN user name. */
  username?: string;
  /** TURN password. */
  credential?: string;
}

/** State of a peer connection, as `RTCPeerConnection.connectionState`. */
export type PeerConnectionState = "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";

/** The offering side of a session (clients): creates the channels and the offer, applies the answer. */
export interface PeerConnectionLike {
  /** Adds a recv-only video transceiver (only when processed video is wanted). */
  addVideoReceiver(): void;
  /** Creates a reliable, ordered data channel. */
  createDataChannel(label: string): DataChannelLike;
  /**
   * Creates the offer, sets it as local description and waits until ICE gathering is complete
   * (no trickle) or `timeoutMs` passes; returns the local description with its candidates.
   */
  createOffer(options: { timeoutMs: number; signal?: AbortSignal }): Promise<SessionDescriptionLike>;
  /** Applies the server's answer. */
  setAnswer(answer: SessionDescriptionLike): Promise<void>;
  /** Current connection state. */
  readonly connectionState: PeerConnectionState;
  /** Calls `listener` on every connection-state change; returns a function that unsubscribes it. */
  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe;
  /** Idempotent. */
  close(): void;
}

/**
 * The sending half of a negotiated video track: the answering side writes RTP packets (header and
 * payload, already packetised, e.g. VP8 from ffmpeg) that the stack forwards over SRTP.
 */
export interface VideoSenderLike {
  /** RTP payload type the peer negotiated for the codec (VP8); packets must carry it. */
  readonly payloadType: number;
  /** Codec MIME type negotiated for this track, e.g. `"video/VP8"`. */
  readonly mimeType: string;
  /** Forwards one RTP packet. Never throws after the peer has closed (the packet is dropped). */
  writeRtp(packet: Uint8Array): void;
}

/** Options of {@link AnsweringPeerLike.answer}. */
export interface AnswerOptions {
  /** Bound on ICE gathering before the answer is returned (no trickle). */
  timeoutMs: number;
  /** Aborts the answer (ICE gathering included). */
  signal?: AbortSignal;
  /**
   * Offer to send processed video: when the offer has a video m-line with VP8, a send-only VP8
   * track is negotiated and exposed as {@link AnsweringPeerLike.videoSender}.
   */
  sendVideo: boolean;
}

/**
 * The answering side of a session, as a server needs it: accept an offer, hand over the data
 * channels the client opens, optionally send one video track. Implemented per WebRTC stack (werift,
 * node-datachannel) so that the server never touches a stack directly.
 */
export interface AnsweringPeerLike {
  /**
   * Applies the remote offer, creates the answer, sets it as local description and waits until
   * ICE gathering completes (or `timeoutMs` passes with at least one candidate); returns the local
   * answer with its candidates. Rejects with a `VidrtcError` (`SIGNALLING_FAILED`,
   * `ICE_GATHERING_TIMEOUT`) on bad offers or timeouts. Call once.
   */
  answer(offer: SessionDescriptionLike, options: AnswerOptions): Promise<SessionDescriptionLike>;
  /** The negotiated video sender after `answer()` when `sendVideo` was asked and possible; else `null`. */
  readonly videoSender: VideoSenderLike | null;
  /**
   * Channels opened by the remote peer. A channel is handed over at most once; messages are not
   * delivered before the listener returns, so subscribing synchronously loses nothing.
   */
  onDataChannel(listener: (channel: DataChannelLike) => void): Unsubscribe;
  /** Current connection state. */
  readonly connectionState: PeerConnectionState;
  /** Calls `listener` on every connection-state change; returns a function that unsubscribes it. */
  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe;
  /**
   * When something was last received from the remote peer (`Date.now()` milliseconds), or `null`
   * before anything was: the signal a server's liveness watchdog polls, so that a client that
   * vanished (killed, unplugged) is noticed in every session state, also while nothing is expected
   * from it at the application level (an ACK-paced server waiting for the next ACK). What counts
   * depends on the stack; each implementation documents it. Cheap enough to call every second.
   */
  lastActivityAt(): number | null;
  /** Idempotent; resolves once every socket and timer of the peer is released. */
  close(): Promise<void>;
}
