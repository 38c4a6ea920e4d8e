/**
 * An in-memory {@link DataChannelLike} for tests (not part of the published build).
 *
 * Models a sender's buffer: `send()` queues a message and raises `bufferedAmount`; draining (by
 * `drain(n)` or by a timer at `drainBytesPerTick` every `tickMs`) takes bytes out in order and delivers
 * each message to the "peer" once all its bytes are out (`delivered`, `onDeliver`). Like Chromium,
 * `send()` throws when the buffer would exceed `capacity`, when the message exceeds `maxMessageSize`,
 * or when the channel is not open. `bufferedamountlow` fires on threshold crossings, unless
 * `loseLowEvents` is set. `mode: "werift"` reports `bufferedAmount` only in bursts: it drops to 0 only
 * when the whole queue has drained. `echo` sends 0/1-byte messages back as `message` events once
 * delivered, like the server's keepalive echo.
 */

import type { ChannelEventMap, ChannelState, DataChannelLike, Unsubscribe } from "../channel.js";

/** Options of {@link FakeChannel}. */
export interface FakeChannelOptions {
  label?: string;
  /** Initial state; default "open". */
  readyState?: ChannelState;
  /** Largest accepted message; default 65536 (werift/aiortc). */
  maxMessageSize?: number;
  /** `send()` throws once `bufferedAmount + size` would exceed this; default 16 MiB (Chromium). */
  capacity?: number;
  /**
   * Automatic drain: bytes per tick (Infinity = drained synchronously inside `send()`); default 0
   * (drain only by calling `drain()`).
   */
  drainBytesPerTick?: number;
  /** Tick period of the automatic drain (ms); default 1. */
  tickMs?: number;
  /** "standard" (per-byte bufferedAmount) or "werift" (drops only when the queue is empty). */
  mode?: "standard" | "werift";
  /** Never fire `bufferedamountlow`. */
  loseLowEvents?: boolean;
  /** Echo 0/1-byte messages back to the local side once delivered. */
  echo?: boolean;
  /** Delay of echoes (ms); default 0 (next macrotask). */
  echoDelayMs?: number;
  /** Keep delivered messages in `delivered`; default true (turn off for large transfers). */
  capture?: boolean;
  /** Called for each delivered message, in order. */
  onDeliver?: (data: Uint8Array | string) => void;
}

interface Queued {
  data: Uint8Array | string;
  size: number;
  /** Bytes of this message not yet drained. */
  remaining: number;
}

type Listener = (event: never) => void;

const encoder = new TextEncoder();

function sizeOf(data: Uint8Array | string): number {
  return typeof data === "string" ? encoder.encode(data).byteLength : data.byteLength;
}

/** In-memory data channel for tests; see the module comment. */
export class FakeChannel implements DataChannelLike {
  readonly label: string;
  readyState: ChannelState;
  maxMessageSize: number;
  bufferedAmountLowThreshold = 0;
  capacity: number;
  drainBytesPerTick: number;
  tickMs: number;
  mode: "standard" | "werift";
  loseLowEvents: boolean;
  echo: boolean;
  echoDelayMs: number;
  capture: boolean;
  onDeliver: ((data: Uint8Array | string) => void) | undefined;

  /** Messages delivered to the peer, in order (when `capture`). */
  readonly delivered: Array<Uint8Array | string> = [];
  /** Every `send()` call's argument, in order (when `capture`), before draining. */
  readonly sentRaw: Array<Uint8Array | string> = [];
  /** Counters. */
  messagesSent = 0;
  bytesSent = 0;
  messagesDelivered = 0;
  bytesDelivered = 0;
  lowEventsFired = 0;
  lowEventsLost = 0;
  /** Largest `bufferedAmount` ever reached (actual queued bytes). */
  peakQueuedBytes = 0;

  #queue: Queued[] = [];
  #head = 0;
  #queuedBytes = 0;
  #listeners = new Map<keyof ChannelEventMap, Set<Listener>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: FakeChannelOptions = {}) {
    this.label = options.label ?? "video_upload";
    this.readyState = options.readyState ?? "open";
    this.maxMessageSize = options.maxMessageSize ?? 65_536;
    this.capacity = options.capacity ?? 16 * 1024 * 1024;
    this.drainBytesPerTick = options.drainBytesPerTick ?? 0;
    this.tickMs = options.tickMs ?? 1;
    this.mode = options.mode ?? "standard";
    this.loseLowEvents = options.loseLowEvents ?? false;
    this.echo = options.echo ?? false;
    this.echoDelayMs = options.echoDelayMs ?? 0;
    this.capture = options.capture ?? true;
    this.onDeliver = options.onDeliver;
  }

  /** Bytes queued but not drained; in werift mode the whole queue until it is empty. */
  get bufferedAmount(): number {
    if (this.mode === "werift") return this.#queue.length > this.#head ? this.#reportedWerift : 0;
    return this.#queuedBytes;
  }

  /** Bytes actually still queued, whatever the mode reports. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Messages still queued. */
  get queuedMessages(): number {
    return this.#queue.length - this.#head;
  }

  /** werift mode: total size of all messages queued since the queue was last empty. */
  #reportedWerift = 0;

  send(data: Uint8Array | string): void {
    if (this.readyState !== "open") {
      throw new DOMException(`RTCDataChannel.readyState is '${this.readyState}'`, "InvalidStateError");
    }
    const size = sizeOf(data);
    if (size > this.maxMessageSize) {
      throw new TypeError(`Message of ${size} bytes exceeds maxMessageSize ${this.maxMessageSize}`);
    }
    if (this.#queuedBytes + size > this.capacity) {
      throw new DOMException("RTCDataChannel send queue is full", "OperationError");
    }
    this.messagesSent++;
    this.bytesSent += size;
    if (this.capture) this.sentRaw.push(data);
    if (this.drainBytesPerTick === Number.POSITIVE_INFINITY) {
      this.#deliver(data, size);
      return;
    }
    this.#queue.push({ data, size, remaining: size });
    this.#queuedBytes += size;
    this.#reportedWerift += size;
    if (this.#queuedBytes > this.peakQueuedBytes) this.peakQueuedBytes = this.#queuedBytes;
    this.#ensureTimer();
  }

  /**
   * Drains up to `bytes` (default: everything) from the buffer, delivering completed messages and
   * firing `bufferedamountlow` on a threshold crossing. Returns the bytes drained.
   */
  drain(bytes = Number.POSITIVE_INFINITY): number {
    const before = this.bufferedAmount;
    let budget = bytes;
    let drained = 0;
    while (budget > 0 && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      const take = Math.min(budget, item.remaining);
      item.remaining -= take;
      budget -= take;
      drained += take;
      this.#queuedBytes -= take;
      if (item.remaining === 0) {
        this.#head++;
        this.#deliver(item.data, item.size);
      }
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      this.#reportedWerift = 0;
    } else if (this.#head > 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    const after = this.bufferedAmount;
    if (before > this.bufferedAmountLowThreshold && after <= this.bufferedAmountLowThreshold) {
      if (this.loseLowEvents) this.lowEventsLost++;
      else {
        this.lowEventsFired++;
        this.#emit("bufferedamountlow", undefined);
      }
    }
    return drained;
  }

  /** Simulates the channel opening (fires `open`). */
  open(): void {
    if (this.readyState === "open") return;
    this.readyState = "open";
    this.#emit("open", undefined);
  }

  /** Closes the channel (local or remote), dropping nothing from the counters; fires `close` once. */
  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.#stopTimer();
    this.#emit("close", undefined);
  }

  /** Fires an `error` event, as some stacks do before closing. */
  fail(error: Error): void {
    this.#emit("error", error);
  }

  /** Delivers a message from the peer to local `message` listeners. */
  receive(data: Uint8Array | string): void {
    this.#emit("message", { data });
  }

  /** Starts or stops the automatic drain. */
  setDrainRate(bytesPerTick: number, tickMs = this.tickMs): void {
    this.drainBytesPerTick = bytesPerTick;
    this.tickMs = tickMs;
    this.#stopTimer();
    if (bytesPerTick === Number.POSITIVE_INFINITY) this.drain();
    else this.#ensureTimer();
  }

  on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    const entry = listener as Listener;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  /** Number of listeners for `type` (to check that subscribers clean up). */
  listenerCount(type: keyof ChannelEventMap): number {
    return this.#listeners.get(type)?.size ?? 0;
  }

  /** Stops timers; call in test teardown. */
  dispose(): void {
    this.#stopTimer();
  }

  #emit<K extends keyof ChannelEventMap>(type: K, event: ChannelEventMap[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set]) (listener as (e: ChannelEventMap[K]) => void)(event);
  }

  #deliver(data: Uint8Array | string, size: number): void {
    this.messagesDelivered++;
    this.bytesDelivered += size;
    if (this.capture) this.delivered.push(data);
    this.onDeliver?.(data);
    if (this.echo && size <= 1) {
      const copy = typeof data === "string" ? data : data.slice();
      setTimeout(() => {
        if (this.readyState === "open") this.receive(copy);
      }, this.echoDelayMs);
    }
  }

  #ensureTimer(): void {
    if (this.#timer !== undefined || !(this.drainBytesPerTick > 0)) return;
    if (this.drainBytesPerTick === Number.POSITIVE_INFINITY) return;
    if (this.readyState !== "open" || this.#head >= this.#queue.length) return;
    this.#timer = setInterval(() => {
      this.drain(this.drainBytesPerTick);
      if (this.#head >= this.#queue.length) this.#stopTimer();
    }, this.tickMs);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
