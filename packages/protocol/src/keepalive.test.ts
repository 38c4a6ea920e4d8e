import { afterEach, describe, expect, it, vi } from "vitest";
import { KEEPALIVE_PING } from "./constants.js";
import { VidrtcError } from "./errors.js";
import { isKeepaliveMessage, Keepalive } from "./keepalive.js";
import { FakeChannel, type FakeChannelOptions } from "./test-support/fake-channel.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vi.restoreAllMocks();
});

function setup(channelOptions: FakeChannelOptions, options: ConstructorParameters<typeof Keepalive>[1] = {}) {
  const channel = new FakeChannel({ drainBytesPerTick: Number.POSITIVE_INFINITY, ...channelOptions });
  const keepalive = new Keepalive(channel, options);
  cleanups.push(() => {
    keepalive.stop();
    channel.dispose();
  });
  return { channel, keepalive };
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const t0 = performance.now();
  while (!condition()) {
    if (performance.now() - t0 > timeoutMs) throw new Error("condition not met in time");
    await sleep(2);
  }
}

describe("isKeepaliveMessage", () => {
  it("is true for 0- and 1-byte messages only", () => {
    expect(isKeepaliveMessage(new Uint8Array(0))).toBe(true);
    expect(isKeepaliveMessage(Uint8Array.of(KEEPALIVE_PING))).toBe(true);
    expect(isKeepaliveMessage(Uint8Array.of(0))).toBe(true);
    expect(isKeepaliveMessage(new Uint8Array(2))).toBe(false);
    expect(isKeepaliveMessage(new Uint8Array(8))).toBe(false);
    expect(isKeepaliveMessage("")).toBe(true);
    expect(isKeepaliveMessage("p")).toBe(true);
    expect(isKeepaliveMessage("é")).toBe(false); // 2 bytes in UTF-8
    expect(isKeepaliveMessage('{"ack":1}')).toBe(false);
  });
});

describe("Keepalive", () => {
  it("sends a fresh 1-byte ping now and every interval", async () => {
    const { channel, keepalive } = setup({}, { intervalMs: 15 });
    keepalive.start();
    expect(keepalive.stats.pingsSent).toBe(1);
    await until(() => keepalive.stats.pingsSent >= 4);
    const pings = channel.delivered as Uint8Array[];
    expect(pings.every((p) => p.byteLength === 1 && p[0] === KEEPALIVE_PING)).toBe(true);
    expect(new Set(pings).size).toBe(pings.length);
    expect(new Set(pings.map((p) => p.buffer)).size).toBe(pings.length);
    expect(keepalive.stats.echoes).toBe(0);
  });

  it("counts echoes and measures RTT", async () => {
    const { keepalive } = setup({ echo: true, echoDelayMs: 25 }, { intervalMs: 40 });
    keepalive.start();
    await until(() => keepalive.stats.echoes >= 3);
    const { lastRttMs, meanRttMs, pingsSent, echoes } = keepalive.stats;
    expect(pingsSent).toBeGreaterThanOrEqual(echoes);
    expect(lastRttMs).not.toBeNull();
    expect(lastRttMs!).toBeGreaterThanOrEqual(20);
    expect(lastRttMs!).toBeLessThan(500);
    expect(meanRttMs!).toBeGreaterThanOrEqual(20);
  });

  it("matches echoes to pings in order when the RTT exceeds the interval", async () => {
    const { keepalive } = setup({ echo: true, echoDelayMs: 25 }, { intervalMs: 8 });
    const startedAt = performance.now();
    keepalive.start();
    await until(() => keepalive.stats.echoes >= 8);
    const elapsed = performance.now() - startedAt;
    // Each RTT is one echo delay (~25 ms), not the time since the first ping (>= 8 intervals + 25 ms).
    expect(keepalive.stats.lastRttMs!).toBeLessThan(elapsed - 30);
    expect(keepalive.stats.lastRttMs!).toBeGreaterThanOrEqual(20);
  });

  it("measures RTT of a manual echo", async () => {
    const { channel, keepalive } = setup({}, { intervalMs: 60_000 });
    keepalive.start();
    await sleep(30);
    channel.receive(Uint8Array.of(KEEPALIVE_PING));
    expect(keepalive.stats.lastRttMs!).toBeGreaterThanOrEqual(25);
    channel.receive(Uint8Array.of(KEEPALIVE_PING)); // unmatched: counted, no RTT change
    expect(keepalive.stats.echoes).toBe(2);
    expect(keepalive.stats.meanRttMs).toBe(keepalive.stats.lastRttMs);
  });

  it("ignores non-keepalive messages", async () => {
    const { channel, keepalive } = setup({}, { intervalMs: 1_000 });
    keepalive.start();
    channel.receive(new Uint8Array(12));
    channel.receive('{"x":1}');
    expect(keepalive.stats.echoes).toBe(0);
    channel.receive(Uint8Array.of(KEEPALIVE_PING));
    expect(keepalive.stats.echoes).toBe(1);
  });

  it("never declares loss before the first echo", async () => {
    const onLost = vi.fn();
    const { keepalive } = setup({ echo: false }, { intervalMs: 5, maxMissed: 2, onLost });
    keepalive.start();
    await sleep(80);
    expect(onLost).not.toHaveBeenCalled();
    expect(keepalive.running).toBe(true);
    expect(keepalive.stats.pingsSent).toBeGreaterThanOrEqual(3);
  });

  it("declares LIVENESS_LOST once after maxMissed silent intervals following an echo", async () => {
    const errors: VidrtcError[] = [];
    const { channel, keepalive } = setup(
      { echo: true },
      { intervalMs: 10, maxMissed: 3, onLost: (e) => errors.push(e) },
    );
    keepalive.start();
    await until(() => keepalive.stats.echoes >= 2);
    channel.echo = false; // the server stops answering
    const silentFrom = performance.now();
    await until(() => errors.length > 0);
    const took = performance.now() - silentFrom;
    expect(took).toBeGreaterThanOrEqual(15); // at least ~2 intervals
    expect(took).toBeLessThan(1_000);
    await sleep(50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe("LIVENESS_LOST");
    expect(errors[0]!.message).toMatch(/stopped answering/);
    expect(keepalive.running).toBe(false);
    const sent = keepalive.stats.pingsSent;
    await sleep(40);
    expect(keepalive.stats.pingsSent).toBe(sent);
  });

  it("does not declare loss while echoes keep coming", async () => {
    const onLost = vi.fn();
    const { keepalive } = setup({ echo: true, echoDelayMs: 1 }, { intervalMs: 8, maxMissed: 2, onLost });
    keepalive.start();
    await until(() => keepalive.stats.echoes >= 10, 5_000);
    expect(onLost).not.toHaveBeenCalled();
    expect(keepalive.running).toBe(true);
  });

  it("stops when the channel closes, and stop() is idempotent", async () => {
    const { channel, keepalive } = setup({}, { intervalMs: 5 });
    keepalive.start();
    expect(channel.listenerCount("message")).toBe(1);
    channel.close();
    expect(keepalive.running).toBe(false);
    expect(channel.listenerCount("message")).toBe(0);
    expect(channel.listenerCount("close")).toBe(0);
    keepalive.stop();
    keepalive.stop();
    keepalive.start(); // closed channel: no-op
    expect(keepalive.running).toBe(false);
  });

  it("waits for a connecting channel before pinging", async () => {
    const { channel, keepalive } = setup({ readyState: "connecting" }, { intervalMs: 10 });
    keepalive.start();
    await sleep(30);
    expect(keepalive.stats.pingsSent).toBe(0);
    channel.open();
    await until(() => keepalive.stats.pingsSent >= 1);
  });

  it("does not keep a Node process alive (timer unref'd)", () => {
    const spy = vi.spyOn(globalThis, "setInterval");
    const { keepalive } = setup({}, { intervalMs: 1_000 });
    keepalive.start();
    expect(spy).toHaveBeenCalledTimes(1);
    const handle = spy.mock.results[0]!.value as { hasRef?: () => boolean };
    if (typeof handle.hasRef === "function") expect(handle.hasRef()).toBe(false);
  });

  it("rejects invalid options", () => {
    const channel = new FakeChannel();
    expect(() => new Keepalive(channel, { intervalMs: 0 })).toThrow(VidrtcError);
    expect(() => new Keepalive(channel, { maxMissed: 0 })).toThrow(VidrtcError);
  });
});
