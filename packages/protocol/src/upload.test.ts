import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_UPLOAD_BYTES, UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { UploadReceiver } from "./receiver.js";
import { rejection, thrown } from "./test-support/errors.js";
import {
  createChunker,
  createFramer,
  createUploadStream,
  frameUploadChunk,
  totalChunksFor,
  validateUploadSize,
} from "./upload.js";

// ---------- helpers (a receiver written here, independent of src/receiver.ts) ----------

/** Deterministic pseudo-random bytes (xorshift), so a wrong offset shows up as wrong content. */
function makeBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = seed | 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A ReadableStream yielding `data` cut at the given lengths (cycled), as fresh copies. */
function streamOf(
  data: Uint8Array,
  pieceSizes: number[] = [data.byteLength || 1],
): ReadableStream<Uint8Array> {
  let offset = 0;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= data.byteLength) {
        controller.close();
        return;
      }
      const size = Math.max(0, pieceSizes[i++ % pieceSizes.length]!);
      controller.enqueue(data.slice(offset, offset + size));
      offset += size;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return out;
    out.push(value);
  }
}

function u32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
}

/** Checks every header and reassembles the payloads; throws on any protocol violation. */
function receive(messages: Uint8Array[], chunkSize: number): Uint8Array {
  expect(messages.length).toBeGreaterThan(0);
  const total = u32(messages[0]!, 4);
  expect(messages.length).toBe(total);
  const parts: Uint8Array[] = [];
  messages.forEach((m, i) => {
    expect(m.byteLength).toBeGreaterThan(UPLOAD_HEADER_SIZE);
    expect(u32(m, 0)).toBe(i);
    expect(u32(m, 4)).toBe(total);
    const payload = m.subarray(UPLOAD_HEADER_SIZE);
    if (i < total - 1) expect(payload.byteLength).toBe(chunkSize);
    else expect(payload.byteLength).toBeLessThanOrEqual(chunkSize);
    parts.push(payload);
  });
  const size = parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Index of the first differing byte (or length difference), -1 when equal; fast on large arrays. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}

// ---------- tests ----------

describe("totalChunksFor / validateUploadSize", () => {
  it("computes ceil(size / chunkSize)", () => {
    expect(totalChunksFor(0)).toBe(0);
    expect(totalChunksFor(1)).toBe(1);
    expect(totalChunksFor(UPLOAD_CHUNK_SIZE)).toBe(1);
    expect(totalChunksFor(UPLOAD_CHUNK_SIZE + 1)).toBe(2);
    expect(totalChunksFor(MAX_UPLOAD_BYTES)).toBe(10_923);
    expect(totalChunksFor(10, 3)).toBe(4);
  });

  it("rejects nonsense sizes", () => {
    expect(thrown(() => totalChunksFor(-1)).code).toBe("INVALID_OPTIONS");
    expect(thrown(() => totalChunksFor(1.5)).code).toBe("INVALID_OPTIONS");
    expect(thrown(() => totalChunksFor(10, 0)).code).toBe("INVALID_OPTIONS");
    expect(thrown(() => validateUploadSize(Number.NaN)).code).toBe("INVALID_OPTIONS");
  });

  it("refuses an empty file", () => {
    const e = thrown(() => validateUploadSize(0));
    expect(e.code).toBe("EMPTY_FILE");
    expect(e.message).toMatch(/empty/);
  });

  it("refuses a file over the cap, naming sizes and chunk counts", () => {
    const size = MAX_UPLOAD_BYTES + UPLOAD_CHUNK_SIZE;
    const e = thrown(() => validateUploadSize(size));
    expect(e.code).toBe("FILE_TOO_LARGE");
    expect(e.message).toContain(`${size} bytes (10924 chunks`);
    expect(e.message).toContain(`${MAX_UPLOAD_BYTES} bytes (10923 chunks)`);
    expect(e.details).toMatchObject({ size, maxBytes: MAX_UPLOAD_BYTES, chunks: 10_924, maxChunks: 10_923 });
    expect(thrown(() => validateUploadSize(MAX_UPLOAD_BYTES + 1)).code).toBe("FILE_TOO_LARGE");
    expect(thrown(() => validateUploadSize(101, 100)).code).toBe("FILE_TOO_LARGE");
  });

  it("accepts sizes up to and including the cap", () => {
    expect(() => validateUploadSize(1)).not.toThrow();
    expect(() => validateUploadSize(MAX_UPLOAD_BYTES)).not.toThrow();
    expect(() => validateUploadSize(100, 100)).not.toThrow();
  });
});

describe("frameUploadChunk", () => {
  it("writes u32 LE index and total, then the payload, into a fresh buffer", () => {
    const payload = new Uint8Array([9, 8, 7]);
    const m = frameUploadChunk(0x01020304, 0x0a0b0c0d, payload);
    expect([...m]).toEqual([4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 9, 8, 7]);
    expect(m.buffer).not.toBe(payload.buffer);
    expect(m.byteOffset).toBe(0);
    expect(m.buffer.byteLength).toBe(11);
    const big = frameUploadChunk(0xfffffffe, 0xffffffff, payload);
    expect(u32(big, 0)).toBe(0xfffffffe);
    expect(u32(big, 4)).toBe(0xffffffff);
  });

  it("rejects an index outside 0..total-1", () => {
    expect(thrown(() => frameUploadChunk(3, 3, new Uint8Array(1))).code).toBe("INVALID_OPTIONS");
    expect(thrown(() => frameUploadChunk(-1, 3, new Uint8Array(1))).code).toBe("INVALID_OPTIONS");
    expect(thrown(() => frameUploadChunk(0, 0, new Uint8Array(1))).code).toBe("INVALID_OPTIONS");
  });
});

describe("createChunker", () => {
  it("re-cuts into exact chunks with a shorter last one", async () => {
    const data = makeBytes(100);
    const out = await collect(streamOf(data, [7, 13, 1, 40]).pipeThrough(createChunker(16)));
    expect(out.map((c) => c.byteLength)).toEqual([16, 16, 16, 16, 16, 16, 4]);
    const joined = new Uint8Array(100);
    let off = 0;
    for (const c of out) {
      joined.set(c, off);
      off += c.byteLength;
    }
    expect(firstDifference(joined, data)).toBe(-1);
  });

  it("emits nothing for an empty source and ignores empty pieces", async () => {
    expect(await collect(streamOf(new Uint8Array(0)).pipeThrough(createChunker(8)))).toEqual([]);
    const out = await collect(streamOf(makeBytes(16), [0, 8, 0, 8]).pipeThrough(createChunker(8)));
    expect(out.map((c) => c.byteLength)).toEqual([8, 8]);
  });

  it("cuts a large piece into views without copying, and input exactly at boundaries", async () => {
    const data = makeBytes(64);
    const out = await collect(streamOf(data, [64]).pipeThrough(createChunker(16)));
    expect(out).toHaveLength(4);
    // All four are views of the single 64-byte input piece.
    const buffers = new Set(out.map((c) => c.buffer));
    expect(buffers.size).toBe(1);
  });
});

describe("createFramer", () => {
  it("frames chunks and holds the last message until the input ends", async () => {
    const framer = createFramer({ totalBytes: 20, chunkSize: 8 });
    const writer = framer.writable.getWriter();
    const reader = framer.readable.getReader();
    void writer.write(makeBytes(8, 1));
    void writer.write(makeBytes(8, 2));
    void writer.write(makeBytes(4, 3));
    const first = await reader.read();
    const second = await reader.read();
    expect(u32(first.value!, 0)).toBe(0);
    expect(u32(second.value!, 0)).toBe(1);
    let lastSeen = false;
    const third = reader.read().then((r) => {
      lastSeen = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(lastSeen).toBe(false); // held back until close
    await writer.close();
    const last = await third;
    expect(u32(last.value!, 0)).toBe(2);
    expect(u32(last.value!, 4)).toBe(3);
    expect(last.value!.byteLength).toBe(12);
    expect((await reader.read()).done).toBe(true);
  });

  it("errors when input ends early, naming expected and actual bytes", async () => {
    const s = streamOf(makeBytes(20), [8]).pipeThrough(createFramer({ totalBytes: 30, chunkSize: 8 }));
    const e = await rejection(collect(s));
    expect(e.code).toBe("SOURCE_SIZE_MISMATCH");
    expect(e.message).toContain("expected 30 bytes, got 20");
    expect(e.details).toMatchObject({ expectedBytes: 30, actualBytes: 20 });
  });

  it("errors when input runs long, without emitting the final message", async () => {
    const messages: Uint8Array[] = [];
    const s = streamOf(makeBytes(32), [8]).pipeThrough(createFramer({ totalBytes: 24, chunkSize: 8 }));
    const e = await rejection(
      s.pipeTo(
        new WritableStream({
          write(m) {
            messages.push(m);
          },
        }),
      ),
    );
    expect(e.code).toBe("SOURCE_SIZE_MISMATCH");
    expect(e.message).toContain("expected 24 bytes, got at least 32");
    expect(messages).toHaveLength(2); // chunk 2 of 3 never left
  });

  it("errors on a short chunk mid-stream", async () => {
    const s = streamOf(makeBytes(24), [5, 8]).pipeThrough(createFramer({ totalBytes: 24, chunkSize: 8 }));
    const e = await rejection(collect(s));
    expect(e.code).toBe("SOURCE_SIZE_MISMATCH");
  });

  it("rejects totalBytes 0 up front", () => {
    expect(thrown(() => createFramer({ totalBytes: 0 })).code).toBe("EMPTY_FILE");
  });
});

describe("createUploadStream", () => {
  it("validates before reading anything", () => {
    let pulled = false;
    const source = new ReadableStream<Uint8Array>({
      pull() {
        pulled = true;
      },
    });
    expect(thrown(() => createUploadStream(source, 0)).code).toBe("EMPTY_FILE");
    expect(thrown(() => createUploadStream(source, 1000, { maxBytes: 999 })).code).toBe("FILE_TOO_LARGE");
    expect(pulled).toBe(false);
  });

  it.each([
    ["one byte", 1],
    ["one chunk exactly", UPLOAD_CHUNK_SIZE],
    ["one chunk plus one", UPLOAD_CHUNK_SIZE + 1],
    ["three chunks exactly", 3 * UPLOAD_CHUNK_SIZE],
    ["odd size", 5 * UPLOAD_CHUNK_SIZE - 17],
  ])("round-trips %s with 64 KiB reads", async (_name, size) => {
    const data = makeBytes(size, size);
    const messages = await collect(createUploadStream(streamOf(data, [65_536]), size));
    expect(messages).toHaveLength(totalChunksFor(size));
    for (const m of messages) {
      expect(m.byteOffset).toBe(0);
      expect(m.buffer.byteLength).toBe(m.byteLength); // exactly sized, fresh buffer
    }
    expect(firstDifference(receive(messages, UPLOAD_CHUNK_SIZE), data)).toBe(-1);
  });

  it("never hands out the same buffer twice nor a source buffer", async () => {
    const data = makeBytes(4 * UPLOAD_CHUNK_SIZE + 100);
    const pieces: Uint8Array[] = [];
    const source = streamOf(data, [65_536, 100_000, 3]).pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(c, ctl) {
          pieces.push(c);
          ctl.enqueue(c);
        },
      }),
    );
    const messages = await collect(createUploadStream(source, data.byteLength));
    const buffers = new Set<ArrayBufferLike>(messages.map((m) => m.buffer));
    expect(buffers.size).toBe(messages.length);
    for (const p of pieces) expect(buffers.has(p.buffer)).toBe(false);
  });

  it("reports a short source and a long source", async () => {
    const short = await rejection(collect(createUploadStream(streamOf(makeBytes(1000)), 1001)));
    expect(short.code).toBe("SOURCE_SIZE_MISMATCH");
    expect(short.message).toContain("expected 1001 bytes, got 1000");
    const long = await rejection(collect(createUploadStream(streamOf(makeBytes(1002)), 1001)));
    expect(long.code).toBe("SOURCE_SIZE_MISMATCH");
    expect(long.message).toContain("expected 1001 bytes");
    const longBy1Chunk = await rejection(
      collect(createUploadStream(streamOf(makeBytes(2 * UPLOAD_CHUNK_SIZE)), UPLOAD_CHUNK_SIZE)),
    );
    expect(longBy1Chunk.code).toBe("SOURCE_SIZE_MISMATCH");
  });

  it("cancels the source when the size is wrong", async () => {
    let cancelled: unknown = null;
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        sent++;
        c.enqueue(new Uint8Array(1000));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const e = await rejection(collect(createUploadStream(source, 5000)));
    expect(e.code).toBe("SOURCE_SIZE_MISMATCH");
    await new Promise((r) => setTimeout(r, 20)); // cancellation propagates upstream asynchronously
    expect(VidrtcError.hasCode(cancelled, "SOURCE_SIZE_MISMATCH")).toBe(true);
    // One 48 KiB chunk is assembled (~50 reads) before the excess is seen; reading then stops.
    expect(sent).toBeLessThan(60);
  });

  it("works from Blob.stream()", async () => {
    const data = makeBytes(300_001, 7);
    const blob = new Blob([data]);
    const messages = await collect(createUploadStream(blob.stream(), blob.size));
    expect(firstDifference(receive(messages, UPLOAD_CHUNK_SIZE), data)).toBe(-1);
  });

  it("works from Node file web streams (openAsBlob and Readable.toWeb)", async () => {
    // Loaded by name so this package's typecheck stays free of Node types.
    const load = (name: string): Promise<unknown> => import(name);
    const fs = (await load("node:fs")) as {
      openAsBlob(path: string): Promise<Blob>;
      createReadStream(path: string, o?: { highWaterMark?: number }): unknown;
      writeFileSync(path: string, data: Uint8Array): void;
      mkdtempSync(prefix: string): string;
      rmSync(path: string, o: { recursive: boolean; force: boolean }): void;
    };
    const os = (await load("node:os")) as { tmpdir(): string };
    const path = (await load("node:path")) as { join(...p: string[]): string };
    const stream = (await load("node:stream")) as {
      Readable: { toWeb(r: unknown): ReadableStream<Uint8Array> };
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vidrtc-upload-"));
    try {
      const file = path.join(dir, "video.bin");
      const data = makeBytes(3 * UPLOAD_CHUNK_SIZE + 12_345, 3);
      fs.writeFileSync(file, data);
      const blob = await fs.openAsBlob(file);
      const viaBlob = await collect(createUploadStream(blob.stream(), blob.size));
      expect(firstDifference(receive(viaBlob, UPLOAD_CHUNK_SIZE), data)).toBe(-1);
      const web = stream.Readable.toWeb(fs.createReadStream(file, { highWaterMark: 65_536 }));
      const viaWeb = await collect(createUploadStream(web, data.byteLength));
      expect(firstDifference(receive(viaWeb, UPLOAD_CHUNK_SIZE), data)).toBe(-1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("properties", () => {
  it("chunk -> frame round-trips for random sizes and random split points", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }), // chunk size
        fc.integer({ min: 1, max: 700 }), // file size
        fc.array(fc.integer({ min: 0, max: 150 }), { minLength: 1, maxLength: 12 }), // piece sizes
        fc.integer(),
        async (chunkSize, size, pieces, seed) => {
          // Never mutate generated values (it breaks shrinking); all-zero reads would never end.
          const reads = pieces.some((p) => p > 0) ? pieces : [...pieces, 1];
          const data = makeBytes(size, seed);
          const messages = await collect(createUploadStream(streamOf(data, reads), size, { chunkSize }));
          expect(messages).toHaveLength(Math.ceil(size / chunkSize));
          expect(firstDifference(receive(messages, chunkSize), data)).toBe(-1);
          const buffers = new Set<ArrayBufferLike>(messages.map((m) => m.buffer));
          expect(buffers.size).toBe(messages.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the server-side UploadReceiver accepts every upload and reassembles the source", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 48 }),
        fc.integer({ min: 1, max: 600 }),
        fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 8 }),
        async (chunkSize, size, reads) => {
          const data = makeBytes(size, size * 31 + chunkSize);
          const messages = await collect(createUploadStream(streamOf(data, reads), size, { chunkSize }));
          const receiver = new UploadReceiver({ echo: () => {}, chunkSize, maxBytes: 1 << 20 });
          const out = new Uint8Array(size);
          let off = 0;
          for (const m of messages) {
            for (const payload of receiver.push(m)) {
              out.set(payload, off);
              off += payload.byteLength;
            }
          }
          expect(receiver.complete).toBe(true);
          expect(off).toBe(size);
          expect(firstDifference(out, data)).toBe(-1);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a wrong-sized source always fails and never yields a complete upload", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 32 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: -100, max: 100 }).filter((d) => d !== 0),
        fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 6 }),
        async (chunkSize, declared, delta, pieces) => {
          const actual = Math.max(0, declared + delta);
          if (actual === declared) return;
          const messages: Uint8Array[] = [];
          const result = createUploadStream(streamOf(makeBytes(actual), pieces), declared, {
            chunkSize,
          }).pipeTo(
            new WritableStream({
              write(m) {
                messages.push(m);
              },
            }),
          );
          const e = await rejection(result);
          expect(e.code).toBe("SOURCE_SIZE_MISMATCH");
          expect(e.message).toContain(`expected ${declared} bytes`);
          expect(messages.length).toBeLessThan(Math.ceil(declared / chunkSize));
        },
      ),
      { numRuns: 300 },
    );
  });
});
