/**
 * Processing: frames in, `WebRTCOutput`s out. Probes and decodes the uploaded file, runs the
 * workflow per frame (paced by ACKs in batch mode, by the file's frame rate in realtime mode),
 * serialises the requested outputs, hands each result to the result sender and, when a track was
 * negotiated, encodes the stream output as VP8 RTP for the peer's video sender.
 */
import { type VideoMetadata, type VideoSenderLike, VidrtcError, type WebRTCOutput } from "@vidrtc/protocol";
import type { ServerLogger } from "../log.js";
import { type DecodedFrame, decodeVideo } from "../media/decode.js";
import { probeVideo, type VideoInfo } from "../media/probe.js";
import { Vp8RtpEncoder } from "../media/vp8-out.js";
import {
  type FrameResult,
  type WorkflowDefinition,
  type WorkflowRegistry,
  WorkflowRunner,
} from "../workflows/index.js";
import type { ResultSender } from "./results.js";

/** time_base reported in video_metadata (pts are in these units). */
export const TIME_BASE = 1 / 90_000;

/** Thrown inside processing when it must stop; `reason` becomes the termination reason. */
export class StopProcessing extends Error {
  constructor(readonly terminationReason: string) {
    super(`processing stopped: ${terminationReason}`);
  }
}

export interface ProcessingOptions {
  sessionId: string;
  file: string;
  workflow: WorkflowDefinition;
  /** The registry `workflow` was resolved from (default: the built-ins). */
  workflows?: WorkflowRegistry;
  parameters: Record<string, unknown>;
  realtime: boolean;
  gzip: boolean;
  dataOutput: string[] | null;
  /** Stream output name when a video track was negotiated. */
  streamOutput: string | undefined;
  videoSender: VideoSenderLike | null;
  results: ResultSender;
  signal: AbortSignal;
  ffmpegPath?: string;
  ffprobePath?: string;
  log: ServerLogger;
  /** A result frame is handed to the result channel; `lastAck` is the ACK it was admitted under. */
  onFrameSent: (frameId: number, lastAck: number) => void;
  /** True once the session is failing or closed (errors then are not reported again). */
  ending: () => boolean;
}

/** How processing ended. */
export interface ProcessingOutcome {
  frames: number;
  dropped: number;
  /** `null` = ran to the end. */
  terminationReason: string | null;
  /** Errors for the final error result and `processing_complete`. */
  errors: string[];
  /** The code of the first error, for the session's `error` event. */
  errorCode: string | null;
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });

/**
 * A decode that ended clearly before what the container announced means a cut file: the frame
 * count the container states when it states one (MP4), else the video's duration (with a
 * tolerance of one second or 2 frames). A count the probe had to find by demuxing (WebM/Matroska)
 * is what the cut file holds, so there only the duration the file states for the video track (its
 * `DURATION` tag) can show the cut; the container's duration is not used then, as it may be
 * longer than the video (a longer audio track).
 */
export function truncationError(
  info: VideoInfo,
  decoded: number,
  lastPtsSeconds: number | null,
): string | null {
  if (info.frameCount !== null && info.frameCount > 0 && !info.frameCountCounted) {
    if (decoded >= info.frameCount) return null;
    return `The upload ended early: ${decoded} of the ${info.frameCount} frames the file announces were decoded (the file is truncated or damaged).`;
  }
  const duration = info.frameCountCounted ? (info.streamDurationSeconds ?? null) : info.durationSeconds;
  if (duration !== null && duration > 0 && lastPtsSeconds !== null) {
    const frame = info.fps > 0 ? 1 / info.fps : 1 / 30;
    const end = lastPtsSeconds + frame;
    if (end >= duration - Math.max(1, 2 * frame)) return null;
    return `The upload ended early: frames up to ${end.toFixed(2)} s of the ${duration.toFixed(2)} s the file announces were decoded (the file is truncated or damaged).`;
  }
  return null;
}

export class FrameProcessor {
  readonly #o: ProcessingOptions;
  /** Changed by reconfigure messages while processing runs. */
  dataOutput: string[] | null;
  streamOutput: string | undefined;
  #framesSent = 0;
  #encoder: Vp8RtpEncoder | null = null;
  #encoderFailed = false;
  readonly #imageNames: Set<string>;

  constructor(options: ProcessingOptions) {
    this.#o = options;
    this.dataOutput = options.dataOutput;
    this.streamOutput = options.streamOutput;
    this.#imageNames = new Set(
      options.workflow.outputs.filter((out) => out.kind === "image").map((out) => out.name),
    );
  }

  get framesSent(): number {
    return this.#framesSent;
  }

  async run(): Promise<ProcessingOutcome> {
    const o = this.#o;
    const signal = o.signal;
    let termination: string | null = null;
    const errors: string[] = [];
    let errorCode: string | null = null;
    let dropped = 0;
    let decoded = 0;
    let lastPts: number | null = null;
    let runner: WorkflowRunner | null = null;
    let frames: AsyncGenerator<DecodedFrame> | null = null;
    try {
      let info: VideoInfo;
      try {
        info = await probeVideo(o.file, { signal, ...(o.ffprobePath ? { ffprobePath: o.ffprobePath } : {}) });
      } catch (error) {
        if (signal.aborted || VidrtcError.hasCode(error, "PROCESSING_FAILED")) throw error;
        throw new VidrtcError(
          "PROCESSING_FAILED",
          `The uploaded file could not be decoded as video: ${errorMessage(error)}`,
          { cause: error },
        );
      }
      o.log.debug(
        `probed: ${info.width}x${info.height} ${info.fps} fps rotation=${info.rotation} frames=${info.frameCount ?? "?"} codec=${info.codec}`,
      );
      runner = new WorkflowRunner(o.workflow, {
        parameters: o.parameters,
        ...(o.workflows ? { registry: o.workflows } : {}),
      });
      frames = decodeVideo(o.file, info, { signal, ...(o.ffmpegPath ? { ffmpegPath: o.ffmpegPath } : {}) });
      const maxLagMs = Math.max(1000, info.fps > 0 ? (30 * 1000) / info.fps : 0);
      let anchor: { wall: number; pts: number } | null = null;
      for (;;) {
        if (!o.realtime) await o.results.acks.waitFor(this.#framesSent + 1, signal);
        if (signal.aborted) throw signal.reason;
        // The ACK state under which this frame was admitted (reported in the frame-sent event).
        const admittedAck = o.results.acks.lastAck;
        let next: IteratorResult<DecodedFrame>;
        try {
          next = await frames.next();
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          throw new VidrtcError(
            "PROCESSING_FAILED",
            `Decoding the uploaded video failed after ${this.#framesSent} frames: ${errorMessage(error)}`,
            { cause: error },
          );
        }
        if (next.done) break;
        const frame = next.value;
        decoded++;
        lastPts = frame.ptsSeconds;
        if (o.realtime && anchor) {
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
        await this.#processFrame(runner, frame, info, admittedAck);
        // The clock starts once the first frame is out, so worker start-up does not count as lag.
        if (o.realtime) anchor ??= { wall: performance.now(), pts: frame.ptsSeconds };
      }
      if (this.#framesSent === 0 && !signal.aborted) {
        throw new VidrtcError(
          "PROCESSING_FAILED",
          "The uploaded file could not be decoded as video: no frames were decoded.",
        );
      }
      const cut = signal.aborted ? null : truncationError(info, decoded, lastPts);
      if (cut !== null) throw new VidrtcError("PROCESSING_FAILED", cut);
    } catch (error) {
      const reason = signal.aborted ? signal.reason : error;
      if (reason instanceof StopProcessing) termination = reason.terminationReason;
      else if (o.ending()) termination = null;
      else {
        termination = "processing_error";
        errors.push(errorMessage(error));
        errorCode = VidrtcError.isInstance(error) ? error.code : "PROCESSING_FAILED";
      }
    } finally {
      await frames?.return(undefined).catch(() => {});
      await runner?.close().catch(() => {});
      await this.closeVideo();
    }
    return { frames: this.#framesSent, dropped, terminationReason: termination, errors, errorCode };
  }

  /** Stops the VP8 encoder (idempotent). */
  async closeVideo(): Promise<void> {
    const encoder = this.#encoder;
    this.#encoder = null;
    await encoder?.close().catch(() => {});
  }

  async #processFrame(
    runner: WorkflowRunner,
    frame: DecodedFrame,
    info: VideoInfo,
    admittedAck: number,
  ): Promise<void> {
    const o = this.#o;
    const signal = o.signal;
    const frameId = this.#framesSent + 1;
    const receivedAt = new Date().toISOString();
    const dataOutput = this.dataOutput;
    const streamName = o.videoSender ? this.streamOutput : undefined;
    const wantJpeg = (dataOutput ?? []).filter((name) => this.#imageNames.has(name));
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
    const serialized = this.#serialize(result, dataOutput, errors, frame, info);
    const output: WebRTCOutput = {
      serialized_output_data: serialized,
      video_metadata: metadata,
      errors,
      processing_complete: false,
      termination_reason: null,
    };
    const gzip = o.gzip && dataOutput !== null && dataOutput.length > 0;
    this.#framesSent = frameId;
    o.onFrameSent(frameId, admittedAck);
    await o.results.send(frameId, output, gzip);
    if (streamName && result) await this.#writeVideo(result, streamName, info);
  }

  #serialize(
    result: FrameResult | null,
    dataOutput: string[] | null,
    errors: string[],
    frame: DecodedFrame,
    info: VideoInfo,
  ): Record<string, unknown> | null {
    if (dataOutput === null || dataOutput.length === 0) return null;
    const out: Record<string, unknown> = {};
    if (!result) return out;
    const imageNames = this.#imageNames;
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
              video_identifier: this.#o.sessionId,
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

  async #writeVideo(result: FrameResult, name: string, info: VideoInfo): Promise<void> {
    const sender = this.#o.videoSender;
    const signal = this.#o.signal;
    if (this.#encoderFailed || !sender) return;
    const image = result.images[name];
    if (!image?.rgb) return;
    try {
      if (!this.#encoder) {
        const encoder = new Vp8RtpEncoder({
          width: image.width,
          height: image.height,
          fps: info.fps > 0 ? info.fps : 30,
          onRtp: (packet: Uint8Array) => sender.writeRtp(packet),
          payloadType: sender.payloadType,
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
      this.#o.log.error(`video encoding failed, continuing without video: ${errorMessage(error)}`);
    }
  }
}
