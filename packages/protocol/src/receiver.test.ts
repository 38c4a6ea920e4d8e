import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_UPLOAD_CHUNKS, UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { UploadReceiver, type UploadReceiverOptions } from "./receiver.js";
import { expectCode } from "./test-support/errors.js";

function chunk(index: number, total: number, payload: Uint8Array | number[]): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  const out = new Uint8Array(UPLOAD_HEADER_SIZE + body.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, index, true);
  view.setUint32(4, total, true);
  out.set(body, UPLOAD_HEADER_SIZE);
  return out;
}

/** Splits a file the way a client does. */
function chunksOf(file: Uint8Array, chunkSize: number): Uint8Array[] {
  const total = Math.ceil(file.byteLength / chunkSize);
  return Array.from({ length: total }, (_, i) =>
    chunk(i, total, file.subarray(i * chunkSize, (i + 1) * chunkSize)),
  );
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

function receiver(options: Partial<UploadReceiverOptions> = {}): { r: UploadReceiver; echoes: Uint8Array[] } {
  const echoes: Uint8Array[] = [];
  const r = new UploadReceiver({ echo: (d) => echoes.push(d), chunkSize: 4, ...options });
  return { r, echoes };
}

describe("UploadReceiver", () => {
  it("returns in-order payloads and tracks progress", () => {
    const { r } = receiver();
    expect(r.complete).toBe(false);
    expect(r.totalChunks).toBeNull();
    expect(r.push(chunk(0, 3, [1, 2, 3, 4]))).toEqual([Uint8Array.from([1, 2, 3, 4])]);
    expect(r.totalChunks).toBe(3);
    expect(r.push(chunk(1, 3, [5, 6, 7, 8]))).toEqual([Uint8Array.from([5, 6, 7, 8])]);
    expect(r.complete).toBe(false);
    expect(r.push(chunk(2, 3, [9]))).toEqual([Uint8Array.from([9])]);
    expect(r.complete).toBe(true);
    expect(r.chunksReceived).toBe(3);
    expect(r.bytesReceived).toBe(9);
  });

  it("accepts a real-size upload with the default 49152-byte chunks", () => {
    const file = Uint8Array.from({ length: UPLOAD_CHUNK_SIZE * 2 + 100 }, (_, i) => i % 251);
    const r = new UploadReceiver({ echo: () => undefined });
    const out = chunksOf(file, UPLOAD_CHUNK_SIZE).flatMap((m) => r.push(m));
    expect(concat(out)).toEqual(file);
    expect(r.complete).toBe(true);
  });

  it("buffers out-of-order chunks and releases them once the gap fills", () => {
    const { r } = receiver();
    expect(r.push(chunk(2, 4, [3, 3, 3, 3]))).toEqual([]);
    expect(r.push(chunk(1, 4, [2, 2, 2, 2]))).toEqual([]);
    expect(r.bufferedChunks).toBe(2);
    expect(r.bufferedBytes).toBe(8);
    const ready = r.push(chunk(0, 4, [1, 1, 1, 1]));
    expect(ready.map((p) => p[0])).toEqual([1, 2, 3]);
    expect(r.bufferedChunks).toBe(0);
    expect(r.nextIndex).toBe(3);
    expect(r.push(chunk(3, 4, [4]))).toEqual([Uint8Array.from([4])]);
    expect(r.complete).toBe(true);
  });

  it("echoes 0- and 1-byte messages with the very same bytes, before, during and after the upload", () => {
    const { r, echoes } = receiver();
    const ping = Uint8Array.from([0x70]);
    const empty = new Uint8Array(0);
    expect(r.push(ping)).toEqual([]);
    expect(r.push(empty)).toEqual([]);
    r.push(chunk(0, 1, [1]));
    expect(r.complete).toBe(true);
    expect(r.push(ping)).toEqual([]);
    expect(echoes).toHaveLength(3);
    expect(echoes[0]).toBe(ping);
    expect(echoes[1]).toBe(empty);
    expect(echoes[2]).toBe(ping);
    expect(r.chunksReceived).toBe(1);
  });

  it("rejects every kind of malformed message with its code and numbers", () => {
    const { r } = receiver({ maxChunks: 10, maxBytes: 30 });
    expectCode(() => r.push("hello"), "MALFORMED_MESSAGE", /text \(5 characters\)/);
    expectCode(() => r.push("x"), "MALFORMED_MESSAGE", /text/);
    for (const n of [2, 3, 7])
      expectCode(() => r.push(new Uint8Array(n)), "MALFORMED_MESSAGE", new RegExp(`${n} bytes`));
    expectCode(() => r.push(chunk(0, 0, [1])), "ZERO_CHUNKS", /total_chunks is 0/);
    expectCode(() => r.push(chunk(0, 0, [])), "ZERO_CHUNKS");
    expectCode(
      () => r.push(chunk(5, 5, [1])),
      "CHUNK_OUT_OF_RANGE",
      /chunk_index 5 is not below total_chunks 5/,
    );
    expectCode(
      () => r.push(chunk(0, 11, [1, 2, 3, 4])),
      "UPLOAD_TOO_LARGE",
      /11 chunks exceed the limit of 10/,
    );
    expectCode(
      () => r.push(chunk(0, 9, [1, 2, 3, 4])),
      "UPLOAD_TOO_LARGE",
      /at least 33 bytes, over the 30-byte limit/,
    );
    expectCode(() => r.push(chunk(0, 3, [1, 2, 3])), "MALFORMED_MESSAGE", /exactly 4 bytes, got 3/);
    expectCode(() => r.push(chunk(0, 3, [1, 2, 3, 4, 5])), "MALFORMED_MESSAGE", /exactly 4 bytes, got 5/);
    expectCode(
      () => r.push(chunk(2, 3, [])),
      "MALFORMED_MESSAGE",
      /final chunk must carry 1 to 4 bytes, got 0/,
    );
    expectCode(() => r.push(chunk(2, 3, [1, 2, 3, 4, 5])), "MALFORMED_MESSAGE", /got 5/);
    // Nothing above changed state.
    expect(r.totalChunks).toBeNull();
    expect(r.chunksReceived).toBe(0);

    expect(r.push(chunk(1, 3, [1, 2, 3, 4]))).toEqual([]);
    expectCode(() => r.push(chunk(0, 4, [1, 2, 3, 4])), "TOTAL_CHUNKS_CHANGED", /from 3 to 4/);
    expectCode(() => r.push(chunk(1, 3, [1, 2, 3, 4])), "DUPLICATE_CHUNK", /chunk 1 was already received/);
    expect(r.push(chunk(0, 3, [0, 0, 0, 0]))).toHaveLength(2);
    expectCode(() => r.push(chunk(0, 3, [0, 0, 0, 0])), "DUPLICATE_CHUNK");
    expect(r.push(chunk(2, 3, [9]))).toHaveLength(1);
    expect(r.complete).toBe(true);
    expectCode(
      () => r.push(chunk(2, 3, [9])),
      "MALFORMED_MESSAGE",
      /after the upload completed with all 3 chunks/,
    );
    expectCode(() => r.push(chunk(0, 1, [9])), "MALFORMED_MESSAGE", /after the upload completed/);
    expect(r.bytesReceived).toBe(9);
  });

  it("caps out-of-order buffering", () => {
    const { r } = receiver({ maxBufferedChunks: 2 });
    r.push(chunk(1, 10, [1, 1, 1, 1]));
    r.push(chunk(5, 10, [1, 1, 1, 1]));
    expectCode(
      () => r.push(chunk(2, 10, [1, 1, 1, 1])),
      "TOO_MANY_PENDING",
      /waiting for chunk 0; already 2 out-of-order chunks buffered \(limit 2\)/,
    );
    // The expected chunk is still accepted.
    expect(r.push(chunk(0, 10, [0, 0, 0, 0]))).toHaveLength(2);
    expect(r.bufferedChunks).toBe(1);
  });

  it("uses the protocol's limits by default", () => {
    const r = new UploadReceiver({ echo: () => undefined });
    const full = new Uint8Array(UPLOAD_CHUNK_SIZE);
    expect(r.push(chunk(0, MAX_UPLOAD_CHUNKS, full))).toHaveLength(1);
    const r2 = new UploadReceiver({ echo: () => undefined });
    expectCode(
      () => r2.push(chunk(0, MAX_UPLOAD_CHUNKS + 1, full)),
      "UPLOAD_TOO_LARGE",
      /10924 chunks exceed the limit of 10923/,
    );
  });

  it("rejects bad options", () => {
    expectCode(() => new UploadReceiver({} as UploadReceiverOptions), "INVALID_OPTIONS");
    expectCode(() => new UploadReceiver({ echo: () => undefined, chunkSize: 0 }), "INVALID_OPTIONS");
    expectCode(
      () => new UploadReceiver({ echo: () => undefined, maxBufferedChunks: 1.5 }),
      "INVALID_OPTIONS",
    );
  });

  it("reassembles any file under bounded reordering (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 32 }),
        fc.integer({ min: 0, max: 8 }),
        fc.infiniteStream(fc.integer({ min: 0, max: 1000 })),
        (file, chunkSize, window, noise) => {
          const messages = chunksOf(file, chunkSize);
          // Each chunk moves at most `window` places: sort by index + jitter in [0, window].
          const order = messages
            .map((m, i) => ({ m, key: i + ((noise.next().value as number) % (window + 1)) + i / 1e6 }))
            .sort((a, b) => a.key - b.key);
          const { r } = receiver({ chunkSize, maxBufferedChunks: 2 * window + 1 });
          const out: Uint8Array[] = [];
          for (const { m } of order) {
            out.push(...r.push(m));
            expect(r.bufferedChunks).toBeLessThanOrEqual(2 * window + 1);
          }
          expect(concat(out)).toEqual(file);
          expect(r.complete).toBe(true);
          expect(r.bytesReceived).toBe(file.byteLength);
          expect(r.chunksReceived).toBe(messages.length);
          expect(r.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("fuzz: every message yields payloads or a VidrtcError, and memory stays bounded", () => {
    const chunkSize = 4;
    const maxBufferedChunks = 3;
    const file = Uint8Array.from({ length: 22 }, (_, i) => i + 1); // 6 chunks, last has 2 bytes
    const good = chunksOf(file, chunkSize);
    const message = fc.oneof(
      fc.constantFrom(...good),
      fc.uint8Array({ maxLength: 20 }),
      fc.string({ maxLength: 3 }),
      fc
        .record({
          index: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(0xffffffff)),
          total: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(0xffffffff)),
          payload: fc.uint8Array({ maxLength: 6 }),
        })
        .map(({ index, total, payload }) => chunk(index, total, payload)),
    );
    fc.assert(
      fc.property(fc.array(message, { maxLength: 60 }), (messages) => {
        const { r } = receiver({ chunkSize, maxBufferedChunks, maxChunks: 8, maxBytes: 32 });
        const out: Uint8Array[] = [];
        for (const m of messages) {
          try {
            out.push(...r.push(m));
          } catch (error) {
            expect(VidrtcError.isInstance(error)).toBe(true);
          }
          expect(r.bufferedChunks).toBeLessThanOrEqual(maxBufferedChunks);
          expect(r.bufferedBytes).toBeLessThanOrEqual(maxBufferedChunks * chunkSize);
          expect(r.bytesReceived).toBeLessThanOrEqual(32);
          const written = out.reduce((n, p) => n + p.byteLength, 0);
          expect(written + r.bufferedBytes).toBe(r.bytesReceived);
          expect(out.length).toBe(r.nextIndex);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("fuzz: genuine chunks (duplicated, reordered) among junk always write a prefix of the file", () => {
    const chunkSize = 4;
    const file = Uint8Array.from({ length: 30 }, (_, i) => 255 - i); // 8 chunks, last has 2 bytes
    const good = chunksOf(file, chunkSize);
    const junk = fc.oneof(
      fc.uint8Array({ minLength: 2, maxLength: 7 }),
      fc.uint8Array({ maxLength: 1 }),
      fc.string({ maxLength: 4 }),
      fc.integer({ min: 0, max: 7 }).map((i) => chunk(i, 8, new Uint8Array(5))), // oversized
      fc.integer({ min: 8, max: 20 }).map((i) => chunk(i, 8, new Uint8Array(4))), // out of range
      fc.integer({ min: 0, max: 7 }).map((i) => chunk(i, 0, new Uint8Array(4))), // zero total
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...good), junk), { maxLength: 80 }), (messages) => {
        const { r } = receiver({ chunkSize, maxBufferedChunks: 4 });
        const out: Uint8Array[] = [];
        for (const m of messages) {
          try {
            out.push(...r.push(m));
          } catch (error) {
            expect(VidrtcError.isInstance(error)).toBe(true);
          }
        }
        const written = concat(out);
        expect(written).toEqual(file.subarray(0, written.byteLength));
        expect(r.complete).toBe(written.byteLength === file.byteLength);
      }),
      { numRuns: 2000 },
    );
  });
});
