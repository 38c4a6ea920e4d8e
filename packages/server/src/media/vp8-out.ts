/**
 * Encodes rgb24 frames to VP8 RTP packets with an ffmpeg child process, for sending a processed video
 * track back to the client. ffmpeg sends RTP over UDP to a socket this module binds on 127.0.0.1; each
 * RTP packet is handed to `onRtp` (e.g. forwarded to werift's `MediaStreamTrack.writeRtp`).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import type { Readable, Writable } from "node:stream";
import { VidrtcError } from "@vidrtc/protocol";
import { FFMPEG_INSTALL_HINT, isMissingExecutable, lastLines } from "./run-tool.js";

/** Options of {@link Vp8RtpEncoder}. */
export interface Vp8RtpEncoderOptions {
  /** Frame width in pixels (even). */
  width: number;
  /** Frame height in pixels (even). */
  height: number;
  /** Frame rate of the frames written (also sets the ~1 s keyframe interval). */
  fps: number;
  /** Receives each RTP packet (RTCP is filtered out). */
  onRtp: (packet: Uint8Array) => void;
  /** ffmpeg executable (default `ffmpeg` on the PATH). */
  ffmpegPath?: string;
  /** RTP payload type (default 96). */
  payloadType?: number;
  /** RTP SSRC (default random). */
  ssrc?: number;
  /** Target bitrate in bits per second (default scales with the frame size, about 1 Mbit/s at 640x360). */
  bitrate?: number;
  /** Bound for start and close (default 10 s). */
  timeoutMs?: number;
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

/**
 * VP8 encoder producing RTP packets: rgb24 frames on ffmpeg's stdin -> libvpx (realtime deadline,
 * no lag, keyframe about every second) -> `-f rtp rtp://127.0.0.1:<port>`.
 */
export class Vp8RtpEncoder {
  private readonly options: Vp8RtpEncoderOptions;
  private readonly frameBytes: number;
  private readonly payloadType: number;
  private readonly ssrc: number;
  private child: Child | null = null;
  private socket: Socket | null = null;
  private stderrTail = "";
  private exitPromise: Promise<void> | null = null;
  private startPromise: Promise<void> | null = null;
  private closePromise: Promise<void> | null = null;
  private error: VidrtcError | null = null;
  private lastPacketAt = 0;
  /** RTP packets delivered to `onRtp` so far. */
  packetsSent = 0;
  /** Frames accepted by `write`. */
  framesWritten = 0;

  /** Validates the options; nothing is started until {@link start}. Throws `INVALID_OPTIONS`. */
  constructor(options: Vp8RtpEncoderOptions) {
    const { width, height, fps } = options;
    if (
      !Number.isInteger(width) ||
      !Number.isInteger(height) ||
      width < 2 ||
      height < 2 ||
      width % 2 ||
      height % 2
    ) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        `VP8 frame size must be even integers >= 2, got ${width}x${height}.`,
      );
    }
    if (!(Number.isFinite(fps) && fps > 0 && fps <= 240)) {
      throw new VidrtcError("INVALID_OPTIONS", `VP8 fps must be in (0, 240], got ${fps}.`);
    }
    const pt = options.payloadType ?? 96;
    if (!Number.isInteger(pt) || pt < 0 || pt > 127) {
      throw new VidrtcError("INVALID_OPTIONS", `RTP payload type must be 0-127, got ${pt}.`);
    }
    this.options = options;
    this.payloadType = pt;
    this.ssrc = (options.ssrc ?? Math.floor(Math.random() * 0x7fffffff) + 1) >>> 0;
    this.frameBytes = width * height * 3;
  }

  /** Binds the UDP socket on 127.0.0.1 and spawns ffmpeg. Idempotent. */
  start(): Promise<void> {
    if (this.closePromise) return Promise.reject(new VidrtcError("ABORTED", "The VP8 encoder is closed."));
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    const socket = createSocket({ type: "udp4" });
    this.socket = socket;
    socket.on("message", (msg) => {
      // RTCP (sender reports) shares nothing with our payload type; keep RTP v2 packets of our PT only.
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== this.payloadType) return;
      this.packetsSent++;
      this.lastPacketAt = Date.now();
      try {
        this.options.onRtp(new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
      } catch {
        // a throwing consumer must not break the encoder
      }
    });
    socket.on("error", (e) =>
      this.setError(new VidrtcError("PROCESSING_FAILED", `RTP socket error: ${e.message}`, { cause: e })),
    );
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: "127.0.0.1", port: 0, exclusive: true }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024); // keyframe bursts; the kernel may cap it
    } catch {
      // keep the default
    }
    const port = socket.address().port;
    const { width, height, fps } = this.options;
    const bitrate = this.options.bitrate ?? Math.max(150_000, Math.round((width * height * fps) / 20));
    const gop = Math.max(1, Math.round(fps));
    const args = [
      "-hide_banner",
      "-nostats",
      "-loglevel",
      "error",
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-s",
      `${width}x${height}`,
      "-r",
      String(fps),
      "-i",
      "pipe:0",
      "-an",
      "-c:v",
      "libvpx",
      "-pix_fmt",
      "yuv420p",
      "-deadline",
      "realtime",
      "-cpu-used",
      "8",
      "-lag-in-frames",
      "0",
      "-error-resilient",
      "1",
      "-b:v",
      String(bitrate),
      "-maxrate",
      String(bitrate),
      "-bufsize",
      String(bitrate),
      "-g",
      String(gop),
      "-keyint_min",
      String(gop),
      "-threads",
      "1",
      "-flush_packets",
      "1",
      "-payload_type",
      String(this.payloadType),
      "-ssrc",
      String(this.ssrc | 0),
      "-f",
      "rtp",
      `rtp://127.0.0.1:${port}?rtcpport=${port}&pkt_size=1200`,
    ];
    const child: Child = spawn(this.options.ffmpegPath ?? "ffmpeg", args, {
      stdio: ["pipe", "pipe", "pipe"],
      windowsHide: true,
    });
    this.child = child;
    child.stdout.resume(); // ffmpeg prints the SDP here; not needed
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-4000);
    });
    child.stdin.on("error", () => {
      // EPIPE when ffmpeg dies; reported through the exit handler
    });
    this.exitPromise = new Promise<void>((resolve) => {
      child.once("error", () => resolve()); // spawn failure: there will be no exit event
      child.once("exit", (code, signal) => {
        if (!this.closePromise || (code !== 0 && code !== null)) {
          if (code !== 0) {
            this.setError(
              new VidrtcError(
                "PROCESSING_FAILED",
                `The VP8 encoder (ffmpeg) exited with ${code === null ? `signal ${signal}` : `code ${code}`}: ${lastLines(this.stderrTail, 3)}`,
              ),
            );
          }
        }
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (e) => {
        const err = new VidrtcError(
          "PROCESSING_FAILED",
          isMissingExecutable(e)
            ? `ffmpeg could not be started for the VP8 encoder. ${FFMPEG_INSTALL_HINT}`
            : `ffmpeg could not be started for the VP8 encoder: ${e.message}`,
          { cause: e },
        );
        this.setError(err);
        reject(err);
      });
    }).catch(async (e) => {
      socket.close();
      throw e;
    });
  }

  private setError(error: VidrtcError): void {
    if (this.error === null) this.error = error;
  }

  /**
   * Queues one rgb24 frame (`width * height * 3` bytes). Resolves when ffmpeg's stdin can take more
   * (backpressure). Rejects with `INVALID_OPTIONS` for a wrong size, `PROCESSING_FAILED` if ffmpeg died,
   * `ABORTED` after close.
   */
  async write(rgb: Uint8Array): Promise<void> {
    if (this.closePromise) throw new VidrtcError("ABORTED", "The VP8 encoder is closed.");
    if (this.error) throw this.error;
    const child = this.child;
    if (!child) throw new VidrtcError("INVALID_OPTIONS", "Vp8RtpEncoder.write called before start().");
    if (rgb.length !== this.frameBytes) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        `A VP8 input frame must be ${this.frameBytes} bytes (${this.options.width}x${this.options.height} rgb24), got ${rgb.length}.`,
      );
    }
    const stdin = child.stdin;
    if (stdin.destroyed || stdin.writableEnded) {
      throw this.error ?? new VidrtcError("PROCESSING_FAILED", "The VP8 encoder's input is closed.");
    }
    this.framesWritten++;
    if (stdin.write(rgb)) return;
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        stdin.off("drain", onDrain);
        stdin.off("close", onClose);
        child.off("exit", onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.error ?? new VidrtcError("PROCESSING_FAILED", "The VP8 encoder stopped."));
      };
      stdin.on("drain", onDrain);
      stdin.on("close", onClose);
      child.on("exit", onClose);
    });
  }

  /**
   * Ends ffmpeg's input, lets it flush the last packets (bounded by `timeoutMs`, then SIGKILL), and closes
   * the socket. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    await this.startPromise?.catch(() => undefined);
    const child = this.child;
    if (child && this.exitPromise) {
      child.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.exitPromise,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await this.exitPromise;
      }
      // Let packets already in the socket's receive queue be delivered (quiet for 50 ms, at most 500 ms).
      const until = Date.now() + 500;
      while (Date.now() < until && Date.now() - this.lastPacketAt < 50) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setImmediate(r));
    }
    const socket = this.socket;
    if (socket) {
      await new Promise<void>((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve();
        }
      });
    }
  }
}
