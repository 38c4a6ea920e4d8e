/**
 * Keepalive on the upload channel: a 1-byte ping every interval, which the server echoes unchanged
 * (PROTOCOL.md §3). Counts echoes, measures round-trip time and, once the server has proven that it
 * echoes, declares the connection lost when it stops answering.
 */

import type { ChannelMessageEvent, DataChannelLike, Unsubscribe } from "./channel.js";
import { DEFAULT_KEEPALIVE_INTERVAL_MS, DEFAULT_KEEPALIVE_MAX_MISSED, KEEPALIVE_PING } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { checkNumber } from "./internal.js";

/**
 * True for a keepalive message: 0 or 1 byte (binary, or text whose UTF-8 encoding is at most 1 byte).
 * Such messages are never upload chunks; the server echoes them.
 */
export function isKeepaliveMessage(data: Uint8Array | string): boolean {
  if (typeof data === "string") return data.length === 0 || (data.length === 1 && data.charCodeAt(0) < 0x80);
  return data.byteLength <= 1;
}

/** Options of {@link Keepalive}. */
export interface KeepaliveOptions {
  /** Ping interval (ms); default {@link DEFAULT_KEEPALIVE_INTERVAL_MS}. */
  intervalMs?: number;
  /** After the first echo, this many consecutive intervals without an echo mean the peer is gone; default {@link DEFAULT_KEEPALIVE_MAX_MISSED}. */
  maxMissed?: number;
  /** Called once with a `LIVENESS_LOST` error when the peer stops echoing; the keepalive then stops. */
  onLost?: (error: VidrtcError) => void;
}

/** Keepalive counters. */
export interface KeepaliveStats {
  /** Pings handed to the channel. */
  pingsSent: number;
  /** Echoes received. */
  echoes: number;
  /** Round-trip time of the latest matched echo (ms), or null before the first. */
  lastRttMs: number | null;
  /** Mean round-trip time over all matched echoes (ms), or null before the first. */
  meanRttMs: number | null;
}

/** Send times of pings still waiting for their echo are kept up to this many (oldest dropped). */
const MAX_OUTSTANDING = 16;

/**
 * Sends a 1-byte ping (`KEEPALIVE_PING`) on `channel` every `intervalMs` and listens for the echoes on
 * the same channel. Echoes are matched to pings in order (the channel is reliable and ordered) to
 * measure RTT. Before the first echo loss is never declared (some servers don't echo); after it,
 * `maxMissed` consecutive intervals without an echo call `onLost` once with `LIVENESS_LOST`.
 * The timer never keeps a Node process alive. Stops by itself when the channel closes.
 */
export class Keepalive {
  readonly #channel: DataChannelLike;
  readonly #intervalMs: number;
  readonly #maxMissed: number;
  readonly #onLost: ((error: VidrtcError) => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #unsubscribers: Unsubscribe[] = [];
  #outstanding: number[] = [];
  #echoSinceTick = false;
  #missed = 0;
  #rttSum = 0;
  #rttCount = 0;
  #lost = false;
  #stats: KeepaliveStats = { pingsSent: 0, echoes: 0, lastRttMs: null, meanRttMs: null };

  /** Creates a stopped keepalive for `channel`; call {@link Keepalive.start}. */
  constructor(channel: DataChannelLike, options: KeepaliveOptions = {}) {
    const intervalMs = options.intervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
    const maxMissed = options.maxMissed ?? DEFAULT_KEEPALIVE_MAX_MISSED;
    checkNumber("intervalMs", intervalMs, false);
    checkNumber("maxMissed", maxMissed, true);
    this.#channel = channel;
    this.#intervalMs = intervalMs;
    this.#maxMissed = maxMissed;
    this.#onLost = options.onLost;
  }

  /** A snapshot of the counters. */
  get stats(): KeepaliveStats {
    return { ...this.#stats };
  }

  /** True while pinging. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Subscribes to the channel and starts pinging: one ping now (if the channel is open) and one every
   * interval. No-op while running or after the channel has closed.
   */
  start(): void {
    if (this.#timer !== undefined) return;
    const state = this.#channel.readyState;
    if (state === "closing" || state === "closed") return;
    this.#missed = 0;
    this.#echoSinceTick = false;
    this.#lost = false;
    this.#unsubscribers.push(
      this.#channel.on("message", (event) => this.#onMessage(event)),
      this.#channel.on("close", () => this.stop()),
    );
    const timer = setInterval(() => this.#tick(), this.#intervalMs);
    (timer as unknown as { unref?: () => void }).unref?.();
    this.#timer = timer;
    this.#ping();
  }

  /** Stops pinging and unsubscribes; idempotent. Counters are kept. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const unsubscribe of this.#unsubscribers.splice(0)) unsubscribe();
    this.#outstanding = [];
  }

  #onMessage(event: ChannelMessageEvent): void {
    if (!isKeepaliveMessage(event.data)) return;
    const stats = this.#stats;
    stats.echoes++;
    this.#echoSinceTick = true;
    this.#missed = 0;
    const sentAt = this.#outstanding.shift();
    if (sentAt !== undefined) {
      const rtt = Math.max(0, performance.now() - sentAt);
      this.#rttSum += rtt;
      this.#rttCount++;
      stats.lastRttMs = rtt;
      stats.meanRttMs = this.#rttSum / this.#rttCount;
    }
  }

  #tick(): void {
    const state = this.#channel.readyState;
    if (state === "closing" || state === "closed") {
      this.stop();
      return;
    }
    if (this.#stats.echoes > 0 && !this.#echoSinceTick) {
      this.#missed++;
      if (this.#missed >= this.#maxMissed) {
        this.#declareLost();
        return;
      }
    }
    this.#echoSinceTick = false;
    this.#ping();
  }

  #ping(): void {
    if (this.#channel.readyState !== "open") return;
    try {
      // A fresh buffer every time: transports may keep a reference to what they are given.
      this.#channel.send(Uint8Array.of(KEEPALIVE_PING));
    } catch {
      // The channel is closing; the close event (or the next tick) stops us.
      return;
    }
    this.#stats.pingsSent++;
    if (this.#outstanding.length >= MAX_OUTSTANDING) this.#outstanding.shift();
    this.#outstanding.push(performance.now());
  }

  #declareLost(): void {
    if (this.#lost) return;
    this.#lost = true;
    const silentMs = this.#missed * this.#intervalMs;
    this.stop();
    this.#onLost?.(
      new VidrtcError(
        "LIVENESS_LOST",
        `The server stopped answering: no keepalive echo for ${this.#missed} intervals (~${Math.round(silentMs / 1000)} s) ` +
          `after ${this.#stats.echoes} echoes; the connection is probably gone.`,
        { details: { missed: this.#missed, intervalMs: this.#intervalMs, ...this.#stats } },
      ),
    );
  }
}
