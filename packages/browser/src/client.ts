/**
 * The browser entry point: `new InferenceClient({ apiUrl }).webrtc.stream({ source: file, ... })`,
 * the same shape and option names as `@vidrtc/node`.
 */
import { VidrtcError } from "@vidrtc/protocol";
import {
  type ClientOptionsBase,
  DEFAULT_API_URL,
  type InferenceSession,
  SessionHandle,
  type StreamOptionsBase,
  startSession,
} from "@vidrtc/protocol/session";
import { VideoFileSource } from "./file-source.js";
import { type BrowserPeer, createBrowserPeer } from "./peer.js";

export { DEFAULT_API_URL };

/** Options of {@link InferenceClient}; a page served by the server can pass `apiUrl: location.origin`. */
export interface InferenceClientOptions extends ClientOptionsBase {
  /** Extra `RTCConfiguration` fields for the peer connection (`iceTransportPolicy`, ...). */
  rtcConfiguration?: RTCConfiguration;
}

/** Options of `client.webrtc.stream()`. */
export interface StreamOptions extends StreamOptionsBase {
  /** The video: a {@link VideoFileSource}, or a `File`/`Blob` (from an `<input type="file">` or a drop). */
  source: VideoFileSource | File | Blob;
}

/** A running session in the browser: results iteration, `run()`, upload/done promises, returned video. */
export class VideoSession extends SessionHandle {
  /** @internal use `client.webrtc.stream()`. */
  constructor(inner: InferenceSession, browserPeer: BrowserPeer) {
    super(inner);
    this.#browserPeer = browserPeer;
  }

  readonly #browserPeer: BrowserPeer;

  /** The underlying `RTCPeerConnection` (for `getStats()`). */
  get peerConnection(): RTCPeerConnection {
    return this.#browserPeer.raw;
  }

  /**
   * The processed video coming back from the server, for `videoElement.srcObject`. Needs
   * `streamOutput` in `stream()` (e.g. `["annotated"]`, or `null` for the server's choice);
   * rejects with `INVALID_OPTIONS` otherwise, and with `CONNECTION_FAILED` when the session ends
   * before the track arrives.
   */
  remoteStream(): Promise<MediaStream> {
    const stream = this.#browserPeer.remoteStream;
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
}

/** `proxyUrl` relative to the page (`"/api/vidrtc"`); left as is when there is no page or it is not a URL. */
function resolveProxyUrl(url: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(url, base).toString();
  } catch {
    return url; // the session refuses it with INVALID_OPTIONS
  }
}

/**
 * Client for a Roboflow-compatible inference server, from a browser. In production pass
 * `proxyUrl` (your backend's `@vidrtc/server/proxy` endpoint) instead of `apiKey`, so the page
 * never holds the key.
 */
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

  readonly #options: InferenceClientOptions;

  /** @param options server URL, API key, ICE servers, `RTCConfiguration`, `fetch`. */
  constructor(options: InferenceClientOptions = {}) {
    this.#options = options;
    this.apiUrl = options.apiUrl ?? DEFAULT_API_URL;
    this.webrtc = { stream: (o) => this.#stream(o) };
  }

  async #stream(options: StreamOptions): Promise<VideoSession> {
    const { source: input, ...rest } = options;
    const fileSource = input instanceof VideoFileSource ? input : new VideoFileSource(input);
    const maxUploadBytes = rest.maxUploadBytes ?? fileSource.maxBytes;
    const source = await fileSource.prepare({ maxBytes: maxUploadBytes, signal: rest.signal });
    const fetchFn = this.#options.fetch;
    let peer: BrowserPeer | null = null;
    const inner = await startSession({
      ...rest,
      maxUploadBytes,
      apiUrl: this.apiUrl,
      ...(this.#options.proxyUrl === undefined ? {} : { proxyUrl: resolveProxyUrl(this.#options.proxyUrl) }),
      apiKey: this.#options.apiKey,
      iceServers: this.#options.iceServers,
      // Called as a plain function so a page's `window.fetch` never sees a foreign `this`.
      fetch: fetchFn ? (url, init) => fetchFn(url, init) : undefined,
      source,
      createPeer: (config) => {
        peer = createBrowserPeer({
          iceServers: config.iceServers,
          rtcConfiguration: this.#options.rtcConfiguration,
        });
        return peer;
      },
    });
    return new VideoSession(inner, peer!);
  }
}
