/**
 * One error class for everything vidrtc reports, with a stable string `code`.
 * `VidrtcError.isInstance(e)` works across duplicated package copies and realms.
 */

export type VidrtcErrorCode =
  // input
  | "EMPTY_FILE"
  | "FILE_TOO_LARGE"
  | "FILE_NOT_FOUND"
  | "FILE_UNREADABLE"
  | "SOURCE_SIZE_MISMATCH"
  | "INVALID_OPTIONS"
  // transport
  | "MESSAGE_TOO_LARGE"
  | "CHANNEL_CLOSED"
  | "UPLOAD_STALLED"
  | "LIVENESS_LOST"
  | "CONNECTION_FAILED"
  | "ICE_GATHERING_TIMEOUT"
  | "CHANNEL_OPEN_TIMEOUT"
  | "NO_RESULTS_TIMEOUT"
  | "ABORTED"
  // signalling
  | "SIGNALING_FAILED"
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "PAYMENT_REQUIRED"
  | "NOT_FOUND"
  | "RATE_LIMITED"
  | "VALIDATION_FAILED"
  | "SERVER_ERROR"
  | "BAD_GATEWAY"
  // protocol (either side)
  | "MALFORMED_MESSAGE"
  | "CHUNK_OUT_OF_RANGE"
  | "TOTAL_CHUNKS_CHANGED"
  | "ZERO_CHUNKS"
  | "DUPLICATE_CHUNK"
  | "UPLOAD_TOO_LARGE"
  | "TOO_MANY_PENDING"
  | "FRAME_TOO_LARGE"
  | "RESULT_DECODE_FAILED"
  // server-reported
  | "PROCESSING_FAILED"
  // setup
  /** A WebRTC stack was selected that cannot be loaded (package not installed, native binary missing). */
  | "TRANSPORT_UNAVAILABLE";

const MARKER = Symbol.for("vidrtc.error");

/** Optional fields of a {@link VidrtcError}. */
export interface VidrtcErrorOptions {
  /** The underlying error, exposed as the standard `Error.cause`. */
  cause?: unknown;
  /** HTTP status for signalling errors. */
  status?: number;
  /** Free-form details (counts, server body, ...), for logs and programmatic handling. */
  details?: Record<string, unknown>;
}

/** The error vidrtc throws or rejects with; branch on {@link VidrtcError.code}. */
export class VidrtcError extends Error {
  /** Stable machine-readable code saying what went wrong. */
  readonly code: VidrtcErrorCode;
  /** HTTP status for signalling errors; `undefined` otherwise. */
  readonly status: number | undefined;
  /** Free-form details (counts, server body, ...), or `undefined`. */
  readonly details: Record<string, unknown> | undefined;
  /** Cross-realm marker read by {@link VidrtcError.isInstance}. */
  protected readonly [MARKER] = true;

  constructor(code: VidrtcErrorCode, message: string, options: VidrtcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "VidrtcError";
    this.code = code;
    this.status = options.status;
    this.details = options.details;
  }

  /** True for any vidrtc error, even one thrown by another copy of this package. */
  static isInstance(value: unknown): value is VidrtcError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }

  /** True when `value` is a vidrtc error with the given code. */
  static hasCode(value: unknown, code: VidrtcErrorCode): value is VidrtcError {
    return VidrtcError.isInstance(value) && value.code === code;
  }
}

/** The error an `AbortSignal` aborted with, as a `VidrtcError` with code `ABORTED` (reason kept as cause). */
export function abortError(signal: AbortSignal | undefined, what = "operation"): VidrtcError {
  const reason = signal?.reason;
  if (VidrtcError.isInstance(reason)) return reason;
  return new VidrtcError("ABORTED", `The ${what} was aborted.`, { cause: reason });
}

/** Throws the abort error if `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/** Default bound, in characters, of {@link oneLine}. */
export const ONE_LINE_MAX = 300;

/**
 * Text from a peer (a server's error message, an HTTP body) made safe for a one-line error:
 * an HTML page is reduced to its title or text, control characters and runs of whitespace
 * (newlines included) become one space, and the result is cut to `max` characters with `…`.
 */
export function oneLine(text: string, max: number = ONE_LINE_MAX): string {
  // Bound the work first: a 1 MB body needs no more than a few times `max` characters looked at.
  let s = text.length > max * 8 + 4096 ? text.slice(0, max * 8 + 4096) : text;
  if (/^\s*<(!doctype|html|head|body|\?xml)/i.test(s) || /<\/(html|body|h1|p|div)>/i.test(s)) {
    const inner = (tag: string) => new RegExp(`<${tag}[^>]*>([^<]*)</${tag}>`, "i").exec(s)?.[1]?.trim();
    s = (inner("title") || inner("h1") || s.replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, " ")).replace(
      /<[^>]*>/g,
      " ",
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\s]+/g, " ").trim();
  if (s.length > max) s = `${s.slice(0, Math.max(1, max - 1)).trimEnd()}…`;
  return s;
}
