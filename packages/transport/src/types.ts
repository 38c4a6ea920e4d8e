/**
 * The transport seam for Node: one {@link Transport} per WebRTC stack, each providing both roles,
 * the offering side for clients ({@link OfferingPeer}, a `PeerConnectionLike`) and the answering
 * side for servers (`AnsweringPeerLike`). Only our own types appear here, never a stack's.
 */
import type { AnsweringPeerLike, IceServerLike, PeerConnectionLike } from "@vidrtc/protocol";

/** The WebRTC stacks vidrtc runs on in Node. */
export type TransportName = "werift" | "node-datachannel";

/** Every transport name, in order of preference for a pure-JS install. */
export const TRANSPORT_NAMES: readonly TransportName[] = ["werift", "node-datachannel"];

/** Options of {@link OfferingPeer.recordVideo}. */
export interface RecordVideoOptions {
  /** Stops the recording (like `stop()`) when aborted. */
  signal?: AbortSignal;
  /** Frame size written in the WebM header. Default: werift reads the first VP8 key frame's size once the recording stops (its muxer alone would write 640x360). */
  width?: number;
  /** Frame height written in the WebM header; see `width`. */
  height?: number;
}

/** A running recording. */
export interface VideoRecording {
  /** Flushes and closes the file. Idempotent. Rejects if the recording failed. */
  stop(): Promise<void>;
}

/** Configuration shared by both roles. */
export interface PeerConfigBase {
  /**
   * STUN/TURN servers. Without them there is no STUN lookup at all and only host candidates are
   * gathered (no public STUN fallback on any stack).
   */
  iceServers?: readonly IceServerLike[];
  /** UDP port range for ICE (inclusive), e.g. for a firewall. */
  portRange?: readonly [number, number];
  /**
   * UDP socket buffer size (SO_RCVBUF/SO_SNDBUF) where the stack lets us set it; default 4 MiB,
   * 0 keeps the OS default. The kernel caps it at `net.core.rmem_max`/`wmem_max`.
   */
  socketBufferBytes?: number;
  /**
   * Only a 127.0.0.1 host candidate, socket bound to 127.0.0.1 (tests and same-machine setups).
   * node-datachannel cannot use loopback-only hosts (libjuice skips loopback addresses): there it
   * binds to 127.0.0.1 and relies on the remote peer's candidates instead.
   */
  loopbackOnly?: boolean;
}

/** Configuration of {@link Transport.createOfferer}. */
export interface OffererConfig extends PeerConfigBase {
  /** Also offer a 127.0.0.1 host candidate where the stack supports it (default true). */
  includeLoopback?: boolean;
}

/** Configuration of {@link Transport.createAnswerer}. */
export interface AnswererConfig extends PeerConfigBase {
  /**
   * Host candidate addresses (default `["127.0.0.1"]`). Give a LAN address to serve other
   * machines. With exactly one address and no `useInterfaceAddresses`, the socket binds to it.
   */
  hostAddresses?: readonly string[];
  /** Also gather host candidates on every non-loopback IPv4 interface (default false). */
  useInterfaceAddresses?: boolean;
  /**
   * Answer as an ICE-lite agent where the stack supports it (werift; node-datachannel is always a
   * full agent). Default: true unless `iceServers` is non-empty.
   */
  iceLite?: boolean;
  /** Remove mDNS `.local` candidates from offers instead of resolving them (default true). */
  stripMdns?: boolean;
  /** Seconds to wait for server-reflexive candidates (werift; default 3 with a real STUN server, else 0.2). */
  stunGatherTimeoutSeconds?: number;
}

/** The offering side of a session, with the processed video track recorded to WebM. */
export interface OfferingPeer extends PeerConnectionLike {
  /** Which stack this peer runs on. */
  readonly transport: TransportName;
  /** True once `addVideoReceiver()` was called. */
  readonly receivesVideo: boolean;
  /**
   * Records the first remote video track (after `addVideoReceiver()`) to a WebM file, without
   * re-encoding; resolves once the track has arrived and recording started. Rejects with
   * `INVALID_OPTIONS` without `addVideoReceiver()` or for a path not ending in `.webm`, and with
   * `CONNECTION_FAILED` when the peer closes before any video arrives.
   */
  recordVideo(path: string, options?: RecordVideoOptions): Promise<VideoRecording>;
  /** Like `close()`, and resolves once every socket and timer of the peer is released. */
  closeAndWait(): Promise<void>;
}

/** A WebRTC stack behind the seam. */
export interface Transport {
  /** Which stack this is. */
  readonly name: TransportName;
  /** Creates a client-side (offering) peer connection. */
  createOfferer(config?: OffererConfig): OfferingPeer;
  /** Creates a server-side (answering) peer connection. */
  createAnswerer(config?: AnswererConfig): AnsweringPeerLike;
}
