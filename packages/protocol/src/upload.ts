/**
 * The client side of the `video_upload` channel as WHATWG streams:
 * source bytes -> {@link createChunker} (exact `chunkSize` pieces) -> {@link createFramer}
 * (8-byte `[chunk_index u32 LE][total_chunks u32 LE]` header + payload, one fresh buffer per message).
 *
 * Copying: every source byte is copied exactly once on its way to a message. Chunks that lie inside one
 * source piece are passed on as views and copied by the framer into the message buffer; chunks that
 * straddle source pieces are assembled by the chunker directly into a message-sized buffer with room for
 * the header, which the framer then fills in place.
 */

import { MAX_UPLOAD_BYTES, UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { checkNumber } from "./internal.js";

const U32_MAX = 0xffff_ffff;

/**
 * Views emitted by a chunker whose underlying buffer is owned by the pipeline and has
 * {@link UPLOAD_HEADER_SIZE} free bytes in front of the view: the framer writes the header there
 * instead of copying the payload again.
 */
const headroomViews = new WeakSet<Uint8Array>();

function checkChunkSize(chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > U32_MAX) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `chunkSize must be a positive integer, got ${String(chunkSize)}.`,
    );
  }
}

function checkSize(size: number, what: string): void {
  checkNumber(what, size, true, true);
}

/**
 * Number of `video_upload` messages for a file of `size` bytes: `ceil(size / chunkSize)`
 * (0 for an empty file, which must be refused rather than sent).
 */
export function totalChunksFor(size: number, chunkSize: number = UPLOAD_CHUNK_SIZE): number {
  checkSize(size, "size");
  checkChunkSize(chunkSize);
  return Math.ceil(size / chunkSize);
}

/**
 * Throws before anything is read when a file of `size` bytes cannot be uploaded:
 * `EMPTY_FILE` for 0 bytes (the server would wait forever), `FILE_TOO_LARGE` above `maxBytes`
 * (default {@link MAX_UPLOAD_BYTES}), `INVALID_OPTIONS` for a size that is not a non-negative integer.
 * The error's `details` carry `size`, `maxBytes` and the chunk counts.
 */
export function validateUploadSize(size: number, maxBytes: number = MAX_UPLOAD_BYTES): void {
  checkSize(size, "size");
  checkSize(maxBytes, "maxBytes");
  if (size === 0) {
    throw new VidrtcError("EMPTY_FILE", "The file is empty (0 bytes): there is nothing to upload.", {
      details: { size, maxBytes },
    });
  }
  if (size > maxBytes) {
    const chunks = Math.ceil(size / UPLOAD_CHUNK_SIZE);
    const maxChunks = Math.ceil(maxBytes / UPLOAD_CHUNK_SIZE);
    throw new VidrtcError(
      "FILE_TOO_LARGE",
      `The file is ${size} bytes (${chunks} chunks of ${UPLOAD_CHUNK_SIZE} bytes); ` +
        `the upload limit is ${maxBytes} bytes (${maxChunks} chunks).`,
      { details: { size, maxBytes, chunks, maxChunks, chunkSize: UPLOAD_CHUNK_SIZE } },
    );
  }
  if (Math.ceil(size / UPLOAD_CHUNK_SIZE) > U32_MAX) {
    throw new VidrtcError("FILE_TOO_LARGE", `The file is ${size} bytes: too many chunks for a u32 count.`, {
      details: { size, maxBytes },
    });
  }
}

function writeHeader(target: Uint8Array, index: number, total: number): void {
  // Little-endian u32 pair (one small DataView per 48 KiB chunk).
  const view = new DataView(target.buffer, target.byteOffset, 8);
  view.setUint32(0, index, true);
  view.setUint32(4, total, true);
}

function checkIndex(index: number, total: number): void {
  if (!Number.isInteger(total) || total < 1 || total > U32_MAX) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `total must be an integer in 1..${U32_MAX}, got ${String(total)}.`,
    );
  }
  if (!Number.isInteger(index) || index < 0 || index >= total) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `index must be an integer in 0..${total - 1}, got ${String(index)}.`,
    );
  }
}

/**
 * One complete `video_upload` message: a fresh buffer holding the 8-byte header
 * (`index`, `total` as u32 LE) followed by a copy of `payload`.
 */
export function frameUploadChunk(index: number, total: number, payload: Uint8Array): Uint8Array {
  checkIndex(index, total);
  const message = new Uint8Array(UPLOAD_HEADER_SIZE + payload.byteLength);
  writeHeader(message, index, total);
  message.set(payload, UPLOAD_HEADER_SIZE);
  return message;
}

function asBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new VidrtcError(
    "INVALID_OPTIONS",
    `Upload sources must yield bytes (Uint8Array), got ${typeof chunk}.`,
  );
}

/**
 * A `TransformStream` that re-cuts any byte stream into pieces of exactly `chunkSize` bytes
 * (the last one may be shorter; empty input pieces are ignored). Pieces that lie inside one input
 * piece are emitted as views of it (no copy); pieces spanning input pieces are assembled into a new
 * buffer (each byte copied once). Outputs must be treated as read-only.
 */
export function createChunker(
  chunkSize: number = UPLOAD_CHUNK_SIZE,
): TransformStream<Uint8Array, Uint8Array> {
  checkChunkSize(chunkSize);
  // Partial chunk being assembled, with header room in front: payload lives at [H, H + pendingLength).
  let pending: Uint8Array | null = null;
  let pendingLength = 0;
  const H = UPLOAD_HEADER_SIZE;

  return new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(input, controller) {
        const piece = asBytes(input);
        const length = piece.byteLength;
        let offset = 0;
        if (pending !== null) {
          const take = Math.min(chunkSize - pendingLength, length);
          pending.set(take === length ? piece : piece.subarray(0, take), H + pendingLength);
          pendingLength += take;
          offset = take;
          if (pendingLength === chunkSize) {
            const view = pending.subarray(H, H + chunkSize);
            headroomViews.add(view);
            pending = null;
            pendingLength = 0;
            controller.enqueue(view);
          }
        }
        while (length - offset >= chunkSize) {
          controller.enqueue(piece.subarray(offset, offset + chunkSize));
          offset += chunkSize;
        }
        if (offset < length) {
          pending = new Uint8Array(H + chunkSize);
          pending.set(offset === 0 ? piece : piece.subarray(offset), H);
          pendingLength = length - offset;
        }
      },
      flush(controller) {
        if (pending !== null && pendingLength > 0) {
          // Short tail: a plain view, so the framer copies it into an exactly sized message.
          controller.enqueue(pending.subarray(H, H + pendingLength));
        }
        pending = null;
        pendingLength = 0;
      },
    },
    // Let a few source pieces queue up so the chunker never starves the framer.
    new CountQueuingStrategy({ highWaterMark: 4 }),
    new CountQueuingStrategy({ highWaterMark: 4 }),
  );
}

/** Options of {@link createFramer}. */
export interface FramerOptions {
  /** Exact number of payload bytes the framer must see (the file size). */
  totalBytes: number;
  /** Payload bytes per message; default {@link UPLOAD_CHUNK_SIZE} (a protocol constant). */
  chunkSize?: number;
}

function sizeMismatch(
  message: string,
  expectedBytes: number,
  actualBytes: number,
  atLeast: boolean,
): VidrtcError {
  return new VidrtcError("SOURCE_SIZE_MISMATCH", message, {
    details: { expectedBytes, actualBytes, atLeast },
  });
}

/**
 * A `TransformStream` turning exact `chunkSize` pieces (from {@link createChunker}) into complete
 * `video_upload` messages, each a fresh buffer. The final message is held back until the input ends,
 * so a source that runs long never produces a complete upload. Errors with `SOURCE_SIZE_MISMATCH`
 * when the input has more or fewer than `totalBytes` bytes (message and `details` name both counts).
 */
export function createFramer(options: FramerOptions): TransformStream<Uint8Array, Uint8Array> {
  const chunkSize = options.chunkSize ?? UPLOAD_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  const totalBytes = options.totalBytes;
  checkSize(totalBytes, "totalBytes");
  if (totalBytes === 0) {
    throw new VidrtcError("EMPTY_FILE", "The file is empty (0 bytes): there is nothing to upload.", {
      details: { size: 0 },
    });
  }
  const total = Math.ceil(totalBytes / chunkSize);
  if (total > U32_MAX) {
    throw new VidrtcError("FILE_TOO_LARGE", `${totalBytes} bytes need more than ${U32_MAX} chunks.`);
  }
  const lastIndex = total - 1;
  const lastSize = totalBytes - lastIndex * chunkSize;
  let index = 0;
  let bytesSeen = 0;
  let held: Uint8Array | null = null;
  /** A short chunk before the end: an error once we know whether the input ended there. */
  let shortAt = -1;

  const frame = (payload: Uint8Array, i: number): Uint8Array => {
    if (headroomViews.has(payload) && payload.byteOffset === UPLOAD_HEADER_SIZE) {
      headroomViews.delete(payload);
      const message = new Uint8Array(payload.buffer, 0, UPLOAD_HEADER_SIZE + payload.byteLength);
      writeHeader(message, i, total);
      return message;
    }
    const message = new Uint8Array(UPLOAD_HEADER_SIZE + payload.byteLength);
    writeHeader(message, i, total);
    message.set(payload, UPLOAD_HEADER_SIZE);
    return message;
  };

  return new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(input, controller) {
        const payload = asBytes(input);
        const length = payload.byteLength;
        if (length === 0) return;
        if (shortAt >= 0 || index >= total) {
          const actual = bytesSeen + length;
          throw sizeMismatch(
            shortAt >= 0
              ? `The upload source delivered a short chunk mid-stream (chunk ${shortAt}); ` +
                  `expected ${totalBytes} bytes in chunks of ${chunkSize}, pass it through createChunker().`
              : `The upload source is longer than its declared size: expected ${totalBytes} bytes, ` +
                  `got at least ${actual}.`,
            totalBytes,
            actual,
            true,
          );
        }
        const expected = index === lastIndex ? lastSize : chunkSize;
        if (length > expected) {
          throw sizeMismatch(
            `The upload source is longer than its declared size: expected ${totalBytes} bytes, ` +
              `got at least ${bytesSeen + length}.`,
            totalBytes,
            bytesSeen + length,
            true,
          );
        }
        bytesSeen += length;
        if (length < expected) {
          // Either the source ended early (reported by flush) or it was not chunked (reported next).
          shortAt = index;
        } else if (index === lastIndex) {
          held = frame(payload, index);
        } else {
          controller.enqueue(frame(payload, index));
        }
        index++;
      },
      flush(controller) {
        if (bytesSeen !== totalBytes || held === null) {
          throw sizeMismatch(
            `The upload source ended early: expected ${totalBytes} bytes, got ${bytesSeen}.`,
            totalBytes,
            bytesSeen,
            false,
          );
        }
        controller.enqueue(held);
        held = null;
      },
    },
    new CountQueuingStrategy({ highWaterMark: 4 }),
    new CountQueuingStrategy({ highWaterMark: 4 }),
  );
}

/** Options of {@link createUploadStream}. */
export interface UploadStreamOptions {
  /** Refuse files above this many bytes (`FILE_TOO_LARGE`); default {@link MAX_UPLOAD_BYTES}. */
  maxBytes?: number;
  /** Payload bytes per message; default {@link UPLOAD_CHUNK_SIZE}. Change only for tests. */
  chunkSize?: number;
}

/**
 * The whole client upload pipeline: `source` -> {@link createChunker} -> {@link createFramer}.
 * Validates `size` first (throws `EMPTY_FILE` / `FILE_TOO_LARGE` synchronously, before anything is
 * read); the returned stream yields complete `video_upload` messages, each a fresh buffer, and errors
 * with `SOURCE_SIZE_MISMATCH` when the source does not hold exactly `size` bytes (the source is then
 * cancelled). Works with `Blob.stream()` and Node file web streams.
 */
export function createUploadStream(
  source: ReadableStream<Uint8Array>,
  size: number,
  options: UploadStreamOptions = {},
): ReadableStream<Uint8Array> {
  validateUploadSize(size, options.maxBytes ?? MAX_UPLOAD_BYTES);
  const chunkSize = options.chunkSize ?? UPLOAD_CHUNK_SIZE;
  const framer = createFramer({ totalBytes: size, chunkSize });
  return source.pipeThrough(createChunker(chunkSize)).pipeThrough(framer);
}
