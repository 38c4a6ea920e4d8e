/**
 * The result channel: frame results serialised one after another through `@vidrtc/protocol`'s
 * channel sink (event-driven backpressure on `bufferedamountlow`), and the client's control
 * messages on the same channel (ACKs into the shared `AckWindow`, reconfigure requests).
 *
 * Once a send has failed (the client stopped reading for `stallTimeoutMs`, or the channel closed)
 * the sender is broken: every later send, such as the error result and `processing_complete` of
 * a failing session, is abandoned at once instead of waiting for the stall timeout again. A session
 * that ends for another reason (the client's liveness bound, a shutdown) calls {@link
 * ResultSender.abandon}: a send blocked on a full buffer then fails at once too.
 */
import {
  AckWindow,
  createChannelSink,
  type DataChannelLike,
  encodeResultMessage,
  VidrtcError,
  type WebRTCOutput,
} from "@vidrtc/protocol";
import type { ServerLogger } from "../log.js";

/** Result channel high/low watermarks (bytes) for server-side backpressure. */
export const RESULT_HIGH_WATER = 1024 * 1024;
export const RESULT_LOW_WATER = 256 * 1024;
/** Nothing drained from the result channel for this long: the client is not reading. */
export const RESULT_STALL_MS = 60_000;

/** A reconfigure request as received (`undefined` = field absent, `null` = unchanged). */
export interface ReconfigureRequest {
  dataOutput: unknown;
  streamOutput: unknown;
}

export interface ResultSenderOptions {
  log: ServerLogger;
  stallTimeoutMs?: number;
  /** The client's result channel closed (the one in use). */
  onChannelClosed: () => void;
  onReconfigure: (request: ReconfigureRequest) => void;
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A failed result-channel write as the session reports it (a stall says what stalled). */
function resultChannelError(error: unknown): VidrtcError {
  if (!VidrtcError.isInstance(error))
    return new VidrtcError("CHANNEL_CLOSED", `The result channel failed: ${errorMessage(error)}`);
  if (error.code !== "UPLOAD_STALLED") return error;
  const details = (error.details ?? {}) as { stallTimeoutMs?: unknown; bufferedAmount?: unknown };
  const stall = typeof details.stallTimeoutMs === "number" ? ` for ${details.stallTimeoutMs} ms` : "";
  const buffered =
    typeof details.bufferedAmount === "number" ? ` (${details.bufferedAmount} bytes buffered)` : "";
  return new VidrtcError(
    "UPLOAD_STALLED",
    `The client stopped reading results: nothing drained from the result channel${stall}${buffered}.`,
    { cause: error, ...(error.details ? { details: error.details } : {}) },
  );
}

const timeout = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref?.();
  });

export class ResultSender {
  /** ACK pacing, window 1, as on Roboflow's server (@vidrtc/protocol's PROTOCOL.md §4.3). */
  readonly acks = new AckWindow(1);
  readonly #o: ResultSenderOptions;
  #channel: DataChannelLike | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #waiters: (() => void)[] = [];
  #chain: Promise<void> = Promise.resolve();
  #broken: VidrtcError | null = null;

  constructor(options: ResultSenderOptions) {
    this.#o = options;
  }

  get channel(): DataChannelLike | null {
    return this.#channel;
  }

  /** Why sends are being abandoned, once one has failed. */
  get broken(): VidrtcError | null {
    return this.#broken;
  }

  /** Takes a result channel; the last one opened wins, as on Roboflow's server. */
  attach(channel: DataChannelLike): void {
    this.#writer?.releaseLock();
    this.#channel = channel;
    this.#broken = null;
    this.#writer = createChannelSink(channel, {
      highWaterMark: RESULT_HIGH_WATER,
      lowWaterMark: RESULT_LOW_WATER,
      stallTimeoutMs: this.#o.stallTimeoutMs ?? RESULT_STALL_MS,
    }).getWriter();
    // A failed write also rejects `closed`: handled where the write is awaited.
    this.#writer.closed.catch(() => {});
    channel.on("message", (event) => this.#onControl(event.data));
    channel.on("close", () => {
      if (this.#channel === channel) this.#o.onChannelClosed();
    });
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves with the result channel once there is one, or `null` after `timeoutMs`. */
  async waitChannel(timeoutMs: number): Promise<DataChannelLike | null> {
    if (this.#channel) return this.#channel;
    await Promise.race([new Promise<void>((resolve) => this.#waiters.push(resolve)), timeout(timeoutMs)]);
    return this.#channel;
  }

  /** Sends one result (serialised with every other send, so frames never interleave). */
  send(frameId: number, output: WebRTCOutput, gzip: boolean): Promise<void> {
    const run = async () => {
      if (this.#broken) throw this.#broken;
      await this.waitChannel(10_000);
      const writer = this.#writer;
      if (!writer) throw new VidrtcError("CHANNEL_CLOSED", "The client never opened a result channel.");
      const messages = await encodeResultMessage(frameId, output, { gzip });
      try {
        for (const message of messages) {
          if (this.#broken) throw this.#broken;
          await writer.write(message);
        }
      } catch (error) {
        this.#broken ??= resultChannelError(error);
        throw this.#broken;
      }
    };
    const next = this.#chain.then(run, run);
    this.#chain = next.catch(() => {});
    return next;
  }

  /**
   * Gives up on the result channel (idempotent): a send waiting for the buffer to drain fails at
   * once, and so does every later send; {@link ResultSender.drain} returns at once.
   */
  abandon(reason: VidrtcError): void {
    this.#broken ??= reason;
    this.#writer?.abort(reason).catch(() => {});
  }

  /** Waits (at most `timeoutMs`) for queued sends and for the channel's buffer to empty. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.race([this.#chain, timeout(timeoutMs)]);
    const writer = this.#writer;
    if (!writer || this.#broken) return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    await Promise.race([writer.close().catch(() => {}), timeout(left)]);
  }

  #onControl(data: Uint8Array | string): void {
    if (typeof data !== "string") {
      this.#o.log.debug(`ignoring a ${data.byteLength}-byte binary message on the result channel`);
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      this.#o.log.debug(`ignoring a non-JSON control message (${data.length} characters)`);
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return;
    const m = message as Record<string, unknown>;
    if ("ack" in m) {
      const ack = m.ack;
      if (!this.acks.accept(ack) && (typeof ack !== "number" || !Number.isInteger(ack) || ack < 0))
        this.#o.log.debug(`ignoring invalid ack ${JSON.stringify(ack)}`);
      return;
    }
    if ("data_output" in m || "stream_output" in m)
      this.#o.onReconfigure({ dataOutput: m.data_output, streamOutput: m.stream_output });
  }
}
