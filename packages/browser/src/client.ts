/**
 * The browser entry point: `new InferenceClient({ apiUrl }).webrtc.stream({ source: file, ... })`,
 * the same shape and option names as `@vidrtc/node`.
 */
import { type IceServerLike, type ResultMessage, VidrtcError } from "@vidrtc/protocol";
import {
  type InferenceSession,
  type SessionOptions,
  type SessionSummary,
  startSession,
  type UploadSummary,
} from "@vidrtc/protocol/session";
import { VideoFileSource } from "./file-source.js";
import { type BrowserPeer, createBrowserPeer } from "./peer.js";

/** Default API URL: a local inference server (`vidrtc-server` or Roboflow's) on its usual port. */
export const DEFAULT_API_URL = "http://127.0.0.1:9001";

/** Options of {@link InferenceClient}. */
export interface InferenceClientOptions {
  /** Inference server base URL. Default `http://127.0.0.1:9001`; a page served by the server can pass `location.origin`. */
  apiUrl?: string;
  /** Roboflow API key (sent in the body and as `Authorization: Bearer`). */
  apiKey?: string;
  /**
   * ICE servers for both sides. Without them no STUN server is contacted (host candidates only),
   * which is what a local or LAN server needs; Roboflow-hosted URLs fetch TURN servers automatically.
   */
  iceServers?: IceServerLike[];
  /** Extra `RTCConfiguration` fields for the peer connection (`iceTransportPolicy`, ...). */
  rtcConfiguration?: RTCConfiguration;
  /** `fetch` used for signalling (default the global one). */
  fetch?: typeof fetch;
}

/** Options of `client.webrtc.stream()`. */
export interface StreamOptions
  extends Omit<SessionOptions, "apiUrl" | "source" | "createPeer" | "apiKey" | "fetch" | "iceServers"> {
  /** The video: a {@link VideoFileSource}, or a `File`/`Blob` (from an `<input type="file">` or a drop). */
  source: VideoFileSource | File | Blob;
}

/** A running session in the browser: results iteration, `run()`, upload/done promises, returned video. */
export class VideoSession implements AsyncIterable<ResultMessage> {
  /** @internal use `client.webrtc.stream()`. */
  constructor(
    private readonly inner: InferenceSession,
    private readonly browserPeer: BrowserPeer,
  ) {}

  /** Resolves when the file has been delivered to the transport. */
  get uploaded(): Promise<UploadSummary> {
    return this.inner.uploaded;
  }

  /** Resolves at `processing_complete`; rejects with the session's `VidrtcError` (`ABORTED` on cancel). */
  get done(): Promise<SessionSummary> {
    return this.inner.done;
  }

  /** The underlying `RTCPeerConnection` (for `getStats()`). */
  get peerConnection(): RTCPeerConnection {
    return this.browserPeer.raw;
  }

  /** Results in order; each is acknowledged to the server once the loop asks for the next one. */
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
   * The processed video coming back from the server, for `videoElement.srcObject`. Needs
   * `streamOutput` in `stream()` (e.g. `["annotated"]`, or `null` for the server's choice);
   * rejects with `INVALID_OPTIONS` otherwise, and with `CONNECTION_FAILED` when the session ends
   * before the track arrives.
   */
  remoteStream(): Promise<MediaStream> {
    const stream = this.browserPeer.remoteStream;
    if (!stream) {
      return Promise.reject(
        new VidrtcError(
          "INVALID_OPTIONS",
          'No video comes back in this session: pass streamOutput (e.g. ["annotated"]) to stream().',
        ),
      );
    }
    return stream;
  }

  /** Ends the session and releases the peer connection. Idempotent. */
  close(): void {
    this.inner.close();
  }
}

/** Client for a Roboflow-compatible inference server, from a browser. */
export class InferenceClient {
  /** The server's base URL. */
  readonly apiUrl: string;
  /** WebRTC streaming (the only transport vidrtc speaks). */
  readonly webrtc: {
    /**
     * Checks the file, connects, starts the upload and resolves with the running session.
     * Rejects with a `VidrtcError` (`EMPTY_FILE`, `FILE_TOO_LARGE` before connecting; signalling and
     * connection codes; `ABORTED` when `signal` fires).
     */
    stream(options: StreamOptions): Promise<VideoSession>;
  };

  /** @param options server URL, API key, ICE servers, `RTCConfiguration`, `fetch`. */
  constructor(private readonly options: InferenceClientOptions = {}) {
    this.apiUrl = options.apiUrl ?? DEFAULT_API_URL;
    this.webrtc = { stream: (o) => this.stream(o) };
  }

  private async stream(options: StreamOptions): Promise<VideoSession> {
    const { source: input, ...rest } = options;
    const fileSource = input instanceof VideoFileSource ? input : new VideoFileSource(input);
    const maxUploadBytes = rest.maxUploadBytes ?? fileSource.maxBytes;
    const source = await fileSource.prepare({ maxBytes: maxUploadBytes, signal: rest.signal });
    const fetchFn = this.options.fetch;
    let peer: BrowserPeer | null = null;
    const inner = await startSession({
      ...rest,
      maxUploadBytes,
      apiUrl: this.apiUrl,
      apiKey: this.options.apiKey,
      iceServers: this.options.iceServers,
      // Called as a plain function so a page's `window.fetch` never sees a foreign `this`.
      fetch: fetchFn ? (url, init) => fetchFn(url, init) : undefined,
      source,
      createPeer: (config) => {
        peer = createBrowserPeer({
          iceServers: config.iceServers,
          rtcConfiguration: this.options.rtcConfiguration,
        });
        return peer;
      },
    });
    return new VideoSession(inner, peer!);
  }
}
