/**
 * Records a received VP8 RTP stream to WebM without decoding: RTP -> VP8 frames (RFC 7741
 * depacketisation) -> Matroska SimpleBlocks. Used by the node-datachannel offerer, whose native
 * track hands over raw RTP packets (werift has its own recorder).
 *
 * Frames are timed from RTP timestamps (90 kHz), since an inference server may send no RTCP sender
 * reports. After a lost packet the damaged frame is dropped and recording resumes at the next
 * keyframe, so the file always decodes. The header is written at the first keyframe with the frame
 * size read from the VP8 bitstream (the `width`/`height` options are only used when no keyframe
 * ever arrived).
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { VidrtcError } from "@vidrtc/protocol";
import { recordingStop } from "../shared.js";
import type { RecordVideoOptions } from "../types.js";

/** A running recording fed with RTP packets. */
export interface RtpVideoRecorder {
  push(packet: Uint8Array): void;
  stop(): Promise<void>;
  readonly framesWritten: number;
}

// ---------------------------------------------------------------- EBML

function vint(size: number): Buffer {
  // Sizes up to 2^35: 5-byte or smaller encodings.
  for (let length = 1; length <= 8; length++) {
    if (size < 2 ** (7 * length) - 1) {
      const out = Buffer.alloc(length);
      let value = size;
      for (let i = length - 1; i >= 0; i--) {
        out[i] = value & 0xff;
        value = Math.floor(value / 256);
      }
      out[0]! |= 1 << (8 - length);
      return out;
    }
  }
  throw new RangeError(`EBML size too large: ${size}`);
}

function idBytes(id: number): Buffer {
  const hex = id.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
}

function element(id: number, payload: Buffer | Buffer[]): Buffer {
  const body = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  return Buffer.concat([idBytes(id), vint(body.length), body]);
}

function uint(id: number, value: number): Buffer {
  let hex = Math.max(0, Math.floor(value)).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return element(id, Buffer.from(hex, "hex"));
}

const str = (id: number, value: string): Buffer => element(id, Buffer.from(value, "ascii"));

/** Unknown-size marker for the Segment (8 bytes), so it can be streamed. */
const UNKNOWN_SIZE = Buffer.from("01ffffffffffffff", "hex");

function header(width: number, height: number): Buffer {
  const ebml = element(0x1a45dfa3, [
    uint(0x4286, 1),
    uint(0x42f7, 1),
    uint(0x42f2, 4),
    uint(0x42f3, 8),
    str(0x4282, "webm"),
    uint(0x4287, 2),
    uint(0x4285, 2),
  ]);
  const info = element(0x1549a966, [uint(0x2ad7b1, 1_000_000), str(0x4d80, "vidrtc"), str(0x5741, "vidrtc")]);
  const track = element(0xae, [
    uint(0xd7, 1),
    uint(0x73c5, 1),
    uint(0x83, 1),
    str(0x86, "V_VP8"),
    element(0xe0, [uint(0xb0, width), uint(0xba, height)]),
  ]);
  const tracks = element(0x1654ae6b, track);
  return Buffer.concat([ebml, idBytes(0x18538067), UNKNOWN_SIZE, info, tracks]);
}

// ---------------------------------------------------------------- VP8 over RTP

interface RtpView {
  payloadType: number;
  marker: boolean;
  sequence: number;
  timestamp: number;
  payload: Uint8Array;
}

/** Parses an RTP packet; `null` for RTCP or malformed packets. */
export function parseRtp(packet: Uint8Array): RtpView | null {
  if (packet.byteLength < 12 || packet[0]! >> 6 !== 2) return null;
  const second = packet[1]!;
  const payloadType = second & 0x7f;
  if (payloadType >= 72 && payloadType <= 76) return null; // RTCP (SR, RR, SDES, BYE, APP) on a muxed port
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  let offset = 12 + 4 * (packet[0]! & 0x0f);
  if (packet[0]! & 0x10) {
    if (offset + 4 > packet.byteLength) return null;
    offset += 4 + 4 * view.getUint16(offset + 2);
  }
  let end = packet.byteLength;
  if (packet[0]! & 0x20) end -= packet[end - 1]!;
  if (offset > end) return null;
  return {
    payloadType,
    marker: (second & 0x80) !== 0,
    sequence: view.getUint16(2),
    timestamp: view.getUint32(4),
    payload: packet.subarray(offset, end),
  };
}

/** Splits a VP8 payload descriptor (RFC 7741 §4.2) from the data; `null` if malformed. */
export function vp8Payload(payload: Uint8Array): { start: boolean; data: Uint8Array } | null {
  if (payload.byteLength < 1) return null;
  const first = payload[0]!;
  let offset = 1;
  if (first & 0x80) {
    if (payload.byteLength < 2) return null;
    const ext = payload[1]!;
    offset = 2;
    if (ext & 0x80) offset += payload[offset]! & 0x80 ? 2 : 1;
    if (ext & 0x40) offset += 1;
    if (ext & 0x30) offset += 1;
  }
  if (offset > payload.byteLength) return null;
  const start = (first & 0x10) !== 0 && (first & 0x07) === 0;
  return { start, data: payload.subarray(offset) };
}

/** Frame size of a VP8 keyframe, or `null` for an interframe. */
export function vp8KeyframeSize(frame: Uint8Array): { width: number; height: number } | null {
  if (frame.byteLength < 10 || (frame[0]! & 0x01) !== 0) return null;
  if (frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return null;
  return { width: (frame[6]! | (frame[7]! << 8)) & 0x3fff, height: (frame[8]! | (frame[9]! << 8)) & 0x3fff };
}

// ---------------------------------------------------------------- recorder

/** Longest cluster (ms) before a new one starts even without a keyframe (SimpleBlock offsets are int16). */
const MAX_CLUSTER_MS = 30_000;

export function recordRtpToWebm(path: string, options: RecordVideoOptions = {}): RtpVideoRecorder {
  if (!path.toLowerCase().endsWith(".webm")) {
    throw new VidrtcError("INVALID_OPTIONS", `The recording path must end in .webm: ${path}`);
  }
  const out: WriteStream = createWriteStream(path);
  let failure: unknown = null;
  out.on("error", (error) => {
    failure ??= error;
  });
  const closed = new Promise<void>((resolve) => out.on("close", () => resolve()));

  let headerWritten = false;
  let firstTimestamp: number | null = null;
  let clusterStartMs = -1;
  let cluster: Buffer[] = [];
  let frames = 0;
  // frame under assembly
  let parts: Uint8Array[] = [];
  let frameTimestamp: number | null = null;
  let frameBroken = false;
  let lastSequence: number | null = null;
  let needKeyframe = true;
  let stopped = false;

  const flushCluster = () => {
    if (cluster.length === 0) return;
    out.write(element(0x1f43b675, [uint(0xe7, clusterStartMs), ...cluster]));
    cluster = [];
  };

  const writeFrame = (frame: Uint8Array, timestamp: number) => {
    const size = vp8KeyframeSize(frame);
    if (needKeyframe && !size) return;
    if (size) needKeyframe = false;
    if (!headerWritten) {
      out.write(header(size?.width ?? options.width ?? 640, size?.height ?? options.height ?? 360));
      headerWritten = true;
    }
    firstTimestamp ??= timestamp;
    const ms = Math.round(((timestamp - firstTimestamp) >>> 0) / 90);
    if (clusterStartMs < 0 || size || ms - clusterStartMs >= MAX_CLUSTER_MS || ms < clusterStartMs) {
      flushCluster();
      clusterStartMs = ms;
    }
    const block = Buffer.alloc(4);
    block[0] = 0x81; // track 1
    block.writeInt16BE(ms - clusterStartMs, 1);
    block[3] = size ? 0x80 : 0x00;
    cluster.push(element(0xa3, [block, Buffer.from(frame)]));
    frames++;
  };

  const finishFrame = () => {
    if (parts.length > 0 && frameTimestamp !== null && !frameBroken) {
      writeFrame(Buffer.concat(parts), frameTimestamp);
    } else if (frameBroken) needKeyframe = true;
    parts = [];
    frameTimestamp = null;
    frameBroken = false;
  };

  const push = (packet: Uint8Array) => {
    if (stopped) return;
    const rtp = parseRtp(packet);
    if (!rtp) return;
    const vp8 = vp8Payload(rtp.payload);
    if (!vp8) return;
    const lost = lastSequence !== null && ((rtp.sequence - lastSequence) & 0xffff) !== 1;
    lastSequence = rtp.sequence;
    if (frameTimestamp !== null && rtp.timestamp !== frameTimestamp) finishFrame();
    if (lost) frameBroken = true;
    if (vp8.start) {
      if (parts.length > 0) finishFrame();
      frameTimestamp = rtp.timestamp;
      frameBroken = false;
    } else if (frameTimestamp === null) {
      return; // middle of a frame whose start we missed
    }
    parts.push(Buffer.from(vp8.data));
    if (rtp.marker) finishFrame();
  };

  const stop = recordingStop(
    path,
    options.signal,
    async () => {
      stopped = true;
      finishFrame();
      if (!headerWritten) out.write(header(options.width ?? 640, options.height ?? 360));
      flushCluster();
      out.end();
      await closed;
    },
    () => failure,
  );
  return {
    push,
    stop,
    get framesWritten() {
      return frames;
    },
  };
}
