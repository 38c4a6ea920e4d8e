/**
 * Protocol constants of Roboflow's WebRTC video-upload protocol, in one place.
 * All multi-byte integers on the wire are unsigned 32-bit little-endian.
 */

/** Payload bytes per `video_upload` message. A protocol constant: servers validate counts against it. */
export const UPLOAD_CHUNK_SIZE = 49_152;
/** `[chunk_index u32][total_chunks u32]` before every upload payload. */
export const UPLOAD_HEADER_SIZE = 8;
/** Largest upload message: header plus one full chunk (fits werift/aiortc's 65536 max message size). */
export const UPLOAD_MESSAGE_MAX = UPLOAD_HEADER_SIZE + UPLOAD_CHUNK_SIZE;
/** Default cap on one upload, as on the newer Roboflow server: 512 MiB. */
export const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;
/** Chunk count that corresponds to {@link MAX_UPLOAD_BYTES} (10,923). */
export const MAX_UPLOAD_CHUNKS = Math.ceil(MAX_UPLOAD_BYTES / UPLOAD_CHUNK_SIZE);

/** `[frame_id u32][chunk_index u32][total_chunks u32]` before every result payload. */
export const RESULT_HEADER_SIZE = 12;
/** Largest result payload per message. */
export const RESULT_CHUNK_SIZE = 49_152;

/** Data channel labels, in the order a client must create them. */
export const RESULT_CHANNEL_LABEL = "inference";
/** Label of the upload channel (PROTOCOL.md §3), created second. */
export const UPLOAD_CHANNEL_LABEL = "video_upload";

/** Signalling endpoint path, relative to the API URL. */
export const INITIALISE_PATH = "/initialise_webrtc_worker";

/** Backpressure defaults for the upload sink (bytes). Tuned for werift and browsers. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
/** Buffered bytes at or below which a paused upload sink resumes sending. */
export const DEFAULT_LOW_WATER_MARK = 256 * 1024;
/** Safety-net poll of `bufferedAmount` while paused (ms), for stacks that lose `bufferedamountlow`. */
export const DEFAULT_DRAIN_POLL_MS = 50;
/** Nothing drained for this long while data is queued: the upload is stalled (ms). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** Keepalive: a 1-byte ping on the upload channel every interval (ms). */
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 3_000;
/** Missed echoes (in intervals) after the first echo before liveness is declared lost. */
export const DEFAULT_KEEPALIVE_MAX_MISSED = 5;
/** The ping byte. Any 0- or 1-byte message is echoed unchanged by the server. */
export const KEEPALIVE_PING = 0x70;

/** Result decoder bounds. */
export const DEFAULT_MAX_PENDING_FRAMES = 64;
/** Default largest reassembled (and decompressed) result frame: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** gzip magic bytes: a result payload starting with these is gzip-compressed JSON. */
export const GZIP_MAGIC_0 = 0x1f;
/** Second gzip magic byte (see {@link GZIP_MAGIC_0}). */
export const GZIP_MAGIC_1 = 0x8b;

/** Default Roboflow serverless API and TURN-config endpoint. */
export const ROBOFLOW_TURN_CONFIG_URL = "https://api.roboflow.com/webrtc_turn_config";
