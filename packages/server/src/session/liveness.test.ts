import { afterEach, describe, expect, it, vi } from "vitest";
import { LivenessWatchdog } from "./liveness.js";

describe("LivenessWatchdog", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires once when nothing arrives for the bound, counting from start() until the first activity", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    const lost = vi.fn();
    const dog = new LivenessWatchdog({ timeoutMs: 5_000, lastActivityAt: () => null, onLost: lost });
    dog.start();
    vi.advanceTimersByTime(4_000);
    expect(lost).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1_000);
    expect(lost).toHaveBeenCalledTimes(1);
    expect(lost.mock.calls[0]?.[0]).toBeGreaterThanOrEqual(5_000);
    vi.advanceTimersByTime(60_000);
    expect(lost).toHaveBeenCalledTimes(1);
  });

  it("activity inside the bound keeps the session alive; silence after the last activity ends it", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    let last: number | null = null;
    const lost = vi.fn();
    const dog = new LivenessWatchdog({ timeoutMs: 3_000, lastActivityAt: () => last, onLost: lost });
    dog.start();
    // A consent check every 2.5 s for a minute.
    for (let t = 0; t < 60_000; t += 2_500) {
      vi.advanceTimersByTime(2_500);
      last = Date.now();
    }
    expect(lost).not.toHaveBeenCalled();
    const silentFrom = Date.now();
    vi.advanceTimersByTime(2_900);
    expect(lost).not.toHaveBeenCalled();
    vi.advanceTimersByTime(700);
    expect(lost).toHaveBeenCalledTimes(1);
    expect(Date.now() - silentFrom).toBeLessThanOrEqual(3_000 + 600);
  });

  it("stop() before the bound: never fires", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    const lost = vi.fn();
    const dog = new LivenessWatchdog({ timeoutMs: 1_000, lastActivityAt: () => null, onLost: lost });
    dog.start();
    vi.advanceTimersByTime(500);
    dog.stop();
    vi.advanceTimersByTime(10_000);
    expect(lost).not.toHaveBeenCalled();
  });
});
