import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, safeTimeout } from "./timer.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("safeTimeout", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("does not fire early for delays past the 32-bit range (plain setTimeout fires those after 1 ms)", async () => {
    const fired: string[] = [];
    const timers = [
      safeTimeout(() => fired.push("just past"), MAX_TIMER_MS + 1),
      safeTimeout(() => fired.push("2147484 s"), 2_147_484 * 1000),
      safeTimeout(() => fired.push("1e300 s"), 1e300 * 1000),
      safeTimeout(() => fired.push("Infinity"), Number.POSITIVE_INFINITY),
      safeTimeout(() => fired.push("NaN"), Number.NaN),
    ];
    const control = safeTimeout(() => fired.push("20 ms"), 20);
    await sleep(150);
    expect(fired).toEqual(["20 ms"]);
    for (const t of timers) t.clear();
    control.clear();
  });

  it("chains long delays and fires once, at the deadline", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const fn = vi.fn();
    const ms = 3 * MAX_TIMER_MS + 5_000;
    safeTimeout(fn, ms);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2 * MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(4_999);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("clear() stops a chained timer between steps, and short delays behave like setTimeout", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const long = vi.fn();
    const t = safeTimeout(long, 2 * MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS + 10);
    t.clear();
    t.clear();
    vi.advanceTimersByTime(2 * MAX_TIMER_MS);
    expect(long).not.toHaveBeenCalled();
    const short = vi.fn();
    safeTimeout(short, 0);
    safeTimeout(short, -5);
    vi.advanceTimersByTime(0);
    expect(short).toHaveBeenCalledTimes(2);
  });
});
