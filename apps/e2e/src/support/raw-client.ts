/**
 * A deliberately small WebRTC client for driving `@vidrtc/server` in tests and benchmarks,
 * built from the protocol pieces only (not `@vidrtc/node`'s session), so that it can send
 * anything, including malformed messages.
 *
 * It offers (optionally) a recv-only video transceiver, then the `inference` and `video_upload`
 * channels, on loopback-only ICE (`loopbackIceOptions()`: one 127.0.0.1 host candidate, never a
 * public STUN lookup), POSTs the offer with `postInitialise`, and then exposes: raw sends on
 * `video_upload`, a file upload with `bufferedAmount` backpressure, every result reassembled and
 * decoded (with its header frame id, whether it was gzipped and when it arrived), ACKs sent by a
 * simulated consumer after a configurable delay per frame (or never), and the video track's RTP
 * packets with their VP8 payload descriptors parsed.
 */
import { open } from "node:fs/promises";
import { loopbackIceOptions } from "@vidrtc/node";
import {
  ackMessage,
  decodeResultPayload,
  frameUploadChunk,
  type InitialiseOptions,
  isGzip,
  postInitialise,
  ResultDeframer,
  totalChunksFor,
  UPLOAD_CHUNK_SIZE,
  type WebRTCOutput,
} from "@vidrtc/protocol";
import { type MediaStreamTrack, type RTCDataChannel, RTCPeerConnection, type RtpPacket } from "werift";

/** One complete result message as the client saw it. */
export interface ReceivedResult {
  /** `frame_id` of the 12-byte header. */
  headerFrameId: number;
  /** The decoded JSON. */
  output: WebRTCOutput;
  /** True when the reassembled payload started with the gzip magic `1f 8b`. */
  gzip: boolean;
  /** First bytes of the reassembled payload (up to 4). */
  head: number[];
  /** Binary messages (chunks) this result arrived in. */
  chunks: number;
  /** `performance.now()` when its last chunk arrived. */
  receivedAt: number;
  /** Highest ACK the client had sent when this result arrived (0 = none yet). */
  ackSentBefore: number;
}

/** One ACK the client sent. */
export interface SentAck {
  ack: number;
  at: number;
}

/** What the client learnt from the VP8 RTP packets of the received video track. */
export interface Vp8Stats {
  /** RTP packets received on the video track. */
  packets: number;
  /** Packets with a payload too short for a VP8 payload descriptor. */
  malformed: number;
  /** Frames started (S bit set and partition index 0). */
  frameStarts: number;
  /** Of those, frames whose VP8 payload header marks a key frame (P bit clear). */
  keyframes: number;
  /** Distinct RTP timestamps seen. */
  timestamps: number;
  /** Packets with the RTP marker bit (last packet of a frame). */
  markers: number;
  /** RTP payload types seen. */
  payloadTypes: number[];
}

/** Options of {@link RawClient.create}. */
export interface RawClientOptions {
  /** Server base URL, e.g. `http://127.0.0.1:9001`. */
  url: string;
  /** Add a recv-only video transceiver before the channels (to get processed video back). */
  video?: boolean;
  /** Initialise options (defaults: workflow `frame-stats` in workspace `local`, `data_output ["*"]`, `stream_output []`, batch mode). */
  request?: Partial<InitialiseOptions>;
  /**
   * Simulated consumer: each result (except `processing_complete`) is handled, one at a time,
   * in this many ms after it arrives (or after the previous one was handled), then ACKed.
   * `null` (default) = never ACK.
   */
  ackDelayMs?: number | null;
  /** Bound on signalling (default 20 s). */
  signallingTimeoutMs?: number;
}

/** Options of {@link RawClient.uploadFile}. */
export interface UploadFileOptions {
  /** Pause sending above this many buffered bytes (default 1 MiB). */
  highWaterMark?: number;
  /** Resume at or below this (default 256 KiB). */
  lowWaterMark?: number;
  /** Send only the chunks before this index (with the full file's `total_chunks`), then stop. */
  stopAfterChunks?: number;
  /** Start at this chunk index (to resume an upload stopped with `stopAfterChunks`; default 0). */
  startAtChunk?: number;
  /** Fail when `bufferedAmount` does not drop for this long (default 30 s). */
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** Called after each message is handed to `send()`. */
  onProgress?: (bytesSent: number, totalBytes: number) => void;
}

/** What {@link RawClient.uploadFile} did. */
export interface UploadReport {
  /** File bytes sent. */
  bytes: number;
  /** Messages sent. */
  chunks: number;
  /** `total_chunks` in the headers. */
  totalChunks: number;
  /** From the first send to `bufferedAmount` reaching 0. */
  ms: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check()` is true, polling every `everyMs`; rejects with `message` after `timeoutMs`. */
async function until(
  check: () => boolean,
  timeoutMs: number,
  message: () => string,
  everyMs = 10,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message()}`);
    await sleep(everyMs);
  }
}

/** Parses the VP8 RTP payload descriptor (RFC 7741 §4.2); returns null when truncated. */
export function parseVp8Descriptor(
  payload: Uint8Array,
): { start: boolean; partition: number; headerLength: number; keyframe: boolean | null } | null {
  if (payload.byteLength < 1) return null;
  const b0 = payload[0] as number;
  const extended = (b0 & 0x80) !== 0;
  const start = (b0 & 0x10) !== 0;
  const partition = b0 & 0x07;
  let offset = 1;
  if (extended) {
    if (payload.byteLength < 2) return null;
    const b1 = payload[1] as number;
    offset = 2;
    if (b1 & 0x80) {
      // PictureID: 7 or 15 bits
      if (payload.byteLength < offset + 1) return null;
      offset += (payload[offset] as number) & 0x80 ? 2 : 1;
    }
    if (b1 & 0x40) offset += 1; // TL0PICIDX
    if (b1 & 0x20 || b1 & 0x10) offset += 1; // TID/Y/KEYIDX
  }
  if (payload.byteLength <= offset) return null;
  // The VP8 payload header's first byte, bit 0 (P): 0 = key frame. Only meaningful at a frame start.
  const keyframe = start && partition === 0 ? ((payload[offset] as number) & 0x01) === 0 : null;
  return { start, partition, headerLength: offset, keyframe };
}

/** A raw test client; see the module docs. */
export class RawClient {
  /** The werift peer connection (loopback-only ICE). */
  readonly pc: RTCPeerConnection;
  /** The result/control channel, created first. */
  readonly inference: RTCDataChannel;
  /** The upload channel, created second. */
  readonly upload: RTCDataChannel;
  /** Every decoded result, in arrival order. */
  readonly results: ReceivedResult[] = [];
  /** Header frame id of every completed result message, in arrival order (before decoding). */
  readonly headerFrameIds: number[] = [];
  /** ACKs sent, in order. */
  readonly acks: SentAck[] = [];
  /** Messages the server echoed on `video_upload` (keepalives). */
  readonly echoes: Uint8Array[] = [];
  /** Deframing or decoding failures (a correct server causes none). */
  readonly protocolErrors: Error[] = [];
  /** The received video track, once `ontrack` fired. */
  track: MediaStreamTrack | null = null;
  /** Per-packet VP8 facts of the received video. */
  readonly vp8: Vp8Stats = {
    packets: 0,
    malformed: 0,
    frameStarts: 0,
    keyframes: 0,
    timestamps: 0,
    markers: 0,
    payloadTypes: [],
  };
  /** Simulated consumer delay per frame before its ACK; `null` = never ACK. Can be changed at any time. */
  ackDelayMs: number | null;
  /** Highest ACK sent so far (0 = none). */
  lastAckSent = 0;
  /** `connectionState` changes of the peer connection, in order. */
  readonly connectionStates: string[] = [];

  readonly #options: RawClientOptions;
  readonly #deframer = new ResultDeframer();
  #decodeChain: Promise<void> = Promise.resolve();
  #consumeChain: Promise<void> = Promise.resolve();
  #chunkCounts = new Map<number, number>();
  #timestamps = new Set<number>();
  #closed = false;

  private constructor(options: RawClientOptions) {
    this.#options = options;
    this.ackDelayMs = options.ackDelayMs ?? null;
    this.pc = new RTCPeerConnection({ ...loopbackIceOptions() });
    this.pc.connectionStateChange.subscribe((state) => this.connectionStates.push(state));
    if (options.video) {
      const transceiver = this.pc.addTransceiver("video", { direction: "recvonly" });
      transceiver.onTrack.subscribe((track) => {
        this.track = track;
        track.onReceiveRtp.subscribe((packet) => this.#onRtp(packet));
      });
    }
    this.inference = this.pc.createDataChannel("inference", { ordered: true });
    this.upload = this.pc.createDataChannel("video_upload", { ordered: true });
    this.inference.onMessage.subscribe((data) => this.#onResultMessage(data));
    this.upload.onMessage.subscribe((data) => {
      if (typeof data !== "string") this.echoes.push(new Uint8Array(data));
    });
  }

  /** Creates the peer connection and channels (nothing is sent yet). */
  static create(options: RawClientOptions): RawClient {
    return new RawClient(options);
  }

  /** Creates, offers, POSTs the offer, applies the answer and waits for both channels to open. */
  static async connect(options: RawClientOptions, openTimeoutMs = 15_000): Promise<RawClient> {
    const client = new RawClient(options);
    try {
      await client.signal();
      await client.waitOpen(openTimeoutMs);
      return client;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /** Creates the offer and gathers ICE completely (bounded); returns the offer SDP. */
  async offer(timeoutMs = 5_000): Promise<string> {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await until(
      () => this.pc.iceGatheringState === "complete",
      timeoutMs,
      () => `ICE gathering (${this.pc.iceGatheringState})`,
    );
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new Error("werift produced no local description");
    return sdp;
  }

  /** Offers, POSTs `/initialise_webrtc_worker` and applies the answer. */
  async signal(): Promise<void> {
    const sdp = await this.offer();
    const request: InitialiseOptions = {
      workflow: "frame-stats",
      workspace: "local",
      dataOutput: ["*"],
      streamOutput: [],
      realtime: false,
      ...this.#options.request,
    };
    const answer = await postInitialise(this.#options.url, { type: "offer", sdp }, request, {
      timeoutMs: this.#options.signallingTimeoutMs ?? 20_000,
    });
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  /** Waits for both data channels to be open. */
  async waitOpen(timeoutMs = 15_000): Promise<void> {
    await until(
      () => this.upload.readyState === "open" && this.inference.readyState === "open",
      timeoutMs,
      () =>
        `channels did not open (inference ${this.inference.readyState}, video_upload ${this.upload.readyState}, peer ${this.pc.connectionState})`,
    );
  }

  /**
   * Sends one message on `video_upload` as is (bytes are copied into a fresh buffer). Never send
   * an empty message: werift 0.25.2 sends no DATA chunk for it but still uses up the stream
   * sequence number, so the ordered channel stalls for good.
   */
  sendRaw(data: Uint8Array | string): void {
    if (this.upload.readyState !== "open") throw new Error(`video_upload is ${this.upload.readyState}`);
    this.upload.send(typeof data === "string" ? data : Buffer.from(data));
  }

  /** Waits until `video_upload`'s buffered amount is at most `limit` (bounded by `stallTimeoutMs` without progress). */
  async waitBuffered(limit: number, stallTimeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    const channel = this.upload;
    let last = channel.bufferedAmount;
    let lastProgress = performance.now();
    while (channel.bufferedAmount > limit) {
      signal?.throwIfAborted();
      if (channel.readyState !== "open")
        throw new Error(`video_upload closed while sending (${channel.readyState})`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          channel.removeListener("bufferedamountlow", done);
          resolve();
        };
        const timer = setTimeout(done, 20);
        channel.addEventListener("bufferedamountlow", done);
      });
      const now = performance.now();
      if (channel.bufferedAmount < last) lastProgress = now;
      last = channel.bufferedAmount;
      if (now - lastProgress > stallTimeoutMs)
        throw new Error(`video_upload made no progress for ${stallTimeoutMs} ms (${last} bytes buffered)`);
    }
  }

  /**
   * Uploads a file as `video_upload` messages made by `frameUploadChunk` (each a fresh buffer),
   * pausing above the high-water mark until `bufferedamountlow` (or a 20 ms poll). Resolves once
   * everything sent has left the buffer.
   */
  async uploadFile(path: string, options: UploadFileOptions = {}): Promise<UploadReport> {
    const high = options.highWaterMark ?? 1024 * 1024;
    const low = options.lowWaterMark ?? 256 * 1024;
    const stall = options.stallTimeoutMs ?? 30_000;
    this.upload.bufferedAmountLowThreshold = low;
    const handle = await open(path, "r");
    try {
      const size = (await handle.stat()).size;
      const total = totalChunksFor(size);
      const limit = Math.min(total, options.stopAfterChunks ?? total);
      const first = options.startAtChunk ?? 0;
      const block = Buffer.allocUnsafe(UPLOAD_CHUNK_SIZE * 32);
      let blockStart = 0; // file offset of block[0]
      let blockBytes = 0;
      let bytes = 0;
      const started = performance.now();
      for (let index = first; index < limit; index++) {
        options.signal?.throwIfAborted();
        const offset = index * UPLOAD_CHUNK_SIZE;
        if (offset >= blockStart + blockBytes) {
          blockStart = offset;
          blockBytes = 0;
          const want = Math.min(block.length, size - offset);
          while (blockBytes < want) {
            const { bytesRead } = await handle.read(
              block,
              blockBytes,
              want - blockBytes,
              offset + blockBytes,
            );
            if (bytesRead === 0) throw new Error(`${path} shrank while uploading`);
            blockBytes += bytesRead;
          }
        }
        const from = offset - blockStart;
        const to = Math.min(from + UPLOAD_CHUNK_SIZE, blockBytes);
        // frameUploadChunk copies the payload into a fresh message: `block` is reused, sent buffers never are.
        const message = frameUploadChunk(index, total, block.subarray(from, to));
        if (this.upload.bufferedAmount > high) await this.waitBuffered(low, stall, options.signal);
        if (this.upload.readyState !== "open")
          throw new Error(
            `video_upload closed after ${index} of ${total} chunks (${this.upload.readyState})`,
          );
        this.upload.send(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
        bytes += to - from;
        options.onProgress?.(bytes, size);
      }
      await this.waitBuffered(0, stall, options.signal);
      return {
        bytes,
        chunks: Math.max(0, limit - first),
        totalChunks: total,
        ms: performance.now() - started,
      };
    } finally {
      await handle.close();
    }
  }

  /** Sends `{"ack": n}` on `inference` now (outside the simulated consumer), e.g. to switch pacing on early. */
  sendAck(n: number): void {
    if (this.inference.readyState !== "open") throw new Error(`inference is ${this.inference.readyState}`);
    if (n > this.lastAckSent) this.lastAckSent = n;
    this.acks.push({ ack: n, at: performance.now() });
    this.inference.send(ackMessage(n));
  }

  /** Resolves with `processing_complete` (rejects after `timeoutMs`, or on a protocol error). */
  async waitComplete(timeoutMs = 30_000): Promise<ReceivedResult> {
    let found: ReceivedResult | undefined;
    await until(
      () => {
        if (this.protocolErrors.length > 0) throw this.protocolErrors[0];
        found = this.results.find((r) => r.output.processing_complete);
        return found !== undefined;
      },
      timeoutMs,
      () => `no processing_complete; ${this.results.length} results, peer ${this.pc.connectionState}`,
    );
    return found as ReceivedResult;
  }

  /** Resolves once the peer connection is closed or failed, or a channel closed (the server ended the session). */
  async waitClosedByServer(timeoutMs = 15_000): Promise<void> {
    await until(
      () =>
        ["closed", "failed", "disconnected"].includes(this.pc.connectionState) ||
        this.inference.readyState === "closed" ||
        this.upload.readyState === "closed",
      timeoutMs,
      () =>
        `server did not end the session (peer ${this.pc.connectionState}, inference ${this.inference.readyState})`,
      20,
    );
  }

  /** Resolves when the simulated consumer has handled everything received so far. */
  async consumerIdle(): Promise<void> {
    await this.#decodeChain;
    await this.#consumeChain;
  }

  /** Data results (not `processing_complete`). */
  get frames(): ReceivedResult[] {
    return this.results.filter((r) => !r.output.processing_complete);
  }

  /** Closes the peer connection (idempotent, bounded). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.race([this.pc.close().catch(() => {}), sleep(3_000)]);
  }

  #onResultMessage(data: string | Buffer): void {
    if (typeof data === "string") {
      this.protocolErrors.push(new Error(`text message on the inference channel: ${data.slice(0, 80)}`));
      return;
    }
    let done: { frameId: number; payload: Uint8Array } | null;
    try {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.byteLength >= 4) {
        const id = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
        this.#chunkCounts.set(id, (this.#chunkCounts.get(id) ?? 0) + 1);
      }
      done = this.#deframer.push(bytes);
    } catch (error) {
      this.protocolErrors.push(error as Error);
      return;
    }
    if (!done) return;
    const receivedAt = performance.now();
    const ackSentBefore = this.lastAckSent;
    const { frameId } = done;
    // Copy: a single-chunk payload is a view of werift's receive buffer.
    const payload = new Uint8Array(done.payload);
    const chunks = this.#chunkCounts.get(frameId) ?? 1;
    this.#chunkCounts.delete(frameId);
    this.headerFrameIds.push(frameId);
    this.#decodeChain = this.#decodeChain.then(async () => {
      let output: WebRTCOutput;
      try {
        output = await decodeResultPayload(payload);
      } catch (error) {
        this.protocolErrors.push(error as Error);
        return;
      }
      this.results.push({
        headerFrameId: frameId,
        output,
        gzip: isGzip(payload),
        head: [...payload.subarray(0, 4)],
        chunks,
        receivedAt,
        ackSentBefore,
      });
      if (!output.processing_complete && this.ackDelayMs !== null) this.#consume(frameId);
    });
  }

  #consume(frameId: number): void {
    this.#consumeChain = this.#consumeChain.then(async () => {
      const delay = this.ackDelayMs;
      if (delay === null) return;
      await sleep(delay);
      if (this.inference.readyState !== "open" || frameId <= this.lastAckSent) return;
      this.lastAckSent = frameId;
      this.acks.push({ ack: frameId, at: performance.now() });
      this.inference.send(ackMessage(frameId));
    });
  }

  #onRtp(packet: RtpPacket): void {
    const v = this.vp8;
    v.packets++;
    if (!v.payloadTypes.includes(packet.header.payloadType)) v.payloadTypes.push(packet.header.payloadType);
    if (packet.header.marker) v.markers++;
    if (!this.#timestamps.has(packet.header.timestamp)) {
      this.#timestamps.add(packet.header.timestamp);
      v.timestamps = this.#timestamps.size;
    }
    const d = parseVp8Descriptor(packet.payload);
    if (!d) {
      v.malformed++;
      return;
    }
    if (d.start && d.partition === 0) {
      v.frameStarts++;
      if (d.keyframe) v.keyframes++;
    }
  }
}
