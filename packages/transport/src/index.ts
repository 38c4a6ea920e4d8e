/**
 * `@vidrtc/transport`: vidrtc's WebRTC stacks for Node behind one seam. Each stack provides both
 * roles: the offering side for clients (`createOfferer` -> a `PeerConnectionLike` that can record
 * the processed video to WebM) and the answering side for servers (`createAnswerer` -> an
 * `AnsweringPeerLike`).
 */
export type { AnsweringPeerLike, AnswerOptions, VideoSenderLike } from "@vidrtc/protocol";
export { loadTransport } from "./load.js";
export { hasStunUrl, offerHasVideo, sdpCandidates, sdpMaxMessageSize, stripMdnsCandidates } from "./sdp.js";
export type {
  AnswererConfig,
  OffererConfig,
  OfferingPeer,
  PeerConfigBase,
  RecordVideoOptions,
  Transport,
  TransportName,
  VideoRecording,
} from "./types.js";
export { TRANSPORT_NAMES } from "./types.js";
export { createWeriftAnswerer, weriftAnswererConfig } from "./werift/answerer.js";
export type { DefaultIceOptionsConfig, WeriftIceOptions } from "./werift/ice.js";
export {
  defaultIceOptions,
  LOOPBACK_SCTP_MTU,
  loopbackIceOptions,
  loopbackPeerOptions,
  NO_STUN_SERVER,
} from "./werift/ice.js";
export { weriftOfferer, weriftTransport } from "./werift/index.js";
export type {
  GatheredCandidate,
  WeriftPeer,
  WeriftPeerConfig,
  WeriftVideoCodec,
  WrapWeriftChannelOptions,
} from "./werift/peer.js";
export {
  closeWerift,
  createWeriftPeer,
  DEFAULT_SOCKET_BUFFER_BYTES,
  injectCandidates,
  recordVideoToWebm,
  setWeriftSocketBuffers,
  WERIFT_DEFAULT_MAX_MESSAGE_SIZE,
  wrapWeriftChannel,
} from "./werift/peer.js";
export type {
  WeriftChannel,
  WeriftConnection,
  WeriftIceServer,
  WeriftOptions,
  WeriftTrack,
} from "./werift/public-types.js";
