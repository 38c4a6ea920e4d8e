/**
 * The Node entry point: `new InferenceClient({ apiUrl }).webrtc.stream({ source, workflow, ... })`,
 * shaped after Roboflow's Python SDK (`client.webrtc.stream(source=VideoFileSource(...))`).
 */
import type { IceServerLike, ResultMessage } from "@vidrtc/protocol";
import {
  type InferenceSession,
  type SessionOptions,
  type SessionSummary,
  startSession,
  type UploadSummary,
} from "@vidrtc/protocol/session";
import type { RTCPeerConnection } from "werift";
import { VideoFileSource } from "./file-source.js";
import { createWeriftPeer, recordVideoToWebm, type WeriftPeerConfig } from "./werift.js";

/** Default API URL: a local inference server (`vidrtc-server` or Roboflow's) on its usual port. */
export const DEFAULT_API_URL = "http://127.0.0.1:9001";

/** Options of {@link InferenceClient}. */
export interface InferenceClientOptions {
  /** Inference server base URL. Default `http://127.0.0.1:9001`. */
  apiUrl?: string;
  /** Roboflow API key (sent in the body and as `Authorization: Bearer`). */
  apiKey?: string;
  /**
   * ICE servers for both sides. Without them no STUN server is contacted (host candidates only),
   * which is what a local or LAN server needs; Roboflow-hosted URLs fetch TURN servers automatically.
   */
  iceServers?: IceServerLike[];
  /** Raw werift peer options for LAN/internet use (interface filters, port ranges, ...). */
  werift?: WeriftPeerConfig["werift"];
  /** `fetch` used for signalling. */
  fetch?: typeof fetch;
}

/** Options of `client.webrtc.stream()`. */
export interface StreamOptions
  extends Omit<SessionOptions, "apiUrl" | "source" | "createPeer" | "apiKey" | "fetch" | "iceServers"> {
  /** The video: a {@link VideoFileSource} or a path. */
  source: VideoFileSource | string;
  /** Record the returned video track (needs `streamOutput`) to this WebM file. */
  saveVideo?: string;
}

/** A running session in Node: results iteration, `run()`, upload/done promises, video recording. */
export class VideoSession implements AsyncIterable<ResultMessage> {
  private recording: Promise<string> | null = null;

  /** @internal */
  constructor(
    private readonly inner: InferenceSession,
    private readonly videoTrack: ReturnType<typeof createWeriftPeer>["videoTrack"],
  ) {}

  /** Resolves when the file has been delivered to the transport. */
  get uploaded(): Promise<UploadSummary> {
    return this.inner.uploaded;
  }

  /** Resolves at `processing_complete`; rejects with the session's `VidrtcError`. */
  get done(): Promise<SessionSummary> {
    return this.inner.done;
  }

  /** The underlying werift peer connection. */
  get peerConnection(): RTCPeerConnection {
    return (this.inner.peer as unknown as { raw: RTCPeerConnection }).raw;
  }

  [Symbol.asyncIterator](): AsyncIterator<ResultMessage> {
    return this.inner[Symbol.asyncIterator]();
  }

  /** The results as a `ReadableStream`; reading drives the ACKs. */
  get readable(): ReadableStream<ResultMessage> {
    return this.inner.readable;
  }

  /** Consumes every result; `onData` may be async and paces the server. */
  run(handlers: { onData?: (result: ResultMessage) => unknown } = {}): Promise<SessionSummary> {
    return this.inner.run(handlers);
  }

  /**
   * Records the processed video coming back on the track to a WebM file (VP8, not re-encoded).
   * Call right after `stream()` resolves (or pass `saveVideo` to `stream()`); resolves with the
   * path once the session has ended and the file is finalised.
   */
  saveVideo(path: string): Promise<string> {
    if (this.recording) return this.recording;
    const track = this.videoTrack;
    if (!track) {
      return Promise.reject(
        new Error('No video comes back in this session: pass streamOutput (e.g. ["annotated"]) to stream().'),
      );
    }
    this.recording = (async () => {
      const recorder = await recordVideoToWebm(await track, path);
      try {
        await this.inner.done;
      } finally {
        await recorder.stop();
      }
      return path;
    })();
    this.recording.catch(() => {});
    return this.recording;
  }

  /** Ends the session and releases the peer connection. Idempotent. */
  close(): void {
    this.inner.close();
  }
}

/** Client for a Roboflow-compatible inference server. */
export class InferenceClient {
  readonly apiUrl: string;
  /** WebRTC streaming (the only transport vidrtc speaks). */
  readonly webrtc: { stream(options: StreamOptions): Promise<VideoSession> };

  constructor(private readonly options: InferenceClientOptions = {}) {
    this.apiUrl = options.apiUrl ?? DEFAULT_API_URL;
    this.webrtc = { stream: (o) => this.stream(o) };
  }

  private async stream(options: StreamOptions): Promise<VideoSession> {
    const { source: input, saveVideo, ...rest } = options;
    const fileSource = typeof input === "string" ? new VideoFileSource(input) : input;
    const source = await fileSource.prepare({ maxBytes: rest.maxUploadBytes });
    let peer: ReturnType<typeof createWeriftPeer> | null = null;
    const inner = await startSession({
      ...rest,
      apiUrl: this.apiUrl,
      apiKey: this.options.apiKey,
      iceServers: this.options.iceServers,
      fetch: this.options.fetch,
      source,
      createPeer: (config) => {
        peer = createWeriftPeer({ iceServers: config.iceServers, werift: this.options.werift });
        return peer;
      },
    });
    const session = new VideoSession(inner, peer!.videoTrack);
    if (saveVideo) void session.saveVideo(saveVideo);
    return session;
  }
}
