/**
 * The seam between the shared session and a WebRTC stack's peer connection.
 * `@vidrtc/node` implements it over werift, `@vidrtc/browser` over the native RTCPeerConnection.
 */
import type { DataChannelLike, Unsubscribe } from "../channel.js";

export interface SessionDescriptionLike {
  type: "offer" | "answer";
  sdp: string;
}

/** An ICE server as in `RTCIceServer` (and the `webrtc_config.iceServers` entries of the signalling request). */
export interface IceServerLike {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export type PeerConnectionState = "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";

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
  readonly connectionState: PeerConnectionState;
  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe;
  /** Idempotent. */
  close(): void;
}
