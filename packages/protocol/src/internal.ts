/**
 * Small helpers shared by the protocol modules (not part of the public API: `index.ts` does not
 * export this module).
 */
import type { DataChannelLike } from "./channel.js";
import { VidrtcError } from "./errors.js";

/** A JSON-like object: not `null`, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The message of an `Error`, or the value as a string. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `value` as an http(s) URL, or `null` when it is not a string, not a URL, or another scheme. */
export function httpUrlOrNull(value: unknown, base?: string): URL | null {
  try {
    const url = new URL(value as string, base);
    return typeof value === "string" && (url.protocol === "http:" || url.protocol === "https:") ? url : null;
  } catch {
    return null;
  }
}

/** `parts` joined into one array (`total` bytes when known). */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  const size = total ?? parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

/**
 * Reads a byte stream to its end, at most `max` bytes: past that the stream is cancelled and the
 * error from `tooLarge()` is thrown.
 */
export async function readBounded(
  stream: ReadableStream<Uint8Array>,
  max: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    parts.push(value);
  }
  return parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(parts, total);
}

/** `urls` of an ICE server when valid (a string or a non-empty array of strings), else `null`. */
export function iceUrls(urls: unknown): string | string[] | null {
  return typeof urls === "string" ||
    (Array.isArray(urls) && urls.length > 0 && urls.every((u) => typeof u === "string"))
    ? (urls as string | string[])
    : null;
}

/**
 * Resolves once `channel` is open. Rejects with `closed()` when it is (or becomes) closing or
 * closed first, and with `timedOut()` after `timeoutMs`. `more(finish)` may add other ways to end
 * the wait (a failed connection, an abort) and returns what undoes them.
 */
export function whenOpen(
  channel: DataChannelLike,
  timeoutMs: number,
  timedOut: () => Error,
  closed: () => Error,
  more?: (finish: (error?: unknown) => void) => () => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    let undo: (() => void) | undefined;
    const finish = (error?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      offOpen();
      offClose();
      undo?.();
      if (error === undefined) resolve();
      else reject(error);
    };
    const check = (): void => {
      const state = channel.readyState;
      if (state === "open") finish();
      else if (state !== "connecting") finish(closed());
    };
    const timer = setTimeout(() => finish(timedOut()), timeoutMs);
    const offOpen = channel.on("open", check);
    const offClose = channel.on("close", check);
    undo = more?.(finish);
    if (done) undo?.();
    else check();
  });
}

/**
 * `value` when it is a positive (or, with `allowZero`, non-negative) finite number, a safe
 * integer when `integer`; else `INVALID_OPTIONS` "{name} must be a positive integer, got X.".
 */
export function checkNumber(name: string, value: unknown, integer: boolean, allowZero = false): number {
  if (
    typeof value !== "number" ||
    !(allowZero ? value >= 0 : value > 0) ||
    !(integer ? Number.isSafeInteger(value) : Number.isFinite(value))
  ) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `${name} must be a ${allowZero ? "non-negative" : "positive"} ${integer ? "integer" : "number"}, got ${String(value)}.`,
    );
  }
  return value;
}
