/**
 * Worker-thread entry of {@link WorkflowRunner}: receives frames, runs the workflow engine,
 * posts results back (image buffers transferred, not copied).
 *
 * The workflow is a built-in found by id, or, when `module` is set, the workflow that module exports
 * (its default export, or a named export with that id), imported here.
 *
 * Messages in: `{ type: "frame", seq, frame, want }`. Out: `{ type: "ready", threadId }` once,
 * then `{ type: "result", seq, result }` or `{ type: "error", seq, message, parameterError }` per frame.
 */
import { isMainThread, type MessagePort, parentPort, threadId, workerData } from "node:worker_threads";
import { WorkflowEngine } from "./engine.js";
import { builtinWorkflow } from "./registry.js";
import { type EngineFrame, type EngineWant, ParameterError, type Workflow } from "./workflow.js";

/** Data the runner passes to the worker at start. */
export interface WorkflowWorkerData {
  workflowId: string;
  parameters: Record<string, unknown>;
  /** `file:` URL of the module exporting the workflow; absent for a built-in. */
  module?: string;
}

/** A request from the runner. */
export interface WorkflowWorkerRequest {
  type: "frame";
  seq: number;
  frame: EngineFrame;
  want: EngineWant;
}

function isWorkflow(value: unknown, id: string): value is Workflow {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { id?: unknown }).id === id &&
    typeof (value as { create?: unknown }).create === "function"
  );
}

async function loadWorkflow(init: WorkflowWorkerData): Promise<Workflow> {
  if (init.module === undefined) {
    const builtin = builtinWorkflow(init.workflowId);
    if (!builtin) throw new ParameterError(`Unknown built-in workflow "${init.workflowId}".`);
    return builtin;
  }
  const exports = (await import(init.module)) as Record<string, unknown>;
  const found = [exports.default, ...Object.values(exports)].find((v) => isWorkflow(v, init.workflowId));
  if (!found) throw new Error(`${init.module} exports no workflow with id "${init.workflowId}".`);
  return found as Workflow;
}

function serve(port: MessagePort, engine: WorkflowEngine, message: WorkflowWorkerRequest): void {
  if (message?.type !== "frame") return;
  try {
    const result = engine.process(message.frame, message.want);
    const transfer: ArrayBuffer[] = [];
    for (const image of Object.values(result.images)) {
      if (image.jpeg) transfer.push(image.jpeg.buffer as ArrayBuffer);
      if (image.rgb) transfer.push(image.rgb.buffer as ArrayBuffer);
    }
    port.postMessage({ type: "result", seq: message.seq, result }, transfer);
  } catch (error) {
    port.postMessage({
      type: "error",
      seq: message.seq,
      message: error instanceof Error ? error.message : String(error),
      parameterError: error instanceof ParameterError,
    });
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const init = workerData as WorkflowWorkerData;
  // Frames that arrive while a workflow module loads wait here, in order.
  const queued: WorkflowWorkerRequest[] = [];
  let engine: WorkflowEngine | null = null;
  port.on("message", (message: WorkflowWorkerRequest) => {
    if (engine) serve(port, engine, message);
    else queued.push(message);
  });
  const started = (workflow: Workflow): void => {
    engine = new WorkflowEngine(workflow, init.parameters);
    port.postMessage({ type: "ready", threadId });
    for (const message of queued.splice(0)) serve(port, engine, message);
  };
  const builtin = init.module === undefined ? builtinWorkflow(init.workflowId) : undefined;
  if (builtin) started(builtin);
  // A rejection here is an uncaught error of the worker: the runner sees its "error" event.
  else void loadWorkflow(init).then(started);
}
