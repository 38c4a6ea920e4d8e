import { describe, expect, it } from "vitest";
import { FakeChannel } from "./fake-channel.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("FakeChannel", () => {
  it("queues, drains in order and delivers whole messages", () => {
    const ch = new FakeChannel();
    ch.send(new Uint8Array(10).fill(1));
    ch.send("hi");
    expect(ch.bufferedAmount).toBe(12);
    expect(ch.drain(5)).toBe(5);
    expect(ch.bufferedAmount).toBe(7);
    expect(ch.delivered).toHaveLength(0);
    ch.drain(5);
    expect(ch.delivered).toHaveLength(1);
    ch.drain();
    expect(ch.delivered).toEqual([new Uint8Array(10).fill(1), "hi"]);
    expect(ch.bufferedAmount).toBe(0);
  });

  it("throws like Chromium: over capacity, over max message size, not open", () => {
    const ch = new FakeChannel({ capacity: 100, maxMessageSize: 60 });
    ch.send(new Uint8Array(60));
    expect(() => ch.send(new Uint8Array(50))).toThrow(/send queue is full/);
    expect(() => ch.send(new Uint8Array(61))).toThrow(TypeError);
    ch.close();
    expect(() => ch.send(new Uint8Array(1))).toThrow(/closed/);
  });

  it("fires bufferedamountlow on a crossing only, and can lose it", () => {
    const ch = new FakeChannel();
    let fired = 0;
    ch.on("bufferedamountlow", () => fired++);
    ch.bufferedAmountLowThreshold = 10;
    ch.send(new Uint8Array(30));
    ch.drain(15);
    expect(fired).toBe(0);
    ch.drain(5);
    expect(fired).toBe(1);
    ch.drain();
    expect(fired).toBe(1);
    ch.loseLowEvents = true;
    ch.send(new Uint8Array(30));
    ch.drain();
    expect(fired).toBe(1);
    expect(ch.lowEventsLost).toBe(1);
  });

  it("werift mode reports bufferedAmount in bursts", () => {
    const ch = new FakeChannel({ mode: "werift" });
    ch.send(new Uint8Array(100));
    ch.send(new Uint8Array(100));
    ch.drain(150);
    expect(ch.queuedBytes).toBe(50);
    expect(ch.bufferedAmount).toBe(200);
    ch.drain(50);
    expect(ch.bufferedAmount).toBe(0);
  });

  it("drains by timer and echoes keepalives", async () => {
    const ch = new FakeChannel({ drainBytesPerTick: 1_000, tickMs: 1, echo: true });
    const echoes: Array<Uint8Array | string> = [];
    ch.on("message", (e) => echoes.push(e.data));
    ch.send(new Uint8Array(5_000));
    ch.send(Uint8Array.of(0x70));
    for (let i = 0; i < 200 && echoes.length === 0; i++) await sleep(2);
    expect(ch.bufferedAmount).toBe(0);
    expect(echoes).toEqual([Uint8Array.of(0x70)]);
    ch.dispose();
  });

  it("cleans up listeners and fires open/close once", () => {
    const ch = new FakeChannel({ readyState: "connecting" });
    const events: string[] = [];
    const off = ch.on("open", () => events.push("open"));
    ch.on("close", () => events.push("close"));
    ch.open();
    ch.open();
    off();
    expect(ch.listenerCount("open")).toBe(0);
    ch.close();
    ch.close();
    expect(events).toEqual(["open", "close"]);
  });
});
