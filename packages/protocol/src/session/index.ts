export * from "./session.js";
export type * from "./peer.js";
