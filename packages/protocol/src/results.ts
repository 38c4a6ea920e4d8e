/**
 * The result side of the protocol (PROTOCOL.md §4): the 12-byte-header chunk framing of the
 * `inference` channel, gzip/JSON decoding of per-frame `WebRTCOutput` messages, cumulative ACKs,
 * and the server-side encoder. Everything is bounded: a hostile or buggy peer cannot make the
 * decoder hold more than the configured number of frames/bytes.
 */
import {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_PENDING_FRAMES,
  GZIP_MAGIC_0,
  GZIP_MAGIC_1,
  RESULT_CHUNK_SIZE,
  RESULT_HEADER_SIZE,
} from "./constants.js";
import { VidrtcError } from "./errors.js";
import { checkNumber, concatBytes, errorText, isPlainObject, readBounded } from "./internal.js";

const U32_MAX = 0xffff_ffff;

/** `video_metadata` of a result message (PROTOCOL.md §4.2). Unknown keys are kept. */
export interface VideoMetadata {
  /** 1-based frame number; equals the header frame id (except in `processing_complete`, where it is N). */
  frame_id: number;
  /** When the server received the frame, as the server's ISO-8601 timestamp string. */
  received_at?: string;
  /** Presentation timestamp of the frame, in units of `time_base`; `null` when unknown. */
  pts?: number | null;
  /** Seconds per `pts` unit; `null` when unknown. */
  time_base?: number | null;
  /** Frame rate the client declared in signalling (`declared_fps`, PROTOCOL.md §2), or `null`. */
  declared_fps?: number | null;
  /** Frame rate measured by the server; always `null` on Roboflow's server (PROTOCOL.md §4.2). */
  measured_fps?: number | null;
  /** Frame width in pixels, before rotation. */
  width?: number;
  /** Frame height in pixels, before rotation. */
  height?: number;
  [k: string]: unknown;
}

/** One decoded (and normalised) per-frame JSON message from the server (PROTOCOL.md §4.2). */
export interface WebRTCOutput {
  /** The workflow's outputs for this frame, by output name; may be `null`. */
  serialized_output_data: Record<string, unknown> | null;
  /** Metadata of the frame, or `null`. */
  video_metadata: VideoMetadata | null;
  /** Workflow errors on this frame (non-strings are JSON-stringified); the session carries on. */
  errors: string[];
  /** True only on the final message, sent after the last frame (PROTOCOL.md §4.4). */
  processing_complete: boolean;
  /** Why processing ended early (e.g. `timeout_reached`), or `null` (PROTOCOL.md §4.4). */
  termination_reason: string | null;
  [k: string]: unknown;
}

/** A result as handed to applications: camelCase view of a {@link WebRTCOutput} plus the header frame id. */
export interface ResultMessage {
  /** Frame id from the binary header (for `processing_complete` this is N+1). */
  frameId: number;
  /** `serialized_output_data`, or `{}` when the server sent `null`. */
  outputs: Record<string, unknown>;
  /** `video_metadata`, or `null`. */
  metadata: VideoMetadata | null;
  /** `errors`: workflow errors on this frame. */
  errors: string[];
  /** `processing_complete`: true on the final message (PROTOCOL.md §4.4). */
  processingComplete: boolean;
  /** `termination_reason`, or `null` (PROTOCOL.md §4.4). */
  terminationReason: string | null;
  /** The normalised message as decoded. */
  raw: WebRTCOutput;
}

/** Bounds for {@link ResultDeframer} and {@link createResultDecoder}. */
export interface ResultDeframerOptions {
  /** Most incomplete frames held at once (default {@link DEFAULT_MAX_PENDING_FRAMES}). */
  maxPendingFrames?: number;
  /** Largest reassembled (and decompressed) frame in bytes (default {@link DEFAULT_MAX_FRAME_BYTES}). */
  maxFrameBytes?: number;
  /**
   * Most payload bytes held across all incomplete frames (default `2 * maxFrameBytes`);
   * exceeding it throws `TOO_MANY_PENDING`.
   */
  maxPendingBytes?: number;
}

/** A frame whose chunks have all arrived. */
export interface DeframedResult {
  /** Frame id from the binary header. */
  frameId: number;
  /** The joined payload (gzip or JSON bytes). For single-chunk frames a view into the message. */
  payload: Uint8Array;
}

interface PendingFrame {
  total: number;
  parts: Map<number, Uint8Array>;
  bytes: number;
}

function positiveIntOption(name: string, value: number | undefined, fallback: number): number {
  return value === undefined ? fallback : checkNumber(name, value, true);
}

function malformed(message: string, details?: Record<string, unknown>): VidrtcError {
  return new VidrtcError("MALFORMED_MESSAGE", message, details === undefined ? {} : { details });
}

/** Joins byte arrays with one allocation. */

/**
 * Reassembles the chunked binary messages of the `inference` channel
 * (`[frame_id u32][chunk_index u32][total_chunks u32][payload]`, all LE) into per-frame payloads.
 * Chunks of different frames may interleave. Parts are collected and joined once per frame.
 *
 * Errors (`VidrtcError`, thrown before any state changes, so the deframer stays usable):
 * `MALFORMED_MESSAGE` (shorter than 12 bytes, total 0, index >= total, a frame's total changing,
 * duplicate chunk, empty non-final chunk), `TOO_MANY_PENDING` (more than `maxPendingFrames`
 * incomplete frames or `maxPendingBytes` held), `FRAME_TOO_LARGE` (declared or accumulated size
 * over `maxFrameBytes`).
 */
export class ResultDeframer {
  /** Most incomplete frames held at once. */
  readonly maxPendingFrames: number;
  /** Largest reassembled frame, in bytes. */
  readonly maxFrameBytes: number;
  /** Most payload bytes held across all incomplete frames. */
  readonly maxPendingBytes: number;
  readonly #pending = new Map<number, PendingFrame>();
  #pendingBytes = 0;

  constructor(options: ResultDeframerOptions = {}) {
    this.maxPendingFrames = positiveIntOption(
      "maxPendingFrames",
      options.maxPendingFrames,
      DEFAULT_MAX_PENDING_FRAMES,
    );
    this.maxFrameBytes = positiveIntOption("maxFrameBytes", options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
    this.maxPendingBytes = positiveIntOption(
      "maxPendingBytes",
      options.maxPendingBytes,
      2 * this.maxFrameBytes,
    );
  }

  /** Number of frames with some but not all chunks received. */
  get pendingFrames(): number {
    return this.#pending.size;
  }

  /** Payload bytes currently held for incomplete frames. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Drops every incomplete frame. */
  reset(): void {
    this.#pending.clear();
    this.#pendingBytes = 0;
  }

  /**
   * Takes one raw binary message. Returns the frame it completes, or `null` when the frame
   * still misses chunks. Throws `VidrtcError` for malformed or out-of-bounds input.
   */
  push(message: Uint8Array): DeframedResult | null {
    const { maxFrameBytes, maxPendingFrames } = this;
    if (!(message instanceof Uint8Array)) {
      throw malformed(`Result message must be binary, got ${typeof message}.`);
    }
    if (message.byteLength < RESULT_HEADER_SIZE) {
      throw malformed(
        `Result message of ${message.byteLength} bytes is shorter than the ${RESULT_HEADER_SIZE}-byte header.`,
        { length: message.byteLength },
      );
    }
    const view = new DataView(message.buffer, message.byteOffset, RESULT_HEADER_SIZE);
    const frameId = view.getUint32(0, true);
    const index = view.getUint32(4, true);
    const total = view.getUint32(8, true);
    const payload = message.subarray(RESULT_HEADER_SIZE);
    const where = `frame ${frameId} chunk ${index}/${total}`;

    if (total === 0) throw malformed(`Result ${where}: total_chunks is 0.`, { frameId, index, total });
    if (index >= total) {
      throw malformed(`Result ${where}: chunk_index ${index} is not below total_chunks ${total}.`, {
        frameId,
        index,
        total,
      });
    }
    const isFinal = index === total - 1;
    if (!isFinal && payload.byteLength === 0) {
      throw malformed(`Result ${where}: non-final chunk has an empty payload.`, { frameId, index, total });
    }
    // Lower bound of the frame's size: non-final chunks share one chunk size (this chunk's, if it
    // is non-final; else at least one byte each) and the final chunk has at least one byte.
    const declaredMin = isFinal ? total - 1 + payload.byteLength : (total - 1) * payload.byteLength + 1;
    if (declaredMin > maxFrameBytes) {
      throw new VidrtcError(
        "FRAME_TOO_LARGE",
        `Result ${where} declares at least ${declaredMin} bytes (${total} chunks), over the ${maxFrameBytes}-byte frame limit.`,
        { details: { frameId, index, total, declaredBytes: declaredMin, maxFrameBytes } },
      );
    }

    const frame = this.#pending.get(frameId);
    if (frame === undefined) {
      if (total === 1) return { frameId, payload };
      if (this.#pending.size >= maxPendingFrames) {
        throw new VidrtcError(
          "TOO_MANY_PENDING",
          `Result ${where} would be incomplete frame ${this.#pending.size + 1}, over the limit of ${maxPendingFrames} pending frames.`,
          {
            details: { frameId, pendingFrames: this.#pending.size, maxPendingFrames },
          },
        );
      }
      this.#checkPendingBytes(where, payload.byteLength);
      this.#pending.set(frameId, { total, parts: new Map([[index, payload]]), bytes: payload.byteLength });
      this.#pendingBytes += payload.byteLength;
      return null;
    }

    if (frame.total !== total) {
      throw malformed(
        `Result ${where}: total_chunks changed from ${frame.total} to ${total} within the frame.`,
        {
          frameId,
          index,
          total,
          previousTotal: frame.total,
        },
      );
    }
    if (frame.parts.has(index)) {
      throw malformed(`Result ${where}: duplicate chunk ${index}.`, { frameId, index, total });
    }
    const bytes = frame.bytes + payload.byteLength;
    if (bytes > maxFrameBytes) {
      throw new VidrtcError(
        "FRAME_TOO_LARGE",
        `Result frame ${frameId} reached ${bytes} bytes after chunk ${index}/${total}, over the ${maxFrameBytes}-byte frame limit.`,
        { details: { frameId, index, total, bytes, maxFrameBytes } },
      );
    }
    if (frame.parts.size + 1 === total) {
      // Complete: join once, in index order.
      frame.parts.set(index, payload);
      const ordered: Uint8Array[] = [];
      for (let i = 0; i < total; i++) ordered.push(frame.parts.get(i) as Uint8Array);
      this.#pending.delete(frameId);
      this.#pendingBytes -= frame.bytes;
      return { frameId, payload: concatBytes(ordered, bytes) };
    }
    this.#checkPendingBytes(where, payload.byteLength);
    frame.parts.set(index, payload);
    frame.bytes = bytes;
    this.#pendingBytes += payload.byteLength;
    return null;
  }

  #checkPendingBytes(where: string, adding: number): void {
    const { maxPendingBytes } = this;
    const after = this.#pendingBytes + adding;
    if (after > maxPendingBytes) {
      throw new VidrtcError(
        "TOO_MANY_PENDING",
        `Result ${where} would raise incomplete-frame data to ${after} bytes, over the ${maxPendingBytes}-byte limit.`,
        { details: { pendingBytes: this.#pendingBytes, adding, maxPendingBytes } },
      );
    }
  }
}

/** True when `bytes` starts with the gzip magic `1f 8b`. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === GZIP_MAGIC_0 && bytes[1] === GZIP_MAGIC_1;
}

/** Feeds one buffer through a (de)compression stream and collects its output, bounded. */
async function transformBytes(
  transform: { writable: WritableStream<BufferSource>; readable: ReadableStream<Uint8Array> },
  bytes: Uint8Array,
  maxBytes: number,
  what: string,
): Promise<Uint8Array> {
  const writer = transform.writable.getWriter();
  // Write errors surface on the readable side too; keep these from becoming unhandled.
  writer.write(bytes as Uint8Array<ArrayBuffer>).catch(() => undefined);
  writer.close().catch(() => undefined);
  return readBounded(
    transform.readable,
    maxBytes,
    () =>
      new VidrtcError("FRAME_TOO_LARGE", `${what} exceeds the ${maxBytes}-byte limit.`, {
        details: { maxBytes },
      }),
  );
}

/**
 * Decompresses gzip bytes with the web-standard `DecompressionStream`, refusing output over
 * `maxBytes` (gzip-bomb guard). Throws `RESULT_DECODE_FAILED` for corrupt input,
 * `FRAME_TOO_LARGE` when the output is too large.
 */
export async function gunzipBytes(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Promise<Uint8Array> {
  try {
    return await transformBytes(
      new DecompressionStream("gzip"),
      bytes,
      maxBytes,
      "Decompressed result payload",
    );
  } catch (error) {
    if (VidrtcError.isInstance(error)) throw error;
    throw new VidrtcError(
      "RESULT_DECODE_FAILED",
      `Result payload of ${bytes.byteLength} bytes starts with the gzip magic but could not be decompressed: ${errorText(error)}`,
      { cause: error },
    );
  }
}

/** Compresses bytes with the web-standard `CompressionStream("gzip")`. */
export async function gzipBytes(bytes: Uint8Array): Promise<Uint8Array> {
  return transformBytes(new CompressionStream("gzip"), bytes, Number.MAX_SAFE_INTEGER, "Compressed payload");
}

function decodeFailed(message: string, cause?: unknown): VidrtcError {
  return new VidrtcError("RESULT_DECODE_FAILED", message, cause === undefined ? {} : { cause });
}

/**
 * Parses one result JSON text, checks its shape minimally and normalises it: missing `errors`
 * -> `[]`, missing `processing_complete` -> `false`, missing `termination_reason`,
 * `serialized_output_data` or `video_metadata` -> `null`; non-string error entries are
 * JSON-stringified. Unknown keys are kept. Throws `RESULT_DECODE_FAILED`.
 */
export function parseResultJson(text: string): WebRTCOutput {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw decodeFailed(`Result payload is not valid JSON: ${errorText(error)}`, error);
  }
  return normaliseOutput(value);
}

function normaliseOutput(value: unknown): WebRTCOutput {
  if (!isPlainObject(value)) {
    throw decodeFailed(
      `Result JSON must be an object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}.`,
    );
  }
  const data = value.serialized_output_data ?? null;
  if (data !== null && !isPlainObject(data)) {
    throw decodeFailed(`Result "serialized_output_data" must be an object or null, got ${typeof data}.`);
  }
  const meta = value.video_metadata ?? null;
  if (meta !== null) {
    if (!isPlainObject(meta))
      throw decodeFailed(`Result "video_metadata" must be an object or null, got ${typeof meta}.`);
    const id = meta.frame_id;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw decodeFailed(
        `Result "video_metadata.frame_id" must be a non-negative integer, got ${JSON.stringify(id) ?? "undefined"}.`,
      );
    }
  }
  const rawErrors = value.errors ?? [];
  if (!Array.isArray(rawErrors))
    throw decodeFailed(`Result "errors" must be an array, got ${typeof rawErrors}.`);
  const errors = rawErrors.map((e) => (typeof e === "string" ? e : (JSON.stringify(e) ?? String(e))));
  const complete = value.processing_complete ?? false;
  if (typeof complete !== "boolean") {
    throw decodeFailed(`Result "processing_complete" must be a boolean, got ${typeof complete}.`);
  }
  const reason = value.termination_reason ?? null;
  if (reason !== null && typeof reason !== "string") {
    throw decodeFailed(`Result "termination_reason" must be a string or null, got ${typeof reason}.`);
  }
  return {
    ...value,
    serialized_output_data: data,
    video_metadata: meta as VideoMetadata | null,
    errors,
    processing_complete: complete,
    termination_reason: reason,
  };
}

/** Options of {@link decodeResultPayload}. */
export interface DecodeResultOptions {
  /** Largest decompressed payload (default {@link DEFAULT_MAX_FRAME_BYTES}); over it -> `FRAME_TOO_LARGE`. */
  maxBytes?: number;
}

/**
 * Decodes one reassembled result payload: gunzip when it starts with `1f 8b` (bounded by
 * `maxBytes`), strict UTF-8 decode, JSON parse, shape check and normalisation
 * ({@link parseResultJson}). Throws `RESULT_DECODE_FAILED` (cause attached) or `FRAME_TOO_LARGE`.
 */
export async function decodeResultPayload(
  payload: Uint8Array,
  options: DecodeResultOptions = {},
): Promise<WebRTCOutput> {
  const maxBytes = positiveIntOption("maxBytes", options.maxBytes, DEFAULT_MAX_FRAME_BYTES);
  const bytes = isGzip(payload) ? await gunzipBytes(payload, maxBytes) : payload;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw decodeFailed(`Result payload of ${bytes.byteLength} bytes is not valid UTF-8.`, error);
  }
  return parseResultJson(text);
}

/** Converts a decoded message into the application-facing {@link ResultMessage}. */
export function toResultMessage(frameId: number, output: WebRTCOutput): ResultMessage {
  return {
    frameId,
    outputs: output.serialized_output_data ?? {},
    metadata: output.video_metadata,
    errors: output.errors,
    processingComplete: output.processing_complete,
    terminationReason: output.termination_reason,
    raw: output,
  };
}

/**
 * A transform from raw `inference`-channel binary messages to {@link ResultMessage}s, in the
 * order frames complete. Errors the stream with the deframer's/decoder's `VidrtcError`.
 */
export function createResultDecoder(
  options: ResultDeframerOptions = {},
): TransformStream<Uint8Array, ResultMessage> {
  const deframer = new ResultDeframer(options);
  return new TransformStream<Uint8Array, ResultMessage>({
    async transform(message, controller) {
      const frame = deframer.push(message);
      if (frame === null) return;
      const output = await decodeResultPayload(frame.payload, { maxBytes: deframer.maxFrameBytes });
      controller.enqueue(toResultMessage(frame.frameId, output));
    },
  });
}

/** The ACK control message: exactly `{"ack":n}`. `n` must be a non-negative integer. */
export function ackMessage(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `An ACK needs a non-negative integer frame id, got ${String(n)}.`,
    );
  }
  return `{"ack":${n}}`;
}

/**
 * Sends cumulative, monotonic ACKs (`{"ack":n}` = "every frame <= n is handled", PROTOCOL.md §4.3).
 *
 * Call `done(frameId)` once the consumer has handled a frame. If frames can be handled out of
 * order, also call `delivered(frameId)` when a frame is handed to the consumer: an ACK then
 * never covers a delivered frame that is not yet done. Without `delivered`, each `done` counts as
 * delivered-and-done (the simple in-order case). An ACK is sent only when its number grows.
 */
export class AckTracker {
  readonly #send: (text: string) => void;
  readonly #outstanding = new Set<number>();
  readonly #doneUnacked = new Set<number>();
  #last = 0;

  constructor(send: (text: string) => void) {
    this.#send = send;
  }

  /** The highest frame id ACKed so far (0 before the first ACK). */
  get lastAck(): number {
    return this.#last;
  }

  /** Marks a frame as handed to the consumer but not yet handled. */
  delivered(frameId: number): void {
    ackMessage(frameId); // validates
    if (frameId > this.#last) this.#outstanding.add(frameId);
  }

  /** Marks a frame as handled and sends the new cumulative ACK if it advanced. */
  done(frameId: number): void {
    ackMessage(frameId); // validates
    this.#outstanding.delete(frameId);
    if (frameId <= this.#last) return;
    this.#doneUnacked.add(frameId);
    let limit = Number.POSITIVE_INFINITY;
    for (const id of this.#outstanding) if (id < limit) limit = id;
    let candidate = this.#last;
    for (const id of this.#doneUnacked) if (id < limit && id > candidate) candidate = id;
    if (candidate <= this.#last) return;
    this.#send(ackMessage(candidate));
    this.#last = candidate;
    for (const id of this.#doneUnacked) if (id <= candidate) this.#doneUnacked.delete(id);
    for (const id of this.#outstanding) if (id <= candidate) this.#outstanding.delete(id);
  }
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `${name} must be an unsigned 32-bit integer, got ${String(value)}.`,
    );
  }
}

/**
 * Server side: splits a payload into framed `inference` messages
 * (`[frame_id][chunk_index][total_chunks][payload]`), each a fresh buffer. Always at least one
 * message: an empty payload gives one message with `total_chunks` 1.
 */
export function frameResultPayload(
  frameId: number,
  payload: Uint8Array,
  chunkSize: number = RESULT_CHUNK_SIZE,
): Uint8Array[] {
  checkU32("frameId", frameId);
  positiveIntOption("chunkSize", chunkSize, RESULT_CHUNK_SIZE);
  const total = Math.max(1, Math.ceil(payload.byteLength / chunkSize));
  checkU32("total_chunks", total);
  const messages: Uint8Array[] = [];
  for (let i = 0; i < total; i++) {
    const part = payload.subarray(i * chunkSize, Math.min(payload.byteLength, (i + 1) * chunkSize));
    const message = new Uint8Array(RESULT_HEADER_SIZE + part.byteLength);
    const view = new DataView(message.buffer);
    view.setUint32(0, frameId, true);
    view.setUint32(4, i, true);
    view.setUint32(8, total, true);
    message.set(part, RESULT_HEADER_SIZE);
    messages.push(message);
  }
  return messages;
}

/** Options of {@link encodeResultMessage}. */
export interface EncodeResultOptions {
  /** gzip the JSON (as the real server does for data messages). Default false. */
  gzip?: boolean;
  /** Payload bytes per message (default {@link RESULT_CHUNK_SIZE}). */
  chunkSize?: number;
}

/**
 * Server side: JSON-encodes (UTF-8) a result, gzips it when asked, and frames it.
 * Per PROTOCOL.md §4.4 `processing_complete` messages are never gzipped: the caller decides and
 * should pass `gzip: false` for them (this function does what it is told).
 */
export async function encodeResultMessage(
  frameId: number,
  output: WebRTCOutput,
  options: EncodeResultOptions = {},
): Promise<Uint8Array[]> {
  checkU32("frameId", frameId);
  const json = new TextEncoder().encode(JSON.stringify(output));
  const payload = options.gzip === true ? await gzipBytes(json) : json;
  return frameResultPayload(frameId, payload, options.chunkSize ?? RESULT_CHUNK_SIZE);
}

/**
 * The credit ACK a client with a read-ahead buffer of `frames` sends once it has finished every
 * frame up to `consumedThrough`: the server (window `window`, 1 on both servers) may then produce
 * up to `consumedThrough + frames`, so at most `frames` results are buffered or in flight.
 */
export function creditAck(consumedThrough: number, frames: number, window = 1): number {
  return Math.max(0, consumedThrough + frames - window);
}

/**
 * Server side of ACK pacing (PROTOCOL.md §4.3): keeps the highest cumulative ACK (values beyond
 * the frames produced are credit and accepted; smaller, non-integer or negative ones ignored)
 * and admits frame `k` while `k <= lastAck + window`, or unpaced until the first ACK.
 */
export class AckWindow {
  /** Frames admitted beyond the last ACK (1 on both servers). */
  readonly window: number;
  #last = 0;
  #waiters: Array<() => void> = [];

  constructor(window = 1) {
    this.window = positiveIntOption("window", window, 1);
  }

  /** The highest ACK received (0 = none yet: pacing is off). */
  get lastAck(): number {
    return this.#last;
  }

  /** Takes a received `ack` value; true when it advanced the window. */
  accept(value: unknown): boolean {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= this.#last) return false;
    this.#last = value;
    for (const wake of this.#waiters.splice(0)) wake();
    return true;
  }

  /** Whether frame `frameId` may be produced now. */
  admits(frameId: number): boolean {
    return this.#last === 0 || frameId <= this.#last + this.window;
  }

  /** Resolves once `frameId` is admitted; rejects with `signal.reason` on abort. */
  async waitFor(frameId: number, signal?: AbortSignal): Promise<void> {
    while (!this.admits(frameId)) {
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal?.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }
}
