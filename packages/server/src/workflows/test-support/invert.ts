/**
 * A test-only workflow, complete in this one file: inverts each frame (scaled by `gain`) and reports
 * the inverted mean. registry.test.ts registers it and runs it through request validation, the worker
 * thread and the HTTP server, to show that adding a workflow touches one file.
 */
import { defineWorkflow } from "../workflow.js";

export default defineWorkflow<{ gain: number }>({
  id: "invert",
  description: "Test-only: the inverted frame (times gain, clamped) and its mean.",
  outputs: [
    { name: "inverted_mean", kind: "data" },
    { name: "inverted", kind: "image" },
  ],
  parameters: {
    gain: { type: "integer", default: 1, min: 1, max: 4, description: "Multiplier of the inverted values." },
  },
  create: ({ gain }) => {
    let frames = 0;
    return {
      processFrame(frame) {
        frames++;
        const out = new Uint8Array(frame.rgb.length);
        let sum = 0;
        for (let i = 0; i < out.length; i++) {
          const v = Math.min(255, (255 - frame.rgb[i]!) * gain);
          out[i] = v;
          sum += v;
        }
        return {
          data: { inverted_mean: { mean: sum / Math.max(1, out.length), frames } },
          images: { inverted: () => out },
        };
      },
    };
  },
});
