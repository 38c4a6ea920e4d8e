import { afterEach, describe, expect, it } from "vitest";
import { UPLOAD_CHUNK_SIZE, UPLOAD_HEADER_SIZE } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { type ChannelSinkOptions, createChannelSink, type SinkProgress } from "./sink.js";
import { rejection } from "./test-support/errors.js";
import { FakeChannel, type FakeChannelOptions } from "./test-support/fake-channel.js";
import { createUploadStream } from "./upload.js";

const channels: FakeChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.dispose();
});

function fake(options: FakeChannelOptions = {}): FakeChannel {
  const c = new FakeChannel(options);
  channels.push(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const t0 = performance.now();
  while (!condition()) {
    if (performance.now() - t0 > timeoutMs) throw new Error("condition not met in time");
    await sleep(2);
  }
}

/** Resolves to "pending" if `p` has not settled after a few macrotasks. */
async function state(p: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  let s: "pending" | "resolved" | "rejected" = "pending";
  p.then(
    () => {
      s = "resolved";
    },
    () => {
      s = "rejected";
    },
  );
  await sleep(5);
  return s;
}

/** Index of the first differing byte (or length difference), -1 when equal; fast on large arrays. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}

const msg = (size: number, fill = 1) => new Uint8Array(size).fill(fill);

/** Small marks so tests can reason in bytes. */
const small: ChannelSinkOptions = { highWaterMark: 100, lowWaterMark: 50, pollIntervalMs: 10_000 };

describe("createChannelSink: fast path", () => {
  it("sends every chunk in order and resolves writes synchronously-ish on a draining channel", async () => {
    const ch = fake({ drainBytesPerTick: Number.POSITIVE_INFINITY });
    const writer = createChannelSink(ch).getWriter();
    for (let i = 0; i < 100; i++) await writer.write(msg(10, i));
    await writer.close();
    expect(ch.delivered).toHaveLength(100);
    expect(ch.delivered.map((m) => (m as Uint8Array)[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("sets the low threshold and leaves no listeners behind", async () => {
    const ch = fake({ drainBytesPerTick: Number.POSITIVE_INFINITY });
    const sink = createChannelSink(ch, { highWaterMark: 1000, lowWaterMark: 123 });
    expect(ch.bufferedAmountLowThreshold).toBe(123);
    const writer = sink.getWriter();
    await writer.write(msg(5));
    await writer.close();
    expect(ch.listenerCount("close")).toBe(0);
    expect(ch.listenerCount("bufferedamountlow")).toBe(0);
    expect(ch.listenerCount("error")).toBe(0);
  });

  it("rejects invalid marks", () => {
    const ch = fake();
    expect(() => createChannelSink(ch, { highWaterMark: 10, lowWaterMark: 20 })).toThrow(/lowWaterMark/);
    expect(() => createChannelSink(ch, { stallTimeoutMs: 0 })).toThrow(VidrtcError);
  });
});

describe("createChannelSink: backpressure", () => {
  it("pauses above the high mark and resumes on bufferedamountlow at the low mark", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, small).getWriter();
    await writer.write(msg(40));
    await writer.write(msg(40)); // 80 <= 100
    const third = writer.write(msg(40)); // 120 > 100: paused
    expect(await state(third)).toBe("pending");
    expect(ch.messagesSent).toBe(3); // handed over before pausing
    ch.drain(60); // 60 > low
    expect(await state(third)).toBe("pending");
    ch.drain(10); // 50 <= low: event
    expect(ch.lowEventsFired).toBe(1);
    expect(await state(third)).toBe("resolved");
    ch.drain();
    await writer.close();
  });

  it("never lets a Chromium-like bounded buffer overflow", async () => {
    const ch = fake({ capacity: 100 + UPLOAD_CHUNK_SIZE + UPLOAD_HEADER_SIZE, drainBytesPerTick: 20_000 });
    const data = new Uint8Array(600_000).map((_, i) => i * 7);
    await createUploadStream(new Blob([data]).stream(), data.byteLength).pipeTo(
      createChannelSink(ch, { highWaterMark: 100, lowWaterMark: 0, pollIntervalMs: 5 }),
    );
    expect(ch.peakQueuedBytes).toBeLessThanOrEqual(ch.capacity);
    expect(ch.queuedBytes).toBe(0);
    const joined = new Uint8Array(data.byteLength);
    let off = 0;
    for (const m of ch.delivered as Uint8Array[]) {
      joined.set(m.subarray(UPLOAD_HEADER_SIZE), off);
      off += m.byteLength - UPLOAD_HEADER_SIZE;
    }
    expect(firstDifference(joined, data)).toBe(-1);
  });

  it("is saved by the poll when bufferedamountlow is lost", async () => {
    const ch = fake({ loseLowEvents: true });
    const writer = createChannelSink(ch, { ...small, pollIntervalMs: 20 }).getWriter();
    const w = writer.write(msg(150));
    expect(await state(w)).toBe("pending");
    ch.drain();
    expect(ch.lowEventsLost).toBe(1);
    const t0 = performance.now();
    await w;
    expect(performance.now() - t0).toBeLessThan(1000);
    await writer.close();
  });

  it("re-checks right after arming (a drain between send and subscribe is not missed)", async () => {
    // bufferedAmount is high when write() looks, and already low when the wait arms; no event, no poll.
    class Racy extends FakeChannel {
      reads = 0;
      override get bufferedAmount(): number {
        this.reads++;
        return this.reads === 1 ? 1_000 : 0;
      }
    }
    const ch = new Racy({ loseLowEvents: true });
    channels.push(ch);
    const writer = createChannelSink(ch, { ...small, pollIntervalMs: 60_000 }).getWriter();
    const w = writer.write(msg(10));
    expect(await state(w)).toBe("resolved");
  });

  it("works with werift-style bursty bufferedAmount", async () => {
    const ch = fake({ mode: "werift", drainBytesPerTick: 30_000 });
    const data = new Uint8Array(1_000_000).map((_, i) => i);
    const progress: SinkProgress[] = [];
    await createUploadStream(new Blob([data]).stream(), data.byteLength).pipeTo(
      createChannelSink(ch, {
        highWaterMark: 200_000,
        lowWaterMark: 50_000,
        pollIntervalMs: 5,
        stallTimeoutMs: 2_000,
        onProgress: (p) => progress.push(p),
      }),
    );
    expect(ch.messagesDelivered).toBe(Math.ceil(data.byteLength / UPLOAD_CHUNK_SIZE));
    expect(ch.bytesDelivered).toBe(data.byteLength + UPLOAD_HEADER_SIZE * ch.messagesDelivered);
    expect(progress.at(-1)?.bytesDrained).toBe(ch.bytesDelivered);
  });
});

describe("createChannelSink: failures", () => {
  it("fails with UPLOAD_STALLED when nothing drains for stallTimeoutMs", async () => {
    const ch = fake();
    const sink = createChannelSink(ch, { ...small, pollIntervalMs: 10, stallTimeoutMs: 80 });
    const writer = sink.getWriter();
    const t0 = performance.now();
    const e = await rejection(writer.write(msg(150)));
    const took = performance.now() - t0;
    expect(e.code).toBe("UPLOAD_STALLED");
    expect(e.message).toMatch(/150 bytes buffered/);
    expect(took).toBeGreaterThanOrEqual(75);
    expect(took).toBeLessThan(1000);
    expect((await rejection(writer.write(msg(1)))).code).toBe("UPLOAD_STALLED"); // the stream is errored
  });

  it("does not stall while the buffer keeps decreasing, even slowly", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, {
      highWaterMark: 100,
      lowWaterMark: 0,
      stallTimeoutMs: 150,
      pollIntervalMs: 10,
    }).getWriter();
    const w = writer.write(msg(200));
    const timer = setInterval(() => ch.drain(20), 30); // 200 bytes over ~300 ms, twice the stall timeout
    try {
      await w;
    } finally {
      clearInterval(timer);
    }
    expect(ch.bufferedAmount).toBe(0);
  });

  it("fails with ABORTED when the signal aborts while paused, and the stream errors", async () => {
    const ch = fake();
    const ac = new AbortController();
    const writer = createChannelSink(ch, { ...small, signal: ac.signal }).getWriter();
    const w = writer.write(msg(150));
    expect(await state(w)).toBe("pending");
    ac.abort();
    expect((await rejection(w)).code).toBe("ABORTED");
    expect((await rejection(writer.closed)).code).toBe("ABORTED");
    expect(ch.listenerCount("bufferedamountlow")).toBe(0);
  });

  it("keeps a VidrtcError abort reason and errors at once when already aborted", async () => {
    const reason = new VidrtcError("LIVENESS_LOST", "gone");
    const ac = new AbortController();
    const ch = fake();
    const writer = createChannelSink(ch, { ...small, signal: ac.signal }).getWriter();
    ac.abort(reason);
    expect(await rejection(writer.closed)).toBe(reason);
    const writer2 = createChannelSink(ch, { signal: AbortSignal.abort() }).getWriter();
    writer2.closed.catch(() => {});
    expect((await rejection(writer2.write(msg(1)))).code).toBe("ABORTED");
    expect(ch.messagesSent).toBe(0);
  });

  it("stream.abort() fails a paused write at once", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, { ...small, stallTimeoutMs: 60_000 }).getWriter();
    const w = writer.write(msg(150));
    w.catch(() => {});
    expect(await state(w)).toBe("pending");
    const t0 = performance.now();
    await writer.abort(new Error("stop"));
    await expect(w).rejects.toThrow("stop");
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it("fails with CHANNEL_CLOSED when the channel closes mid-upload", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, small).getWriter();
    await writer.write(msg(60));
    const w = writer.write(msg(60));
    expect(await state(w)).toBe("pending");
    ch.fail(new Error("sctp abort"));
    ch.close();
    const e = await rejection(w);
    expect(e.code).toBe("CHANNEL_CLOSED");
    expect(e.message).toContain("120 bytes");
    expect((e.cause as Error).message).toBe("sctp abort");
  });

  it("fails with CHANNEL_CLOSED when writing to a closed channel, sending nothing", async () => {
    const ch = fake({ readyState: "closed" });
    const writer = createChannelSink(ch, small).getWriter();
    expect((await rejection(writer.write(msg(1)))).code).toBe("CHANNEL_CLOSED");
    expect(ch.messagesSent).toBe(0);
  });

  it("waits for a connecting channel to open, bounded by the stall timeout", async () => {
    const ch = fake({ readyState: "connecting" });
    const writer = createChannelSink(ch, { ...small, stallTimeoutMs: 2_000 }).getWriter();
    const w = writer.write(msg(10));
    expect(await state(w)).toBe("pending");
    ch.open();
    await w;
    expect(ch.messagesSent).toBe(1);

    const ch2 = fake({ readyState: "connecting" });
    const writer2 = createChannelSink(ch2, { ...small, stallTimeoutMs: 50 }).getWriter();
    expect((await rejection(writer2.write(msg(10)))).code).toBe("CHANNEL_OPEN_TIMEOUT");
    const ch3 = fake({ readyState: "connecting" });
    const w3 = createChannelSink(ch3, small).getWriter().write(msg(10));
    ch3.close();
    expect((await rejection(w3)).code).toBe("CHANNEL_CLOSED");
  });

  it("refuses a message over maxMessageSize with MESSAGE_TOO_LARGE, sending nothing", async () => {
    const ch = fake({ maxMessageSize: 100 });
    const writer = createChannelSink(ch, small).getWriter();
    await writer.write(msg(100));
    const e = await rejection(writer.write(msg(101)));
    expect(e.code).toBe("MESSAGE_TOO_LARGE");
    expect(e.message).toContain("101");
    expect(e.message).toContain("100");
    expect(ch.messagesSent).toBe(1);
  });

  it("reports a throwing send() as a VidrtcError", async () => {
    const ch = fake({ capacity: 50 });
    const writer = createChannelSink(ch, { highWaterMark: 1000, lowWaterMark: 0 }).getWriter();
    const e = await rejection(writer.write(msg(60)));
    expect(e.code).toBe("CHANNEL_CLOSED");
    expect(String(e.cause)).toContain("send queue is full");
  });
});

describe("createChannelSink: close", () => {
  it("close() resolves only once bufferedAmount reaches 0", async () => {
    const ch = fake({ loseLowEvents: false });
    const writer = createChannelSink(ch, { ...small, highWaterMark: 1000, pollIntervalMs: 20 }).getWriter();
    await writer.write(msg(300));
    const closed = writer.close();
    expect(await state(closed)).toBe("pending");
    ch.drain(299);
    expect(await state(closed)).toBe("pending");
    ch.drain(1);
    expect(await state(closed)).toBe("resolved");
  });

  it("close() in werift mode waits for the whole queue", async () => {
    const ch = fake({ mode: "werift" });
    const writer = createChannelSink(ch, {
      highWaterMark: 1000,
      lowWaterMark: 0,
      pollIntervalMs: 10,
    }).getWriter();
    await writer.write(msg(300));
    await writer.write(msg(300));
    const closed = writer.close();
    ch.drain(500);
    expect(ch.bufferedAmount).toBe(600); // bursty: unchanged until empty
    expect(await state(closed)).toBe("pending");
    ch.drain();
    expect(await state(closed)).toBe("resolved");
  });

  it("close() fails with UPLOAD_STALLED after closeTimeoutMs", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, {
      highWaterMark: 1000,
      lowWaterMark: 0,
      pollIntervalMs: 10,
      stallTimeoutMs: 10_000,
      closeTimeoutMs: 60,
    }).getWriter();
    await writer.write(msg(300));
    const e = await rejection(writer.close());
    expect(e.code).toBe("UPLOAD_STALLED");
    expect(e.message).toContain("60 ms");
  });

  it("close() fails with CHANNEL_CLOSED when the channel closes with data still buffered", async () => {
    const ch = fake();
    const writer = createChannelSink(ch, { highWaterMark: 1000, lowWaterMark: 0 }).getWriter();
    await writer.write(msg(300));
    const closed = writer.close();
    ch.close();
    expect((await rejection(closed)).code).toBe("CHANNEL_CLOSED");
  });
});

describe("createChannelSink: progress", () => {
  it("reports handed-over and drained bytes, monotonic, with a final call", async () => {
    const ch = fake();
    const progress: SinkProgress[] = [];
    const writer = createChannelSink(ch, {
      highWaterMark: 250,
      lowWaterMark: 100,
      pollIntervalMs: 5,
      onProgress: (p) => progress.push({ ...p }),
    }).getWriter();
    const writes = [writer.write(msg(100)), writer.write(msg(100)), writer.write(msg(100))];
    await sleep(60);
    ch.drain(150); // 150 left
    // A report while paused sees the partial drain.
    await until(() => progress.some((p) => p.bytesSent === 300 && p.bytesDrained === 150));
    await sleep(50);
    ch.drain(); // all
    await Promise.all(writes);
    await writer.close();
    expect(progress.length).toBeGreaterThanOrEqual(2);
    const last = progress.at(-1)!;
    expect(last).toMatchObject({ messagesSent: 3, bytesSent: 300, bytesDrained: 300 });
    expect(last.elapsedMs).toBeGreaterThan(100);
    expect(last.bytesPerSecond).toBeCloseTo((300 * 1000) / last.elapsedMs, 5);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.bytesDrained).toBeGreaterThanOrEqual(progress[i - 1]!.bytesDrained);
      expect(progress[i]!.bytesDrained).toBeLessThanOrEqual(progress[i]!.bytesSent);
    }
  });

  it("throttles calls on a fast channel", async () => {
    const ch = fake({ drainBytesPerTick: Number.POSITIVE_INFINITY, capture: false });
    let calls = 0;
    const writer = createChannelSink(ch, { onProgress: () => calls++ }).getWriter();
    for (let i = 0; i < 10_000; i++) void writer.write(msg(10));
    await writer.close();
    expect(ch.messagesSent).toBe(10_000);
    expect(calls).toBeLessThan(50);
    expect(calls).toBeGreaterThanOrEqual(2); // first write and the final one
  });
});
