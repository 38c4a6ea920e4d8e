/**
 * The session's liveness bound: nothing received from the client for `timeoutMs` ends the session,
 * whatever state it is in (connecting, uploading, processing while waiting for an ACK, sending
 * results, lingering after `processing_complete`). It polls the answering peer's
 * `lastActivityAt()` (STUN consent checks and DTLS packets on werift; see each stack for what it
 * can observe), so it costs one cheap call per period, never one per packet.
 */

/** Default liveness bound (ms): clients send consent checks about every 5 s. */
export const DEFAULT_LIVENESS_TIMEOUT_MS = 15_000;

export interface LivenessOptions {
  timeoutMs: number;
  /** `Date.now()` ms of the last thing received from the client, or `null` before anything. */
  lastActivityAt: () => number | null;
  /** Called once, with how long the client has been silent. */
  onLost: (silentMs: number) => void;
}

export class LivenessWatchdog {
  readonly #o: LivenessOptions;
  #timer: NodeJS.Timeout | null = null;
  #since = 0;

  constructor(options: LivenessOptions) {
    this.#o = options;
  }

  /** Starts watching; silence is counted from now until the first activity. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#since = Date.now();
    const period = Math.max(20, Math.min(1_000, Math.floor(this.#o.timeoutMs / 5)));
    this.#timer = setInterval(() => this.#check(), period);
    this.#timer.unref?.();
  }

  /** Stops watching (idempotent). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** How long the client has been silent (ms). */
  silentMs(): number {
    const last = this.#o.lastActivityAt();
    return Date.now() - Math.max(this.#since, last ?? 0);
  }

  #check(): void {
    const silent = this.silentMs();
    if (silent < this.#o.timeoutMs) return;
    this.stop();
    this.#o.onLost(silent);
  }
}
