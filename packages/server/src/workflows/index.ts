/**
 * The workflows of the local server as requests see them, and the worker-thread runner.
 * Workflows are one file each (`builtin/`), listed in a {@link WorkflowRegistry} (`registry.ts`), which
 * also resolves what a request names (see there for the `workflow_specification` forms).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { VidrtcError } from "@vidrtc/protocol";
import type { DecodedFrame } from "../media/decode.js";
import { BUILTIN_REGISTRY, isBuiltinWorkflow, type WorkflowRegistry } from "./registry.js";
import type { WorkflowWorkerData, WorkflowWorkerRequest } from "./worker.js";
import type { EngineResult, WorkflowDefinition } from "./workflow.js";

export { type AnyWorkflow, type RegistryEntry, WorkflowRegistry } from "./registry.js";
export {
  defineWorkflow,
  type EngineFrame,
  ParameterError,
  type ParameterIssue,
  type ParameterSchema,
  type ParameterSpec,
  type Workflow,
  type WorkflowDefinition,
  type WorkflowFrameOutput,
  type WorkflowInstance,
  type WorkflowOutputSpec,
} from "./workflow.js";

/** The workflows this server runs. */
export const BUILTIN_WORKFLOWS: readonly WorkflowDefinition[] = Object.freeze(
  BUILTIN_REGISTRY.definitions().map((def) =>
    Object.freeze({ ...def, outputs: Object.freeze(def.outputs) as WorkflowDefinition["outputs"] }),
  ),
);

/**
 * Picks the workflow a request asks for, from `registry` (default: the built-ins); see
 * {@link WorkflowRegistry.resolve}. Throws `VidrtcError` (`NOT_FOUND`, `BAD_REQUEST`).
 */
export function resolveWorkflow(
  config: {
    workflow_id?: string | null;
    workspace_name?: string | null;
    workflow_specification?: unknown;
  },
  registry: WorkflowRegistry = BUILTIN_REGISTRY,
): WorkflowDefinition {
  return registry.resolve(config);
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
   * `NOT_FOUND` for a workflow id that isn't in `options.registry` (default: the built-ins).
   */
  constructor(
    def: WorkflowDefinition,
    options: { parameters?: Record<string, unknown>; registry?: WorkflowRegistry } = {},
  ) {
    const registry = options.registry ?? BUILTIN_REGISTRY;
    const entry = registry.entry(def.id);
    if (!entry) {
      throw new VidrtcError(
        "NOT_FOUND",
        `Workflow "${def.id}" is not built in (built-ins: ${registry
          .ids()
          .map((id) => `"${id}"`)
          .join(", ")}).`,
      );
    }
    const parameters = registry.checkParameters(def.id, {
      ...(def.parameters ?? {}),
      ...(options.parameters ?? {}),
    });
    this.definition = def;
    const data: WorkflowWorkerData = { workflowId: def.id, parameters };
    if (entry.module !== undefined && !isBuiltinWorkflow(entry.workflow)) data.module = entry.module;
    this.worker = startWorker(data);
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
