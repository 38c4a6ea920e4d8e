/**
 * One WebRTC session of the local server: a werift peer answering the client's offer, the
 * `video_upload` channel streamed to a temp file through `UploadReceiver`, then probe, decode
 * and workflow per frame with results on the result channel (and optionally VP8 video back).
 * Every path (success, error, timeout, client gone, server shutdown) ends in `close()`, which
 * kills child processes, closes the peer and removes the session's temp directory.
 */
import { createHash, type Hash } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import {
  encodeResultMessage,
  UPLOAD_CHANNEL_LABEL,
  UploadReceiver,
  type VideoMetadata,
  VidrtcError,
  type WebRTCOutput,
} from "@vidrtc/protocol";
import {
  MediaStreamTrack,
  type RTCDataChannel,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  type RTCRtpTransceiver,
} from "werift";
import type { ServerLogger } from "./log.js";
import { type DecodedFrame, decodeVideo } from "./media/decode.js";
import { probeVideo, type VideoInfo } from "./media/probe.js";
import { Vp8RtpEncoder } from "./media/vp8-out.js";
import type { InitialiseRequest } from "./request.js";
import { enlargeSocketBuffers } from "./werift-sockets.js";
import { type FrameResult, type WorkflowDefinition, WorkflowRunner } from "./workflows/index.js";

/** Events a session reports through `onSessionEvent` (and the log). */
export type SessionEvent =
  | { type: "session-start"; sessionId: string; workflowId: string; realtime: boolean; video: boolean }
  | { type: "upload-complete"; sessionId: string; bytes: number; sha256: string; durationMs: number }
  | {
      type: "processing-complete";
      sessionId: string;
      frames: number;
      dropped: number;
      terminationReason: string | null;
      errors: string[];
    }
  | { type: "session-end"; sessionId: string; reason: string }
  /** One per result frame handed to the result channel; `lastAck` is the client's ACK at that time (0 = none). */
  | { type: "frame-sent"; sessionId: string; frameId: number; lastAck: number }
  | { type: "error"; sessionId: string; code: string; message: string; terminationReason: string };

/** Everything a session needs, resolved by the server. */
export interface SessionOptions {
  id: string;
  request: InitialiseRequest;
  workflow: WorkflowDefinition;
  /** Directory under which the session creates its own temp directory. */
  tempRoot: string;
  peerConfig: RTCPeerConnectionConfig;
  maxUploadBytes: number;
  /** Upload without progress (or a client that never connects) for this long ends the session. */
  idleTimeoutMs: number;
  /** gzip data messages when `data_output` is non-empty. */
  gzip: boolean;
  /** After `processing_complete`, close the peer if the client has not within this bound. */
  lingerMs: number;
  /** Bound on ICE gathering before the answer is sent. */
  gatherTimeoutMs: number;
  /** Strip `.local` (mDNS) candidates from offers instead of resolving them by multicast. */
  resolveMdnsCandidates: boolean;
  ffmpegPath?: string;
  ffprobePath?: string;
  /** Most bytes queued towards the temp file before the upload is failed (storage too slow). */
  maxWriteQueueBytes?: number;
  logger: ServerLogger;
  onEvent: (event: SessionEvent) => void;
  /** Called exactly once when the session has fully closed. */
  onClosed: () => void;
}

/** Result channel high/low watermarks (bytes) for server-side backpressure. */
const RESULT_HIGH_WATER = 1024 * 1024;
const RESULT_LOW_WATER = 256 * 1024;
/** Nothing drained from the result channel for this long: the client is not reading. */
const RESULT_STALL_MS = 60_000;
/** time_base reported in video_metadata (pts are in these units). */
const TIME_BASE = 1 / 90_000;
/** Error reports and `processing_complete` are given this long to drain before closing. */
const FINAL_DRAIN_MS = 2_000;
const DEFAULT_WRITE_QUEUE = 32 * 1024 * 1024;

type State = "connecting" | "uploading" | "processing" | "done" | "closed";

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Removes `a=candidate` lines whose address is an mDNS `.local` name. */
export function stripMdnsCandidates(sdp: string): string {
  return sdp
    .split(/\r?\n/)
    .filter((line) => !/^a=candidate:\S+ \d+ \S+ \d+ \S+\.local /i.test(line))
    .join("\r\n");
}

/** True when the SDP has a video m-line with a non-zero port. */
export function offerHasVideo(sdp: string): boolean {
  return /^m=video [1-9]/m.test(sdp);
}

/** Thrown inside processing when it must stop; `reason` becomes the termination reason. */
class StopProcessing extends Error {
  constructor(readonly terminationReason: string) {
    super(`processing stopped: ${terminationReason}`);
  }
}

/** A live session. Create with {@link Session.start}. */
export class Session {
  readonly id: string;
  readonly createdAt = Date.now();
  #o: SessionOptions;
  #log: ServerLogger;
  #pc: RTCPeerConnection;
  #state: State = "connecting";
  #closing: Promise<void> | null = null;
  #dir: string | null = null;
  #file: string | null = null;

  // channels
  #result: RTCDataChannel | null = null;
  #upload: RTCDataChannel | null = null;
  #resultWaiters: (() => void)[] = [];

  // upload
  #receiver: UploadReceiver;
  #writer: WriteStream | null = null;
  #hash: Hash = createHash("sha256");
  #uploadStartedAt = 0;
  #uploadDone = false;

  // processing
  #process = new AbortController();
  #processing: Promise<void> | null = null;
  #dataOutput: string[] | null;
  #streamOutput: string | undefined;
  #lastAck = 0;
  #ackWaiters: (() => void)[] = [];
  #framesSent = 0;
  #completeSent = false;
  #finishing = false;
  #sendChain: Promise<void> = Promise.resolve();

  // video back
  #track: MediaStreamTrack | null = null;
  #videoPayloadType: number | undefined;
  #encoder: Vp8RtpEncoder | null = null;
  #encoderFailed = false;

  // timers
  #idleTimer: NodeJS.Timeout | null = null;
  #timeoutTimer: NodeJS.Timeout | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;

  private constructor(options: SessionOptions) {
    this.id = options.id;
    this.#o = options;
    this.#log = options.logger;
    this.#dataOutput = options.request.dataOutput;
    this.#pc = new RTCPeerConnection(options.peerConfig);
    this.#receiver = new UploadReceiver({
      echo: (data) => this.#echo(data),
      maxBytes: options.maxUploadBytes,
      maxChunks: Math.max(1, Math.ceil(options.maxUploadBytes / 49_152)),
    });
  }

  /**
   * Creates the session: applies the offer, adds the video track when asked, gathers ICE
   * completely and returns the answer SDP. On failure everything is released and the error
   * rethrown.
   */
  static async start(
    options: SessionOptions,
    streamOutput: string | undefined,
  ): Promise<{ session: Session; sdp: string }> {
    const session = new Session(options);
    try {
      const sdp = await session.#negotiate(streamOutput);
      return { session, sdp };
    } catch (error) {
      await session.close("signalling failed");
      throw error;
    }
  }

  /** Current lifecycle state. */
  get state(): State {
    return this.#state;
  }

  async #negotiate(streamOutput: string | undefined): Promise<string> {
    const o = this.#o;
    this.#dir = await mkdtemp(path.join(o.tempRoot, "session-"));
    this.#file = path.join(this.#dir, "upload.bin");
    const pc = this.#pc;
    pc.onDataChannel.subscribe((channel) => this.#onChannel(channel));
    pc.connectionStateChange.subscribe((state) => {
      this.#log.debug(`peer connection ${state}`);
      if (state === "failed" || state === "closed") void this.close(`peer connection ${state}`);
    });
    let offerSdp = o.request.offer.sdp;
    if (!o.resolveMdnsCandidates) offerSdp = stripMdnsCandidates(offerSdp);
    await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });

    const hasVideo = offerHasVideo(offerSdp);
    if (streamOutput !== undefined && hasVideo) {
      const transceiver = pc.getTransceivers().find((t: RTCRtpTransceiver) => t.kind === "video");
      if (transceiver) {
        const track = new MediaStreamTrack({ kind: "video" });
        transceiver.setDirection("sendonly");
        await transceiver.sender.replaceTrack(track);
        this.#track = track;
        this.#streamOutput = streamOutput;
      }
    } else if (
      streamOutput !== undefined &&
      o.request.streamOutput !== null &&
      o.request.streamOutput.length > 0
    ) {
      this.#log.info(
        `stream_output ${JSON.stringify(o.request.streamOutput)} asked for video but the offer has no video m-line: processing without video`,
      );
    }

    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.#waitGathered();
    const resized = enlargeSocketBuffers(pc);
    this.#log.debug(`UDP socket buffers enlarged on ${resized} socket(s)`);
    const local = pc.localDescription;
    if (!local) throw new VidrtcError("SERVER_ERROR", "werift produced no local description.");
    if (this.#track) {
      const transceiver = pc.getTransceivers().find((t: RTCRtpTransceiver) => t.kind === "video");
      const vp8 = transceiver?.codecs.find((c) => c.mimeType.toLowerCase() === "video/vp8");
      if (!vp8) {
        this.#log.info("the client offered no VP8 codec: processing without video");
        this.#track = null;
        this.#streamOutput = undefined;
      } else {
        this.#videoPayloadType = vp8.payloadType;
      }
    }

    this.#armIdle();
    const timeout = o.request.processingTimeoutSeconds;
    if (timeout !== null) {
      this.#timeoutTimer = setTimeout(() => this.#onProcessingTimeout(), timeout * 1000);
      this.#timeoutTimer.unref?.();
    }
    o.onEvent({
      type: "session-start",
      sessionId: this.id,
      workflowId: o.workflow.id,
      realtime: o.request.realtime,
      video: this.#track !== null,
    });
    return local.sdp;
  }

  async #waitGathered(): Promise<void> {
    const pc = this.#pc;
    if (pc.iceGatheringState === "complete") return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        sub.unSubscribe();
        if (pc.localDescription?.sdp.includes("a=candidate")) resolve();
        else
          reject(
            new VidrtcError(
              "ICE_GATHERING_TIMEOUT",
              `ICE gathering did not complete within ${this.#o.gatherTimeoutMs} ms.`,
            ),
          );
      }, this.#o.gatherTimeoutMs);
      const sub = pc.iceGatheringStateChange.subscribe((state) => {
        if (state === "complete") {
          clearTimeout(timer);
          sub.unSubscribe();
          resolve();
        }
      });
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  }

  // ---------------------------------------------------------------- channels

  #onChannel(channel: RTCDataChannel): void {
    if (this.#state === "closed") {
      channel.close();
      return;
    }
    const label = channel.label;
    this.#log.debug(`data channel '${label}' opened by the client`);
    if (label === UPLOAD_CHANNEL_LABEL) {
      if (this.#upload) {
        void this.fail(
          "upload_error",
          "MALFORMED_MESSAGE",
          "The client opened a second video_upload channel.",
        );
        return;
      }
      this.#upload = channel;
      this.#state = this.#state === "connecting" ? "uploading" : this.#state;
      this.#uploadStartedAt = Date.now();
      this.#armIdle();
      channel.onMessage.subscribe((data) => this.#onUploadMessage(data));
      channel.stateChanged.subscribe((state) => {
        if (state === "closed" && !this.#uploadDone)
          void this.close("client closed the upload channel before the upload completed");
      });
    } else {
      // Any other label is the result channel; the last one wins, as on Roboflow's server.
      this.#result = channel;
      channel.onMessage.subscribe((data) => this.#onControlMessage(data));
      channel.stateChanged.subscribe((state) => {
        if (state === "closed" && this.#result === channel)
          void this.close("client closed the result channel");
      });
      const waiters = this.#resultWaiters;
      this.#resultWaiters = [];
      for (const w of waiters) w();
    }
  }

  #echo(data: Uint8Array): void {
    // werift 0.25.2 sends no DATA chunk for an empty message but still uses up a stream sequence
    // number, so the peer would wait for it forever and lose every later echo: a 0-byte ping is
    // accepted but not echoed (1-byte pings, which every client sends, are).
    if (data.byteLength === 0) {
      this.#log.debug("0-byte keepalive received: not echoed (an empty werift message stalls the channel)");
      return;
    }
    const channel = this.#upload;
    if (channel && channel.readyState === "open") channel.send(Buffer.from(data));
  }

  #onUploadMessage(data: string | Buffer): void {
    if (this.#finishing || this.#state === "closed") return;
    let payloads: Uint8Array[];
    try {
      payloads = this.#receiver.push(
        typeof data === "string" ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
    } catch (error) {
      const code = VidrtcError.isInstance(error) ? error.code : "MALFORMED_MESSAGE";
      void this.fail("upload_error", code, `Upload rejected: ${errorMessage(error)}`);
      return;
    }
    if (payloads.length === 0) return;
    this.#armIdle();
    const writer = this.#ensureWriter();
    for (const payload of payloads) {
      const copy = Buffer.from(payload);
      this.#hash.update(copy);
      writer.write(copy);
    }
    const cap = this.#o.maxWriteQueueBytes ?? DEFAULT_WRITE_QUEUE;
    if (writer.writableLength > cap) {
      void this.fail(
        "upload_error",
        "UPLOAD_STALLED",
        `The server cannot store the upload fast enough (${writer.writableLength} bytes waiting for the disk).`,
      );
      return;
    }
    if (this.#receiver.complete && !this.#uploadDone) {
      this.#uploadDone = true;
      this.#clearIdle();
      void this.#finishUpload(writer);
    }
  }

  #ensureWriter(): WriteStream {
    if (this.#writer) return this.#writer;
    if (!this.#file) throw new VidrtcError("SERVER_ERROR", "session has no temp file");
    const writer = createWriteStream(this.#file, { flags: "wx", highWaterMark: 1024 * 1024 });
    writer.on("error", (error) => {
      void this.fail(
        "upload_error",
        "FILE_UNREADABLE",
        `The server could not store the upload: ${error.message}`,
      );
    });
    this.#writer = writer;
    return writer;
  }

  async #finishUpload(writer: WriteStream): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        writer.once("error", reject);
        writer.end(() => resolve());
      });
    } catch {
      return; // the error handler reports it
    }
    if (this.#finishing || this.#state === "closed") return;
    const bytes = this.#receiver.bytesReceived;
    const sha256 = this.#hash.digest("hex");
    const durationMs = Date.now() - this.#uploadStartedAt;
    const mibps = durationMs > 0 ? (bytes / 1048576 / (durationMs / 1000)).toFixed(1) : "inf";
    this.#log.info(
      `upload complete: ${bytes} bytes sha256=${sha256} (${this.#receiver.totalChunks} chunks, ${durationMs} ms, ${mibps} MiB/s)`,
    );
    this.#o.onEvent({ type: "upload-complete", sessionId: this.id, bytes, sha256, durationMs });
    this.#state = "processing";
    this.#processing = this.#runProcessing();
  }

  #onControlMessage(data: string | Buffer): void {
    if (typeof data !== "string") {
      this.#log.debug(`ignoring a ${data.byteLength}-byte binary message on the result channel`);
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      this.#log.debug(`ignoring a non-JSON control message (${data.length} characters)`);
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return;
    const m = message as Record<string, unknown>;
    if ("ack" in m) {
      const ack = m.ack;
      if (typeof ack === "number" && Number.isInteger(ack) && ack > 0 && ack > this.#lastAck) {
        this.#lastAck = ack;
        const waiters = this.#ackWaiters;
        this.#ackWaiters = [];
        for (const w of waiters) w();
      } else if (typeof ack !== "number" || !Number.isInteger(ack) || ack < 0) {
        this.#log.debug(`ignoring invalid ack ${JSON.stringify(ack)}`);
      }
      return;
    }
    if ("data_output" in m || "stream_output" in m) this.#reconfigure(m.stream_output, m.data_output);
  }

  #reconfigure(stream: unknown, data: unknown): void {
    const isList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
    const names = this.#o.workflow.outputs.map((out) => out.name);
    if (isList(data)) {
      const unknown = data.filter((name) => name !== "*" && name !== "" && !names.includes(name));
      if (unknown.length > 0)
        this.#log.info(`reconfigure: ignoring unknown data_output names ${unknown.join(", ")}`);
      this.#dataOutput = data.filter((name) => name === "*" || names.includes(name));
    }
    if (isList(stream)) {
      const first = stream.find((name) => name.length > 0);
      const image = this.#o.workflow.outputs.find((out) => out.name === first && out.kind === "image");
      if (first === undefined) this.#streamOutput = undefined;
      else if (!image) this.#log.info(`reconfigure: ignoring stream_output '${first}' (not an image output)`);
      else if (!this.#track)
        this.#log.info("reconfigure: stream_output changed but no video track was negotiated");
      else this.#streamOutput = first;
    }
    this.#log.debug(
      `reconfigured: data_output=${JSON.stringify(this.#dataOutput)} stream_output=${this.#streamOutput ?? "none"}`,
    );
  }

  // ---------------------------------------------------------------- timers

  #armIdle(): void {
    this.#clearIdle();
    if (this.#uploadDone) return;
    this.#idleTimer = setTimeout(() => {
      const what = this.#upload
        ? `no upload progress for ${this.#o.idleTimeoutMs} ms`
        : `the client did not open the upload channel within ${this.#o.idleTimeoutMs} ms`;
      void this.fail("idle_timeout", "UPLOAD_STALLED", `Session idle: ${what}.`);
    }, this.#o.idleTimeoutMs);
    this.#idleTimer.unref?.();
  }

  #clearIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #onProcessingTimeout(): void {
    if (this.#state === "processing") {
      this.#process.abort(new StopProcessing("timeout_reached"));
      return;
    }
    if (this.#state === "connecting" || this.#state === "uploading") {
      this.#log.info("processing_timeout reached before the upload completed");
      void (async () => {
        this.#finishing = true;
        this.#clearIdle();
        await this.#sendComplete("timeout_reached", []);
        await this.close("processing_timeout reached");
      })();
    }
  }

  // ---------------------------------------------------------------- processing

  async #runProcessing(): Promise<void> {
    const o = this.#o;
    const signal = this.#process.signal;
    let info: VideoInfo;
    let termination: string | null = null;
    const finalErrors: string[] = [];
    let dropped = 0;
    let runner: WorkflowRunner | null = null;
    let frames: AsyncGenerator<DecodedFrame> | null = null;
    try {
      try {
        info = await probeVideo(this.#file as string, {
          signal,
          ...(o.ffprobePath ? { ffprobePath: o.ffprobePath } : {}),
        });
      } catch (error) {
        if (signal.aborted || VidrtcError.hasCode(error, "PROCESSING_FAILED")) throw error;
        throw new VidrtcError(
          "PROCESSING_FAILED",
          `The uploaded file could not be decoded as video: ${errorMessage(error)}`,
          { cause: error },
        );
      }
      this.#log.debug(
        `probed: ${info.width}x${info.height} ${info.fps} fps rotation=${info.rotation} frames=${info.frameCount ?? "?"} codec=${info.codec}`,
      );
      runner = new WorkflowRunner(o.workflow, {
        parameters: o.request.workflowConfiguration.workflows_parameters ?? {},
      });
      frames = decodeVideo(this.#file as string, info, {
        signal,
        ...(o.ffmpegPath ? { ffmpegPath: o.ffmpegPath } : {}),
      });
      const realtime = o.request.realtime;
      const maxLagMs = Math.max(1000, info.fps > 0 ? (30 * 1000) / info.fps : 0);
      let anchor: { wall: number; pts: number } | null = null;
      for (;;) {
        if (!realtime) await this.#waitAckWindow(this.#framesSent + 1, signal);
        if (signal.aborted) throw signal.reason;
        // The ACK state under which this frame was admitted (reported in the frame-sent event).
        const admittedAck = this.#lastAck;
        let next: IteratorResult<DecodedFrame>;
        try {
          next = await frames.next();
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          throw new VidrtcError(
            "PROCESSING_FAILED",
            `Decoding the uploaded video failed after ${this.#framesSent} frames: ${errorMessage(error)}`,
            {
              cause: error,
            },
          );
        }
        if (next.done) break;
        const frame = next.value;
        if (realtime && anchor) {
          // Paced at the file's frame rate; a frame more than maxLagMs late is dropped (like
          // Roboflow's player, which drops when more than 30 frames are queued).
          const now = performance.now();
          const due = anchor.wall + (frame.ptsSeconds - anchor.pts) * 1000;
          if (now - due > maxLagMs) {
            dropped++;
            continue;
          }
          if (due > now) await sleep(due - now, signal);
        }
        await this.#processFrame(runner, frame, info, signal, admittedAck);
        // The clock starts once the first frame is out, so worker start-up does not count as lag.
        if (realtime) anchor ??= { wall: performance.now(), pts: frame.ptsSeconds };
      }
      if (this.#framesSent === 0 && !signal.aborted) {
        throw new VidrtcError(
          "PROCESSING_FAILED",
          "The uploaded file could not be decoded as video: no frames were decoded.",
        );
      }
    } catch (error) {
      const reason = signal.aborted ? signal.reason : error;
      if (reason instanceof StopProcessing) termination = reason.terminationReason;
      else if (this.#finishing || this.#state === "closed") termination = null;
      else {
        termination = "processing_error";
        const message = errorMessage(error);
        finalErrors.push(message);
        this.#log.error(`processing failed: ${message}`);
        o.onEvent({
          type: "error",
          sessionId: this.id,
          code: VidrtcError.isInstance(error) ? error.code : "PROCESSING_FAILED",
          message,
          terminationReason: termination,
        });
      }
    } finally {
      await frames?.return(undefined).catch(() => {});
      await runner?.close().catch(() => {});
      await this.#encoder?.close().catch(() => {});
      this.#encoder = null;
    }
    if (this.#finishing || this.#state === "closed") return;
    if (finalErrors.length > 0) await this.#sendError(termination ?? "processing_error", finalErrors);
    await this.#sendComplete(termination, finalErrors);
    this.#log.info(
      `processing complete: ${this.#framesSent} frames${dropped ? `, ${dropped} dropped` : ""}${termination ? ` (${termination})` : ""}`,
    );
    o.onEvent({
      type: "processing-complete",
      sessionId: this.id,
      frames: this.#framesSent,
      dropped,
      terminationReason: termination,
      errors: finalErrors,
    });
    if ((this.#state as State) === "closed") return;
    if (finalErrors.length > 0) {
      await this.#drain(FINAL_DRAIN_MS);
      // Not awaited: close() waits for this very function to return.
      void this.close("processing failed");
      return;
    }
    this.#state = "done";
    this.#lingerTimer = setTimeout(
      () => void this.close("client did not close the connection after processing_complete"),
      this.#o.lingerMs,
    );
    this.#lingerTimer.unref?.();
  }

  async #processFrame(
    runner: WorkflowRunner,
    frame: DecodedFrame,
    info: VideoInfo,
    signal: AbortSignal,
    admittedAck: number,
  ): Promise<void> {
    const frameId = this.#framesSent + 1;
    const receivedAt = new Date().toISOString();
    const dataOutput = this.#dataOutput;
    const streamName = this.#track ? this.#streamOutput : undefined;
    const imageNames = new Set(
      this.#o.workflow.outputs.filter((out) => out.kind === "image").map((out) => out.name),
    );
    const wantJpeg = (dataOutput ?? []).filter((name) => imageNames.has(name));
    const want = { jpeg: wantJpeg, rgb: streamName ? [streamName] : [] };
    const errors: string[] = [];
    let result: FrameResult | null = null;
    try {
      result = await runner.process(frame, want);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      errors.push(`Workflow failed on frame ${frameId}: ${errorMessage(error)}`);
    }
    const metadata: VideoMetadata = {
      frame_id: frameId,
      received_at: receivedAt,
      pts: Math.round(frame.ptsSeconds / TIME_BASE),
      time_base: TIME_BASE,
      declared_fps: info.fps,
      measured_fps: null,
      width: frame.width,
      height: frame.height,
    };
    const serialized = this.#serialize(result, dataOutput, imageNames, errors, frame, info);
    const output: WebRTCOutput = {
      serialized_output_data: serialized,
      video_metadata: metadata,
      errors,
      processing_complete: false,
      termination_reason: null,
    };
    const gzip = this.#o.gzip && dataOutput !== null && dataOutput.length > 0;
    this.#framesSent = frameId;
    this.#o.onEvent({ type: "frame-sent", sessionId: this.id, frameId, lastAck: admittedAck });
    await this.#send(frameId, output, gzip, signal);
    if (streamName && result) await this.#writeVideo(result, streamName, info, signal);
  }

  #serialize(
    result: FrameResult | null,
    dataOutput: string[] | null,
    imageNames: Set<string>,
    errors: string[],
    frame: DecodedFrame,
    info: VideoInfo,
  ): Record<string, unknown> | null {
    if (dataOutput === null || dataOutput.length === 0) return null;
    const out: Record<string, unknown> = {};
    if (!result) return out;
    if (dataOutput.includes("*")) {
      for (const [name, value] of Object.entries(result.data)) if (!imageNames.has(name)) out[name] = value;
    }
    for (const name of dataOutput) {
      if (name === "*" || name === "") continue;
      if (imageNames.has(name)) {
        const image = result.images[name];
        if (image?.jpeg) {
          out[name] = {
            type: "base64",
            value: Buffer.from(image.jpeg.buffer, image.jpeg.byteOffset, image.jpeg.byteLength).toString(
              "base64",
            ),
            video_metadata: {
              video_identifier: this.id,
              frame_number: frame.index + 1,
              frame_timestamp: new Date().toISOString(),
              fps: info.fps,
              measured_fps: null,
              comes_from_video_file: true,
            },
          };
        } else errors.push(`Output '${name}' not found`);
      } else if (name in result.data) out[name] = result.data[name];
      else errors.push(`Output '${name}' not found`);
    }
    return out;
  }

  async #writeVideo(result: FrameResult, name: string, info: VideoInfo, signal: AbortSignal): Promise<void> {
    if (this.#encoderFailed) return;
    const image = result.images[name];
    if (!image?.rgb) return;
    const track = this.#track;
    if (!track) return;
    try {
      if (!this.#encoder) {
        const encoder = new Vp8RtpEncoder({
          width: image.width,
          height: image.height,
          fps: info.fps > 0 ? info.fps : 30,
          onRtp: (packet: Uint8Array) => {
            if (!track.stopped) track.writeRtp(Buffer.from(packet));
          },
          ...(this.#videoPayloadType === undefined ? {} : { payloadType: this.#videoPayloadType }),
          ...(this.#o.ffmpegPath ? { ffmpegPath: this.#o.ffmpegPath } : {}),
        });
        this.#encoder = encoder;
        await encoder.start();
      }
      if (signal.aborted) return;
      await this.#encoder.write(image.rgb);
    } catch (error) {
      if (signal.aborted) return;
      this.#encoderFailed = true;
      this.#log.error(`video encoding failed, continuing without video: ${errorMessage(error)}`);
    }
  }

  async #waitAckWindow(nextFrame: number, signal: AbortSignal): Promise<void> {
    while (this.#lastAck > 0 && nextFrame > this.#lastAck + 1) {
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        this.#ackWaiters.push(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }

  // ---------------------------------------------------------------- sending

  async #waitResultChannel(timeoutMs: number): Promise<RTCDataChannel | null> {
    if (this.#result) return this.#result;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref?.();
      this.#resultWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.#result;
  }

  /** Sends one result (serialised with every other send, so frames never interleave). */
  #send(frameId: number, output: WebRTCOutput, gzip: boolean, signal?: AbortSignal): Promise<void> {
    const run = async () => {
      const channel = await this.#waitResultChannel(10_000);
      if (!channel) throw new VidrtcError("CHANNEL_CLOSED", "The client never opened a result channel.");
      const messages = await encodeResultMessage(frameId, output, { gzip });
      for (const message of messages) {
        await this.#waitBuffered(channel, RESULT_HIGH_WATER, signal);
        if (channel.readyState !== "open")
          throw new VidrtcError("CHANNEL_CLOSED", "The result channel closed.");
        channel.send(toBuffer(message));
      }
    };
    const next = this.#sendChain.then(run, run);
    this.#sendChain = next.catch(() => {});
    return next;
  }

  /** Waits until the channel's buffered amount is at most `limit` (low watermark hysteresis). */
  async #waitBuffered(channel: RTCDataChannel, limit: number, signal?: AbortSignal): Promise<void> {
    if (channel.bufferedAmount <= limit) return;
    const target = Math.min(limit, RESULT_LOW_WATER);
    let last = channel.bufferedAmount;
    let lastProgress = Date.now();
    while (channel.bufferedAmount > target) {
      if (signal?.aborted) throw signal.reason;
      if (channel.readyState !== "open")
        throw new VidrtcError("CHANNEL_CLOSED", "The result channel closed.");
      await sleep(10, signal);
      const now = Date.now();
      if (channel.bufferedAmount < last) lastProgress = now;
      last = channel.bufferedAmount;
      if (now - lastProgress > RESULT_STALL_MS) {
        throw new VidrtcError("UPLOAD_STALLED", `The client has not read results for ${RESULT_STALL_MS} ms.`);
      }
    }
  }

  async #drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.race([this.#sendChain, sleep(timeoutMs)]);
    const channel = this.#result;
    while (channel && channel.readyState === "open" && channel.bufferedAmount > 0 && Date.now() < deadline)
      await sleep(10);
  }

  #completeMetadata(): VideoMetadata {
    return {
      frame_id: this.#framesSent,
      received_at: new Date().toISOString(),
      pts: null,
      time_base: null,
      declared_fps: null,
      measured_fps: null,
    };
  }

  async #sendError(terminationReason: string, errors: string[]): Promise<void> {
    const output: WebRTCOutput = {
      serialized_output_data: null,
      video_metadata: this.#completeMetadata(),
      errors,
      processing_complete: false,
      termination_reason: terminationReason,
    };
    await this.#send(this.#framesSent + 1, output, false).catch((error) =>
      this.#log.debug(`could not send the error result: ${errorMessage(error)}`),
    );
  }

  async #sendComplete(terminationReason: string | null, errors: string[]): Promise<void> {
    if (this.#completeSent) return;
    this.#completeSent = true;
    const output: WebRTCOutput = {
      serialized_output_data: null,
      video_metadata: this.#completeMetadata(),
      errors,
      processing_complete: true,
      termination_reason: terminationReason,
    };
    await this.#send(this.#framesSent + 1, output, false).catch((error) =>
      this.#log.debug(`could not send processing_complete: ${errorMessage(error)}`),
    );
  }

  // ---------------------------------------------------------------- ending

  /**
   * Ends the session because of an error: reports it to the client on the result channel
   * (an error result, then `processing_complete`, both with `termination_reason`), then closes.
   */
  async fail(terminationReason: string, code: string, message: string): Promise<void> {
    if (this.#finishing || this.#state === "closed") return;
    this.#finishing = true;
    this.#clearIdle();
    this.#log.error(`${terminationReason}: ${message}`);
    this.#o.onEvent({ type: "error", sessionId: this.id, code, message, terminationReason });
    this.#process.abort(new StopProcessing(terminationReason));
    this.#writer?.destroy();
    const channel = this.#result ?? (this.#upload ? await this.#waitResultChannel(2_000) : null);
    if (channel && channel.readyState === "open") {
      await Promise.race([
        (async () => {
          await this.#sendError(terminationReason, [message]);
          await this.#sendComplete(terminationReason, [message]);
          await this.#drain(FINAL_DRAIN_MS);
        })(),
        sleep(FINAL_DRAIN_MS * 2),
      ]);
    }
    await this.close(`${terminationReason}: ${message}`);
  }

  /**
   * Closes the session (idempotent): stops processing and child processes, closes the peer
   * connection, removes the temp directory. Resolves when everything is released.
   */
  close(reason = "closed"): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = this.#doClose(reason);
    return this.#closing;
  }

  /**
   * Server shutdown: tells the client (best effort, bounded) and closes.
   */
  async shutdown(): Promise<void> {
    if (this.#state !== "done" && this.#state !== "closed" && !this.#finishing) {
      await this.fail("server_shutdown", "ABORTED", "The server is shutting down.");
    } else await this.close("server shutdown");
  }

  async #doClose(reason: string): Promise<void> {
    const wasState = this.#state;
    this.#state = "closed";
    this.#finishing = true;
    this.#clearIdle();
    if (this.#timeoutTimer) clearTimeout(this.#timeoutTimer);
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#process.abort(new StopProcessing("closed"));
    for (const w of this.#ackWaiters) w();
    this.#ackWaiters = [];
    this.#writer?.destroy();
    if (this.#processing) await Promise.race([this.#processing.catch(() => {}), sleep(5_000)]);
    await this.#encoder?.close().catch(() => {});
    this.#track?.stop();
    await Promise.race([this.#pc.close().catch(() => {}), sleep(3_000)]);
    if (this.#writer && !this.#writer.closed) {
      await Promise.race([
        new Promise<void>((resolve) => this.#writer?.once("close", () => resolve())),
        sleep(2_000),
      ]);
    }
    if (this.#dir) {
      await rm(this.#dir, { recursive: true, force: true, maxRetries: 3 }).catch((error) =>
        this.#log.error(`could not remove ${this.#dir}: ${errorMessage(error)}`),
      );
    }
    this.#log.info(`session end (${reason}; was ${wasState})`);
    this.#o.onEvent({ type: "session-end", sessionId: this.id, reason });
    this.#o.onClosed();
  }
}
