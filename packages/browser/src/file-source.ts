/**
 * A video `File` or `Blob` as an upload source, read lazily so a large file is never held in memory.
 */
import { MAX_UPLOAD_BYTES, throwIfAborted, VidrtcError, validateUploadSize } from "@vidrtc/protocol";
import type { UploadSourceLike } from "@vidrtc/protocol/session";

/** Options of {@link VideoFileSource}. */
export interface VideoFileSourceOptions {
  /** Name for logs and errors; default the `File`'s name, or `"video"` for a plain `Blob`. */
  name?: string;
  /** Upload size cap in bytes; default `MAX_UPLOAD_BYTES` (512 MiB, as on Roboflow's server). */
  maxBytes?: number;
}

/** Options of {@link VideoFileSource.prepare}; `maxBytes` overrides the constructor's. */
export interface PrepareOptions {
  /** Upload cap in bytes for this check (default: the constructor's, else `MAX_UPLOAD_BYTES`, 512 MiB). */
  maxBytes?: number;
  /** Aborts the check; it then rejects with code `ABORTED`. */
  signal?: AbortSignal;
}

/**
 * A video file to upload, from an `<input type="file">`, a drop, or any `Blob`.
 * Nothing is read until the upload starts; then the bytes stream through `Blob.stream()`, so only a
 * few chunks are in memory at a time whatever the file's size.
 */
export class VideoFileSource {
  /** The file or blob. */
  readonly file: Blob;
  /** Name used in logs and errors. */
  readonly name: string;
  /** Upload size cap given to the constructor, if any. */
  readonly maxBytes: number | undefined;

  /** @param file the video; `File` objects keep their name. */
  constructor(file: File | Blob, options: VideoFileSourceOptions = {}) {
    if (typeof Blob === "undefined" || !(file instanceof Blob)) {
      throw new VidrtcError("INVALID_OPTIONS", "VideoFileSource needs a File or Blob.");
    }
    this.file = file;
    this.name = options.name ?? ((file as Partial<File>).name || "video");
    this.maxBytes = options.maxBytes;
  }

  /** Size in bytes. */
  get size(): number {
    return this.file.size;
  }

  /**
   * Checks the size before any connection is made and returns the session's upload source.
   * Throws `EMPTY_FILE` for a 0-byte file and `FILE_TOO_LARGE` above `maxBytes`.
   * Read errors during the upload (the file was deleted or changed) surface as `FILE_UNREADABLE`.
   */
  async prepare(options: PrepareOptions = {}): Promise<UploadSourceLike> {
    const { file, name } = this;
    const size = file.size;
    throwIfAborted(options.signal, "file check");
    try {
      validateUploadSize(size, options.maxBytes ?? this.maxBytes ?? MAX_UPLOAD_BYTES);
    } catch (error) {
      // A fresh error of validateUploadSize: name the file in its message.
      if (VidrtcError.isInstance(error)) error.message = `${name}: ${error.message}`;
      throw error;
    }
    return { size, name, stream: () => readBlob(file, name) };
  }
}

/** `blob.stream()`, pulled on demand, with read failures mapped to `FILE_UNREADABLE`. */
function readBlob(blob: Blob, name: string): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        reader ??= blob.stream().getReader() as ReadableStreamDefaultReader<Uint8Array>;
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (error) {
          throw new VidrtcError(
            "FILE_UNREADABLE",
            `Could not read ${name}: ${error instanceof Error ? error.message : String(error)}. The file may have been moved or changed after it was chosen.`,
            { cause: error },
          );
        }
        if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      async cancel(reason) {
        await reader?.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
