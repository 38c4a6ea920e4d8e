/**
 * Runs one workflow over frames, synchronously: validates each frame, calls the workflow's
 * `processFrame`, and produces the image outputs that were asked for.
 * It runs inside the workflow worker thread (see worker.ts); it is also importable directly (tests,
 * benchmarks), but the server never calls it on the main thread.
 *
 * The workflows themselves live one per file in `builtin/` and are listed in `registry.ts`; this module
 * re-exports their helpers for tests and benchmarks.
 */
import { encodeJpeg } from "./cv.js";
import { BUILTIN_REGISTRY, type WorkflowRegistry } from "./registry.js";
import {
  type EngineFrame,
  type EngineImage,
  type EngineResult,
  type EngineWant,
  normalizeWithSchema,
  ParameterError,
  type Workflow,
  type WorkflowInstance,
} from "./workflow.js";

export type { DelayParameters } from "./builtin/delay.js";
export { type FrameStatsParameters, frameStats } from "./builtin/frame-stats.js";
export { MotionDetector, type MotionParameters, type MotionPrediction } from "./builtin/motion.js";
export { BOX_COLOURS, drawBoxes, encodeJpeg, JPEG_QUALITY, lumaOf } from "./cv.js";
export { type EngineFrame, type EngineImage, type EngineResult, type EngineWant, ParameterError };

/**
 * Validates and completes a workflow's parameters against its schema (in `registry`, default the
 * built-ins). Unknown keys are ignored (clients may send parameters meant for other workflows); known
 * keys must be numbers (or numeric strings) in range; an unknown workflow has none. Throws
 * {@link ParameterError}.
 */
export function normalizeParameters(
  workflowId: string,
  parameters: Record<string, unknown> | undefined,
  registry: WorkflowRegistry = BUILTIN_REGISTRY,
): Record<string, number> {
  return registry.normalizeParameters(workflowId, parameters);
}

/** A running workflow: per-frame state plus the image-output plumbing. */
export class WorkflowEngine {
  readonly workflowId: string;
  private readonly instance: WorkflowInstance;

  /**
   * @param workflow a workflow, or the id of one in `registry` (default: the built-ins)
   * @param parameters raw parameters; validated and defaulted here (throws {@link ParameterError})
   */
  constructor(
    workflow: string | Workflow<Record<string, number>>,
    parameters: Record<string, unknown> = {},
    registry: WorkflowRegistry = BUILTIN_REGISTRY,
  ) {
    const found = typeof workflow === "string" ? registry.get(workflow) : workflow;
    if (!found) throw new ParameterError(`Unknown built-in workflow "${String(workflow)}".`);
    this.workflowId = found.id;
    this.instance = found.create(normalizeWithSchema(found.parameters, parameters));
  }

  /** Runs the workflow on one frame. Only requested image outputs are produced. */
  process(frame: EngineFrame, want: EngineWant = {}): EngineResult {
    const expected = frame.width * frame.height * 3;
    if (!(frame.width > 0 && frame.height > 0) || frame.rgb.length !== expected) {
      throw new Error(
        `Frame ${frame.index} has ${frame.rgb.length} bytes, expected ${expected} for ${frame.width}x${frame.height} rgb24.`,
      );
    }
    const { data, images: imageSources = {} } = this.instance.processFrame(frame);
    const images: Record<string, EngineImage> = {};
    const names = new Set([...(want.jpeg ?? []), ...(want.rgb ?? [])]);
    for (const name of names) {
      const source = Object.hasOwn(imageSources, name) ? imageSources[name] : undefined;
      if (!source) continue;
      const rgb = source();
      const image: EngineImage = { width: frame.width, height: frame.height };
      if (want.jpeg?.includes(name)) image.jpeg = encodeJpeg(rgb, frame.width, frame.height);
      if (want.rgb?.includes(name)) image.rgb = rgb;
      images[name] = image;
    }
    return { data, images };
  }
}
