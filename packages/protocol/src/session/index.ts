/**
 * @vidrtc/protocol/session: the runtime-independent client session (signalling, upload, results,
 * read-ahead ACKs, keepalive, reconfigure) over any `PeerConnectionLike`, shared by the Node and
 * browser bindings.
 *
 * @packageDocumentation
 */
export * from "./handle.js";
export type * from "./peer.js";
export * from "./session.js";
