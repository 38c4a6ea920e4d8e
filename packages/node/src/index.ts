export type { ResultMessage, VideoMetadata, VidrtcErrorCode, WebRTCOutput } from "@vidrtc/protocol";
export { VidrtcError } from "@vidrtc/protocol";
export type { SessionSummary, UploadProgress, UploadSummary } from "@vidrtc/protocol/session";
export type { InferenceClientOptions, StreamOptions } from "./client.js";
export { DEFAULT_API_URL, InferenceClient, VideoSession } from "./client.js";
export { VideoFileSource } from "./file-source.js";
export { defaultIceOptions, loopbackIceOptions } from "./ice.js";
export { createWeriftPeer, recordVideoToWebm, wrapWeriftChannel } from "./werift.js";
