export * from "./handle.js";
export type * from "./peer.js";
export * from "./session.js";
