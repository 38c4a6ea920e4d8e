/**
 * What the runtime bindings share on top of the session: the client options they have in
 * common and the handle they return from `client.webrtc.stream()`.
 */
import type { ResultMessage } from "../results.js";
import type { FetchLike, ReconfigureOptions } from "../signalling.js";
import type { IceServerLike } from "./peer.js";
import type { InferenceSession, SessionOptions, SessionSummary, UploadSummary } from "./session.js";

/** Default API URL: a local inference server (`vidrtc-server` or Roboflow's) on its usual port. */
export const DEFAULT_API_URL = "http://127.0.0.1:9001";

/** Client options every binding accepts. */
export interface ClientOptionsBase {
  /** Inference server base URL. Default `http://127.0.0.1:9001`. */
  apiUrl?: string;
  /** Roboflow API key (sent in the body and as `Authorization: Bearer`). */
  apiKey?: string;
  /**
   * Your own backend's signalling endpoint (e.g. `"/api/vidrtc"`, relative to the page in a
   * browser), served by `@vidrtc/server/proxy`'s handler, which adds the API key server-side.
   * Used instead of `apiUrl`; exclusive with `apiKey`, so a browser never holds the key.
   */
  proxyUrl?: string;
  /**
   * ICE servers for both sides. Without them no STUN server is contacted (host candidates only),
   * which is what a local or LAN server needs; Roboflow-hosted URLs fetch TURN servers automatically.
   */
  iceServers?: IceServerLike[];
  /** `fetch` used for signalling (default the global one). */
  fetch?: FetchLike;
}

/** `client.webrtc.stream()` options every binding accepts (the binding adds `source`). */
export type StreamOptionsBase = Omit<
  SessionOptions,
  "apiUrl" | "proxyUrl" | "source" | "createPeer" | "apiKey" | "fetch" | "iceServers"
>;

/**
 * A running session as the bindings return it: results iteration (each result is acknowledged
 * to the server once the consumer asks for the next one), `run()`, the upload and completion
 * promises, and `close()`. Bindings extend it with their runtime's video access.
 */
export class SessionHandle implements AsyncIterable<ResultMessage> {
  /** @internal */
  constructor(
    /** The session this handle wraps; subclasses use it to add package-specific methods. */
    protected readonly inner: InferenceSession,
  ) {}

  /** Resolves when the file has been delivered to the transport. */
  get uploaded(): Promise<UploadSummary> {
    return this.inner.uploaded;
  }

  /** Resolves at `processing_complete`; rejects with the session's `VidrtcError` (`ABORTED` on cancel). */
  get done(): Promise<SessionSummary> {
    return this.inner.done;
  }

  /** Realtime mode: results dropped (oldest first) because the consumer fell behind the bound. */
  get droppedResults(): number {
    return this.inner.droppedResults;
  }

  /** Results in order; ends after `processing_complete`. */
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
   * Changes `dataOutput` / `streamOutput` mid-session (from the server's next frame on); omitted
   * lists stay as they are. Throws `INVALID_OPTIONS` for bad lists, `CHANNEL_CLOSED` after the end.
   */
  reconfigure(options: ReconfigureOptions): void {
    this.inner.reconfigure(options);
  }

  /** Ends the session and releases the peer connection. Idempotent. */
  close(): void {
    this.inner.close();
  }
}
