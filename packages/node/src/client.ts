/**
 * The Node entry point: `new InferenceClient({ apiUrl }).webrtc.stream({ source, workflow, ... })`,
 * shaped after Roboflow's Python SDK (`client.webrtc.stream(source=VideoFileSource(...))`).
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
import {
  createWeriftPeer,
  loadTransport,
  type OfferingPeer,
  type TransportName,
  type WeriftConnection,
  type WeriftPeer,
  type WeriftPeerConfig,
} from "@vidrtc/transport";
import { VideoFileSource } from "./file-source.js";

export { DEFAULT_API_URL };

/**
 * Upload sink watermarks for werift (bytes). werift keeps a pending SCTP send per queued message
 * and re-arms each of them after every transmit round, so a deeper queue costs CPU per message:
 * measured on loopback (apps/e2e/src/bench/node-upload.ts), 512 KiB / 128 KiB used the least
 * sender CPU, 1 MiB slightly more, 2 MiB and above clearly more. A caller's `sink` option wins.
 */
export const WERIFT_SINK_WATERMARKS = { highWaterMark: 512 * 1024, lowWaterMark: 128 * 1024 } as const;

/** Options of {@link InferenceClient}. */
export interface InferenceClientOptions extends ClientOptionsBase {
  /**
   * The WebRTC stack: `"werift"` (default, pure JS) or `"node-datachannel"` (libdatachannel,
   * native: several times less CPU per MiB; install the optional `node-datachannel` package).
   * Selecting node-datachannel when it cannot load fails with `TRANSPORT_UNAVAILABLE`.
   * node-datachannel needs a non-loopback network interface (it skips loopback-only hosts).
   */
  transport?: TransportName;
  /** Raw werift peer options for LAN/internet use (interface filters, port ranges, ...); werift only. */
  werift?: WeriftPeerConfig["werift"];
}

/** Options of `client.webrtc.stream()`. */
export interface StreamOptions extends StreamOptionsBase {
  /** The video: a {@link VideoFileSource} or a path. */
  source: VideoFileSource | string;
  /** Record the returned video track (needs `streamOutput`) to this WebM file. */
  saveVideo?: string;
}

/** A running session in Node: results iteration, `run()`, upload/done promises, video recording. */
export class VideoSession extends SessionHandle {
  private recording: Promise<string> | null = null;

  /** @internal */
  constructor(
    inner: InferenceSession,
    private readonly peer: OfferingPeer,
  ) {
    super(inner);
  }

  /** Which WebRTC stack this session runs on. */
  get transport(): TransportName {
    return this.peer.transport;
  }

  /**
   * The underlying werift peer connection (werift transport only; throws `INVALID_OPTIONS` on
   * node-datachannel), typed as vidrtc's {@link WeriftConnection}: cast to werift's
   * `RTCPeerConnection` for the rest of werift's API.
   * @deprecated Tied to werift; use the session's results, progress and `transport`.
   */
  get peerConnection(): WeriftConnection {
    const raw = (this.peer as Partial<WeriftPeer>).raw;
    if (!raw) {
      throw new VidrtcError("INVALID_OPTIONS", `This session runs on ${this.peer.transport}, not werift.`);
    }
    return raw;
  }

  /**
   * Records the processed video coming back on the track to a WebM file (VP8, not re-encoded).
   * Call right after `stream()` resolves (or pass `saveVideo` to `stream()`); resolves with the
   * path once the session has ended and the file is finalised.
   */
  saveVideo(path: string): Promise<string> {
    if (this.recording) return this.recording;
    if (!this.peer.receivesVideo) {
      return Promise.reject(
        new VidrtcError(
          "INVALID_OPTIONS",
          'No video comes back in this session: pass streamOutput (e.g. ["annotated"]) to stream().',
        ),
      );
    }
    this.recording = (async () => {
      const recorder = await this.peer.recordVideo(path);
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
}

/** Client for a Roboflow-compatible inference server. */
export class InferenceClient {
  /** Base URL of the inference server (default {@link DEFAULT_API_URL}). */
  readonly apiUrl: string;
  /** WebRTC streaming (the only transport vidrtc speaks). */
  readonly webrtc: {
    /** Uploads `options.source` and streams the workflow's results back (@vidrtc/protocol's PROTOCOL.md §1). */
    stream(options: StreamOptions): Promise<VideoSession>;
  };

  constructor(private readonly options: InferenceClientOptions = {}) {
    this.apiUrl = options.apiUrl ?? DEFAULT_API_URL;
    this.webrtc = { stream: (o) => this.stream(o) };
  }

  private async stream(options: StreamOptions): Promise<VideoSession> {
    const { source: input, saveVideo, ...rest } = options;
    const fileSource = typeof input === "string" ? new VideoFileSource(input) : input;
    const source = await fileSource.prepare({ maxBytes: rest.maxUploadBytes, signal: rest.signal });
    const name = this.options.transport ?? "werift";
    const transport = name === "werift" ? null : await loadTransport(name);
    let peer: OfferingPeer | null = null;
    const inner = await startSession({
      ...rest,
      sink: transport ? { ...rest.sink } : { ...WERIFT_SINK_WATERMARKS, ...rest.sink },
      apiUrl: this.apiUrl,
      ...(this.options.proxyUrl === undefined ? {} : { proxyUrl: this.options.proxyUrl }),
      apiKey: this.options.apiKey,
      iceServers: this.options.iceServers,
      fetch: this.options.fetch,
      source,
      createPeer: (config) => {
        peer = transport
          ? transport.createOfferer({ ...(config.iceServers ? { iceServers: config.iceServers } : {}) })
          : createWeriftPeer({ iceServers: config.iceServers, werift: this.options.werift });
        return peer;
      },
    });
    const session = new VideoSession(inner, peer!);
    if (saveVideo) void session.saveVideo(saveVideo);
    return session;
  }
}
