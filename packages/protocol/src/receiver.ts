/**
 * Server side of the `video_upload` channel (PROTOCOL.md §3): validates every message, echoes
 * keepalives, buffers a bounded number of out-of-order chunks and hands back payloads in file
 * order, so a server can append them to a file with memory bounded regardless of file size.
 */
import { MAX_UPLOAD_BYTES, MAX_UPLOAD_CHUNKS, UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "./constants.js";
import { VidrtcError, type VidrtcErrorCode } from "./errors.js";

/** Default bound on out-of-order chunks held by {@link UploadReceiver}. */
export const DEFAULT_MAX_BUFFERED_CHUNKS = 64;

/** Options of {@link UploadReceiver}. */
export interface UploadReceiverOptions {
  /** Called with the very same bytes for every 0- or 1-byte (keepalive) message. */
  echo: (data: Uint8Array) => void;
  /** Largest accepted upload in bytes (default {@link MAX_UPLOAD_BYTES}). */
  maxBytes?: number;
  /** Largest accepted `total_chunks` (default {@link MAX_UPLOAD_CHUNKS}). */
  maxChunks?: number;
  /** Most out-of-order chunks held while waiting for a gap to fill (default 64). */
  maxBufferedChunks?: number;
  /** Payload bytes of every non-final chunk (default {@link UPLOAD_CHUNK_SIZE}, a protocol constant). */
  chunkSize?: number;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new VidrtcError("INVALID_OPTIONS", `${name} must be a positive integer, got ${String(value)}.`);
  }
  return value;
}

/**
 * Validates and orders the messages of one upload.
 *
 * `push` returns the payloads that became contiguous (in file order; views into the messages,
 * not copies), possibly none. Keepalives (0/1-byte binary messages) are passed to `echo` and
 * yield nothing, also after completion. Every other message is validated; on a violation `push`
 * throws a `VidrtcError` before changing any state, so the receiver stays consistent:
 * `MALFORMED_MESSAGE` (text, 2–7 bytes, non-final payload not exactly `chunkSize`, final payload
 * empty or over `chunkSize`, any chunk after completion), `ZERO_CHUNKS`, `CHUNK_OUT_OF_RANGE`,
 * `TOTAL_CHUNKS_CHANGED`, `DUPLICATE_CHUNK`, `UPLOAD_TOO_LARGE`, `TOO_MANY_PENDING`.
 */
export class UploadReceiver {
  readonly #echo: (data: Uint8Array) => void;
  readonly #maxBytes: number;
  readonly #maxChunks: number;
  readonly #maxBuffered: number;
  readonly #chunkSize: number;
  readonly #buffered = new Map<number, Uint8Array>();
  #bufferedBytes = 0;
  #total: number | null = null;
  #next = 0;
  #chunksReceived = 0;
  #bytesReceived = 0;

  constructor(options: UploadReceiverOptions) {
    if (typeof options?.echo !== "function") {
      throw new VidrtcError("INVALID_OPTIONS", "UploadReceiver needs an echo(data) function.");
    }
    this.#echo = options.echo;
    this.#maxBytes = positiveInt("maxBytes", options.maxBytes, MAX_UPLOAD_BYTES);
    this.#maxChunks = positiveInt("maxChunks", options.maxChunks, MAX_UPLOAD_CHUNKS);
    this.#maxBuffered = positiveInt(
      "maxBufferedChunks",
      options.maxBufferedChunks,
      DEFAULT_MAX_BUFFERED_CHUNKS,
    );
    this.#chunkSize = positiveInt("chunkSize", options.chunkSize, UPLOAD_CHUNK_SIZE);
  }

  /** True once every chunk has been received and returned. */
  get complete(): boolean {
    return this.#total !== null && this.#next === this.#total;
  }

  /** `total_chunks` of this upload, known from the first valid chunk. */
  get totalChunks(): number | null {
    return this.#total;
  }

  /** Valid chunks accepted so far (returned or buffered). */
  get chunksReceived(): number {
    return this.#chunksReceived;
  }

  /** Payload bytes accepted so far (returned or buffered). */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** Chunks held out of order, waiting for a gap. */
  get bufferedChunks(): number {
    return this.#buffered.size;
  }

  /** Payload bytes held out of order. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Index of the next chunk to be returned. */
  get nextIndex(): number {
    return this.#next;
  }

  /** Takes one message of the `video_upload` channel; returns payloads now ready, in order. */
  push(message: Uint8Array | string): Uint8Array[] {
    if (typeof message === "string") {
      throw this.#error(
        "MALFORMED_MESSAGE",
        `Upload message is text (${message.length} characters); chunks and keepalives must be binary.`,
        {
          length: message.length,
        },
      );
    }
    if (!(message instanceof Uint8Array)) {
      throw this.#error("MALFORMED_MESSAGE", `Upload message must be a Uint8Array, got ${typeof message}.`);
    }
    const length = message.byteLength;
    if (length <= 1) {
      this.#echo(message);
      return [];
    }
    if (length < UPLOAD_HEADER_SIZE) {
      throw this.#error(
        "MALFORMED_MESSAGE",
        `Upload message of ${length} bytes is neither a keepalive (0–1 bytes) nor a chunk (at least ${UPLOAD_HEADER_SIZE + 1} bytes).`,
        { length },
      );
    }
    const view = new DataView(message.buffer, message.byteOffset, UPLOAD_HEADER_SIZE);
    const index = view.getUint32(0, true);
    const total = view.getUint32(4, true);
    const size = length - UPLOAD_HEADER_SIZE;
    const where = `chunk ${index}/${total}`;
    const details = { index, total, payloadBytes: size };

    if (this.complete) {
      throw this.#error(
        "MALFORMED_MESSAGE",
        `Upload ${where} arrived after the upload completed with all ${this.#total} chunks.`,
        details,
      );
    }
    if (total === 0)
      throw this.#error(
        "ZERO_CHUNKS",
        `Upload ${where}: total_chunks is 0; an upload has at least one chunk.`,
        details,
      );
    if (this.#total !== null && total !== this.#total) {
      throw this.#error(
        "TOTAL_CHUNKS_CHANGED",
        `Upload ${where}: total_chunks changed from ${this.#total} to ${total}.`,
        {
          ...details,
          previousTotal: this.#total,
        },
      );
    }
    if (index >= total) {
      throw this.#error(
        "CHUNK_OUT_OF_RANGE",
        `Upload ${where}: chunk_index ${index} is not below total_chunks ${total}.`,
        details,
      );
    }
    if (total > this.#maxChunks) {
      throw this.#error(
        "UPLOAD_TOO_LARGE",
        `Upload ${where}: ${total} chunks exceed the limit of ${this.#maxChunks} chunks.`,
        {
          ...details,
          maxChunks: this.#maxChunks,
        },
      );
    }
    const minBytes = (total - 1) * this.#chunkSize + 1;
    if (minBytes > this.#maxBytes) {
      throw this.#error(
        "UPLOAD_TOO_LARGE",
        `Upload ${where}: ${total} chunks of ${this.#chunkSize} bytes mean at least ${minBytes} bytes, over the ${this.#maxBytes}-byte limit.`,
        {
          ...details,
          maxBytes: this.#maxBytes,
        },
      );
    }
    const isFinal = index === total - 1;
    if (!isFinal && size !== this.#chunkSize) {
      throw this.#error(
        "MALFORMED_MESSAGE",
        `Upload ${where}: a non-final chunk must carry exactly ${this.#chunkSize} bytes, got ${size}.`,
        details,
      );
    }
    if (isFinal && (size === 0 || size > this.#chunkSize)) {
      throw this.#error(
        "MALFORMED_MESSAGE",
        `Upload ${where}: the final chunk must carry 1 to ${this.#chunkSize} bytes, got ${size}.`,
        details,
      );
    }
    if (index < this.#next || this.#buffered.has(index)) {
      throw this.#error("DUPLICATE_CHUNK", `Upload ${where}: chunk ${index} was already received.`, details);
    }
    if (this.#bytesReceived + size > this.#maxBytes) {
      throw this.#error(
        "UPLOAD_TOO_LARGE",
        `Upload ${where}: ${this.#bytesReceived + size} bytes exceed the ${this.#maxBytes}-byte limit.`,
        {
          ...details,
          maxBytes: this.#maxBytes,
        },
      );
    }
    const payload = message.subarray(UPLOAD_HEADER_SIZE);
    if (index !== this.#next) {
      if (this.#buffered.size >= this.#maxBuffered) {
        throw this.#error(
          "TOO_MANY_PENDING",
          `Upload ${where} arrived while waiting for chunk ${this.#next}; already ${this.#buffered.size} out-of-order chunks buffered (limit ${this.#maxBuffered}).`,
          {
            ...details,
            expected: this.#next,
            buffered: this.#buffered.size,
            maxBufferedChunks: this.#maxBuffered,
          },
        );
      }
      this.#accept(total, size);
      this.#buffered.set(index, payload);
      this.#bufferedBytes += size;
      return [];
    }
    this.#accept(total, size);
    const ready = [payload];
    this.#next++;
    for (;;) {
      const next = this.#buffered.get(this.#next);
      if (next === undefined) break;
      this.#buffered.delete(this.#next);
      this.#bufferedBytes -= next.byteLength;
      ready.push(next);
      this.#next++;
    }
    return ready;
  }

  #accept(total: number, size: number): void {
    this.#total = total;
    this.#chunksReceived++;
    this.#bytesReceived += size;
  }

  #error(code: VidrtcErrorCode, message: string, details?: Record<string, unknown>): VidrtcError {
    return new VidrtcError(code, message, details === undefined ? {} : { details });
  }
}
