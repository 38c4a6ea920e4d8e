/**
 * werift adapters: `DataChannelLike` over werift's `RTCDataChannel`, `PeerConnectionLike` over its
 * `RTCPeerConnection`, and recording a received video track to WebM without decoding.
 *
 * Facts about werift 0.25.2 that shape this code (read from its source, checked in tests):
 * - `RTCDataChannel.send` accepts `Buffer` or `string`. Any other value goes through `Buffer.from`,
 *   which copies a `Uint8Array` and turns a `DataView` into an empty message. This adapter passes a
 *   `Buffer` view of the caller's bytes, without copying. werift keeps that reference in its queue
 *   until the message is handed to SCTP, so a caller must never reuse or change a buffer after
 *   sending it (the `DataChannelLike` contract).
 * - werift throws `max-message-size exceeded` above the peer's `a=max-message-size` (kept as
 *   `sctpTransport.remoteMaxMessageSize`, 65536 when the SDP has none, 0 for unlimited). The adapter
 *   checks first and throws `MESSAGE_TOO_LARGE`.
 * - werift's `send` does not check `readyState`: after close, messages are queued or lost without
 *   an error. The adapter throws `CHANNEL_CLOSED` in the `closing` and `closed` states.
 * - An empty message would desynchronise werift's SCTP stream sequence numbers: it sends no chunk
 *   but still counts a sequence number, so the peer waits forever for it. The adapter refuses empty
 *   messages with `MALFORMED_MESSAGE`.
 * - There is no `onbufferedamountlow` or `onerror` property. The adapter uses the
 *   `bufferedAmountLow` and `error` events (werift never fires `error`). `bufferedamountlow` fires
 *   only when `bufferedAmount` crosses the threshold from above. A message leaves `bufferedAmount`
 *   only when werift's SCTP outbound queue has emptied (every chunk handed to the network, not yet
 *   acknowledged). Messages queued together are released together, so `bufferedAmount` falls in
 *   large steps, often from the high-water mark straight to 0.
 * - Throughput between two werift processes on loopback (`apps/e2e/src/bench/werift-raw.ts`,
 *   256 MiB, 48 KiB messages): with the OS default UDP buffers (208 KiB), werift's bursts of up to a
 *   full congestion window overflow the receiver's socket buffer: thousands of drops, 1.2–2.9 MiB/s.
 *   With 4 MiB buffers there are no drops and it reaches 5–11 MiB/s, best with a 1 MiB high-water
 *   mark. `createWeriftPeer` therefore enlarges its socket buffers ({@link setWeriftSocketBuffers}).
 *   A deep send queue makes werift's per-message flush loops quadratic (16 MiB queued at once:
 *   1 MiB/s at 86 % sender CPU), so keep the high-water mark at a few MiB at most.
 * - `setLocalDescription` resolves only once ICE gathering has finished, and the local description
 *   lists candidates only from then on. `createOffer` therefore bounds the whole call and collects
 *   `onIceCandidate` events itself. At the timeout it returns the offer with the candidates found so
 *   far (for example host candidates while a slow STUN or TURN server is still pending, since
 *   werift's own STUN timeout is 5 s), and throws `ICE_GATHERING_TIMEOUT` only when there is none.
 * - Received messages are `Buffer` (binary) or `string` (text). Binary messages are passed on as a
 *   `Uint8Array` view of the same memory.
 */
import {
  abortError,
  type ChannelEventMap,
  type ChannelState,
  type DataChannelLike,
  type IceServerLike,
  type PeerConnectionState,
  type SessionDescriptionLike,
  throwIfAborted,
  type Unsubscribe,
  VidrtcError,
} from "@vidrtc/protocol";
import {
  type MediaStreamTrack,
  type PeerConfig,
  type RTCDataChannel,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpCodecParameters,
  useH264,
  useVP8,
} from "werift";
import { MediaRecorder } from "werift/nonstandard";
import { hasStunUrl } from "../sdp.js";
import { assertMessageFits, cannotSendError, recordingStop } from "../shared.js";
import type { OfferingPeer, RecordVideoOptions, TransportName, VideoRecording } from "../types.js";
import { defaultIceOptions, NO_STUN_SERVER } from "./ice.js";
import type { WeriftChannel, WeriftConnection, WeriftOptions, WeriftTrack } from "./public-types.js";
import { fixWebmVideoSize } from "./webm-size.js";

/** werift's default for a peer that does not advertise `a=max-message-size`. */
export const WERIFT_DEFAULT_MAX_MESSAGE_SIZE = 65_536;

/** Options of {@link wrapWeriftChannel}. */
export interface WrapWeriftChannelOptions {
  /**
   * Largest message to accept in `send()`. By default the peer's `a=max-message-size` as werift
   * parsed it from the remote SDP: 65536 when absent, `Infinity` when the peer says 0 (unlimited).
   */
  maxMessageSize?: number;
}

/** The werift internals the adapter reads; checked at runtime, so a change degrades to defaults. */
interface SctpTransportInternals {
  remoteMaxMessageSize?: unknown;
}

/**
 * Calls a listener so that an exception in it cannot break werift's own loop (werift calls
 * listeners inside its SCTP receive path). The exception is rethrown in a microtask and is reported
 * as an uncaught exception, as with an `EventTarget` listener.
 */
function guarded<A extends unknown[]>(listener: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      listener(...args);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  };
}

class WeriftDataChannel implements DataChannelLike {
  readonly #dc: RTCDataChannel;
  readonly #maxMessageSize: number | undefined;

  constructor(dc: RTCDataChannel, options: WrapWeriftChannelOptions) {
    this.#dc = dc;
    this.#maxMessageSize = options.maxMessageSize;
  }

  get label(): string {
    return this.#dc.label;
  }

  get readyState(): ChannelState {
    return this.#dc.readyState;
  }

  get bufferedAmount(): number {
    return this.#dc.bufferedAmount;
  }

  get bufferedAmountLowThreshold(): number {
    return this.#dc.bufferedAmountLowThreshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    try {
      this.#dc.bufferedAmountLowThreshold = value;
    } catch (error) {
      throw new VidrtcError("INVALID_OPTIONS", `Invalid bufferedAmountLowThreshold: ${value}.`, {
        cause: error,
      });
    }
  }

  get maxMessageSize(): number {
    if (this.#maxMessageSize !== undefined) return this.#maxMessageSize;
    const remote = (this.#dc.sctp as unknown as SctpTransportInternals | undefined)?.remoteMaxMessageSize;
    if (typeof remote !== "number" || !Number.isFinite(remote) || remote < 0) {
      return WERIFT_DEFAULT_MAX_MESSAGE_SIZE;
    }
    return remote === 0 ? Number.POSITIVE_INFINITY : remote;
  }

  send(data: Uint8Array | string): void {
    const state = this.#dc.readyState;
    if (state === "closing" || state === "closed") throw cannotSendError(this.label, state);
    const size = assertMessageFits(this.label, data, this.maxMessageSize);
    if (size === 0) {
      throw new VidrtcError("MALFORMED_MESSAGE", "werift cannot send an empty data-channel message.", {
        details: { label: this.label },
      });
    }
    const payload =
      typeof data === "string" || Buffer.isBuffer(data)
        ? data
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    try {
      this.#dc.send(payload);
    } catch (error) {
      const now = this.#dc.readyState;
      if (now === "closing" || now === "closed") {
        throw new VidrtcError("CHANNEL_CLOSED", `Data channel "${this.label}" closed during send.`, {
          cause: error,
          details: { label: this.label, readyState: now },
        });
      }
      if (error instanceof Error && /max-message-size/i.test(error.message)) {
        throw new VidrtcError("MESSAGE_TOO_LARGE", error.message, {
          cause: error,
          details: { size, label: this.label },
        });
      }
      throw error;
    }
  }

  close(): void {
    try {
      this.#dc.close();
    } catch {
      // werift may throw when the SCTP association is already gone; the channel is closed anyway.
    }
  }

  on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe {
    const dc = this.#dc;
    const emit = guarded(listener as (event: unknown) => void);
    let subscription: { unSubscribe: () => void };
    switch (type) {
      case "open":
        subscription = dc.stateChanged.subscribe((state) => {
          if (state === "open") emit(undefined);
        });
        break;
      case "close":
        subscription = dc.stateChanged.subscribe((state) => {
          if (state === "closed") emit(undefined);
        });
        break;
      case "message":
        subscription = dc.onMessage.subscribe((message: Buffer | string) => {
          const data =
            typeof message === "string"
              ? message
              : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
          emit({ data });
        });
        break;
      case "bufferedamountlow":
        subscription = dc.bufferedAmountLow.subscribe(() => emit(undefined));
        break;
      case "error":
        subscription = dc.error.subscribe((error: unknown) =>
          emit(error instanceof Error ? error : new Error(String(error))),
        );
        break;
      default:
        throw new VidrtcError("INVALID_OPTIONS", `Unknown data channel event "${String(type)}".`);
    }
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      subscription.unSubscribe();
    };
  }
}

/**
 * Wraps a werift `RTCDataChannel` as a `DataChannelLike`. Channels from `createDataChannel` and from
 * the `datachannel` event both work. See the module docs for werift's quirks and how they are
 * handled. Binary messages are sent and received without copying: never reuse a sent buffer.
 */
export function wrapWeriftChannel(
  dc: WeriftChannel,
  options: WrapWeriftChannelOptions = {},
): DataChannelLike {
  if (options.maxMessageSize !== undefined && !(options.maxMessageSize > 0)) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `maxMessageSize must be positive, got ${options.maxMessageSize}.`,
    );
  }
  return new WeriftDataChannel(dc as RTCDataChannel, options);
}

/** Video codecs the receiver can offer. */
export type WeriftVideoCodec = "VP8" | "H264";

/** Configuration of {@link createWeriftPeer}. */
export interface WeriftPeerConfig {
  /**
   * STUN/TURN servers, for example from the signalling response or `fetchTurnConfig`. Without
   * them there is no STUN lookup at all: see `defaultIceOptions` in `ice.ts`.
   */
  iceServers?: readonly IceServerLike[];
  /**
   * Raw werift options merged over the defaults, for LAN or internet setups (`icePortRange`,
   * `iceInterfaceAddresses`, `iceTransportPolicy: "relay"`...), or `loopbackIceOptions()` for tests.
   * If their `iceServers` list has no STUN URL, the no-STUN sentinel is still added, so that werift
   * never falls back to Google's public STUN server.
   */
  werift?: WeriftOptions;
  /** Codecs offered by `addVideoReceiver()`, in order of preference. Default `["VP8", "H264"]`. */
  videoCodecs?: readonly WeriftVideoCodec[];
  /**
   * UDP socket buffer size set after gathering (see {@link setWeriftSocketBuffers});
   * default {@link DEFAULT_SOCKET_BUFFER_BYTES}, 0 to keep the OS default.
   */
  socketBufferBytes?: number;
}

/**
 * Sets SO_RCVBUF and SO_SNDBUF on the UDP sockets werift has opened for `pc` (they exist once
 * gathering has finished) and returns how many sockets were changed. Uses werift internals
 * (`iceTransports[].connection.protocols[].transport.socket`); if they change, nothing happens.
 *
 * Why: werift's SCTP sends bursts of up to a full congestion window (about 1 MiB) at once. With
 * Linux's default 208 KiB receive buffer, the receiving side drops thousands of datagrams per
 * 256 MiB on loopback (`RcvbufErrors` in /proc/net/snmp), and each loss costs an SCTP recovery.
 * Measured werift to werift: 1.6 MiB/s with the defaults, 10.6 MiB/s with 4 MiB buffers (1 MiB
 * high-water mark). The kernel caps the value at `net.core.rmem_max`/`wmem_max`, so asking for
 * more does no harm. The receiver of an upload (the server) benefits most.
 */
export function setWeriftSocketBuffers(pc: WeriftConnection, bytes: number): number {
  if (!(bytes > 0)) return 0;
  let changed = 0;
  for (const transport of (pc as RTCPeerConnection).iceTransports) {
    const protocols = (transport.connection as unknown as { protocols?: unknown }).protocols;
    if (!Array.isArray(protocols)) continue;
    for (const protocol of protocols) {
      const socket = (protocol as { transport?: { socket?: unknown } } | null)?.transport?.socket as
        | { setRecvBufferSize?: (n: number) => void; setSendBufferSize?: (n: number) => void }
        | undefined;
      if (typeof socket?.setRecvBufferSize !== "function" || typeof socket.setSendBufferSize !== "function") {
        continue;
      }
      try {
        socket.setRecvBufferSize(bytes);
        socket.setSendBufferSize(bytes);
        changed++;
      } catch {
        // A closed or TCP socket: leave it.
      }
    }
  }
  return changed;
}

/** Default of {@link WeriftPeerConfig.socketBufferBytes}. */
export const DEFAULT_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** A `PeerConnectionLike` over werift, with the underlying connection and received video track. */
export interface WeriftPeer extends OfferingPeer {
  /** The werift connection, for stats and advanced use (see {@link WeriftConnection}). */
  readonly raw: WeriftConnection;
  /**
   * `null` until `addVideoReceiver()` is called. Then a promise for the first remote video track.
   * It rejects with `CONNECTION_FAILED` if the peer is closed first.
   */
  readonly videoTrack: Promise<WeriftTrack> | null;
}

function codecParameters(codecs: readonly WeriftVideoCodec[]): RTCRtpCodecParameters[] {
  return codecs.map((codec) => (codec === "VP8" ? useVP8() : useH264()));
}

function withStunGuard(servers: RTCPeerConnectionConfig["iceServers"]): PeerConfig["iceServers"] {
  const list = [...(servers ?? [])];
  return hasStunUrl(list) ? list : [...list, { urls: NO_STUN_SERVER }];
}

class WeriftPeerConnection implements WeriftPeer {
  readonly transport: TransportName = "werift";
  readonly raw: RTCPeerConnection;
  readonly #videoCodecs: readonly WeriftVideoCodec[];
  readonly #socketBufferBytes: number;
  #videoTrack: Promise<MediaStreamTrack> | null = null;
  #rejectVideo: ((error: VidrtcError) => void) | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  #iceTransports: readonly unknown[] = [];
  #earlyDtls: EarlyDtlsFlight | null = null;

  constructor(config: WeriftPeerConfig) {
    this.#videoCodecs = config.videoCodecs ?? ["VP8", "H264"];
    this.#socketBufferBytes = config.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    if (this.#videoCodecs.length === 0) {
      throw new VidrtcError("INVALID_OPTIONS", "videoCodecs must list at least one codec.");
    }
    const base = defaultIceOptions(config.iceServers);
    const raw = config.werift ?? {};
    this.raw = new RTCPeerConnection({
      ...base,
      codecs: { video: codecParameters(this.#videoCodecs) },
      ...raw,
      iceServers: withStunGuard(raw.iceServers ?? base.iceServers),
    });
  }

  get receivesVideo(): boolean {
    return this.#videoTrack !== null;
  }

  get videoTrack(): Promise<MediaStreamTrack> | null {
    return this.#videoTrack;
  }

  get connectionState(): PeerConnectionState {
    return this.raw.connectionState;
  }

  addVideoReceiver(): void {
    this.#assertOpen();
    if (this.#videoTrack) return;
    this.raw.addTransceiver("video", { direction: "recvonly" });
    this.#videoTrack = new Promise<MediaStreamTrack>((resolve, reject) => {
      const subscription = this.raw.onTrack.subscribe((track) => {
        if (track.kind !== "video") return;
        subscription.unSubscribe();
        this.#rejectVideo = null;
        resolve(track);
      });
      this.#rejectVideo = (error) => {
        subscription.unSubscribe();
        reject(error);
      };
    });
    // A caller that never asks for the track must not see an unhandled rejection on close.
    this.#videoTrack.catch(() => {});
  }

  createDataChannel(label: string): DataChannelLike {
    this.#assertOpen();
    return wrapWeriftChannel(this.raw.createDataChannel(label, { ordered: true }));
  }

  async createOffer(options: { timeoutMs: number; signal?: AbortSignal }): Promise<SessionDescriptionLike> {
    const { timeoutMs, signal } = options;
    throwIfAborted(signal, "offer");
    this.#assertOpen();
    const offer = await this.raw.createOffer();
    throwIfAborted(signal, "offer");
    // werift lists candidates in the local description only when gathering is complete; collect
    // them as they come so that a timeout can still return the ones found so far.
    const gathered: GatheredCandidate[] = [];
    const onCandidate = this.raw.onIceCandidate.subscribe((candidate) => {
      if (candidate?.candidate) gathered.push(candidate);
    });
    let complete: boolean;
    try {
      // werift's setLocalDescription only resolves once gathering has finished, so the bound covers it.
      complete = await this.#boundedGathering(
        this.raw.setLocalDescription(offer),
        timeoutMs,
        signal,
        gathered,
      );
    } finally {
      onCandidate.unSubscribe();
    }
    setWeriftSocketBuffers(this.raw, this.#socketBufferBytes);
    this.#iceTransports = snapshotIceTransports(this.raw);
    const local = this.raw.localDescription;
    if (!local) {
      throw new VidrtcError("SIGNALING_FAILED", "werift produced no local description.");
    }
    if (!complete) return { type: "offer", sdp: injectCandidates(local.sdp, gathered) };
    if (!/^a=candidate:/m.test(local.sdp)) {
      throw new VidrtcError(
        "CONNECTION_FAILED",
        "ICE gathering found no candidate: no usable network interface, and no STUN/TURN server answered.",
      );
    }
    return { type: "offer", sdp: local.sdp };
  }

  /**
   * Waits for `setLocal` and then for gathering state "complete", at most `timeoutMs`; resolves
   * `true` when gathering completed. At the timeout it resolves `false` if `gathered` holds a
   * candidate (like a browser application that stops waiting), else throws
   * `ICE_GATHERING_TIMEOUT`. Throws `ABORTED` on abort.
   */
  #boundedGathering(
    setLocal: Promise<unknown>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    gathered: readonly GatheredCandidate[],
  ): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let settled = false;
      const subscription = this.raw.iceGatheringStateChange.subscribe((state) => {
        if (state === "complete") finish();
      });
      const cleanup = () => {
        settled = true;
        clearTimeout(timer);
        subscription.unSubscribe();
        signal?.removeEventListener("abort", onAbort);
      };
      const finish = (complete = true) => {
        if (settled) return;
        cleanup();
        resolve(complete);
      };
      const fail = (error: unknown) => {
        if (settled) return;
        cleanup();
        reject(error);
      };
      const timer = setTimeout(() => {
        if (gathered.length > 0) {
          finish(false);
          return;
        }
        fail(
          new VidrtcError(
            "ICE_GATHERING_TIMEOUT",
            `ICE gathering found no candidate within ${timeoutMs} ms.`,
            {
              details: { timeoutMs },
            },
          ),
        );
      }, timeoutMs);
      const onAbort = () => fail(abortError(signal, "ICE gathering"));
      signal?.addEventListener("abort", onAbort, { once: true });
      setLocal.then(
        () => {
          if (this.raw.iceGatheringState === "complete") finish();
        },
        (error: unknown) =>
          fail(
            new VidrtcError("SIGNALING_FAILED", `werift could not apply its own offer: ${String(error)}`, {
              cause: error,
            }),
          ),
      );
    });
  }

  async setAnswer(answer: SessionDescriptionLike): Promise<void> {
    this.#assertOpen();
    // werift accepts almost any text as an answer; catch obvious garbage here, with a clear error.
    if (answer.type !== "answer" || typeof answer.sdp !== "string" || !/^m=/m.test(answer.sdp)) {
      throw new VidrtcError(
        "SIGNALING_FAILED",
        "The server's answer is not an SDP answer with media sections.",
        {
          details: { type: answer.type },
        },
      );
    }
    this.#earlyDtls ??= keepEarlyDtlsFlight(this.raw);
    try {
      await this.raw.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    } catch (error) {
      throw new VidrtcError("SIGNALING_FAILED", `werift rejected the server's answer: ${String(error)}`, {
        cause: error,
      });
    }
  }

  /** DTLS records that arrived before werift's DTLS server existed and were handed to it (for tests). */
  get earlyDtlsRecordsReplayed(): number {
    return this.#earlyDtls?.replayed ?? 0;
  }

  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe {
    const subscription = this.raw.connectionStateChange.subscribe(guarded(listener));
    return () => subscription.unSubscribe();
  }

  close(): void {
    void this.closeAndWait();
  }

  closeAndWait(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#earlyDtls?.stop();
    this.#closed = true;
    this.#rejectVideo?.(
      new VidrtcError("CONNECTION_FAILED", "The peer connection closed before any video arrived."),
    );
    this.#rejectVideo = null;
    this.#closing = closeWerift(this.raw, this.#iceTransports);
    return this.#closing;
  }

  async recordVideo(path: string, options: RecordVideoOptions = {}): Promise<VideoRecording> {
    const track = this.#videoTrack;
    if (!track) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        "No video receiver on this peer: call addVideoReceiver() before the offer.",
      );
    }
    checkWebmPath(path);
    return recordVideoToWebm(await track, path, options);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new VidrtcError("CONNECTION_FAILED", "The peer connection is closed.");
    }
  }
}

/** A candidate as werift's `onIceCandidate` reports it. */
export interface GatheredCandidate {
  /** The candidate attribute, `candidate:...` (with or without the `a=` of its SDP line). */
  candidate: string;
  /** Media id (`a=mid`) of the m-section it belongs to. */
  sdpMid?: string | undefined;
  /** 0-based index of the m-section it belongs to. */
  sdpMLineIndex?: number | undefined;
}

/**
 * Adds `a=candidate` lines to the m-sections of `sdp` that they belong to (by `sdpMLineIndex`,
 * else `sdpMid`, else all), before any `a=end-of-candidates`. Lines already present are skipped.
 */
export function injectCandidates(sdp: string, candidates: readonly GatheredCandidate[]): string {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(/\r?\n/);
  const trailing = lines.at(-1) === "" ? lines.pop() : undefined;
  // Group lines: session part (index -1), then one group per m= line.
  const groups: string[][] = [[]];
  for (const line of lines) {
    if (line.startsWith("m=")) groups.push([]);
    groups[groups.length - 1]!.push(line);
  }
  const mids = groups.slice(1).map((g) => g.find((l) => l.startsWith("a=mid:"))?.slice(6));
  for (const c of candidates) {
    const line = c.candidate.startsWith("a=") ? c.candidate : `a=${c.candidate}`;
    const targets =
      c.sdpMLineIndex !== undefined && c.sdpMLineIndex < mids.length
        ? [c.sdpMLineIndex]
        : c.sdpMid !== undefined && mids.includes(c.sdpMid)
          ? [mids.indexOf(c.sdpMid)]
          : mids.map((_, i) => i);
    for (const index of targets) {
      const group = groups[index + 1]!;
      if (group.includes(line)) continue;
      const end = group.indexOf("a=end-of-candidates");
      group.splice(end === -1 ? group.length : end, 0, line);
    }
  }
  const out = groups.flat();
  if (trailing !== undefined) out.push(trailing);
  return out.join(eol);
}

/**
 * Creates a werift peer connection implementing `PeerConnectionLike`. By default it has host
 * candidates on all interfaces plus 127.0.0.1 and no STUN lookup, and uses `config.iceServers`
 * when given (see `ice.ts`). `config.werift` overrides any werift option.
 */
export function createWeriftPeer(config: WeriftPeerConfig = {}): WeriftPeer {
  return new WeriftPeerConnection(config);
}

export type { RecordVideoOptions, VideoRecording } from "../types.js";

/**
 * Records a received VP8 (or H.264) track to a WebM file without decoding, with werift's
 * `MediaRecorder` (RTP → jitter buffer → depacketizer → WebM muxer). Frames are timed from RTP
 * timestamps, because an inference server may send no RTCP sender reports. `path` must end in
 * `.webm`; an existing file is replaced.
 */
export function recordVideoToWebm(
  track: WeriftTrack,
  path: string,
  options: RecordVideoOptions = {},
): VideoRecording {
  checkWebmPath(path);
  if (track.kind !== "video") {
    throw new VidrtcError("INVALID_OPTIONS", `Expected a video track, got ${track.kind}.`);
  }
  throwIfAborted(options.signal, "recording");
  const recorder = new MediaRecorder({
    path,
    tracks: [track as MediaStreamTrack],
    numOfTracks: 1,
    disableLipSync: true,
    disableNtp: true,
    ...(options.width === undefined ? {} : { width: options.width }),
    ...(options.height === undefined ? {} : { height: options.height }),
  });
  let failure: unknown = null;
  recorder.onError.subscribe((error) => {
    failure ??= error;
  });
  const stop = recordingStop(
    path,
    options.signal,
    async () => {
      await recorder.stop();
      // werift writes 640x360 unless told; the header gets the first key frame's real size.
      if (failure === null && options.width === undefined && options.height === undefined)
        await fixWebmVideoSize(path).catch(() => null);
    },
    () => failure,
  );
  return { stop };
}

function checkWebmPath(path: string): void {
  if (!path.toLowerCase().endsWith(".webm")) {
    throw new VidrtcError("INVALID_OPTIONS", `The recording path must end in .webm: ${path}`);
  }
}

/** The werift ICE transport method used to release transports the connection no longer lists. */
interface StoppableTransport {
  stop(): Promise<void>;
}

/**
 * The ICE transports of `pc` right now. Take it after gathering: when werift bundles several
 * m-sections onto one transport, it drops the others from `pc.iceTransports` without closing
 * them, so `pc.close()` would leave their UDP sockets (and consent timers) open and the process
 * could not exit (found with a video receiver plus data channels: one socket left per session).
 */
export function snapshotIceTransports(pc: WeriftConnection): readonly unknown[] {
  return [...(pc as RTCPeerConnection).iceTransports];
}

/**
 * Closes a werift connection and every ICE transport in `transports` (see
 * `snapshotIceTransports`), and resolves once their sockets are released. Closing is best
 * effort: werift may fail on transports that never started, which is not an error here.
 */
export async function closeWerift(pc: WeriftConnection, transports: readonly unknown[] = []): Promise<void> {
  try {
    await pc.close();
  } catch {
    // see above
  }
  for (const transport of transports) {
    const stop = (transport as Partial<StoppableTransport> | null)?.stop;
    if (typeof stop !== "function") continue;
    try {
      await stop.call(transport);
    } catch {
      // already closed
    }
  }
}

/** What {@link keepEarlyDtlsFlight} did, and how to stop it. */
interface EarlyDtlsFlight {
  readonly replayed: number;
  stop(): void;
}

/** Early DTLS records kept per transport, at most (a ClientHello flight is one to a few). */
const EARLY_DTLS_LIMIT = 16;

/**
 * Keeps the DTLS records that reach `pc` before werift has created its DTLS server, and hands them
 * to that server as soon as it exists.
 *
 * Why: werift creates its DTLS endpoint only after its own ICE check has succeeded, and drops
 * whatever DTLS arrives before. An answerer that is the DTLS client (`a=setup:active`) and a full
 * ICE agent, like libdatachannel, sends its ClientHello the moment its own check succeeds, which
 * is usually a few milliseconds earlier; the handshake then waits for its 1 s retransmission
 * (measured against vidrtc-server on node-datachannel: channels open ~1.1 s after the answer
 * instead of ~0.15 s). werift's ICE-lite answerer never sends first, so werift to werift is not
 * affected. Uses werift internals (`dtlsTransports[].iceTransport.connection.onData`, `.dtls`,
 * `.dtls.transport.socket.onData`); if they change, nothing is kept and the handshake simply
 * falls back to the retransmission.
 */
function keepEarlyDtlsFlight(pc: RTCPeerConnection): EarlyDtlsFlight {
  let replayed = 0;
  const stops: (() => void)[] = [];
  for (const transport of pc.dtlsTransports) {
    const dtls = transport as unknown as {
      dtls?: { transport?: { socket?: { onData?: (data: Buffer) => void } } };
      role?: string;
      onStateChange?: { subscribe(fn: (state: string) => void): { unSubscribe(): void } };
      iceTransport?: {
        connection?: { onData?: { subscribe(fn: (data: Buffer) => void): { unSubscribe(): void } } };
      };
    };
    const onData = dtls.iceTransport?.connection?.onData;
    const onState = dtls.onStateChange;
    if (!onData || !onState || dtls.dtls) continue;
    const kept: Buffer[] = [];
    // A DTLS record starts with a content type byte in 20..63 (RFC 7983's demultiplexing range).
    const data = onData.subscribe((buf) => {
      if (!dtls.dtls && kept.length < EARLY_DTLS_LIMIT && buf.length > 0 && buf[0]! >= 20 && buf[0]! <= 63) {
        kept.push(Buffer.from(buf));
      }
    });
    const state = onState.subscribe((next) => {
      if (next !== "connecting") return;
      stop();
      // setState("connecting") runs just before the endpoint is built, synchronously: it exists
      // once this listener has returned.
      queueMicrotask(() => {
        const deliver = dtls.dtls?.transport?.socket?.onData;
        if (dtls.role !== "server" || typeof deliver !== "function") return;
        for (const record of kept.splice(0)) {
          try {
            deliver(record);
            replayed++;
          } catch {
            // the endpoint refused it: the peer's retransmission will do
          }
        }
      });
    });
    const stop = () => {
      data.unSubscribe();
      state.unSubscribe();
    };
    stops.push(() => {
      stop();
      kept.length = 0;
    });
  }
  return {
    get replayed() {
      return replayed;
    },
    stop() {
      for (const s of stops.splice(0)) s();
    },
  };
}
