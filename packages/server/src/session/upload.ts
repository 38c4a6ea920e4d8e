/**
 * The `video_upload` channel into a temp file: chunk reassembly and echo through `UploadReceiver`,
 * SHA-256 of the payload, a bounded write queue, and the idle watchdog (no upload progress, or no
 * upload channel at all, for `idleTimeoutMs` fails the upload).
 */
import { createHash } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { type DataChannelLike, UploadReceiver, VidrtcError } from "@vidrtc/protocol";
import type { ServerLogger } from "../log.js";
import { type SafeTimer, safeTimeout } from "./timer.js";

export const DEFAULT_WRITE_QUEUE = 32 * 1024 * 1024;

/** What a finished upload reports. */
export interface UploadSummary {
  bytes: number;
  sha256: string;
  durationMs: number;
  chunks: number;
}

export interface UploadToFileOptions {
  file: string;
  maxUploadBytes: number;
  idleTimeoutMs: number;
  maxWriteQueueBytes?: number;
  log: ServerLogger;
  /** The upload cannot go on: the session fails with this reason, code and message. */
  onFail: (terminationReason: string, code: string, message: string) => void;
  /** The whole file is on disk. */
  onComplete: (summary: UploadSummary) => void;
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export class UploadToFile {
  readonly #o: UploadToFileOptions;
  readonly #receiver: UploadReceiver;
  readonly #hash = createHash("sha256");
  #channel: DataChannelLike | null = null;
  #writer: WriteStream | null = null;
  #startedAt = 0;
  #done = false;
  #stopped = false;
  #idleTimer: SafeTimer | null = null;

  constructor(options: UploadToFileOptions) {
    this.#o = options;
    this.#receiver = new UploadReceiver({
      echo: (data) => this.#echo(data),
      maxBytes: options.maxUploadBytes,
      maxChunks: Math.max(1, Math.ceil(options.maxUploadBytes / 49_152)),
    });
  }

  /** True once every byte is written. */
  get complete(): boolean {
    return this.#done;
  }

  /** True while a channel is attached. */
  get attached(): boolean {
    return this.#channel !== null;
  }

  /** Starts the watchdog for a client that never opens the upload channel. */
  start(): void {
    this.#armIdle();
  }

  /** Takes the client's `video_upload` channel; a second one is refused (false). */
  attach(channel: DataChannelLike, onClosedEarly: () => void): boolean {
    if (this.#channel) return false;
    this.#channel = channel;
    this.#startedAt = Date.now();
    this.#armIdle();
    channel.on("message", (event) => this.#onMessage(event.data));
    channel.on("close", () => {
      if (!this.#done && !this.#stopped) onClosedEarly();
    });
    return true;
  }

  /** Stops the watchdog and discards the write stream (idempotent). */
  stop(): void {
    this.#stopped = true;
    this.#clearIdle();
    this.#writer?.destroy();
  }

  /** Resolves once the write stream (if any) has closed, or after `timeoutMs`. */
  async closed(timeoutMs: number): Promise<void> {
    const writer = this.#writer;
    if (!writer || writer.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      writer.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #echo(data: Uint8Array): void {
    // werift 0.25.2 sends no DATA chunk for an empty message but still uses up a stream sequence
    // number, so the peer would wait for it forever and lose every later echo: a 0-byte ping is
    // accepted but not echoed (1-byte pings, which every client sends, are).
    if (data.byteLength === 0) {
      this.#o.log.debug("0-byte keepalive received: not echoed (an empty werift message stalls the channel)");
      return;
    }
    const channel = this.#channel;
    if (channel && channel.readyState === "open") channel.send(Uint8Array.from(data));
  }

  #onMessage(data: Uint8Array | string): void {
    // Still parsed after completion: a chunk after the last one is a malformed upload.
    if (this.#stopped) return;
    let payloads: Uint8Array[];
    try {
      payloads = this.#receiver.push(data);
    } catch (error) {
      const code = VidrtcError.isInstance(error) ? error.code : "MALFORMED_MESSAGE";
      this.#o.onFail("upload_error", code, `Upload rejected: ${errorMessage(error)}`);
      return;
    }
    if (payloads.length === 0 || this.#done) return;
    this.#armIdle();
    const writer = this.#ensureWriter();
    for (const payload of payloads) {
      const copy = Buffer.from(payload);
      this.#hash.update(copy);
      writer.write(copy);
    }
    const cap = this.#o.maxWriteQueueBytes ?? DEFAULT_WRITE_QUEUE;
    if (writer.writableLength > cap) {
      this.#o.onFail(
        "upload_error",
        "UPLOAD_STALLED",
        `The server cannot store the upload fast enough (${writer.writableLength} bytes waiting for the disk).`,
      );
      return;
    }
    if (this.#receiver.complete) {
      this.#done = true;
      this.#clearIdle();
      void this.#finish(writer);
    }
  }

  #ensureWriter(): WriteStream {
    if (this.#writer) return this.#writer;
    const writer = createWriteStream(this.#o.file, { flags: "wx", highWaterMark: 1024 * 1024 });
    writer.on("error", (error) => {
      this.#o.onFail(
        "upload_error",
        "FILE_UNREADABLE",
        `The server could not store the upload: ${error.message}`,
      );
    });
    this.#writer = writer;
    return writer;
  }

  async #finish(writer: WriteStream): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        writer.once("error", reject);
        writer.end(() => resolve());
      });
    } catch {
      return; // the error handler reports it
    }
    if (this.#stopped) return;
    this.#o.onComplete({
      bytes: this.#receiver.bytesReceived,
      sha256: this.#hash.digest("hex"),
      durationMs: Date.now() - this.#startedAt,
      chunks: this.#receiver.totalChunks ?? 0,
    });
  }

  #armIdle(): void {
    this.#clearIdle();
    if (this.#done || this.#stopped) return;
    const ms = this.#o.idleTimeoutMs;
    this.#idleTimer = safeTimeout(() => {
      const what = this.#channel
        ? `no upload progress for ${ms} ms`
        : `the client did not open the upload channel within ${ms} ms`;
      this.#o.onFail("idle_timeout", "UPLOAD_STALLED", `Session idle: ${what}.`);
    }, ms);
  }

  #clearIdle(): void {
    this.#idleTimer?.clear();
    this.#idleTimer = null;
  }
}
