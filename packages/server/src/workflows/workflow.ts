/**
 * The one interface every workflow implements. A workflow is one file that exports one
 * {@link Workflow} (see `builtin/` for the built-ins); a {@link WorkflowRegistry} lists them, and both
 * the request validation and the worker thread find workflows only through a registry.
 */

/** A frame as a workflow sees it (a structural subset of `DecodedFrame`): rgb24, `width * height * 3` bytes. */
export interface EngineFrame {
  /** 1-based frame number, in presentation order. */
  index: number;
  /** Presentation time in seconds. */
  ptsSeconds: number;
  /** Frame width in pixels. */
  width: number;
  /** Frame height in pixels. */
  height: number;
  /** Packed rgb24 pixels, row-major, `width * height * 3` bytes. */
  rgb: Uint8Array;
}

/** Which image outputs to produce, and how. */
export interface EngineWant {
  /** Image output names to JPEG-encode. */
  jpeg?: string[];
  /** Image output names to return as raw rgb24. */
  rgb?: string[];
}

/** One image output. */
export interface EngineImage {
  jpeg?: Uint8Array;
  rgb?: Uint8Array;
  width: number;
  height: number;
}

/** Result of processing one frame. */
export interface EngineResult {
  data: Record<string, unknown>;
  images: Record<string, EngineImage>;
}

/** One output of a workflow: `data` outputs are JSON values, `image` outputs are frames. */
export interface WorkflowOutputSpec {
  /** The output's name, as used in `stream_output` and `data_output`. */
  name: string;
  /** `data` (a JSON value per frame) or `image` (a frame). */
  kind: "data" | "image";
}

/** A workflow as requests see it (and, when resolved from a request, the parameters its specification set). */
export interface WorkflowDefinition {
  /** The workflow's id. */
  id: string;
  /** One-line human-readable description. */
  description: string;
  /** Every output it produces. */
  outputs: WorkflowOutputSpec[];
  /** Parameters from an inline specification; `WorkflowRunner`'s own `parameters` override them. */
  parameters?: Record<string, unknown>;
}

/** One numeric parameter: its default and its inclusive range. */
export interface ParameterSpec {
  /** `integer` also rejects values with a fraction. */
  type: "number" | "integer";
  /** Value used when the request does not set the parameter. */
  default: number;
  /** Smallest allowed value (inclusive). */
  min: number;
  /** Largest allowed value (inclusive). */
  max: number;
  /** What the parameter does. */
  description: string;
}

/** A workflow's parameter schema: one entry per parameter it reads. */
export type ParameterSchema<P extends Record<string, number>> = { readonly [K in keyof P]: ParameterSpec };

/** What a workflow returns for one frame. */
export interface WorkflowFrameOutput {
  /** The data outputs (JSON values), by output name. */
  data: Record<string, unknown>;
  /**
   * The image outputs, by output name, as functions returning a fresh rgb24 buffer of the frame's size.
   * Only those a client asked for are called, so an unrequested image costs nothing.
   */
  images?: Record<string, () => Uint8Array>;
}

/** A running workflow: one per session, it may keep state between frames (frames come in order). */
export interface WorkflowInstance {
  /** Processes one frame and returns its outputs. */
  processFrame(frame: EngineFrame): WorkflowFrameOutput;
}

/** A workflow: everything the server needs to know about it, in one object. */
export interface Workflow<P extends Record<string, number> = Record<string, number>> {
  /** The id requests name it by (`workflow_id`, `{"builtin": id}` or a `vidrtc/<id>@v1` step). */
  readonly id: string;
  /** One-line human-readable description. */
  readonly description: string;
  /** Every output it produces; `stream_output`/`data_output` names are checked against these. */
  readonly outputs: readonly WorkflowOutputSpec[];
  /** Its parameters, validated (and defaulted) when the request arrives. */
  readonly parameters: ParameterSchema<P>;
  /** Starts it with complete, validated parameters. Runs inside the workflow worker thread. */
  create(parameters: P): WorkflowInstance;
}

/** Identity with the types checked: `export default defineWorkflow({ id, outputs, parameters, create })`. */
export function defineWorkflow<P extends Record<string, number>>(workflow: Workflow<P>): Workflow<P> {
  return Object.freeze(workflow);
}

/** One invalid parameter, in the shape of a FastAPI/pydantic 422 issue (without `loc`'s prefix). */
export interface ParameterIssue {
  /** pydantic's error type: `float_parsing`, `greater_than_equal`, `less_than_equal` or `int_from_float`. */
  type: string;
  /** The parameter's name. */
  parameter: string;
  /** Human-readable message. */
  msg: string;
  /** The value that was sent. */
  input: unknown;
  /** The violated bound, e.g. `{ ge: 0 }` or `{ le: 1 }`. */
  ctx?: Record<string, unknown>;
}

/** Thrown for an invalid parameter value; `issue` says which and why. */
export class ParameterError extends Error {
  /** Which parameter is invalid and why, when known. */
  readonly issue: ParameterIssue | undefined;
  constructor(message: string, issue?: ParameterIssue) {
    super(message);
    this.name = "ParameterError";
    this.issue = issue;
  }
}

/**
 * Validates and completes parameters against a schema. Unknown keys are ignored (clients may send
 * parameters meant for other workflows); known keys must be numbers (or numeric strings) in range.
 * Throws {@link ParameterError}.
 */
export function normalizeWithSchema(
  schema: Readonly<Record<string, ParameterSpec>>,
  parameters: Record<string, unknown> | undefined,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, spec] of Object.entries(schema)) {
    out[key] = spec.default;
    const raw = parameters?.[key];
    if (raw === undefined || raw === null) continue;
    const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
    const { min, max } = spec;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      const msg = `Workflow parameter "${key}" must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}.`;
      const bad = typeof value !== "number" || !Number.isFinite(value);
      throw new ParameterError(msg, {
        type: bad ? "float_parsing" : value < min ? "greater_than_equal" : "less_than_equal",
        parameter: key,
        msg,
        input: raw,
        ...(bad ? {} : { ctx: value < min ? { ge: min } : { le: max } }),
      });
    }
    if (spec.type === "integer" && !Number.isInteger(value)) {
      const msg = `Workflow parameter "${key}" must be an integer, got ${JSON.stringify(raw)}.`;
      throw new ParameterError(msg, { type: "int_from_float", parameter: key, msg, input: raw });
    }
    out[key] = value;
  }
  return out;
}
