/**
 * Timers for durations of any length. Node's `setTimeout` keeps its delay in a signed 32-bit
 * millisecond count: a delay above 2^31 - 1 ms (about 24.8 days) is replaced by 1 ms, with only a
 * warning. A session's `processing_timeout` (seconds, from the request) or an operator's timeout
 * can be that long, so every timer armed from such a value goes through {@link safeTimeout}: long
 * delays are chained in steps that fit, and a delay that is not finite never fires.
 */

/** The longest delay Node's `setTimeout` honours (2^31 - 1 ms). */
export const MAX_TIMER_MS = 2_147_483_647;

/** A timer from {@link safeTimeout}. */
export interface SafeTimer {
  /** Cancels the timer (idempotent). */
  clear(): void;
}

/**
 * Calls `fn` once after `ms` milliseconds, for any `ms`: up to {@link MAX_TIMER_MS} in one
 * `setTimeout`, longer ones re-armed step by step against a deadline; `Infinity` (or NaN) never
 * fires. Negative or zero delays fire on the next turn like `setTimeout(fn, 0)`. The underlying
 * timers are unref'd unless `ref` is true, so a pending timer does not keep the process alive.
 */
export function safeTimeout(fn: () => void, ms: number, options: { ref?: boolean } = {}): SafeTimer {
  let handle: NodeJS.Timeout | null = null;
  let cleared = false;
  const clear = () => {
    cleared = true;
    if (handle) clearTimeout(handle);
    handle = null;
  };
  if (!Number.isFinite(ms)) return { clear };
  const deadline = Date.now() + Math.max(0, ms);
  const arm = (left: number) => {
    handle = setTimeout(
      () => {
        handle = null;
        if (cleared) return;
        const remaining = deadline - Date.now();
        // That was one step of a longer delay: re-arm for what is left.
        if (left > MAX_TIMER_MS && remaining > 0) arm(remaining);
        else fn();
      },
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    );
    if (!options.ref) handle.unref?.();
  };
  arm(Math.max(0, ms));
  return { clear };
}
