/**
 * The transport-agnostic backpressure sink: a `WritableStream<Uint8Array>` that sends each chunk as one
 * data-channel message and applies backpressure from `bufferedAmount`.
 *
 * Pausing: after a send leaves `bufferedAmount` above the high-water mark, `write()` waits until it is at
 * or below the low-water mark. The wait listens for `bufferedamountlow` (threshold = low mark), re-checks
 * right after arming (the event fires only on a crossing and some stacks lose it), and polls slowly as a
 * safety net. It fails with `UPLOAD_STALLED` when `bufferedAmount` does not decrease for
 * `stallTimeoutMs`. Stacks that report drain in bursts (werift lowers `bufferedAmount` only as its SCTP
 * queue empties) are fine as long as one high-water mark drains within the stall timeout.
 *
 * Fast path: while `bufferedAmount` stays at or below the high-water mark, `write()` is synchronous:
 * no timers, listeners or promises of its own.
 */

import type { DataChannelLike, Unsubscribe } from "./channel.js";
import {
  DEFAULT_DRAIN_POLL_MS,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_LOW_WATER_MARK,
  DEFAULT_STALL_TIMEOUT_MS,
} from "./constants.js";
import { abortError, VidrtcError } from "./errors.js";
import { checkNumber } from "./internal.js";

/** Upload progress as seen by the sink. */
export interface SinkProgress {
  /** Messages handed to `channel.send()`. */
  messagesSent: number;
  /** Bytes handed to `channel.send()` (headers included). */
  bytesSent: number;
  /** Bytes the transport has taken out of its buffer: `bytesSent - bufferedAmount`, never decreasing. */
  bytesDrained: number;
  /** Mean drain rate since the first send (bytes per second of drained bytes). */
  bytesPerSecond: number;
  /** Milliseconds since the first send. */
  elapsedMs: number;
}

/** Options of {@link createChannelSink}. */
export interface ChannelSinkOptions {
  /** Pause when `bufferedAmount` exceeds this (bytes); default {@link DEFAULT_HIGH_WATER_MARK}. */
  highWaterMark?: number;
  /** Resume when `bufferedAmount` is at or below this (bytes); default {@link DEFAULT_LOW_WATER_MARK}. */
  lowWaterMark?: number;
  /** Safety-net poll of `bufferedAmount` while paused (ms); default {@link DEFAULT_DRAIN_POLL_MS}. */
  pollIntervalMs?: number;
  /**
   * While paused (or closing), fail with `UPLOAD_STALLED` when `bufferedAmount` has not decreased for
   * this long; also bounds the wait for a `connecting` channel to open. Default {@link DEFAULT_STALL_TIMEOUT_MS}.
   */
  stallTimeoutMs?: number;
  /** `close()` fails with `UPLOAD_STALLED` when the buffer has not emptied after this long; default 2 × stall timeout. */
  closeTimeoutMs?: number;
  /** Aborting errors the stream with `ABORTED` (or the signal's `VidrtcError` reason). */
  signal?: AbortSignal;
  /** Progress callback: at most every 50 ms, plus once when `close()` completes. */
  onProgress?: (progress: SinkProgress) => void;
}

/** Minimum time between two progress callbacks (ms). */
const PROGRESS_INTERVAL_MS = 50;

type TimerHandle = ReturnType<typeof setTimeout>;

/** `value ?? fallback`, a finite positive (or non-negative) number, else `INVALID_OPTIONS`. */
function positiveOption(
  value: number | undefined,
  fallback: number,
  name: string,
  allowZero = false,
): number {
  return checkNumber(name, value ?? fallback, false, allowZero);
}

const now = (): number => performance.now();

/**
 * A `WritableStream` that sends each chunk as one message on `channel`, with backpressure.
 * `write()` resolves once the message is handed to `channel.send()` and `bufferedAmount` is at or
 * below the high-water mark; `close()` resolves once `bufferedAmount` reaches 0. Errors (`VidrtcError`):
 * `MESSAGE_TOO_LARGE` (over `channel.maxMessageSize`, nothing sent), `CHANNEL_CLOSED` (channel not open
 * or closed while waiting), `CHANNEL_OPEN_TIMEOUT` (still `connecting` after the stall timeout),
 * `UPLOAD_STALLED`, `ABORTED`. Sets `channel.bufferedAmountLowThreshold` to the low-water mark.
 */
export function createChannelSink(
  channel: DataChannelLike,
  options: ChannelSinkOptions = {},
): WritableStream<Uint8Array> {
  const high = positiveOption(options.highWaterMark, DEFAULT_HIGH_WATER_MARK, "highWaterMark", true);
  const low = positiveOption(
    options.lowWaterMark,
    Math.min(DEFAULT_LOW_WATER_MARK, high),
    "lowWaterMark",
    true,
  );
  if (low > high) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `lowWaterMark (${low}) must not exceed highWaterMark (${high}).`,
    );
  }
  const pollMs = positiveOption(options.pollIntervalMs, DEFAULT_DRAIN_POLL_MS, "pollIntervalMs");
  const stallMs = positiveOption(options.stallTimeoutMs, DEFAULT_STALL_TIMEOUT_MS, "stallTimeoutMs");
  const closeMs = positiveOption(options.closeTimeoutMs, 2 * stallMs, "closeTimeoutMs");
  const signal = options.signal;
  const onProgress = options.onProgress;

  let messagesSent = 0;
  let bytesSent = 0;
  let bytesDrained = 0;
  let firstSendAt = -1;
  let lastReportAt = Number.NEGATIVE_INFINITY;

  /** Sticky failure: every later write/close rejects with it. */
  let failure: unknown = null;
  /** The wait in progress (drain, open or close), so events can fail it at once. */
  let failWaiter: ((error: unknown) => void) | null = null;
  let lastChannelError: Error | undefined;
  let controllerRef: WritableStreamDefaultController | null = null;
  const unsubscribers: Unsubscribe[] = [];
  let finished = false;

  const closedError = (): VidrtcError =>
    new VidrtcError(
      "CHANNEL_CLOSED",
      `The "${channel.label}" data channel closed during the upload` +
        (bytesSent > 0 ? ` (${bytesSent - drainedNow()} of ${bytesSent} bytes still buffered).` : "."),
      { cause: lastChannelError, details: { bytesSent, bufferedAmount: safeBuffered() } },
    );

  const safeBuffered = (): number => {
    const amount = channel.bufferedAmount;
    return typeof amount === "number" && amount > 0 ? amount : 0;
  };

  const drainedNow = (): number => {
    const d = Math.min(bytesSent, Math.max(bytesDrained, bytesSent - safeBuffered()));
    bytesDrained = d;
    return d;
  };

  const cleanup = (): void => {
    if (finished) return;
    finished = true;
    for (const unsubscribe of unsubscribers.splice(0)) unsubscribe();
    signal?.removeEventListener("abort", onAbort);
  };

  /** Fails the stream from outside a write/close call (abort, progress callback error). */
  const fail = (error: unknown): void => {
    if (failure === null) failure = error;
    const waiter = failWaiter;
    failWaiter = null;
    waiter?.(failure);
    controllerRef?.error(failure);
    cleanup();
  };

  function onAbort(): void {
    fail(abortError(signal, "upload"));
  }

  const report = (t: number, final: boolean): void => {
    if (onProgress === undefined || (!final && t - lastReportAt < PROGRESS_INTERVAL_MS)) return;
    lastReportAt = t;
    const drained = drainedNow();
    const elapsedMs = firstSendAt < 0 ? 0 : t - firstSendAt;
    const progress: SinkProgress = {
      messagesSent,
      bytesSent,
      bytesDrained: drained,
      bytesPerSecond: elapsedMs > 0 ? (drained * 1000) / elapsedMs : 0,
      elapsedMs,
    };
    try {
      onProgress(progress);
    } catch (error) {
      fail(error);
      throw error;
    }
  };

  /**
   * Waits until `bufferedAmount <= target`, with the event, an immediate re-check, a poll, a stall
   * timeout (no decrease for `stallMs`) and, when `deadlineMs` is set, an overall bound.
   */
  const waitForDrain = (target: number, deadlineMs: number | null, what: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const startedAt = now();
      let lastAmount = safeBuffered();
      let lastProgressAt = startedAt;
      let done = false;
      let stallTimer: TimerHandle | undefined;
      let unsubscribeLow: Unsubscribe | undefined;

      const finish = (error?: unknown): void => {
        if (done) return;
        done = true;
        clearInterval(pollTimer);
        clearTimeout(stallTimer);
        unsubscribeLow?.();
        if (failWaiter === finish) failWaiter = null;
        if (error === undefined) resolve();
        else reject(error);
      };

      const check = (): void => {
        if (done) return;
        const amount = safeBuffered();
        const t = now();
        if (amount < lastAmount) lastProgressAt = t;
        lastAmount = amount;
        if (amount <= target) {
          finish();
          return;
        }
        if (channel.readyState === "closed" || channel.readyState === "closing") {
          finish(closedError());
          return;
        }
        try {
          report(t, false);
        } catch (error) {
          finish(error);
          return;
        }
        if (deadlineMs !== null && t - startedAt >= deadlineMs) {
          finish(
            new VidrtcError(
              "UPLOAD_STALLED",
              `The data channel did not finish sending within ${deadlineMs} ms ` +
                `(${amount} bytes still buffered ${what}).`,
              { details: { bufferedAmount: amount, bytesSent, timeoutMs: deadlineMs } },
            ),
          );
          return;
        }
        if (t - lastProgressAt >= stallMs) {
          finish(
            new VidrtcError(
              "UPLOAD_STALLED",
              `The upload stalled: nothing drained from the data channel for ${Math.round(t - lastProgressAt)} ms ` +
                `(${amount} bytes buffered ${what}).`,
              { details: { bufferedAmount: amount, bytesSent, stallTimeoutMs: stallMs } },
            ),
          );
        }
      };

      const armStallTimer = (): void => {
        const t = now();
        let due = lastProgressAt + stallMs - t;
        if (deadlineMs !== null) due = Math.min(due, startedAt + deadlineMs - t);
        stallTimer = setTimeout(
          () => {
            check();
            if (!done) armStallTimer();
          },
          Math.max(1, Math.ceil(due)),
        );
      };

      failWaiter = finish;
      unsubscribeLow = channel.on("bufferedamountlow", check);
      const pollTimer = setInterval(check, pollMs);
      armStallTimer();
      // The event fires only on a crossing: it may have happened before we subscribed.
      check();
    });

  const waitForOpen = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (error?: unknown): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        unsubscribeOpen();
        if (failWaiter === finish) failWaiter = null;
        if (error === undefined) resolve();
        else reject(error);
      };
      const check = (): void => {
        const state = channel.readyState;
        if (state === "open") finish();
        else if (state !== "connecting") finish(closedError());
      };
      failWaiter = finish;
      const unsubscribeOpen = channel.on("open", check);
      const poll = setInterval(check, pollMs);
      const timer = setTimeout(() => {
        finish(
          new VidrtcError(
            "CHANNEL_OPEN_TIMEOUT",
            `The "${channel.label}" data channel did not open within ${stallMs} ms.`,
            { details: { timeoutMs: stallMs } },
          ),
        );
      }, stallMs);
      check();
    });

  const send = (chunk: Uint8Array): void => {
    const size = chunk.byteLength;
    const max = channel.maxMessageSize;
    if (max > 0 && size > max) {
      throw new VidrtcError(
        "MESSAGE_TOO_LARGE",
        `A ${size}-byte message exceeds the data channel's maximum message size of ${max} bytes; nothing was sent.`,
        { details: { size, maxMessageSize: max } },
      );
    }
    try {
      channel.send(chunk);
    } catch (error) {
      if (channel.readyState !== "open") throw closedError();
      throw new VidrtcError(
        "CHANNEL_CLOSED",
        `The data channel refused a ${size}-byte message (${safeBuffered()} bytes buffered): ${String(error)}`,
        { cause: error, details: { size, bufferedAmount: safeBuffered() } },
      );
    }
    if (firstSendAt < 0) firstSendAt = now();
    messagesSent++;
    bytesSent += size;
  };

  const writeSlow = async (chunk: Uint8Array): Promise<void> => {
    if (channel.readyState === "connecting") await waitForOpen();
    if (failure !== null) throw failure;
    if (channel.readyState !== "open") throw closedError();
    send(chunk);
    if (onProgress !== undefined) report(now(), false);
    if (safeBuffered() > high) await waitForDrain(low, null, "while paused");
  };

  return new WritableStream<Uint8Array>(
    {
      start(controller) {
        controllerRef = controller;
        channel.bufferedAmountLowThreshold = low;
        unsubscribers.push(
          channel.on("close", () => {
            const waiter = failWaiter;
            failWaiter = null;
            waiter?.(closedError());
          }),
          channel.on("error", (error) => {
            lastChannelError = error;
          }),
        );
        if (signal !== undefined) {
          if (signal.aborted) {
            fail(abortError(signal, "upload"));
            return;
          }
          signal.addEventListener("abort", onAbort, { once: true });
        }
        // stream.abort() waits for an in-flight write: fail its wait at once instead.
        controller.signal?.addEventListener("abort", () => {
          const waiter = failWaiter;
          failWaiter = null;
          waiter?.(controller.signal.reason ?? abortError(undefined, "upload"));
        });
      },
      write(chunk) {
        if (failure !== null) throw failure;
        if (channel.readyState !== "open") return writeSlow(chunk);
        send(chunk);
        if (onProgress !== undefined) report(now(), false);
        if (safeBuffered() > high) return waitForDrain(low, null, "while paused");
        return undefined;
      },
      async close() {
        try {
          if (failure !== null) throw failure;
          if (safeBuffered() > 0) {
            if (channel.readyState !== "open") throw closedError();
            channel.bufferedAmountLowThreshold = 0;
            await waitForDrain(0, closeMs, "at close");
          }
          report(now(), true);
        } finally {
          cleanup();
        }
      },
      abort(reason) {
        const waiter = failWaiter;
        failWaiter = null;
        waiter?.(reason);
        cleanup();
      },
    },
    new CountQueuingStrategy({ highWaterMark: 1 }),
  );
}
