/**
 * Built-in workflows of the local server, how a request names one, and the worker-thread runner.
 *
 * A request selects a workflow either by id (`workflow_id`, any `workspace_name`) or inline with
 * `workflow_specification`, in one of two forms:
 *
 * - `{ "version": "1.0", "builtin": "motion", "parameters": { "threshold": 30 } }`
 * - Roboflow-like, exactly one step: `{ "version": "1.0", "steps": [{ "type": "vidrtc/motion@v1",
 *   "name": "m", "threshold": 30 }] }` — the step's `type` (or `kind`) is `vidrtc/<id>@v1`,
 *   `vidrtc/<id>` or `<id>`; its other fields (except `name`) are parameters, as is a `parameters` object.
 *
 * The specification may also be given as a JSON string. When both are present the specification wins.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { VidrtcError } from "@vidrtc/protocol";
import type { DecodedFrame } from "../media/decode.js";
import { type EngineResult, normalizeParameters, ParameterError } from "./engine.js";
import type { WorkflowWorkerData, WorkflowWorkerRequest } from "./worker.js";

/** One output of a workflow: `data` outputs are JSON values, `image` outputs are frames. */
export interface WorkflowOutputSpec {
  name: string;
  kind: "data" | "image";
}

/** A built-in workflow (and, when resolved from a request, the parameters the request's specification set). */
export interface WorkflowDefinition {
  id: string;
  description: string;
  outputs: WorkflowOutputSpec[];
  /** Parameters from an inline specification; {@link WorkflowRunner}'s own `parameters` override them. */
  parameters?: Record<string, unknown>;
}

/** The workflows this server runs. */
export const BUILTIN_WORKFLOWS: readonly WorkflowDefinition[] = Object.freeze([
  Object.freeze({
    id: "frame-stats",
    description:
      "Per-frame statistics: brightness (mean luma 0-255), contrast (luma standard deviation), size and mean RGB.",
    outputs: Object.freeze([{ name: "stats", kind: "data" }]) as WorkflowOutputSpec[],
  }),
  Object.freeze({
    id: "delay",
    description:
      "A stand-in for a model with a fixed cost: waits `ms` milliseconds per frame in the worker " +
      "(default 5, without using the CPU) and returns the frame number and the time waited. For " +
      "benchmarks and tests of latency and pacing. Parameters: ms.",
    outputs: Object.freeze([{ name: "delay", kind: "data" }]) as WorkflowOutputSpec[],
  }),
  Object.freeze({
    id: "motion",
    description:
      "Motion detection by frame differencing: Roboflow-style boxes of moving regions, the fraction of " +
      "changed pixels, and the frame with the boxes drawn. Parameters: threshold, cell_size, " +
      "min_cell_fraction, min_area, merge_distance, max_detections, line_width.",
    outputs: Object.freeze([
      { name: "predictions", kind: "data" },
      { name: "motion_score", kind: "data" },
      { name: "annotated", kind: "image" },
    ]) as WorkflowOutputSpec[],
  }),
]);

function builtinList(): string {
  return BUILTIN_WORKFLOWS.map((w) => `"${w.id}"`).join(", ");
}

function findBuiltin(id: string): WorkflowDefinition | undefined {
  return BUILTIN_WORKFLOWS.find((w) => w.id === id);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function withParameters(def: WorkflowDefinition, parameters: Record<string, unknown>): WorkflowDefinition {
  const copy: WorkflowDefinition = {
    id: def.id,
    description: def.description,
    outputs: def.outputs.map((o) => ({ ...o })),
  };
  if (Object.keys(parameters).length > 0) copy.parameters = parameters;
  return copy;
}

function badSpec(reason: string): VidrtcError {
  return new VidrtcError(
    "BAD_REQUEST",
    `Unsupported workflow_specification: ${reason}. This server runs only its built-in workflows (${builtinList()}); ` +
      'name one with {"builtin": "<id>"} or {"steps": [{"type": "vidrtc/<id>@v1"}]}.',
  );
}

function stepTypeToId(type: string): string | undefined {
  const m = /^(?:vidrtc\/)?([a-z0-9][a-z0-9-]*)(?:@v\d+)?$/i.exec(type.trim());
  const id = m?.[1]?.toLowerCase();
  return id !== undefined && findBuiltin(id) ? id : undefined;
}

function resolveSpecification(spec: unknown): WorkflowDefinition {
  let value = spec;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      throw badSpec("it is a string that is not JSON");
    }
  }
  if (!isRecord(value)) throw badSpec("it must be a JSON object");
  const topParameters = value.parameters;
  if (topParameters !== undefined && !isRecord(topParameters))
    throw badSpec('"parameters" must be an object');
  if (value.builtin !== undefined) {
    if (typeof value.builtin !== "string") throw badSpec('"builtin" must be a string');
    const def = findBuiltin(value.builtin) ?? findBuiltin(stepTypeToId(value.builtin) ?? "");
    if (!def) throw badSpec(`"builtin" names an unknown workflow "${value.builtin}"`);
    return withParameters(def, { ...(topParameters ?? {}) });
  }
  if (Array.isArray(value.steps)) {
    if (value.steps.length !== 1)
      throw badSpec(`it must have exactly one step (it has ${value.steps.length})`);
    const step = value.steps[0];
    if (!isRecord(step)) throw badSpec("its step must be an object");
    const type = step.type ?? step.kind;
    if (typeof type !== "string") throw badSpec('its step has no "type"');
    const id = stepTypeToId(type);
    if (id === undefined) throw badSpec(`step type "${type}" is not a built-in workflow`);
    const stepParameters: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(step)) {
      if (k === "type" || k === "kind" || k === "name" || k === "parameters") continue;
      stepParameters[k] = v;
    }
    if (step.parameters !== undefined && !isRecord(step.parameters)) {
      throw badSpec('the step\'s "parameters" must be an object');
    }
    return withParameters(findBuiltin(id)!, {
      ...(topParameters ?? {}),
      ...stepParameters,
      ...((step.parameters as Record<string, unknown> | undefined) ?? {}),
    });
  }
  throw badSpec('it names no built-in workflow (expected "builtin" or "steps")');
}

/**
 * Picks the workflow a request asks for. `workflow_specification` (object or JSON string) takes precedence
 * over `workflow_id`; `workspace_name` is accepted and ignored. Throws `VidrtcError`: `NOT_FOUND` for an
 * unknown id (the message lists the built-ins), `BAD_REQUEST` for a specification that doesn't name a
 * built-in, or when neither is given. Parameters in the specification are validated here.
 */
export function resolveWorkflow(config: {
  workflow_id?: string | null;
  workspace_name?: string | null;
  workflow_specification?: unknown;
}): WorkflowDefinition {
  let def: WorkflowDefinition;
  if (config.workflow_specification !== undefined && config.workflow_specification !== null) {
    def = resolveSpecification(config.workflow_specification);
  } else if (typeof config.workflow_id === "string" && config.workflow_id.trim() !== "") {
    const found = findBuiltin(config.workflow_id.trim());
    if (!found) {
      throw new VidrtcError(
        "NOT_FOUND",
        `Workflow "${config.workflow_id}" was not found. This server's built-in workflows are ${builtinList()}.`,
        {
          status: 404,
          details: { workflowId: config.workflow_id, builtins: BUILTIN_WORKFLOWS.map((w) => w.id) },
        },
      );
    }
    def = withParameters(found, {});
  } else {
    throw new VidrtcError(
      "BAD_REQUEST",
      `The request names no workflow: set workflow_id to one of ${builtinList()}, or send a workflow_specification.`,
      { status: 400 },
    );
  }
  if (def.parameters) checkParameters(def.id, def.parameters);
  return def;
}

function checkParameters(id: string, parameters: Record<string, unknown>): Record<string, number> {
  try {
    return normalizeParameters(id, parameters);
  } catch (error) {
    if (error instanceof ParameterError) {
      throw new VidrtcError("BAD_REQUEST", error.message, { status: 400, cause: error });
    }
    throw error;
  }
}

/** The outputs of one frame: JSON data outputs, and the image outputs that were asked for. */
export interface FrameResult {
  data: Record<string, unknown>;
  images: Record<string, { jpeg?: Uint8Array; rgb?: Uint8Array; width: number; height: number }>;
}

interface Pending {
  resolve: (result: FrameResult) => void;
  reject: (error: unknown) => void;
}

type WorkerMessage =
  | { type: "ready"; threadId: number }
  | { type: "result"; seq: number; result: EngineResult }
  | { type: "error"; seq: number; message: string; parameterError: boolean };

/**
 * The parent's Node options minus those a worker rejects (`--input-type`, and `-e`/`-p` with their script),
 * since workers inherit `process.execArgv` (e.g. tsx's loader, `--enable-source-maps`).
 */
export function workerExecArgv(parent: readonly string[]): string[] {
  // Workers accept only per-isolate options: keep the module-loading ones (so a worker started
  // from TypeScript sources or with source maps behaves like its parent) and drop the rest
  // (V8 and process-wide flags such as --max-old-space-size make `new Worker` throw).
  const withValue = new Set([
    "--import",
    "--require",
    "-r",
    "--loader",
    "--experimental-loader",
    "--conditions",
    "-C",
  ]);
  const plain = new Set(["--enable-source-maps", "--experimental-vm-modules", "--no-warnings"]);
  const out: string[] = [];
  for (let i = 0; i < parent.length; i++) {
    const a = parent[i]!;
    const name = a.split("=", 1)[0]!;
    if (withValue.has(name)) {
      if (a.includes("=")) out.push(a);
      else if (i + 1 < parent.length) out.push(a, parent[++i]!);
    } else if (plain.has(a)) {
      out.push(a);
    } else if (a === "-e" || a === "-p" || a === "--eval" || a === "--print" || a === "-pe") {
      i++; // and its script
    }
  }
  return out;
}

/**
 * Starts the worker. From the built `.js` files the worker is `./worker.js`; from TypeScript sources
 * (vitest, tsx) Node can't run a `.ts` worker by itself, so a tiny bootstrap registers tsx's loader
 * in the worker first and then imports `./worker.ts`.
 */
function startWorker(data: WorkflowWorkerData): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const execArgv = workerExecArgv(process.execArgv);
  if (!fromSource) {
    return new Worker(new URL("./worker.js", import.meta.url), {
      workerData: data,
      name: `workflow:${data.workflowId}`,
      execArgv,
    });
  }
  const workerUrl = new URL("./worker.ts", import.meta.url).href;
  let tsxApi: string;
  try {
    // tsx's ESM register API (the `import` condition of its "./esm/api" export).
    const pkgPath = createRequire(import.meta.url).resolve("tsx/package.json");
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
      exports?: Record<string, { import?: { default?: string } | string } | string>;
    };
    const entry = pkg.exports?.["./esm/api"];
    const target = typeof entry === "object" ? entry.import : undefined;
    const relative = typeof target === "string" ? target : (target?.default ?? "./dist/esm/api/index.mjs");
    tsxApi = new URL(relative, pathToFileURL(pkgPath)).href;
  } catch (error) {
    throw new VidrtcError(
      "PROCESSING_FAILED",
      "Running the workflow worker from TypeScript sources needs the `tsx` package; build the package (dist) or install tsx.",
      { cause: error },
    );
  }
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(workerUrl)}); })`;
  return new Worker(bootstrap, {
    eval: true,
    workerData: data,
    name: `workflow:${data.workflowId}`,
    execArgv,
  });
}

/**
 * Runs one workflow over a sequence of frames in a `worker_threads` Worker, so the CV work never blocks the
 * main thread (a blocked event loop would make werift lose ICE consent). Frames are processed in the order
 * `process` is called; calls may overlap. The worker keeps the process alive only while frames are pending.
 */
export class WorkflowRunner {
  /** The workflow this runner runs. */
  readonly definition: WorkflowDefinition;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private failure: VidrtcError | null = null;
  private closing: Promise<void> | null = null;
  private workerThreadId: number | null = null;
  private exited = false;
  private readonly ready: Promise<void>;

  /**
   * Starts the worker. Throws `BAD_REQUEST` for invalid parameters (merged over `def.parameters`) and
   * `NOT_FOUND` for a workflow id that isn't built in.
   */
  constructor(def: WorkflowDefinition, options: { parameters?: Record<string, unknown> } = {}) {
    if (!findBuiltin(def.id)) {
      throw new VidrtcError(
        "NOT_FOUND",
        `Workflow "${def.id}" is not built in (built-ins: ${builtinList()}).`,
      );
    }
    const parameters = checkParameters(def.id, { ...(def.parameters ?? {}), ...(options.parameters ?? {}) });
    this.definition = def;
    this.worker = startWorker({ workflowId: def.id, parameters });
    this.worker.unref();
    let markReady: () => void = () => {};
    this.ready = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    this.worker.on("message", (message: WorkerMessage) => {
      if (message.type === "ready") {
        this.workerThreadId = message.threadId;
        markReady();
        return;
      }
      const entry = this.pending.get(message.seq);
      if (!entry) return;
      this.pending.delete(message.seq);
      this.updateRef();
      if (message.type === "result") entry.resolve(message.result);
      else
        entry.reject(
          new VidrtcError(
            message.parameterError ? "BAD_REQUEST" : "PROCESSING_FAILED",
            `Workflow "${def.id}" failed: ${message.message}`,
          ),
        );
    });
    this.worker.on("error", (error) => {
      this.fail(
        new VidrtcError("PROCESSING_FAILED", `The workflow worker crashed: ${error.message}`, {
          cause: error,
        }),
      );
      markReady();
    });
    this.worker.on("exit", (code) => {
      this.exited = true;
      if (this.closing === null) {
        this.fail(
          new VidrtcError("PROCESSING_FAILED", `The workflow worker exited unexpectedly (code ${code}).`),
        );
      }
      markReady();
    });
  }

  /** The worker's thread id once it has started (never the main thread's 0), else `null`. */
  get threadId(): number | null {
    return this.workerThreadId;
  }

  /** False once the worker thread has exited (after `close()`, or a crash). */
  get running(): boolean {
    return !this.exited;
  }

  /** Resolves when the worker has loaded (or failed); `process` does not need it, it queues. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /**
   * Runs the workflow on one frame. `want.jpeg` lists image outputs to JPEG-encode (quality 75, for
   * data outputs), `want.rgb` image outputs to return as raw rgb24 (for a video track); only those image
   * outputs are produced. Unknown image names are ignored. The frame's buffer is copied, not transferred.
   * Rejects with `PROCESSING_FAILED` if the workflow fails or the worker dies, `ABORTED` after `close()`.
   */
  process(frame: DecodedFrame, want: { jpeg?: string[]; rgb?: string[] } = {}): Promise<FrameResult> {
    if (this.closing !== null) {
      return Promise.reject(new VidrtcError("ABORTED", "The workflow runner is closed."));
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    const seq = ++this.seq;
    return new Promise<FrameResult>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.updateRef();
      const request: WorkflowWorkerRequest = {
        type: "frame",
        seq,
        frame: {
          index: frame.index,
          ptsSeconds: frame.ptsSeconds,
          width: frame.width,
          height: frame.height,
          // A view into a larger buffer would be cloned whole: send only its bytes.
          rgb: frame.rgb.byteLength === frame.rgb.buffer.byteLength ? frame.rgb : frame.rgb.slice(),
        },
        want: { jpeg: [...(want.jpeg ?? [])], rgb: [...(want.rgb ?? [])] },
      };
      try {
        this.worker.postMessage(request);
      } catch (error) {
        this.pending.delete(seq);
        this.updateRef();
        reject(
          new VidrtcError("PROCESSING_FAILED", "Could not send the frame to the workflow worker.", {
            cause: error,
          }),
        );
      }
    });
  }

  /** Terminates the worker; pending frames reject with `ABORTED`. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.rejectAll(new VidrtcError("ABORTED", "The workflow runner was closed."));
      this.closing = this.worker.terminate().then(
        () => undefined,
        () => undefined,
      );
    }
    return this.closing;
  }

  private fail(error: VidrtcError): void {
    if (this.failure === null) this.failure = error;
    this.rejectAll(error);
  }

  private rejectAll(error: VidrtcError): void {
    const entries = [...this.pending.values()];
    this.pending.clear();
    this.updateRef();
    for (const entry of entries) entry.reject(error);
  }

  private updateRef(): void {
    if (this.pending.size > 0) this.worker.ref();
    else this.worker.unref();
  }
}
