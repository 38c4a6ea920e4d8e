/**
 * One session of the local server, composed of single-purpose parts: the answering peer (any
 * stack behind `AnsweringPeerLike`), {@link UploadToFile} for the `video_upload` channel,
 * {@link ResultSender} for the result channel, {@link FrameProcessor} for the work, and a
 * {@link Lifecycle}. Every path (success, error, timeout, client gone, server shutdown) ends in
 * `close()`, which kills child processes, closes the peer and removes the session's temp directory.
 */
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import {
  type AnsweringPeerLike,
  type DataChannelLike,
  UPLOAD_CHANNEL_LABEL,
  type VideoMetadata,
  VidrtcError,
  type WebRTCOutput,
} from "@vidrtc/protocol";
import type { ServerLogger } from "../log.js";
import type { InitialiseRequest } from "../request.js";
import type { WorkflowDefinition, WorkflowRegistry } from "../workflows/index.js";
import { Lifecycle, type SessionState } from "./lifecycle.js";
import { DEFAULT_LIVENESS_TIMEOUT_MS, LivenessWatchdog } from "./liveness.js";
import { FrameProcessor, StopProcessing } from "./processing.js";
import { type ReconfigureRequest, ResultSender } from "./results.js";
import { type SafeTimer, safeTimeout } from "./timer.js";
import { type UploadSummary, UploadToFile } from "./upload.js";

export type { SessionState } from "./lifecycle.js";

/** Events a session reports through `onSessionEvent` (and the log). */
export type SessionEvent =
  | {
      /** The answer was created: the session is signalled. */
      type: "session-start";
      /** Id of the session, as in the server's log. */
      sessionId: string;
      /** Id of the workflow the session runs. */
      workflowId: string;
      /** Whether the client asked for `webrtc_realtime_processing` (@vidrtc/protocol's PROTOCOL.md §2). */
      realtime: boolean;
      /** Whether a processed video track is sent (@vidrtc/protocol's PROTOCOL.md §5). */
      video: boolean;
    }
  | {
      /** The whole file arrived on `video_upload` (@vidrtc/protocol's PROTOCOL.md §3). */
      type: "upload-complete";
      /** Id of the session. */
      sessionId: string;
      /** Size of the uploaded file in bytes. */
      bytes: number;
      /** SHA-256 of the uploaded file, lowercase hex. */
      sha256: string;
      /** Milliseconds the upload took. */
      durationMs: number;
    }
  | {
      /** Processing ended and `processing_complete` is due (@vidrtc/protocol's PROTOCOL.md §4.4). */
      type: "processing-complete";
      /** Id of the session. */
      sessionId: string;
      /** Frames processed. */
      frames: number;
      /** Frames dropped (realtime mode only). */
      dropped: number;
      /** Why processing stopped early, or `null` when it ran to the end. */
      terminationReason: string | null;
      /** Errors reported with the final messages; empty on success. */
      errors: string[];
    }
  | {
      /** The session closed and released its resources. */
      type: "session-end";
      /** Id of the session. */
      sessionId: string;
      /** Why it closed, as in the log line. */
      reason: string;
    }
  /** One per result frame handed to the result channel; `lastAck` is the client's ACK at that time (0 = none). */
  | {
      /** A result frame was handed to the `inference` channel. */
      type: "frame-sent";
      /** Id of the session. */
      sessionId: string;
      /** 1-based id of the frame sent. */
      frameId: number;
      /** The client's highest ACK when it was sent (0 = none, @vidrtc/protocol's PROTOCOL.md §4.3). */
      lastAck: number;
    }
  | {
      /** The session failed (processing error or lost liveness). */
      type: "error";
      /** Id of the session. */
      sessionId: string;
      /** A `VidrtcError` code, e.g. `PROCESSING_FAILED` or `LIVENESS_LOST`. */
      code: string;
      /** What went wrong. */
      message: string;
      /** The `termination_reason` the session ends with, e.g. `processing_error`. */
      terminationReason: string;
    };

/** Everything a session needs, resolved by the server. */
export interface SessionOptions {
  id: string;
  request: InitialiseRequest;
  workflow: WorkflowDefinition;
  /** The registry `workflow` was resolved from (default: the built-ins). */
  workflows?: WorkflowRegistry;
  /** Directory under which the session creates its own temp directory. */
  tempRoot: string;
  /** The answering peer, fresh (the session calls `answer()` once and closes it). */
  peer: AnsweringPeerLike;
  maxUploadBytes: number;
  /** Upload without progress (or a client that never connects) for this long ends the session. */
  idleTimeoutMs: number;
  /** gzip data messages when `data_output` is non-empty. */
  gzip: boolean;
  /** After `processing_complete`, close the peer if the client has not within this bound. */
  lingerMs: number;
  /** Bound on ICE gathering before the answer is sent. */
  gatherTimeoutMs: number;
  /** The result channel drained nothing for this long: the client is gone (default 60 s). */
  resultStallMs?: number;
  /**
   * Nothing received from the client (STUN, DTLS, data, as the peer's `lastActivityAt()` sees it)
   * for this long ends the session in any state (default 15 s).
   */
  livenessTimeoutMs?: number;
  ffmpegPath?: string;
  ffprobePath?: string;
  /** Most bytes queued towards the temp file before the upload is failed (storage too slow). */
  maxWriteQueueBytes?: number;
  logger: ServerLogger;
  onEvent: (event: SessionEvent) => void;
  /** Called exactly once when the session has fully closed. */
  onClosed: () => void;
}

/** Error reports and `processing_complete` are given this long to drain before closing. */
const FINAL_DRAIN_MS = 2_000;

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The warning logged when `data_output` mixes `"*"` with names (@vidrtc/protocol's PROTOCOL.md: Roboflow treats that `"*"` as a name). */
export function starWithNamesWarning(dataOutput: readonly string[] | null): string | null {
  if (!dataOutput || dataOutput.length < 2 || !dataOutput.includes("*")) return null;
  return `data_output ${JSON.stringify(dataOutput)} mixes "*" with output names: this server sends every non-image output plus the named ones, but Roboflow's server treats "*" as all outputs only in exactly ["*"] and would answer every frame with "Output '*' not found".`;
}

/** A live session. Create with {@link Session.start}. */
export class Session {
  readonly id: string;
  readonly createdAt = Date.now();
  readonly #o: SessionOptions;
  readonly #log: ServerLogger;
  readonly #peer: AnsweringPeerLike;
  readonly #life: Lifecycle;
  readonly #results: ResultSender;
  #upload: UploadToFile | null = null;
  #processor: FrameProcessor | null = null;
  #closing: Promise<void> | null = null;
  #dir: string | null = null;
  #file: string | null = null;
  #process = new AbortController();
  #processing: Promise<void> | null = null;
  #dataOutput: string[] | null;
  #streamOutput: string | undefined;
  #completeSent = false;
  #timeoutTimer: SafeTimer | null = null;
  #lingerTimer: SafeTimer | null = null;
  readonly #liveness: LivenessWatchdog;

  private constructor(options: SessionOptions) {
    this.id = options.id;
    this.#o = options;
    this.#log = options.logger;
    this.#peer = options.peer;
    this.#dataOutput = options.request.dataOutput;
    this.#life = new Lifecycle((from, to) => this.#log.debug(`state ${from} -> ${to}`));
    this.#results = new ResultSender({
      log: this.#log,
      ...(options.resultStallMs === undefined ? {} : { stallTimeoutMs: options.resultStallMs }),
      onChannelClosed: () => void this.close("client closed the result channel"),
      onReconfigure: (request) => this.#reconfigure(request),
    });
    this.#liveness = new LivenessWatchdog({
      timeoutMs: options.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS,
      lastActivityAt: () => this.#peer.lastActivityAt(),
      onLost: (silentMs) => this.#onLivenessLost(silentMs),
    });
  }

  /**
   * Creates the session: applies the offer (asking for a video track when `streamOutput` is
   * set), gathers ICE completely and returns the answer SDP. On failure everything is released
   * and the error rethrown.
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
  get state(): SessionState {
    return this.#life.state;
  }

  async #negotiate(streamOutput: string | undefined): Promise<string> {
    const o = this.#o;
    this.#dir = await mkdtemp(path.join(o.tempRoot, "session-"));
    this.#file = path.join(this.#dir, "upload.bin");
    const file = this.#file;
    const warning = starWithNamesWarning(o.request.dataOutput);
    if (warning) this.#log.info(`warning: ${warning}`);
    this.#upload = new UploadToFile({
      file,
      maxUploadBytes: o.maxUploadBytes,
      idleTimeoutMs: o.idleTimeoutMs,
      ...(o.maxWriteQueueBytes === undefined ? {} : { maxWriteQueueBytes: o.maxWriteQueueBytes }),
      log: this.#log,
      onFail: (reason, code, message) => void this.fail(reason, code, message),
      onComplete: (summary) => this.#onUploaded(summary),
    });
    const peer = this.#peer;
    peer.onDataChannel((channel) => this.#onChannel(channel));
    peer.onConnectionStateChange((state) => {
      this.#log.debug(`peer connection ${state}`);
      if (state === "failed" || state === "closed") void this.close(`peer connection ${state}`);
    });
    const answer = await peer.answer(
      { type: "offer", sdp: o.request.offer.sdp },
      { timeoutMs: o.gatherTimeoutMs, sendVideo: streamOutput !== undefined },
    );
    if (streamOutput !== undefined) {
      if (peer.videoSender) this.#streamOutput = streamOutput;
      else if (o.request.streamOutput !== null && o.request.streamOutput.length > 0)
        this.#log.info(
          `stream_output ${JSON.stringify(o.request.streamOutput)} asked for video but the offer has no VP8 video m-line: processing without video`,
        );
    }
    this.#upload.start();
    this.#liveness.start();
    const timeout = o.request.processingTimeoutSeconds;
    // Any length: past the 32-bit range a plain setTimeout would fire after 1 ms.
    if (timeout !== null) this.#timeoutTimer = safeTimeout(() => this.#onProcessingTimeout(), timeout * 1000);
    o.onEvent({
      type: "session-start",
      sessionId: this.id,
      workflowId: o.workflow.id,
      realtime: o.request.realtime,
      video: this.#streamOutput !== undefined,
    });
    return answer.sdp;
  }

  #onChannel(channel: DataChannelLike): void {
    if (this.#life.state === "closed") {
      channel.close();
      return;
    }
    this.#log.debug(`data channel '${channel.label}' opened by the client`);
    if (channel.label === UPLOAD_CHANNEL_LABEL) {
      const upload = this.#upload;
      if (!upload) return;
      const attached = upload.attach(
        channel,
        () => void this.close("client closed the upload channel before the upload completed"),
      );
      if (!attached) {
        void this.fail(
          "upload_error",
          "MALFORMED_MESSAGE",
          "The client opened a second video_upload channel.",
        );
        return;
      }
      this.#life.to("uploading");
    } else {
      // Any other label is the result channel; the last one wins, as on Roboflow's server.
      this.#results.attach(channel);
    }
  }

  #onUploaded(summary: UploadSummary): void {
    if (this.#life.ending) return;
    const { bytes, sha256, durationMs, chunks } = summary;
    const mibps = durationMs > 0 ? (bytes / 1048576 / (durationMs / 1000)).toFixed(1) : "inf";
    this.#log.info(
      `upload complete: ${bytes} bytes sha256=${sha256} (${chunks} chunks, ${durationMs} ms, ${mibps} MiB/s)`,
    );
    this.#o.onEvent({ type: "upload-complete", sessionId: this.id, bytes, sha256, durationMs });
    if (!this.#life.to("processing")) return;
    this.#processing = this.#runProcessing();
  }

  /** Applies a reconfigure message: `null` or a missing field leaves that setting unchanged. */
  #reconfigure({ dataOutput, streamOutput }: ReconfigureRequest): void {
    const isList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
    const outputs = this.#o.workflow.outputs;
    const names = outputs.map((out) => out.name);
    if (isList(dataOutput)) {
      const unknown = dataOutput.filter((name) => name !== "*" && name !== "" && !names.includes(name));
      if (unknown.length > 0)
        this.#log.info(`reconfigure: ignoring unknown data_output names ${unknown.join(", ")}`);
      this.#dataOutput = dataOutput.filter((name) => name === "*" || names.includes(name));
      const warning = starWithNamesWarning(dataOutput);
      if (warning) this.#log.info(`warning: reconfigure ${warning}`);
    }
    if (isList(streamOutput)) {
      const first = streamOutput.find((name) => name.length > 0);
      const image = outputs.find((out) => out.name === first && out.kind === "image");
      if (first === undefined) this.#streamOutput = undefined;
      else if (!image) this.#log.info(`reconfigure: ignoring stream_output '${first}' (not an image output)`);
      else if (!this.#peer.videoSender)
        this.#log.info("reconfigure: stream_output changed but no video track was negotiated");
      else this.#streamOutput = first;
    }
    if (this.#processor) {
      this.#processor.dataOutput = this.#dataOutput;
      this.#processor.streamOutput = this.#streamOutput;
    }
    this.#log.debug(
      `reconfigured: data_output=${JSON.stringify(this.#dataOutput)} stream_output=${this.#streamOutput ?? "none"}`,
    );
  }

  /**
   * The client sent nothing for the liveness bound: it is gone (killed, unplugged, suspended), so
   * nothing is sent to it; processing (and its ffmpeg child) stops and the session closes.
   */
  #onLivenessLost(silentMs: number): void {
    if (!this.#life.to("failing")) return;
    const message = `Nothing received from the client for ${silentMs} ms (liveness bound ${this.#o.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS} ms): the client is gone.`;
    this.#upload?.stop();
    this.#log.error(`liveness_lost: ${message}`);
    this.#o.onEvent({
      type: "error",
      sessionId: this.id,
      code: "LIVENESS_LOST",
      message,
      terminationReason: "liveness_lost",
    });
    this.#process.abort(new StopProcessing("liveness_lost"));
    void this.close(`liveness_lost: ${message}`);
  }

  #onProcessingTimeout(): void {
    const state = this.#life.state;
    if (state === "processing") {
      this.#process.abort(new StopProcessing("timeout_reached"));
      return;
    }
    if (state === "connecting" || state === "uploading") {
      this.#log.info("processing_timeout reached before the upload completed");
      this.#life.to("failing");
      this.#upload?.stop();
      void (async () => {
        await this.#sendComplete("timeout_reached", []);
        await this.close("processing_timeout reached");
      })();
    }
  }

  async #runProcessing(): Promise<void> {
    const o = this.#o;
    const processor = new FrameProcessor({
      sessionId: this.id,
      file: this.#file as string,
      workflow: o.workflow,
      ...(o.workflows ? { workflows: o.workflows } : {}),
      parameters: o.request.workflowConfiguration.workflows_parameters ?? {},
      realtime: o.request.realtime,
      gzip: o.gzip,
      dataOutput: this.#dataOutput,
      streamOutput: this.#streamOutput,
      videoSender: this.#peer.videoSender,
      results: this.#results,
      signal: this.#process.signal,
      ...(o.ffmpegPath ? { ffmpegPath: o.ffmpegPath } : {}),
      ...(o.ffprobePath ? { ffprobePath: o.ffprobePath } : {}),
      log: this.#log,
      onFrameSent: (frameId, lastAck) =>
        o.onEvent({ type: "frame-sent", sessionId: this.id, frameId, lastAck }),
      ending: () => this.#life.ending,
    });
    this.#processor = processor;
    const outcome = await processor.run();
    const { terminationReason: termination, errors } = outcome;
    if (errors.length > 0 && !this.#life.ending) {
      this.#log.error(`processing failed: ${errors.join("; ")}`);
      o.onEvent({
        type: "error",
        sessionId: this.id,
        code: outcome.errorCode ?? "PROCESSING_FAILED",
        message: errors.join("; "),
        terminationReason: termination ?? "processing_error",
      });
    }
    if (this.#life.ending) return;
    if (errors.length > 0) await this.#sendError(termination ?? "processing_error", errors);
    await this.#sendComplete(termination, errors);
    this.#log.info(
      `processing complete: ${outcome.frames} frames${outcome.dropped ? `, ${outcome.dropped} dropped` : ""}${termination ? ` (${termination})` : ""}`,
    );
    o.onEvent({
      type: "processing-complete",
      sessionId: this.id,
      frames: outcome.frames,
      dropped: outcome.dropped,
      terminationReason: termination,
      errors,
    });
    if (this.#life.ending) return;
    if (errors.length > 0) {
      await this.#results.drain(FINAL_DRAIN_MS);
      // Not awaited: close() waits for this very function to return.
      void this.close("processing failed");
      return;
    }
    this.#life.to("done");
    this.#lingerTimer = safeTimeout(
      () => void this.close("client did not close the connection after processing_complete"),
      o.lingerMs,
    );
  }

  #completeMetadata(): VideoMetadata {
    return {
      frame_id: this.#processor?.framesSent ?? 0,
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
    await this.#results
      .send((this.#processor?.framesSent ?? 0) + 1, output, false)
      .catch((error) => this.#log.debug(`could not send the error result: ${errorMessage(error)}`));
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
    await this.#results
      .send((this.#processor?.framesSent ?? 0) + 1, output, false)
      .catch((error) => this.#log.debug(`could not send processing_complete: ${errorMessage(error)}`));
  }

  /**
   * Ends the session because of an error: reports it to the client on the result channel
   * (an error result, then `processing_complete`, both with `termination_reason`), then closes.
   */
  async fail(terminationReason: string, code: string, message: string): Promise<void> {
    if (!this.#life.to("failing")) return;
    this.#upload?.stop();
    this.#log.error(`${terminationReason}: ${message}`);
    this.#o.onEvent({ type: "error", sessionId: this.id, code, message, terminationReason });
    this.#process.abort(new StopProcessing(terminationReason));
    const channel =
      this.#results.channel ?? (this.#upload?.attached ? await this.#results.waitChannel(2_000) : null);
    if (channel && channel.readyState === "open" && !this.#results.broken) {
      await Promise.race([
        (async () => {
          await this.#sendError(terminationReason, [message]);
          await this.#sendComplete(terminationReason, [message]);
          await this.#results.drain(FINAL_DRAIN_MS);
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

  /** Server shutdown: tells the client (best effort, bounded) and closes. */
  async shutdown(): Promise<void> {
    const state = this.#life.state;
    if (state !== "done" && !this.#life.ending) {
      await this.fail("server_shutdown", "ABORTED", "The server is shutting down.");
    } else await this.close("server shutdown");
  }

  async #doClose(reason: string): Promise<void> {
    const wasState = this.#life.state;
    this.#life.to("closed");
    this.#liveness.stop();
    this.#upload?.stop();
    this.#timeoutTimer?.clear();
    this.#lingerTimer?.clear();
    this.#process.abort(new StopProcessing("closed"));
    // Nothing more is sent: a result send blocked on a full buffer (a client that stopped
    // reading) fails now, so processing ends at once instead of after the stall bound.
    this.#results.abandon(new VidrtcError("CHANNEL_CLOSED", `The session closed (${reason}).`));
    if (this.#processing) await Promise.race([this.#processing.catch(() => {}), sleep(5_000)]);
    await this.#processor?.closeVideo();
    await Promise.race([this.#peer.close().catch(() => {}), sleep(3_000)]);
    await this.#upload?.closed(2_000);
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
