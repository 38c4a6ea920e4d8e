/**
 * The transport-agnostic session: offer -> POST -> answer -> upload -> results, written once
 * against `PeerConnectionLike` / `DataChannelLike` so the Node and browser bindings share it.
 */
import type { DataChannelLike } from "../channel.js";
import {
  DEFAULT_STALL_TIMEOUT_MS,
  MAX_UPLOAD_BYTES,
  RESULT_CHANNEL_LABEL,
  UPLOAD_CHANNEL_LABEL,
  UPLOAD_CHUNK_SIZE,
  UPLOAD_HEADER_SIZE,
} from "../constants.js";
import { abortError, oneLine, throwIfAborted, VidrtcError } from "../errors.js";
import { checkNumber, httpUrlOrNull, whenOpen } from "../internal.js";
import { Keepalive } from "../keepalive.js";
import {
  ackMessage,
  creditAck,
  decodeResultPayload,
  ResultDeframer,
  type ResultMessage,
  toResultMessage,
} from "../results.js";
import {
  buildInitialiseRequest,
  DEFAULT_SIGNALING_TIMEOUT_MS,
  type FetchLike,
  fetchIceServers,
  fetchTurnConfig,
  type InitialiseOptions,
  initialiseUrl,
  isRoboflowHostedUrl,
  postInitialise,
  postInitialiseBody,
  type ReconfigureOptions,
  reconfigureMessage,
} from "../signalling.js";
import { createChannelSink, type SinkProgress } from "../sink.js";
import { createUploadStream, totalChunksFor, validateUploadSize } from "../upload.js";
import type { IceServerLike, PeerConnectionLike, PeerConnectionState } from "./peer.js";

/** What the session uploads: a known size and a lazily read byte stream. */
export interface UploadSourceLike {
  /** Size in bytes; must be known before the first chunk (it is in every header). */
  readonly size: number;
  /** A name for logs and errors (file name). */
  readonly name?: string;
  /** A fresh stream of the file's bytes, read lazily. Called once per session. */
  stream(): ReadableStream<Uint8Array>;
}

/** Upload progress, counted in file bytes. */
export interface UploadProgress {
  /** File bytes handed to the data channel. */
  bytesUploaded: number;
  /** File bytes the transport has actually sent on (handed over minus still buffered). */
  bytesDelivered: number;
  /** Size of the file in bytes. */
  totalBytes: number;
  /** `video_upload` messages handed to the data channel so far (PROTOCOL.md §3). */
  chunksUploaded: number;
  /** `video_upload` messages the whole file takes (`ceil(size / UPLOAD_CHUNK_SIZE)`). */
  totalChunks: number;
  /** Delivery rate over the upload so far, in bytes per second. */
  bytesPerSecond: number;
  /** Estimated seconds until delivered, or null before a rate is known. */
  etaSeconds: number | null;
  /** Milliseconds since the upload started. */
  elapsedMs: number;
}

/** Resolved by `session.uploaded`. */
export interface UploadSummary {
  /** File bytes uploaded. */
  bytes: number;
  /** `video_upload` messages sent (PROTOCOL.md §3). */
  chunks: number;
  /** Milliseconds the upload took. */
  durationMs: number;
  /** Average upload rate, in bytes per second. */
  bytesPerSecond: number;
}

/** Resolved by `session.done`. */
export interface SessionSummary {
  /** Frames the server reports as processed (the `processing_complete` metadata frame id). */
  framesProcessed: number;
  /** Result messages delivered to the consumer. */
  resultsReceived: number;
  /** `null` on a normal end, `"timeout_reached"` when the server's processing timeout passed. */
  terminationReason: string | null;
  /** Realtime mode: results dropped because the consumer fell behind (always 0 in batch mode). */
  droppedResults: number;
  /** The upload's summary, or `null` when it never completed. */
  upload: UploadSummary | null;
  /** Milliseconds from the session's creation to its end. */
  durationMs: number;
}

/** Bounds on every wait of a session, in milliseconds. */
export interface SessionTimeouts {
  /** Complete ICE gathering before the offer is sent. Default 5000. */
  iceGathering?: number;
  /** The signalling POST. Default 90000 (the hosted API itself waits up to 60 s for a worker). */
  signalling?: number;
  /** Both data channels open after the answer. Default 20000. */
  channelOpen?: number;
  /** Nothing drained on the upload channel while data is queued. Default 30000. */
  uploadStall?: number;
  /** No result message after the upload completed, or between two results. Default 120000. */
  result?: number;
}

/** Options of {@link startSession}. */
export interface SessionOptions extends InitialiseOptions {
  /** Base URL of the inference server, e.g. `http://127.0.0.1:9001`. Unused with `proxyUrl`. */
  apiUrl: string;
  /**
   * An absolute URL of your own backend's signalling proxy (see `@vidrtc/server/proxy`), used
   * instead of `{apiUrl}/initialise_webrtc_worker`: the offer is POSTed there without any API
   * key (the backend adds its own), and ICE servers come from `GET {proxyUrl}` unless
   * `iceServers` are given or `autoTurn` is false. Exclusive with `apiKey`.
   */
  proxyUrl?: string;
  /** The file to upload. */
  source: UploadSourceLike;
  /** Builds the peer connection for this runtime (werift in Node, RTCPeerConnection in browsers). */
  createPeer: (config: { iceServers: IceServerLike[] }) => PeerConnectionLike;
  /** Cancels the session at any point; the session rejects with code `ABORTED`. */
  signal?: AbortSignal;
  /** Upload progress, throttled. */
  onUploadProgress?: (progress: UploadProgress) => void;
  /** `fetch` to use for signalling (defaults to the global one). */
  fetch?: FetchLike;
  /** Upload size cap; default 512 MiB as on Roboflow's server. */
  maxUploadBytes?: number;
  /**
   * When no `iceServers` are given: fetch TURN servers for Roboflow-hosted URLs, or ask the
   * signalling proxy (`GET {proxyUrl}`). Default true.
   */
  autoTurn?: boolean;
  /** Bounds on every wait; each one defaults as documented on {@link SessionTimeouts}. */
  timeouts?: SessionTimeouts;
  /** Upload sink tuning. */
  sink?: {
    /** Sending pauses once `bufferedAmount` is above this many bytes. Default `DEFAULT_HIGH_WATER_MARK` (1 MiB). */
    highWaterMark?: number;
    /** Buffered bytes at or below which sending resumes. Default `DEFAULT_LOW_WATER_MARK` (256 KiB). */
    lowWaterMark?: number;
    /** While paused, how often `bufferedAmount` is polled, in ms. Default `DEFAULT_DRAIN_POLL_MS` (50). */
    pollIntervalMs?: number;
  };
  /** Keepalive tuning, or `false` to disable pings. */
  keepalive?:
    | {
        /** Milliseconds between two pings. Default `DEFAULT_KEEPALIVE_INTERVAL_MS` (3000). */
        intervalMs?: number;
        /** Missed echoes, in intervals, before liveness is lost. Default `DEFAULT_KEEPALIVE_MAX_MISSED` (5). */
        maxMissed?: number;
      }
    | false;
  /** Log hook for diagnostics. */
  onLog?: (message: string) => void;
  /**
   * How far the server may run ahead of the consumer (see {@link ReadAheadOptions}).
   * Default {@link DEFAULT_READ_AHEAD} (16 frames / 32 MiB). `0` = strict ACK-after-consume
   * (at most one frame per round trip, the behaviour of Roboflow's SDKs).
   */
  readAhead?: ReadAheadOptions | 0;
}

/**
 * The client's bounded read-ahead buffer of results.
 *
 * Batch mode: the session grants the server credit with its cumulative ACK,
 * `ack = last consumed frame + frames - 1` (the server's window is 1, so it may produce up to
 * `ack + 1`): at most `frames` results are buffered or in flight beyond the consumer, and none
 * is dropped. The credit is sent as soon as the result channel opens (which also turns the
 * server's pacing on from the first frame) and grows whenever the consumer frees a slot. While
 * the buffered results hold `bytes` or more, the credit is not extended (frames already granted
 * still arrive).
 *
 * Realtime mode (no ACK pacing): the result queue holds at most `frames` results / `bytes`;
 * when it is full the oldest result is dropped and counted in `session.droppedResults`.
 */
export interface ReadAheadOptions {
  /** Results buffered ahead of the consumer (positive integer). Default 16. */
  frames?: number;
  /** Soft cap on buffered result payload bytes (positive integer). Default 32 MiB. */
  bytes?: number;
}

/** The default read-ahead: 16 frames, 32 MiB. */
export const DEFAULT_READ_AHEAD: Readonly<Required<ReadAheadOptions>> = Object.freeze({
  frames: 16,
  bytes: 32 * 1024 * 1024,
});

/** Validates and resolves `readAhead`; `null` means strict ACK-after-consume. */
export function resolveReadAhead(value: ReadAheadOptions | 0 | undefined): Required<ReadAheadOptions> | null {
  if (value === 0) return null;
  if (value === undefined) return { ...DEFAULT_READ_AHEAD };
  if (typeof value !== "object" || value === null) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `readAhead must be 0 or { frames, bytes }, got ${JSON.stringify(value) ?? String(value)}.`,
    );
  }
  // readAhead.frames: 0 is refused like any non-positive count; readAhead: 0 is strict mode.
  const check = (name: "frames" | "bytes"): number =>
    value[name] === undefined
      ? DEFAULT_READ_AHEAD[name]
      : checkNumber(`readAhead.${name}`, value[name], true);
  return { frames: check("frames"), bytes: check("bytes") };
}

const DEFAULTS = {
  iceGathering: 5_000,
  signalling: DEFAULT_SIGNALING_TIMEOUT_MS,
  channelOpen: 20_000,
  uploadStall: DEFAULT_STALL_TIMEOUT_MS,
  result: 120_000,
};

interface Buffered {
  result: ResultMessage;
  bytes: number;
}

type Waiter = { resolve: (r: IteratorResult<ResultMessage>) => void; reject: (e: unknown) => void };

/**
 * A running session. Iterate it (`for await (const result of session)`) or call `run()`;
 * each result is acknowledged to the server only after the consumer is done with it, so a
 * slow consumer slows the server and no result is dropped. The session ends on
 * `processing_complete`, on an error, or on the caller's `AbortSignal`, and always closes
 * the peer connection.
 */
export class InferenceSession implements AsyncIterable<ResultMessage> {
  /** The peer connection (bindings use it for the returned video track). */
  readonly peer: PeerConnectionLike;
  /** Resolves when the whole file has been delivered to the transport. */
  readonly uploaded: Promise<UploadSummary>;
  /** Resolves when the server reports `processing_complete`; rejects with the session's error. */
  readonly done: Promise<SessionSummary>;

  readonly #queue: Buffered[] = [];
  #queuedBytes = 0;
  /** The credit bound; strict ACK-after-consume (`readAhead: 0`) is a credit of one frame. */
  readonly #readAhead: Required<ReadAheadOptions>;
  /** Highest credit ACK sent (credit mode). */
  #creditSent = 0;
  /** Highest frame id the consumer has finished with. */
  #consumedThrough = 0;
  #dropped = 0;
  #waiter: Waiter | null = null;
  #ended: { error: VidrtcError | null } | null = null;
  #summary: SessionSummary | null = null;
  #uploadSummary: UploadSummary | null = null;
  #resultsDelivered = 0;
  #lastDelivered: number | null = null;
  readonly #cleanups: Array<() => void> = [];
  #resolveUploaded!: (s: UploadSummary) => void;
  #rejectUploaded!: (e: unknown) => void;
  #resolveDone!: (s: SessionSummary) => void;
  #rejectDone!: (e: unknown) => void;
  readonly #startedAt = Date.now();
  #resultTimer: ReturnType<typeof setTimeout> | null = null;
  #iterating = false;
  readonly #resultChannel: DataChannelLike;
  readonly #options: SessionOptions;

  /** @internal use {@link startSession}. */
  constructor(
    peer: PeerConnectionLike,
    resultChannel: DataChannelLike,
    /** The `video_upload` data channel of this session (PROTOCOL.md §3). */
    readonly uploadChannel: DataChannelLike,
    options: SessionOptions,
  ) {
    this.peer = peer;
    this.#resultChannel = resultChannel;
    this.#options = options;
    this.uploaded = new Promise((resolve, reject) => {
      this.#resolveUploaded = resolve;
      this.#rejectUploaded = reject;
    });
    this.done = new Promise((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // Callers may only await one of them; never report an unhandled rejection for the other.
    this.uploaded.catch(() => {});
    this.done.catch(() => {});
    // ACK = last consumed + frames - 1: with one frame that is exactly ACK-after-consume.
    this.#readAhead = resolveReadAhead(options.readAhead) ?? { frames: 1, bytes: Number.POSITIVE_INFINITY };
  }

  /** Realtime mode: results dropped (oldest first) because the consumer fell behind. */
  get droppedResults(): number {
    return this.#dropped;
  }

  /** Results buffered and not yet handed to the consumer. */
  get bufferedResults(): number {
    return this.#queue.length;
  }

  /** @internal the result channel is open: grant the initial credit. */
  grantInitialCredit(): void {
    this.#updateCredit();
  }

  /** Batch mode: advance the credit ACK if a slot is free. */
  #updateCredit(): void {
    const ra = this.#readAhead;
    if (this.#options.realtime || this.#ended) return;
    if (this.#queuedBytes >= ra.bytes) return;
    const credit = creditAck(this.#consumedThrough, ra.frames);
    if (credit <= this.#creditSent || credit <= 0) return;
    this.#creditSent = credit;
    this.#sendControl(ackMessage(credit));
  }

  /** Results in order; ends after `processing_complete`. Only one consumer at a time. */
  [Symbol.asyncIterator](): AsyncIterator<ResultMessage> {
    if (this.#iterating)
      throw new VidrtcError("INVALID_OPTIONS", "A session's results can be consumed only once.");
    this.#iterating = true;
    return {
      next: () => this.#next(),
      return: async () => {
        this.#markConsumed();
        this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** The results as a `ReadableStream` (pull-driven: reading drives the ACKs). */
  get readable(): ReadableStream<ResultMessage> {
    const it = this[Symbol.asyncIterator]();
    return new ReadableStream<ResultMessage>(
      {
        pull: async (controller) => {
          const r = await it.next();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        },
        cancel: async () => {
          await it.return?.();
        },
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Consumes every result with callbacks; resolves with the summary at `processing_complete`.
   * `onData` may be async: the next result (and the server's next frame) waits for it.
   */
  async run(handlers: { onData?: (result: ResultMessage) => unknown } = {}): Promise<SessionSummary> {
    for await (const result of this) {
      await handlers.onData?.(result);
    }
    return this.done;
  }

  /**
   * Changes the workflow outputs the server sends from the next frame on (PROTOCOL.md §4.3):
   * `dataOutput` for the result messages, `streamOutput` for the video track (only when one was
   * negotiated). Omitted lists stay as they are. Throws `INVALID_OPTIONS` for bad lists and
   * `CHANNEL_CLOSED` once the session has ended.
   */
  reconfigure(options: ReconfigureOptions): void {
    const text = reconfigureMessage(options);
    if (this.#ended || this.#resultChannel.readyState !== "open") {
      throw new VidrtcError("CHANNEL_CLOSED", "The session has ended; it can no longer be reconfigured.");
    }
    this.#resultChannel.send(text);
  }

  /** Ends the session and releases the peer connection. Idempotent. */
  close(): void {
    this.#finish(new VidrtcError("ABORTED", "The session was closed before processing completed."), true);
  }

  /** @internal */
  get isEnded(): boolean {
    return this.#ended !== null;
  }

  async #next(): Promise<IteratorResult<ResultMessage>> {
    this.#markConsumed();
    const queued = this.#queue.shift();
    if (queued) {
      this.#queuedBytes -= queued.bytes;
      return this.#deliver(queued.result);
    }
    if (this.#ended) {
      if (this.#ended.error && !this.#closedByCaller) throw this.#ended.error;
      return { done: true, value: undefined };
    }
    return new Promise<IteratorResult<ResultMessage>>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #closedByCaller = false;

  #deliver(result: ResultMessage): IteratorResult<ResultMessage> {
    this.#resultsDelivered += 1;
    this.#lastDelivered = result.frameId;
    return { done: false, value: result };
  }

  /** The consumer asked for the next result (or stopped): the previous one is handled. */
  #markConsumed(): void {
    if (this.#lastDelivered !== null) {
      const id = this.#lastDelivered;
      this.#lastDelivered = null;
      if (id > this.#consumedThrough) this.#consumedThrough = id;
      if (!this.#ended) {
        this.#updateCredit();
      }
    }
  }

  #sendControl(text: string): void {
    if (this.#resultChannel.readyState !== "open") return;
    try {
      this.#resultChannel.send(text);
    } catch {
      // The channel closing is reported through its close event.
    }
  }

  /** @internal a decoded result arrived. */
  pushResult(result: ResultMessage, bytes = 0): void {
    if (this.#ended) return;
    this.#armResultTimer();
    if (result.processingComplete) {
      const reason = result.terminationReason;
      if (reason !== null && reason !== "timeout_reached") {
        const detail = oneLine(
          result.errors.length > 0 ? result.errors.join("; ") : `termination reason "${reason}"`,
        );
        this.#finish(
          new VidrtcError("PROCESSING_FAILED", `The server ended processing: ${detail}.`, {
            details: { terminationReason: reason, errors: result.errors },
          }),
        );
        return;
      }
      this.#summary = {
        framesProcessed: result.metadata?.frame_id ?? Math.max(0, result.frameId - 1),
        resultsReceived: 0,
        terminationReason: reason,
        droppedResults: 0,
        upload: null,
        durationMs: 0,
      };
      this.#finish(null);
      return;
    }
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(this.#deliver(result));
    } else {
      this.#queue.push({ result, bytes });
      this.#queuedBytes += bytes;
      if (this.#options.realtime) this.#dropOverflow();
    }
  }

  /** Realtime mode: keep the queue within the bound by dropping the oldest results. */
  #dropOverflow(): void {
    const bound = this.#readAhead;
    while (this.#queue.length > bound.frames || (this.#queue.length > 1 && this.#queuedBytes > bound.bytes)) {
      const old = this.#queue.shift()!;
      this.#queuedBytes -= old.bytes;
      this.#dropped += 1;
      if (this.#dropped === 1)
        this.#options.onLog?.(
          `realtime: the consumer fell behind; dropping the oldest results (bound ${bound.frames} frames)`,
        );
    }
  }

  /** @internal the upload finished. */
  uploadFinished(summary: UploadSummary): void {
    this.#uploadSummary = summary;
    this.#resolveUploaded(summary);
    this.#armResultTimer();
  }

  #armResultTimer(): void {
    if (this.#ended) return;
    if (this.#resultTimer) clearTimeout(this.#resultTimer);
    if (!this.#uploadSummary) return; // before the upload completes, the sink's stall timeout applies
    const ms = this.#options.timeouts?.result ?? DEFAULTS.result;
    this.#resultTimer = setTimeout(() => {
      this.fail(
        new VidrtcError(
          "NO_RESULTS_TIMEOUT",
          `No result from the server for ${Math.round(ms / 1000)} s after the upload. The server may have rejected the file silently; check the server's logs, or raise timeouts.result for slow workflows.`,
        ),
      );
    }, ms);
    unrefTimer(this.#resultTimer);
  }

  /** @internal register a cleanup step run when the session ends. */
  onCleanup(fn: () => void): void {
    if (this.#ended) fn();
    else this.#cleanups.push(fn);
  }

  /** @internal end the session with an error (first error wins). */
  fail(error: unknown): void {
    this.#finish(toVidrtcError(error));
  }

  #finish(error: VidrtcError | null, byCaller = false): void {
    if (this.#ended) return;
    this.#ended = { error };
    this.#closedByCaller = byCaller;
    if (this.#resultTimer) clearTimeout(this.#resultTimer);
    for (const fn of this.#cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // cleanup is best effort
      }
    }
    this.peer.close();
    if (!this.#uploadSummary) {
      if (error) this.#rejectUploaded(error);
      // processing_complete implies the server holds the whole file
      else this.uploadFinished(uploadSummary(this.#options.source.size, this.#startedAt));
    }
    if (error) {
      this.#rejectDone(error);
    } else {
      const s = this.#summary!;
      s.upload = this.#uploadSummary;
      s.resultsReceived = this.#resultsDelivered + this.#queue.length;
      s.droppedResults = this.#dropped;
      s.durationMs = Date.now() - this.#startedAt;
      this.#resolveDone(s);
    }
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      if (error && !byCaller) w.reject(error);
      else w.resolve({ done: true, value: undefined });
    }
  }
}

function toVidrtcError(error: unknown): VidrtcError {
  if (VidrtcError.isInstance(error)) return error;
  return new VidrtcError(
    "CONNECTION_FAILED",
    `Unexpected failure: ${String((error as Error)?.message ?? error)}`,
    {
      cause: error,
    },
  );
}

function unrefTimer(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

/** Waits for `channel` to open, bounded; rejects on close, peer failure or abort. */
function waitForOpen(
  channel: DataChannelLike,
  peer: PeerConnectionLike,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  return whenOpen(
    channel,
    timeoutMs,
    () =>
      new VidrtcError(
        "CHANNEL_OPEN_TIMEOUT",
        `The "${channel.label}" data channel did not open within ${timeoutMs} ms. The server answered but no WebRTC connection formed: check that the server's ICE candidates are reachable (firewall, TURN).`,
      ),
    () => new VidrtcError("CHANNEL_CLOSED", `The "${channel.label}" data channel closed before it opened.`),
    (finish) => {
      const off = peer.onConnectionStateChange((state) => {
        if (state === "failed" || state === "closed")
          finish(
            new VidrtcError(
              "CONNECTION_FAILED",
              `The WebRTC connection to the server ${state} before the channels opened.`,
            ),
          );
      });
      const onAbort = () => finish(abortError(signal, "session"));
      signal?.addEventListener("abort", onAbort, { once: true });
      return () => {
        off();
        signal?.removeEventListener("abort", onAbort);
      };
    },
  );
}

/** The summary of an upload of `bytes` that started at `since` (`Date.now()`) and ends now. */
function uploadSummary(bytes: number, since: number): UploadSummary {
  const durationMs = Date.now() - since;
  return {
    bytes,
    chunks: totalChunksFor(bytes),
    durationMs,
    bytesPerSecond: (bytes * 1000) / Math.max(1, durationMs),
  };
}

/**
 * Starts a session: validates the source, creates the peer connection and channels in the
 * protocol's order, gathers ICE, posts the offer, applies the answer, waits for the channels,
 * then starts the upload and the keepalive. Resolves once the upload has started; results are
 * then consumed from the returned session.
 */
export async function startSession(options: SessionOptions): Promise<InferenceSession> {
  const { signal, source } = options;
  const timeouts = { ...DEFAULTS, ...options.timeouts };
  throwIfAborted(signal, "session");
  validateUploadSize(source.size, options.maxUploadBytes ?? MAX_UPLOAD_BYTES);
  resolveReadAhead(options.readAhead); // a bad value fails here, before any peer exists
  // Every option (URL, workflow, output names, timeouts) is checked before anything connects.
  const proxyUrl = options.proxyUrl;
  if (proxyUrl !== undefined) checkProxyOptions(options);
  else initialiseUrl(options.apiUrl);
  buildInitialiseRequest({ type: "offer", sdp: "v=0\r\n" }, options);

  let iceServers = options.iceServers ?? [];
  if (proxyUrl !== undefined && !options.iceServers && options.autoTurn !== false) {
    try {
      iceServers = await fetchIceServers(proxyUrl, { fetch: options.fetch, signal });
    } catch (error) {
      throwIfAborted(signal, "session");
      options.onLog?.(
        `ICE servers unavailable from the proxy, continuing without: ${(error as Error).message}`,
      );
    }
  } else if (
    !options.iceServers &&
    options.autoTurn !== false &&
    options.apiKey &&
    isRoboflowHostedUrl(options.apiUrl)
  ) {
    try {
      iceServers = await fetchTurnConfig(options.apiKey, { fetch: options.fetch, signal });
    } catch (error) {
      // As in Roboflow's SDKs: without TURN the session may still connect directly.
      throwIfAborted(signal, "session");
      options.onLog?.(`TURN configuration unavailable, continuing without TURN: ${(error as Error).message}`);
    }
  }
  const wantVideo = Array.isArray(options.streamOutput)
    ? options.streamOutput.length > 0
    : options.streamOutput === null;
  const initOptions: InitialiseOptions = { ...options, iceServers };

  const peer = options.createPeer({ iceServers });
  let session: InferenceSession | null = null;
  try {
    if (wantVideo) peer.addVideoReceiver();
    const resultChannel = peer.createDataChannel(RESULT_CHANNEL_LABEL);
    const uploadChannel = peer.createDataChannel(UPLOAD_CHANNEL_LABEL);
    session = new InferenceSession(peer, resultChannel, uploadChannel, options);
    const s = session;
    const resultsSettled = wireResults(s, resultChannel, options);
    wireLifecycle(s, peer, resultChannel, uploadChannel, resultsSettled);

    const offer = await peer.createOffer({ timeoutMs: timeouts.iceGathering, signal });
    const http = { fetch: options.fetch, signal, timeoutMs: timeouts.signalling };
    let answer: Awaited<ReturnType<typeof postInitialise>>;
    if (proxyUrl === undefined) answer = await postInitialise(options.apiUrl, offer, initOptions, http);
    else {
      const { body, headers } = buildInitialiseRequest(offer, initOptions);
      answer = await postInitialiseBody(proxyUrl, body, headers, http);
    }
    throwIfAborted(signal, "session");
    await peer.setAnswer(answer);
    await Promise.all([
      waitForOpen(resultChannel, peer, timeouts.channelOpen, signal),
      waitForOpen(uploadChannel, peer, timeouts.channelOpen, signal),
    ]);
    throwIfAborted(signal, "session");
    if (s.isEnded) await s.done; // rethrows the error that ended it during setup
    s.grantInitialCredit();

    if (options.keepalive !== false) {
      // Keepalive's own defaults: DEFAULT_KEEPALIVE_INTERVAL_MS, DEFAULT_KEEPALIVE_MAX_MISSED.
      const keepalive = new Keepalive(uploadChannel, {
        ...options.keepalive,
        onLost: (error) => s.fail(error),
      });
      keepalive.start();
      s.onCleanup(() => keepalive.stop());
    }
    if (signal) {
      const onAbort = () => s.fail(abortError(signal, "session"));
      signal.addEventListener("abort", onAbort, { once: true });
      s.onCleanup(() => signal.removeEventListener("abort", onAbort));
    }
    startUpload(s, uploadChannel, options, timeouts.uploadStall);
    return s;
  } catch (error) {
    const err = signal?.aborted ? abortError(signal, "session") : toVidrtcError(error);
    if (session) session.fail(err);
    else peer.close();
    throw err;
  }
}

/** `proxyUrl` must be an absolute http(s) URL and comes without an API key (the backend adds it). */
function checkProxyOptions(options: SessionOptions): void {
  const url = options.proxyUrl;
  if (!httpUrlOrNull(url)) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `proxyUrl ${JSON.stringify(url)} must be an absolute http or https URL of your backend's signalling proxy.`,
    );
  }
  if (options.apiKey !== undefined) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      "apiKey cannot be combined with proxyUrl: the proxy adds the key on your backend, so the browser never holds it. Remove apiKey.",
    );
  }
}

/**
 * A channel close or a failed connection waits at most this long for the result messages that
 * had already arrived to be decoded (decoding is asynchronous), so a server that sends its error
 * result and `processing_complete` and then closes at once is reported with its own message.
 */
const RESULTS_SETTLE_MS = 1_000;

/** Wires the result channel; returns a promise for the decoding of every message received so far. */
function wireResults(
  session: InferenceSession,
  channel: DataChannelLike,
  options: SessionOptions,
): () => Promise<void> {
  const deframer = new ResultDeframer();
  let chain: Promise<void> = Promise.resolve();
  const off = channel.on("message", ({ data }) => {
    if (typeof data === "string") {
      options.onLog?.(`ignoring a text message on the result channel (${data.length} chars)`);
      return;
    }
    let frame: { frameId: number; payload: Uint8Array } | null;
    try {
      frame = deframer.push(data);
    } catch (error) {
      session.fail(error);
      return;
    }
    if (!frame) return;
    const { frameId, payload } = frame;
    chain = chain
      .then(() => decodeResultPayload(payload))
      .then((output) => session.pushResult(toResultMessage(frameId, output), payload.byteLength))
      .catch((error) => session.fail(error));
  });
  session.onCleanup(off);
  return () => chain;
}

/** Resolves once `settled()` does, or after `ms`, whichever is first. */
function settledWithin(settled: () => Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void settled().then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function wireLifecycle(
  session: InferenceSession,
  peer: PeerConnectionLike,
  resultChannel: DataChannelLike,
  uploadChannel: DataChannelLike,
  resultsSettled: () => Promise<void>,
): void {
  // Results that arrived before the close are still being decoded: they (an error result, then
  // `processing_complete`) end the session first when they can; otherwise the close does.
  const failAfterResults = (error: VidrtcError) =>
    void settledWithin(resultsSettled, RESULTS_SETTLE_MS).then(() => session.fail(error));
  const onState = (state: PeerConnectionState) => {
    if (state === "failed" || state === "closed")
      failAfterResults(
        new VidrtcError(
          "CONNECTION_FAILED",
          `The WebRTC connection to the server ${state} before processing completed.`,
        ),
      );
  };
  session.onCleanup(peer.onConnectionStateChange(onState));
  for (const channel of [resultChannel, uploadChannel]) {
    session.onCleanup(
      channel.on("close", () =>
        failAfterResults(
          new VidrtcError(
            "CHANNEL_CLOSED",
            `The "${channel.label}" data channel closed before processing completed. The server may have stopped or rejected the session.`,
          ),
        ),
      ),
    );
  }
}

function startUpload(
  session: InferenceSession,
  channel: DataChannelLike,
  options: SessionOptions,
  stallTimeoutMs: number,
): void {
  const { source } = options;
  const totalBytes = source.size;
  const totalChunks = totalChunksFor(totalBytes, UPLOAD_CHUNK_SIZE);
  const wireTotal = totalBytes + totalChunks * UPLOAD_HEADER_SIZE;
  const controller = new AbortController();
  session.onCleanup(() =>
    controller.abort(new VidrtcError("ABORTED", "The session ended during the upload.")),
  );
  const started = Date.now();
  const toProgress = (p: SinkProgress): UploadProgress => {
    const bytesUploaded = Math.max(0, p.bytesSent - p.messagesSent * UPLOAD_HEADER_SIZE);
    const bytesDelivered = Math.min(totalBytes, Math.round((p.bytesDrained * totalBytes) / wireTotal));
    const rate = (p.bytesPerSecond * totalBytes) / wireTotal;
    return {
      bytesUploaded,
      bytesDelivered,
      totalBytes,
      chunksUploaded: p.messagesSent,
      totalChunks,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? (totalBytes - bytesDelivered) / rate : null,
      elapsedMs: p.elapsedMs,
    };
  };
  const sink = createChannelSink(channel, {
    ...options.sink,
    stallTimeoutMs,
    signal: controller.signal,
    onProgress: options.onUploadProgress ? (p) => options.onUploadProgress?.(toProgress(p)) : undefined,
  });
  createUploadStream(source.stream(), totalBytes, { maxBytes: options.maxUploadBytes ?? MAX_UPLOAD_BYTES })
    .pipeTo(sink, { signal: controller.signal })
    .then(
      () => {
        session.uploadFinished(uploadSummary(totalBytes, started));
      },
      (error) => session.fail(error),
    );
}
