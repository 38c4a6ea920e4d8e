/**
 * @vidrtc/protocol: the wire protocol of Roboflow's WebRTC video upload (PROTOCOL.md), free of
 * any runtime: upload chunking and framing, the backpressure sink, keepalive, result framing and
 * decoding, ACKs, signalling, and the server-side upload receiver. The client session lives in
 * `@vidrtc/protocol/session`.
 *
 * @packageDocumentation
 */
export type * from "./channel.js";
export * from "./constants.js";
export * from "./errors.js";
export * from "./keepalive.js";
export * from "./receiver.js";
export * from "./results.js";
export type * from "./session/peer.js";
export * from "./signalling.js";
export * from "./sink.js";
export * from "./upload.js";
