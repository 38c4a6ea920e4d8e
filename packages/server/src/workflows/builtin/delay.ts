/** The `delay` workflow: a stand-in for a model with a fixed cost per frame. */
import { defineWorkflow } from "../workflow.js";

/** Settings of the `delay` workflow. */
export type DelayParameters = {
  /** Milliseconds to wait per frame (0-1000). Default 5. */
  ms: number;
};

/** Blocks the calling (worker) thread for `ms` without spinning. */
function sleepThread(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export default defineWorkflow<DelayParameters>({
  id: "delay",
  description:
    "A stand-in for a model with a fixed cost: waits `ms` milliseconds per frame in the worker " +
    "(default 5, without using the CPU) and returns the frame number and the time waited. For " +
    "benchmarks and tests of latency and pacing. Parameters: ms.",
  outputs: [{ name: "delay", kind: "data" }],
  parameters: {
    ms: { type: "number", default: 5, min: 0, max: 1000, description: "Milliseconds to wait per frame." },
  },
  create: ({ ms }) => ({
    processFrame(frame) {
      const started = performance.now();
      sleepThread(ms);
      return {
        data: {
          delay: { frame: frame.index, waited_ms: Math.round((performance.now() - started) * 1000) / 1000 },
        },
      };
    },
  }),
});
