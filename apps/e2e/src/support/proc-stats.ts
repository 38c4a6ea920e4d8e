/**
 * Process measurements shared by the benchmarks: CPU time and memory of any process (this one, a
 * server child, a Python peer) read from /proc, and an RSS sampler with a settled baseline.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let clockTicks = 0;
/** CPU time (user + system) a process has used so far, in ms; NaN when unreadable. */
export function procCpuMs(pid: number): number {
  try {
    if (clockTicks === 0) {
      try {
        clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
      } catch {
        clockTicks = 100;
      }
    }
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS and VmHWM of a process in bytes, or null once it has exited. */
export function procMemory(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rss: kib("VmRSS") * 1024, hwm: kib("VmHWM") * 1024 };
  } catch {
    return null;
  }
}
/** Samples a process's VmRSS every `intervalMs` (from /proc, so any process, any language). */
export class RssSampler {
  readonly samples: { at: number; rss: number }[] = [];
  #timer: NodeJS.Timeout | null = null;
  constructor(
    readonly pid: number,
    readonly intervalMs = 50,
  ) {}
  start(): this {
    const tick = () => {
      const m = procMemory(this.pid);
      if (m) this.samples.push({ at: performance.now(), rss: m.rss });
    };
    tick();
    this.#timer = setInterval(tick, this.intervalMs);
    this.#timer.unref();
    return this;
  }
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
  /** Largest sample taken at or after `at` (`performance.now()` time); 0 without samples. */
  peakSince(at: number): number {
    return Math.max(0, ...this.samples.filter((s) => s.at >= at).map((s) => s.rss));
  }
  /** Mean of the samples taken between `from` and `to`; NaN without samples. */
  meanBetween(from: number, to: number): number {
    const xs = this.samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.rss);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
  }
  /** Waits `ms` and returns the mean RSS over that time: a baseline of an idle process. */
  async settle(ms = 1_000): Promise<number> {
    const from = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    return this.meanBetween(from, performance.now());
  }
}
