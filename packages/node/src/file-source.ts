/**
 * A video file on disk as an upload source: checked up front, then read lazily in bounded pieces.
 */
import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { basename } from "node:path";
import { throwIfAborted, UPLOAD_CHUNK_SIZE, VidrtcError, validateUploadSize } from "@vidrtc/protocol";

/**
 * What the session uploads: a known size, a name for logs, and a fresh lazily read byte stream.
 * It has the same structure as `UploadSourceLike` in `@vidrtc/protocol/session`.
 */
export interface UploadSourceLike {
  /** Size in bytes, known before the first chunk. */
  readonly size: number;
  /** File name (without directories), for logs and errors. */
  readonly name: string;
  /** A new stream of the file's bytes. Nothing is read until the stream is pulled. */
  stream(): ReadableStream<Uint8Array>;
}

/** A checked file: {@link UploadSourceLike} plus its path. */
export interface PreparedVideoFile extends UploadSourceLike {
  /** The path as given to {@link VideoFileSource}. */
  readonly path: string;
}

/** Options of {@link VideoFileSource}. */
export interface VideoFileSourceOptions {
  /** Upload cap in bytes (default `MAX_UPLOAD_BYTES`, 512 MiB). */
  maxBytes?: number;
  /**
   * Bytes per read. Default 5 × `UPLOAD_CHUNK_SIZE` (240 KiB), so that the chunker can slice
   * whole chunks out of each read without copying.
   */
  readSize?: number;
}

/** Options of {@link VideoFileSource.prepare}; `maxBytes` overrides the constructor's. */
export interface PrepareOptions {
  /** Upload cap in bytes for this check. */
  maxBytes?: number;
  /** Aborts the check; it then rejects with code `ABORTED`. */
  signal?: AbortSignal;
}

/** Default bytes per read: a multiple of the protocol chunk size. */
export const DEFAULT_FILE_READ_SIZE = 5 * UPLOAD_CHUNK_SIZE;

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function toFileError(error: unknown, path: string): VidrtcError {
  const code = errorCode(error);
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new VidrtcError("FILE_NOT_FOUND", `No such video file: ${path}`, {
      cause: error,
      details: { path },
    });
  }
  const reason = code === "EACCES" || code === "EPERM" ? "permission denied" : (code ?? String(error));
  return new VidrtcError("FILE_UNREADABLE", `Cannot read the video file ${path}: ${reason}.`, {
    cause: error,
    details: { path, errno: code },
  });
}

/**
 * A video file to upload, in the style of Roboflow's Python SDK
 * (`VideoFileSource(path)`). `prepare()` checks the file once, before any connection is made.
 * Its `stream()` then reads the file lazily, one piece at a time, so memory stays bounded whatever
 * the file size.
 *
 * ```ts
 * const source = await new VideoFileSource("clip.mp4").prepare();
 * source.size; source.name; source.stream();
 * ```
 */
export class VideoFileSource {
  /** The path as given. */
  readonly path: string;
  readonly #options: VideoFileSourceOptions;

  constructor(path: string, options: VideoFileSourceOptions = {}) {
    if (typeof path !== "string" || path.length === 0) {
      throw new VidrtcError("INVALID_OPTIONS", "A video file path is required.");
    }
    const readSize = options.readSize;
    if (readSize !== undefined && !(Number.isInteger(readSize) && readSize > 0)) {
      throw new VidrtcError("INVALID_OPTIONS", `readSize must be a positive integer, got ${readSize}.`);
    }
    this.path = path;
    this.#options = options;
  }

  /**
   * Checks the file and returns its size, name and a lazy `stream()`. Throws `VidrtcError`:
   * `FILE_NOT_FOUND` (missing path), `FILE_UNREADABLE` (a directory or other non-regular file,
   * permission denied, any other I/O error), `EMPTY_FILE` (0 bytes), `FILE_TOO_LARGE` (over
   * `maxBytes`), `ABORTED`.
   */
  async prepare(options: PrepareOptions = {}): Promise<PreparedVideoFile> {
    const { signal } = options;
    const maxBytes = options.maxBytes ?? this.#options.maxBytes;
    throwIfAborted(signal, "file check");
    const path = this.path;
    const info = await stat(path).catch((error: unknown) => {
      throw toFileError(error, path);
    });
    if (info.isDirectory()) {
      throw new VidrtcError("FILE_UNREADABLE", `${path} is a directory, not a video file.`, {
        details: { path },
      });
    }
    if (!info.isFile()) {
      throw new VidrtcError("FILE_UNREADABLE", `${path} is not a regular file (its size is unknown).`, {
        details: { path },
      });
    }
    // Opening proves the file is readable (stat succeeds without read permission).
    const handle = await open(path, "r").catch((error: unknown) => {
      throw toFileError(error, path);
    });
    await handle.close();
    throwIfAborted(signal, "file check");
    const size = info.size;
    try {
      validateUploadSize(size, maxBytes);
    } catch (error) {
      if (VidrtcError.isInstance(error)) {
        throw new VidrtcError(error.code, `${path}: ${error.message}`, {
          cause: error,
          details: { ...error.details, path },
        });
      }
      throw error;
    }
    const readSize = this.#options.readSize ?? DEFAULT_FILE_READ_SIZE;
    return {
      path,
      size,
      name: basename(path),
      stream: () => readFileLazily(path, readSize),
    };
  }
}

/**
 * A pull-based stream over a file: each pull reads one fresh `readSize` buffer (never reused, so
 * downstream stages may keep views of it). With a queue of one piece, at most two pieces are in
 * memory per stream. The file is opened on the first pull and closed at the end, on error or on
 * cancel.
 */
function readFileLazily(path: string, readSize: number): ReadableStream<Uint8Array> {
  let handle: FileHandle | null = null;
  let position = 0;
  let done = false;
  const closeHandle = async () => {
    const h = handle;
    handle = null;
    await h?.close().catch(() => {});
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (done) return;
        try {
          handle ??= await open(path, "r");
          const buffer = new Uint8Array(readSize);
          const { bytesRead } = await handle.read(buffer, 0, readSize, position);
          if (bytesRead === 0) {
            done = true;
            await closeHandle();
            controller.close();
            return;
          }
          position += bytesRead;
          controller.enqueue(bytesRead === readSize ? buffer : buffer.subarray(0, bytesRead));
        } catch (error) {
          done = true;
          await closeHandle();
          controller.error(toFileError(error, path));
        }
      },
      async cancel() {
        done = true;
        await closeHandle();
      },
    },
    new CountQueuingStrategy({ highWaterMark: 1 }),
  );
}
