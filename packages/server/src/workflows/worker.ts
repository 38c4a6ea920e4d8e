/**
 * Worker-thread entry of {@link WorkflowRunner}: receives frames, runs the built-in workflow engine,
 * posts results back (image buffers transferred, not copied).
 *
 * Messages in: `{ type: "frame", seq, frame, want }`. Out: `{ type: "ready", threadId }` once,
 * then `{ type: "result", seq, result }` or `{ type: "error", seq, message, parameterError }` per frame.
 */
import { isMainThread, parentPort, threadId, workerData } from "node:worker_threads";
import { type EngineFrame, type EngineWant, ParameterError, WorkflowEngine } from "./engine.js";

/** Data the runner passes to the worker at start. */
export interface WorkflowWorkerData {
  workflowId: string;
  parameters: Record<string, unknown>;
}

/** A request from the runner. */
export interface WorkflowWorkerRequest {
  type: "frame";
  seq: number;
  frame: EngineFrame;
  want: EngineWant;
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const init = workerData as WorkflowWorkerData;
  const engine = new WorkflowEngine(init.workflowId, init.parameters);
  port.on("message", (message: WorkflowWorkerRequest) => {
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
  });
  port.postMessage({ type: "ready", threadId });
}
