/**
 * `DataChannelLike` over node-datachannel's native `DataChannel` (libdatachannel 0.24 via
 * node-datachannel 0.33).
 *
 * Facts that shape this code (checked in tests, in a namespace with a sealed fake NIC):
 * - The native object takes one callback per event; setting another replaces it. The wrapper
 *   registers each once and fans events out to its own listeners.
 * - `maxMessageSize()` is the smaller of ours and the remote's `a=max-message-size`; above it
 *   `sendMessageBinary` throws "Message size exceeds limit". The wrapper checks first and throws
 *   `MESSAGE_TOO_LARGE`, so nothing is sent.
 * - `onBufferedAmountLow` fires when `bufferedAmount()` falls to or below the threshold set with
 *   `setBufferedAmountLowThreshold`; there is no getter, so the wrapper keeps the value.
 * - `onClosed` fires on both ends when either closes; `close()` is asynchronous (`closing` until
 *   then). `onError` reports a string.
 * - Binary messages arrive as `Buffer` (passed on as a `Uint8Array` view), text as `string`.
 */
import {
  type ChannelEventMap,
  type ChannelState,
  type DataChannelLike,
  type Unsubscribe,
  VidrtcError,
} from "@vidrtc/protocol";
import type { DataChannel } from "node-datachannel";
import { assertMessageFits, cannotSendError } from "../shared.js";

type Listeners = { [K in keyof ChannelEventMap]: Set<(event: ChannelEventMap[K]) => void> };

function emitAll<E>(set: Set<(event: E) => void>, event: E) {
  for (const listener of [...set]) {
    try {
      listener(event);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

/** Most messages kept for a channel that nobody listens to yet (handed over before subscribing). */
const MAX_EARLY_MESSAGES = 1024;

export class NdcDataChannel implements DataChannelLike {
  readonly label: string;
  readonly #dc: DataChannel;
  readonly #listeners: Listeners = {
    open: new Set(),
    message: new Set(),
    bufferedamountlow: new Set(),
    close: new Set(),
    error: new Set(),
  };
  #state: ChannelState;
  #threshold = 0;
  #early: { data: Uint8Array | string }[] = [];

  constructor(dc: DataChannel) {
    this.#dc = dc;
    this.label = dc.getLabel();
    this.#state = dc.isOpen() ? "open" : "connecting";
    dc.onOpen(() => {
      if (this.#state !== "connecting") return;
      this.#state = "open";
      emitAll(this.#listeners.open, undefined);
    });
    dc.onClosed(() => this.#onClosed());
    dc.onError((message) => {
      emitAll(this.#listeners.error, new Error(`node-datachannel: ${message}`));
    });
    dc.onBufferedAmountLow(() => emitAll(this.#listeners.bufferedamountlow, undefined));
    dc.onMessage((message) => {
      const data =
        typeof message === "string"
          ? message
          : message instanceof ArrayBuffer
            ? new Uint8Array(message)
            : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
      if (this.#listeners.message.size === 0) {
        if (this.#early.length < MAX_EARLY_MESSAGES) this.#early.push({ data });
        return;
      }
      emitAll(this.#listeners.message, { data });
    });
  }

  #onClosed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    emitAll(this.#listeners.close, undefined);
  }

  get readyState(): ChannelState {
    return this.#state;
  }

  get bufferedAmount(): number {
    if (this.#state === "closed") return 0;
    try {
      return this.#dc.bufferedAmount();
    } catch {
      return 0;
    }
  }

  get bufferedAmountLowThreshold(): number {
    return this.#threshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    if (!Number.isInteger(value) || value < 0) {
      throw new VidrtcError("INVALID_OPTIONS", `Invalid bufferedAmountLowThreshold: ${value}.`);
    }
    this.#threshold = value;
    try {
      this.#dc.setBufferedAmountLowThreshold(value);
    } catch {
      // closed: nothing to signal any more
    }
  }

  get maxMessageSize(): number {
    try {
      const max = this.#dc.maxMessageSize();
      return max > 0 ? max : Number.POSITIVE_INFINITY;
    } catch {
      return 65_536;
    }
  }

  send(data: Uint8Array | string): void {
    const state = this.#state;
    if (state !== "open") throw cannotSendError(this.label, state);
    const size = assertMessageFits(this.label, data, this.maxMessageSize);
    try {
      if (typeof data === "string") this.#dc.sendMessage(data);
      else this.#dc.sendMessageBinary(data);
    } catch (error) {
      if (!this.#dc.isOpen()) {
        throw new VidrtcError("CHANNEL_CLOSED", `Data channel "${this.label}" closed during send.`, {
          cause: error,
          details: { label: this.label },
        });
      }
      if (error instanceof Error && /size exceeds/i.test(error.message)) {
        throw new VidrtcError("MESSAGE_TOO_LARGE", error.message, {
          cause: error,
          details: { size, label: this.label },
        });
      }
      throw error;
    }
  }

  close(): void {
    if (this.#state === "closed" || this.#state === "closing") return;
    this.#state = "closing";
    try {
      this.#dc.close();
    } catch {
      this.#onClosed();
    }
  }

  /** Marks the channel closed when its peer connection goes away without a close callback. */
  peerClosed(): void {
    this.#onClosed();
  }

  on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe {
    const set = this.#listeners[type] as Set<(event: ChannelEventMap[K]) => void> | undefined;
    if (!set) throw new VidrtcError("INVALID_OPTIONS", `Unknown data channel event "${String(type)}".`);
    set.add(listener);
    if (type === "message" && this.#early.length > 0) {
      const early = this.#early;
      this.#early = [];
      queueMicrotask(() => {
        for (const event of early) emitAll(this.#listeners.message, event);
      });
    }
    return () => {
      set.delete(listener);
    };
  }
}
