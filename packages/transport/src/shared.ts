/**
 * Pieces every stack's adapters share: the send preconditions of `DataChannelLike`, the hand-over
 * of remote channels to `onDataChannel` listeners, and the abortable, once-only `stop()` of a
 * video recording.
 */
import { type ChannelState, type DataChannelLike, type Unsubscribe, VidrtcError } from "@vidrtc/protocol";

/** Size of a message on the wire (UTF-8 for text). */
export const messageByteLength = (data: Uint8Array | string): number =>
  typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.byteLength;

/** The `CHANNEL_CLOSED` error `send()` throws on a channel that cannot send in `state`. */
export function cannotSendError(label: string, state: ChannelState): VidrtcError {
  return new VidrtcError("CHANNEL_CLOSED", `Data channel "${label}" is ${state}; cannot send.`, {
    details: { label, readyState: state },
  });
}

/** Throws `MESSAGE_TOO_LARGE` when `data` exceeds `max`; returns the message size. */
export function assertMessageFits(label: string, data: Uint8Array | string, max: number): number {
  const size = messageByteLength(data);
  if (size > max) {
    throw new VidrtcError(
      "MESSAGE_TOO_LARGE",
      `A ${size}-byte message exceeds the peer's max message size of ${max} bytes on "${label}".`,
      { details: { size, maxMessageSize: max, label } },
    );
  }
  return size;
}

/**
 * Hands remote channels to `onDataChannel` listeners: channels that arrive before anyone listens
 * are kept and given to the first listener, each channel is handed over once.
 */
export class ChannelHandover {
  readonly #listeners = new Set<(channel: DataChannelLike) => void>();
  #pending: DataChannelLike[] = [];

  /** A channel the remote peer opened. */
  arrive(channel: DataChannelLike): void {
    if (this.#listeners.size === 0) {
      this.#pending.push(channel);
      return;
    }
    for (const listener of [...this.#listeners]) listener(channel);
  }

  subscribe(listener: (channel: DataChannelLike) => void): Unsubscribe {
    this.#listeners.add(listener);
    const pending = this.#pending;
    this.#pending = [];
    for (const channel of pending) listener(channel);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}

/**
 * Makes a recording's `stop()`: runs `finish` once (later calls return the same promise), also
 * when `signal` aborts, and rejects with `PROCESSING_FAILED` when `failure()` reports an error.
 */
export function recordingStop(
  path: string,
  signal: AbortSignal | undefined,
  finish: () => Promise<void>,
  failure: () => unknown,
): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      signal?.removeEventListener("abort", onAbort);
      await finish();
      const error = failure();
      if (error !== null) {
        throw new VidrtcError("PROCESSING_FAILED", `Recording to ${path} failed: ${String(error)}`, {
          cause: error,
        });
      }
    })();
    return stopping;
  };
  const onAbort = () => {
    stop().catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  return stop;
}
