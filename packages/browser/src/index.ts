/**
 * @vidrtc/browser: send a video `File` to a Roboflow-compatible inference server over a native
 * `RTCDataChannel` and get per-frame results (and optionally the processed video) back.
 *
 * ```ts
 * const client = new InferenceClient({ apiUrl: "http://127.0.0.1:9001" });
 * const session = await client.webrtc.stream({ source: file, workflow: "motion", dataOutput: ["*"] });
 * for await (const result of session) console.log(result.frameId, result.outputs);
 * ```
 */

export type {
  IceServerLike,
  ResultMessage,
  VideoMetadata,
  VidrtcErrorCode,
  WebRTCOutput,
} from "@vidrtc/protocol";
export { VidrtcError } from "@vidrtc/protocol";
export type {
  SessionSummary,
  SessionTimeouts,
  UploadProgress,
  UploadSummary,
} from "@vidrtc/protocol/session";
export { FALLBACK_MAX_MESSAGE_SIZE, fromRTCDataChannel } from "./channel.js";
export type { InferenceClientOptions, StreamOptions } from "./client.js";
export { DEFAULT_API_URL, InferenceClient, VideoSession } from "./client.js";
export type { PrepareOptions, VideoFileSourceOptions } from "./file-source.js";
export { VideoFileSource } from "./file-source.js";
export type { BrowserPeer, BrowserPeerConfig } from "./peer.js";
export { createBrowserPeer } from "./peer.js";
