/**
 * werift's WebM muxer writes a fixed frame size (640x360 unless told) into the track header,
 * because it never looks at the bitstream. {@link fixWebmVideoSize} reads the real size from the
 * first VP8 key frame of the file and rewrites `PixelWidth`/`PixelHeight` in place.
 */
import { open } from "node:fs/promises";

const ID = {
  Segment: 0x18538067,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  CodecID: 0x86,
  Cluster: 0x1f43b675,
  BlockGroup: 0xa0,
  Block: 0xa1,
  SimpleBlock: 0xa3,
} as const;
const MASTERS = new Set<number>([ID.Segment, ID.Tracks, ID.TrackEntry, ID.Video, ID.Cluster, ID.BlockGroup]);

interface Vint {
  value: number;
  length: number;
  unknown: boolean;
}

function readVint(buf: Uint8Array, pos: number, keepMarker: boolean): Vint | null {
  const first = buf[pos];
  if (first === undefined || first === 0) return null;
  const length = Math.clz32(first) - 23; // 1..8
  if (pos + length > buf.length) return null;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    const b = buf[pos + i]!;
    value = value * 256 + b;
    if (b !== 0xff) allOnes = false;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

interface Found {
  codec?: string;
  width?: { offset: number; length: number; value: number };
  height?: { offset: number; length: number; value: number };
  frame?: { width: number; height: number };
}

function walk(buf: Uint8Array, start: number, end: number, found: Found): void {
  let pos = start;
  while (pos < end && found.frame === undefined) {
    const id = readVint(buf, pos, true);
    if (!id) return;
    const size = readVint(buf, pos + id.length, false);
    if (!size) return;
    const data = pos + id.length + size.length;
    const dataEnd = size.unknown ? end : Math.min(end, data + size.value);
    if (MASTERS.has(id.value)) {
      walk(buf, data, dataEnd, found);
    } else if (id.value === ID.CodecID) {
      found.codec ??= new TextDecoder().decode(buf.subarray(data, dataEnd));
    } else if ((id.value === ID.PixelWidth || id.value === ID.PixelHeight) && size.value <= 4) {
      let value = 0;
      for (let i = data; i < dataEnd; i++) value = value * 256 + buf[i]!;
      const field = { offset: data, length: size.value, value };
      if (id.value === ID.PixelWidth) found.width ??= field;
      else found.height ??= field;
    } else if (id.value === ID.SimpleBlock || id.value === ID.Block) {
      const track = readVint(buf, data, false);
      const frame = track ? data + track.length + 3 : dataEnd;
      // VP8 key frame: 3-byte frame tag (bit 0 clear), start code 9d 01 2a, then 14-bit sizes.
      if (frame + 10 <= dataEnd && (buf[frame]! & 1) === 0) {
        if (buf[frame + 3] === 0x9d && buf[frame + 4] === 0x01 && buf[frame + 5] === 0x2a) {
          const w = (buf[frame + 6]! | (buf[frame + 7]! << 8)) & 0x3fff;
          const h = (buf[frame + 8]! | (buf[frame + 9]! << 8)) & 0x3fff;
          if (w > 0 && h > 0) found.frame = { width: w, height: h };
        }
      }
    }
    if (size.unknown && !MASTERS.has(id.value)) return;
    pos = dataEnd;
  }
}

/**
 * Rewrites the video track's `PixelWidth`/`PixelHeight` of a VP8 WebM file to the size of its
 * first key frame (looked for in the first `maxScanBytes`). Returns the size now in the header,
 * or null when the file is not VP8, has no key frame in range, or the fields cannot hold the value.
 */
export async function fixWebmVideoSize(
  path: string,
  maxScanBytes = 4 * 1024 * 1024,
): Promise<{ width: number; height: number } | null> {
  const handle = await open(path, "r+");
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxScanBytes);
    const buf = new Uint8Array(length);
    await handle.read(buf, 0, length, 0);
    const found: Found = {};
    walk(buf, 0, length, found);
    const { width, height, frame, codec } = found;
    if (!frame || !width || !height || (codec !== undefined && codec !== "V_VP8")) return null;
    const fits = (f: { length: number }, v: number) => v < 2 ** (8 * f.length);
    if (!fits(width, frame.width) || !fits(height, frame.height)) return null;
    for (const [field, value] of [
      [width, frame.width],
      [height, frame.height],
    ] as const) {
      if (field.value === value) continue;
      const bytes = new Uint8Array(field.length);
      for (let i = field.length - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) bytes[i] = v & 0xff;
      await handle.write(bytes, 0, bytes.length, field.offset);
    }
    return frame;
  } finally {
    await handle.close();
  }
}
