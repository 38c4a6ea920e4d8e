/**
 * @vidrtc/node: send a video file to an inference server over a WebRTC data channel from Node and
 * get its per-frame results (and, if asked, the processed video) back. `InferenceClient` is the
 * entry point; the WebRTC stack is werift (pure JS, default) or node-datachannel (native).
 *
 * @packageDocumentation
 */
export type { ResultMessage, VideoMetadata, VidrtcErrorCode, WebRTCOutput } from "@vidrtc/protocol";
export { VidrtcError } from "@vidrtc/protocol";
export type { SessionSummary, UploadProgress, UploadSummary } from "@vidrtc/protocol/session";
export type {
  RecordVideoOptions,
  VideoRecording,
  WeriftChannel,
  WeriftConnection,
  WeriftIceOptions,
  WeriftIceServer,
  WeriftOptions,
  WeriftPeer,
  WeriftPeerConfig,
  WeriftTrack,
} from "@vidrtc/transport";
export {
  createWeriftPeer,
  defaultIceOptions,
  loopbackIceOptions,
  loopbackPeerOptions,
  recordVideoToWebm,
  setWeriftSocketBuffers,
  wrapWeriftChannel,
} from "@vidrtc/transport";
export type { InferenceClientOptions, StreamOptions } from "./client.js";
export { DEFAULT_API_URL, InferenceClient, VideoSession } from "./client.js";
export type {
  PreparedVideoFile,
  PrepareOptions,
  UploadSourceLike,
  VideoFileSourceOptions,
} from "./file-source.js";
export { VideoFileSource } from "./file-source.js";
