/// <reference types="node" />
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RESULT_CHUNK_SIZE, RESULT_HEADER_SIZE } from "./constants.js";
import { VidrtcError } from "./errors.js";
import {
  AckTracker,
  AckWindow,
  ackMessage,
  createResultDecoder,
  creditAck,
  decodeResultPayload,
  encodeResultMessage,
  frameResultPayload,
  parseResultJson,
  ResultDeframer,
  type ResultMessage,
  toResultMessage,
  type WebRTCOutput,
} from "./results.js";
import { expectCode, expectCodeAsync } from "./test-support/errors.js";

const utf8 = new TextEncoder();

function header(
  frameId: number,
  index: number,
  total: number,
  payload: Uint8Array | number[] = [],
): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  const out = new Uint8Array(RESULT_HEADER_SIZE + body.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, frameId, true);
  view.setUint32(4, index, true);
  view.setUint32(8, total, true);
  out.set(body, RESULT_HEADER_SIZE);
  return out;
}

function output(frameId: number, extra: Partial<WebRTCOutput> = {}): WebRTCOutput {
  return {
    serialized_output_data: { count: frameId, label: `frame-${frameId}` },
    video_metadata: {
      frame_id: frameId,
      pts: frameId * 100,
      time_base: 0.001,
      declared_fps: 30,
      measured_fps: null,
      width: 4,
      height: 2,
    },
    errors: [],
    processing_complete: false,
    termination_reason: null,
    ...extra,
  };
}

describe("frameResultPayload", () => {
  it("frames a payload into 12-byte-header chunks of at most chunkSize", () => {
    const payload = Uint8Array.from({ length: 10 }, (_, i) => i);
    const messages = frameResultPayload(7, payload, 4);
    expect(messages).toHaveLength(3);
    expect(Array.from(messages[0] as Uint8Array)).toEqual([7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1, 2, 3]);
    expect(Array.from(messages[2] as Uint8Array)).toEqual([7, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 8, 9]);
  });

  it("uses 49152-byte chunks by default and little-endian u32 headers", () => {
    const messages = frameResultPayload(0x01020304, new Uint8Array(RESULT_CHUNK_SIZE + 1));
    expect(messages.map((m) => m.byteLength)).toEqual([
      RESULT_HEADER_SIZE + RESULT_CHUNK_SIZE,
      RESULT_HEADER_SIZE + 1,
    ]);
    expect(Array.from((messages[1] as Uint8Array).subarray(0, 12))).toEqual([
      4, 3, 2, 1, 1, 0, 0, 0, 2, 0, 0, 0,
    ]);
  });

  it("always yields one message, even for an empty payload", () => {
    const messages = frameResultPayload(3, new Uint8Array(0));
    expect(messages).toHaveLength(1);
    expect(Array.from(messages[0] as Uint8Array)).toEqual([3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(new ResultDeframer().push(messages[0] as Uint8Array)).toEqual({
      frameId: 3,
      payload: new Uint8Array(0),
    });
  });

  it("returns fresh buffers", () => {
    const payload = new Uint8Array(8).fill(1);
    const [a, b] = frameResultPayload(1, payload, 4);
    expect(a?.buffer).not.toBe(b?.buffer);
    payload.fill(9);
    expect(a?.[12]).toBe(1);
  });

  it("rejects bad frame ids and chunk sizes", () => {
    expectCode(() => frameResultPayload(-1, new Uint8Array(1)), "INVALID_OPTIONS");
    expectCode(() => frameResultPayload(2 ** 32, new Uint8Array(1)), "INVALID_OPTIONS");
    expectCode(() => frameResultPayload(1, new Uint8Array(1), 0), "INVALID_OPTIONS");
  });
});

describe("ResultDeframer", () => {
  it("returns single-chunk frames immediately", () => {
    const d = new ResultDeframer();
    expect(d.push(header(5, 0, 1, [1, 2, 3]))).toEqual({ frameId: 5, payload: Uint8Array.from([1, 2, 3]) });
    expect(d.pendingFrames).toBe(0);
  });

  it("reassembles interleaved, out-of-order chunks per frame", () => {
    const d = new ResultDeframer();
    expect(d.push(header(1, 1, 2, [3, 4]))).toBeNull();
    expect(d.push(header(2, 0, 2, [9]))).toBeNull();
    expect(d.pendingFrames).toBe(2);
    expect(d.pendingBytes).toBe(3);
    expect(d.push(header(1, 0, 2, [1, 2]))).toEqual({ frameId: 1, payload: Uint8Array.from([1, 2, 3, 4]) });
    expect(d.push(header(2, 1, 2, [8]))).toEqual({ frameId: 2, payload: Uint8Array.from([9, 8]) });
    expect(d.pendingFrames).toBe(0);
    expect(d.pendingBytes).toBe(0);
  });

  it("rejects malformed messages, naming the numbers", () => {
    const d = new ResultDeframer();
    expectCode(() => d.push(new Uint8Array(11)), "MALFORMED_MESSAGE", /11 bytes.*12-byte/);
    expectCode(() => d.push(header(1, 0, 0, [1])), "MALFORMED_MESSAGE", /total_chunks is 0/);
    expectCode(
      () => d.push(header(1, 3, 3, [1])),
      "MALFORMED_MESSAGE",
      /chunk_index 3 is not below total_chunks 3/,
    );
    expectCode(() => d.push(header(1, 0, 3, [])), "MALFORMED_MESSAGE", /empty/);
    expect(d.push(header(1, 0, 3, [1]))).toBeNull();
    expectCode(() => d.push(header(1, 1, 4, [1])), "MALFORMED_MESSAGE", /changed from 3 to 4/);
    expectCode(() => d.push(header(1, 0, 3, [1])), "MALFORMED_MESSAGE", /duplicate chunk 0/);
    expectCode(() => d.push(header(1, 0, 1, [1])), "MALFORMED_MESSAGE", /changed from 3 to 1/);
    // State unchanged by the rejected messages: the frame still completes.
    expect(d.push(header(1, 1, 3, [2]))).toBeNull();
    expect(d.push(header(1, 2, 3, [3]))).toEqual({ frameId: 1, payload: Uint8Array.from([1, 2, 3]) });
  });

  it("bounds the number of incomplete frames", () => {
    const d = new ResultDeframer({ maxPendingFrames: 2 });
    d.push(header(1, 0, 2, [1]));
    d.push(header(2, 0, 2, [1]));
    expectCode(() => d.push(header(3, 0, 2, [1])), "TOO_MANY_PENDING", /limit of 2 pending frames/);
    // Single-chunk frames and chunks of pending frames still pass.
    expect(d.push(header(4, 0, 1, [4]))?.frameId).toBe(4);
    expect(d.push(header(1, 1, 2, [1]))?.frameId).toBe(1);
    expect(d.push(header(3, 0, 2, [1]))).toBeNull();
  });

  it("rejects frames that declare or accumulate more than maxFrameBytes", () => {
    const d = new ResultDeframer({ maxFrameBytes: 100 });
    expectCode(
      () => d.push(header(1, 0, 1, new Uint8Array(101))),
      "FRAME_TOO_LARGE",
      /at least 101 bytes.*100-byte/,
    );
    // 11 chunks, non-final ones of 10 bytes: at least 10 * 10 + 1 bytes.
    expectCode(
      () => d.push(header(2, 0, 11, new Uint8Array(10))),
      "FRAME_TOO_LARGE",
      /at least 101 bytes \(11 chunks\)/,
    );
    expect(d.push(header(2, 0, 10, new Uint8Array(10)))).toBeNull();
    // A huge chunk count with tiny chunks is caught from the final chunk alone.
    expectCode(() => d.push(header(3, 0xfffffffe, 0xffffffff, [1])), "FRAME_TOO_LARGE");
    // Accumulated: an oversized final chunk.
    const e = new ResultDeframer({ maxFrameBytes: 100 });
    expect(e.push(header(4, 0, 3, new Uint8Array(30)))).toBeNull();
    expect(e.push(header(4, 2, 3, new Uint8Array(60)))).toBeNull();
    expectCode(
      () => e.push(header(4, 1, 3, new Uint8Array(30))),
      "FRAME_TOO_LARGE",
      /reached 120 bytes.*100-byte/,
    );
  });

  it("bounds bytes held across incomplete frames", () => {
    const d = new ResultDeframer({ maxFrameBytes: 100, maxPendingBytes: 150 });
    d.push(header(1, 0, 2, new Uint8Array(80)));
    expectCode(() => d.push(header(2, 0, 2, new Uint8Array(80))), "TOO_MANY_PENDING", /160 bytes.*150-byte/);
    expect(d.pendingBytes).toBe(80);
    // Also when chunks of already-pending frames add up.
    const e = new ResultDeframer({ maxFrameBytes: 100, maxPendingBytes: 150 });
    e.push(header(1, 0, 3, new Uint8Array(40)));
    e.push(header(2, 0, 3, new Uint8Array(40)));
    e.push(header(1, 1, 3, new Uint8Array(40)));
    expectCode(() => e.push(header(2, 1, 3, new Uint8Array(40))), "TOO_MANY_PENDING", /160 bytes/);
    expect(e.pendingBytes).toBe(120);
    // Completing a frame frees its bytes.
    expect(e.push(header(1, 2, 3, new Uint8Array(5)))?.payload.byteLength).toBe(85);
    expect(e.pendingBytes).toBe(40);
  });

  it("reproduces every frame's payload under any interleaving (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 64 }),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (payloads, chunkSize, order) => {
          const messages = payloads.flatMap((p, i) => frameResultPayload(i + 1, p, chunkSize));
          const keys = messages.map(() => order.next().value as number);
          const shuffled = messages.map((m, i) => ({ m, k: keys[i] as number })).sort((a, b) => a.k - b.k);
          const d = new ResultDeframer({ maxPendingFrames: payloads.length, maxFrameBytes: 300 });
          const got = new Map<number, Uint8Array>();
          for (const { m } of shuffled) {
            const frame = d.push(m);
            if (frame) {
              expect(got.has(frame.frameId)).toBe(false);
              got.set(frame.frameId, frame.payload);
            }
          }
          expect(got.size).toBe(payloads.length);
          for (const [i, p] of payloads.entries()) expect(got.get(i + 1)).toEqual(p);
          expect(d.pendingFrames).toBe(0);
          expect(d.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("fuzz: any input yields a frame, null or a VidrtcError, and memory stays bounded", () => {
    const validish = fc
      .record({
        frameId: fc.integer({ min: 0, max: 4 }),
        index: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(0xffffffff)),
        total: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(0xffffffff)),
        payload: fc.uint8Array({ maxLength: 40 }),
      })
      .map(({ frameId, index, total, payload }) => header(frameId, index, total, payload));
    const message = fc.oneof(validish, fc.uint8Array({ maxLength: 60 }));
    fc.assert(
      fc.property(fc.array(message, { maxLength: 80 }), (messages) => {
        const d = new ResultDeframer({ maxPendingFrames: 3, maxFrameBytes: 64, maxPendingBytes: 100 });
        for (const m of messages) {
          try {
            const frame = d.push(m);
            if (frame) expect(frame.payload.byteLength).toBeLessThanOrEqual(64);
          } catch (error) {
            expect(VidrtcError.isInstance(error)).toBe(true);
          }
          expect(d.pendingFrames).toBeLessThanOrEqual(3);
          expect(d.pendingBytes).toBeLessThanOrEqual(100);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("decodeResultPayload / parseResultJson", () => {
  it("decodes plain JSON and normalises missing fields", async () => {
    const out = await decodeResultPayload(utf8.encode('{"video_metadata":{"frame_id":3},"extra":1}'));
    expect(out).toEqual({
      serialized_output_data: null,
      video_metadata: { frame_id: 3 },
      errors: [],
      processing_complete: false,
      termination_reason: null,
      extra: 1,
    });
  });

  it("keeps the real server's processing_complete message", async () => {
    const text =
      '{"serialized_output_data": null, "video_metadata": {"frame_id": 10, "received_at": "2026-01-01T00:00:00", "pts": null, "time_base": null, "declared_fps": null, "measured_fps": null, "width": null, "height": null}, "errors": [], "processing_complete": true, "termination_reason": "timeout_reached"}';
    const out = await decodeResultPayload(utf8.encode(text));
    expect(out.processing_complete).toBe(true);
    expect(out.termination_reason).toBe("timeout_reached");
    const msg = toResultMessage(11, out);
    expect(msg).toMatchObject({
      frameId: 11,
      outputs: {},
      processingComplete: true,
      terminationReason: "timeout_reached",
    });
    expect(msg.metadata?.frame_id).toBe(10);
    expect(msg.raw).toBe(out);
  });

  it("stringifies non-string error entries", () => {
    expect(parseResultJson('{"errors":["a",{"b":1},2]}').errors).toEqual(["a", '{"b":1}', "2"]);
  });

  it("rejects bad JSON, bad UTF-8 and wrong shapes with RESULT_DECODE_FAILED", async () => {
    await expectCodeAsync(
      decodeResultPayload(utf8.encode("{nope")),
      "RESULT_DECODE_FAILED",
      /not valid JSON/,
    );
    await expectCodeAsync(
      decodeResultPayload(Uint8Array.from([0x7b, 0xff, 0x7d])),
      "RESULT_DECODE_FAILED",
      /UTF-8/,
    );
    const bad = [
      "null",
      "[]",
      "3",
      '{"serialized_output_data":[1]}',
      '{"video_metadata":"x"}',
      '{"video_metadata":{}}',
      '{"video_metadata":{"frame_id":-1}}',
      '{"video_metadata":{"frame_id":1.5}}',
      '{"errors":"x"}',
      '{"processing_complete":"yes"}',
      '{"termination_reason":5}',
    ];
    for (const text of bad) {
      const e = expectCode(() => parseResultJson(text), "RESULT_DECODE_FAILED");
      expect(e.message.length).toBeGreaterThan(10);
    }
    const e = await expectCodeAsync(decodeResultPayload(utf8.encode("{nope")), "RESULT_DECODE_FAILED");
    expect(e.cause).toBeInstanceOf(SyntaxError);
  });

  it("gunzips payloads produced by node:zlib", async () => {
    const original = output(4, { errors: ["oops"] });
    const gz = gzipSync(Buffer.from(JSON.stringify(original)), { level: 6 });
    expect(gz[0]).toBe(0x1f);
    const decoded = await decodeResultPayload(new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength));
    expect(decoded).toEqual(original);
  });

  it("rejects corrupt gzip with RESULT_DECODE_FAILED", async () => {
    const gz = gzipSync(Buffer.from(JSON.stringify(output(1))));
    const truncated = new Uint8Array(gz.subarray(0, gz.byteLength - 6));
    await expectCodeAsync(decodeResultPayload(truncated), "RESULT_DECODE_FAILED", /gzip/);
    const garbage = Uint8Array.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await expectCodeAsync(decodeResultPayload(garbage), "RESULT_DECODE_FAILED", /gzip/);
  });

  it("stops gzip bombs at maxBytes", async () => {
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024));
    expect(bomb.byteLength).toBeLessThan(100_000);
    await expectCodeAsync(
      decodeResultPayload(new Uint8Array(bomb), { maxBytes: 1024 * 1024 }),
      "FRAME_TOO_LARGE",
      /1048576-byte limit/,
    );
  });

  it("round-trips through encodeResultMessage, with and without gzip (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 200 }),
        async (data, frameId, gzip, chunkSize) => {
          const original = output(frameId, { serialized_output_data: data as Record<string, unknown> });
          const messages = await encodeResultMessage(frameId, original, { gzip, chunkSize });
          const d = new ResultDeframer({ maxPendingFrames: 1 });
          let frame: ReturnType<ResultDeframer["push"]> = null;
          for (const m of messages) {
            expect(m.byteLength).toBeLessThanOrEqual(RESULT_HEADER_SIZE + chunkSize);
            expect(frame).toBeNull();
            frame = d.push(m);
          }
          expect(frame?.frameId).toBe(frameId);
          const payload = frame?.payload as Uint8Array;
          expect(payload[0] === 0x1f && payload[1] === 0x8b).toBe(gzip);
          const decoded = await decodeResultPayload(payload);
          // JSON round trip of the original is the reference (e.g. -0 becomes 0).
          expect(decoded).toEqual(JSON.parse(JSON.stringify(original)));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("fuzz: arbitrary payloads decode or fail with a VidrtcError", async () => {
    const gzipPrefixed = fc.uint8Array({ maxLength: 80 }).map((b) => Uint8Array.from([0x1f, 0x8b, ...b]));
    const mutatedGzip = fc
      .tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }))
      .map(([pos, byte]) => {
        const gz = new Uint8Array(gzipSync(Buffer.from(JSON.stringify(output(2)))));
        gz[pos % gz.byteLength] = byte;
        return gz;
      });
    const jsonish = fc.jsonValue().map((v) => utf8.encode(JSON.stringify(v)));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ maxLength: 80 }), gzipPrefixed, mutatedGzip, jsonish),
        async (payload) => {
          try {
            const out = await decodeResultPayload(payload, { maxBytes: 4096 });
            expect(Array.isArray(out.errors)).toBe(true);
            expect(typeof out.processing_complete).toBe("boolean");
          } catch (error) {
            expect(VidrtcError.isInstance(error)).toBe(true);
            expect(["RESULT_DECODE_FAILED", "FRAME_TOO_LARGE"]).toContain((error as VidrtcError).code);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("createResultDecoder", () => {
  async function run(messages: Uint8Array[], options = {}): Promise<ResultMessage[]> {
    const results: ResultMessage[] = [];
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const m of messages) controller.enqueue(m);
        controller.close();
      },
    });
    await source.pipeThrough(createResultDecoder(options)).pipeTo(
      new WritableStream({
        write(r) {
          results.push(r);
        },
      }),
    );
    return results;
  }

  it("turns interleaved messages into ordered ResultMessages", async () => {
    const a = await encodeResultMessage(1, output(1), { gzip: true, chunkSize: 16 });
    const b = await encodeResultMessage(2, output(2), { chunkSize: 16 });
    const done = await encodeResultMessage(
      3,
      output(2, { processing_complete: true, serialized_output_data: null }),
    );
    const mixed: Uint8Array[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i]) mixed.push(a[i] as Uint8Array);
      if (b[i]) mixed.push(b[i] as Uint8Array);
    }
    const results = await run([...mixed, ...done]);
    expect(results.map((r) => r.frameId)).toEqual(a.length > b.length ? [2, 1, 3] : [1, 2, 3]);
    const first = results.find((r) => r.frameId === 1) as ResultMessage;
    expect(first.outputs).toEqual({ count: 1, label: "frame-1" });
    expect(first.metadata?.frame_id).toBe(1);
    expect(results[2]).toMatchObject({ outputs: {}, processingComplete: true, terminationReason: null });
  });

  it("errors the stream with the VidrtcError", async () => {
    const bad = header(1, 0, 1, utf8.encode("not json"));
    await expectCodeAsync(run([bad]), "RESULT_DECODE_FAILED");
    await expectCodeAsync(run([new Uint8Array(3)]), "MALFORMED_MESSAGE");
  });
});

describe("ackMessage / AckTracker", () => {
  it('formats exactly {"ack":n}', () => {
    expect(ackMessage(17)).toBe('{"ack":17}');
    expect(ackMessage(0)).toBe('{"ack":0}');
    expect(JSON.parse(ackMessage(4294967296))).toEqual({ ack: 4294967296 });
    expectCode(() => ackMessage(-1), "INVALID_OPTIONS");
    expectCode(() => ackMessage(1.5), "INVALID_OPTIONS");
    expectCode(() => ackMessage(Number.NaN), "INVALID_OPTIONS");
  });

  it("acks each in-order frame once and never goes back", () => {
    const sent: string[] = [];
    const t = new AckTracker((s) => sent.push(s));
    t.done(1);
    t.done(2);
    t.done(2);
    t.done(1);
    t.done(5);
    t.done(3);
    expect(sent).toEqual(['{"ack":1}', '{"ack":2}', '{"ack":5}']);
    expect(t.lastAck).toBe(5);
  });

  it("holds the ACK below a delivered frame that is not done yet", () => {
    const sent: string[] = [];
    const t = new AckTracker((s) => sent.push(s));
    t.delivered(1);
    t.delivered(2);
    t.delivered(3);
    t.done(2);
    t.done(3);
    expect(sent).toEqual([]);
    t.done(1);
    expect(sent).toEqual(['{"ack":3}']);
    t.delivered(4);
    t.delivered(5);
    t.done(5);
    expect(sent).toEqual(['{"ack":3}']);
    t.done(4);
    expect(sent).toEqual(['{"ack":3}', '{"ack":5}']);
  });

  it("is monotonic under random done orders (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 60 }), (ids) => {
        const sent: number[] = [];
        const t = new AckTracker((s) => sent.push((JSON.parse(s) as { ack: number }).ack));
        for (const id of ids) t.done(id);
        for (let i = 1; i < sent.length; i++)
          expect(sent[i] as number).toBeGreaterThan(sent[i - 1] as number);
        expect(t.lastAck).toBe(ids.length === 0 ? 0 : Math.max(...ids));
      }),
    );
  });
});

describe("creditAck / AckWindow", () => {
  it("credit = consumed + frames - window, never negative", () => {
    expect(creditAck(0, 16)).toBe(15);
    expect(creditAck(10, 16)).toBe(25);
    expect(creditAck(0, 1)).toBe(0);
    expect(creditAck(3, 4, 2)).toBe(5);
  });

  it("is unpaced before the first ACK, then admits up to lastAck + window and accepts credit", () => {
    const w = new AckWindow();
    expect(w.admits(50)).toBe(true);
    expect(w.accept(3)).toBe(true);
    expect(w.admits(4)).toBe(true);
    expect(w.admits(5)).toBe(false);
    // Smaller, equal, negative, fractional and non-numbers are ignored.
    for (const bad of [2, 3, -1, 3.5, "9", null]) expect(w.accept(bad)).toBe(false);
    expect(w.lastAck).toBe(3);
    // Credit far beyond what was produced is accepted.
    expect(w.accept(1000)).toBe(true);
    expect(w.admits(1001)).toBe(true);
    expect(w.admits(1002)).toBe(false);
  });

  it("waitFor resolves when an ACK admits the frame and rejects on abort", async () => {
    const w = new AckWindow();
    w.accept(1);
    let admitted = false;
    const waiting = w.waitFor(4).then(() => {
      admitted = true;
    });
    w.accept(2);
    await Promise.resolve();
    expect(admitted).toBe(false);
    w.accept(3);
    await waiting;
    expect(admitted).toBe(true);
    const controller = new AbortController();
    const aborted = w.waitFor(10, controller.signal);
    controller.abort(new Error("stop"));
    await expect(aborted).rejects.toThrow("stop");
    expect(() => new AckWindow(0)).toThrow(VidrtcError);
  });
});
