/**
 * The workflow registry: which workflows a server runs, and how a request names one.
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
import { VidrtcError } from "@vidrtc/protocol";
import delay from "./builtin/delay.js";
import frameStats from "./builtin/frame-stats.js";
import motion from "./builtin/motion.js";
import {
  normalizeWithSchema,
  ParameterError,
  type Workflow,
  type WorkflowDefinition,
  type WorkflowOutputSpec,
} from "./workflow.js";

/** A workflow of any parameter type, as a registry holds them. */
// biome-ignore lint/suspicious/noExplicitAny: a registry holds workflows of any parameter type.
export type AnyWorkflow = Workflow<any>;

/** The built-in workflows, in the order they are listed. Adding one: a file in `builtin/` and a line here. */
const BUILTINS: readonly AnyWorkflow[] = [frameStats, delay, motion];

/** How a registered workflow is found by the worker thread. */
export interface RegistryEntry {
  /** The workflow itself. */
  workflow: AnyWorkflow;
  /**
   * URL (`file:`) of the module that exports the workflow (as its default export or a named one), which
   * the worker thread imports. Omitted for the built-ins, which the worker knows.
   */
  module?: string;
}

/** The ids the worker thread knows without a module URL. */
export function isBuiltinWorkflow(workflow: AnyWorkflow): boolean {
  return BUILTINS.includes(workflow);
}

/** The built-in workflow with this id, for the worker thread. */
export function builtinWorkflow(id: string): AnyWorkflow | undefined {
  return BUILTINS.find((w) => w.id === id);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A set of workflows by id. {@link WorkflowRegistry.withBuiltins} starts from the server's own. */
export class WorkflowRegistry {
  readonly #entries = new Map<string, RegistryEntry>();

  /** A registry with the built-in workflows (`frame-stats`, `delay`, `motion`). */
  static withBuiltins(): WorkflowRegistry {
    const registry = new WorkflowRegistry();
    for (const workflow of BUILTINS) registry.register(workflow);
    return registry;
  }

  /**
   * Adds a workflow. A workflow that is not built in needs `module`, the `file:` URL of its file, so
   * the worker thread can load it (`new URL("./my-workflow.js", import.meta.url).href`).
   * Throws `BAD_REQUEST` for a duplicate id or a missing module URL.
   */
  register(workflow: AnyWorkflow, options: { module?: string | URL } = {}): this {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(workflow.id)) {
      throw new VidrtcError(
        "BAD_REQUEST",
        `Workflow id "${workflow.id}" must be lower-case letters, digits and dashes.`,
      );
    }
    if (this.#entries.has(workflow.id)) {
      throw new VidrtcError("BAD_REQUEST", `A workflow "${workflow.id}" is already registered.`);
    }
    const module = options.module === undefined ? undefined : String(options.module);
    if (module === undefined && !isBuiltinWorkflow(workflow)) {
      throw new VidrtcError(
        "BAD_REQUEST",
        `Workflow "${workflow.id}" is not built in: register it with { module: <file URL of its module> }.`,
      );
    }
    this.#entries.set(workflow.id, module === undefined ? { workflow } : { workflow, module });
    return this;
  }

  /** The entry for an id, or undefined. */
  entry(id: string): RegistryEntry | undefined {
    return this.#entries.get(id);
  }

  /** The workflow with this id, or undefined. */
  get(id: string): AnyWorkflow | undefined {
    return this.#entries.get(id)?.workflow;
  }

  /** Registered ids, in registration order. */
  ids(): string[] {
    return [...this.#entries.keys()];
  }

  /** The registered workflows as request-facing definitions (fresh copies). */
  definitions(): WorkflowDefinition[] {
    return [...this.#entries.values()].map(({ workflow }) => definitionOf(workflow));
  }

  /**
   * Validates and completes parameters for a workflow (see `normalizeWithSchema`); `{}` for an
   * unknown id. Throws {@link ParameterError}.
   */
  normalizeParameters(id: string, parameters: Record<string, unknown> | undefined): Record<string, number> {
    const workflow = this.get(id);
    return workflow ? normalizeWithSchema(workflow.parameters, parameters) : {};
  }

  /**
   * Picks the workflow a request asks for. `workflow_specification` (object or JSON string) takes
   * precedence over `workflow_id`; `workspace_name` is accepted and ignored. Throws `VidrtcError`:
   * `NOT_FOUND` for an unknown id (the message lists the registered ones), `BAD_REQUEST` for a
   * specification that doesn't name one, or when neither is given, or for invalid parameters in the
   * specification (with the {@link ParameterError} as `cause`).
   */
  resolve(config: {
    workflow_id?: string | null;
    workspace_name?: string | null;
    workflow_specification?: unknown;
  }): WorkflowDefinition {
    let def: WorkflowDefinition;
    if (config.workflow_specification !== undefined && config.workflow_specification !== null) {
      def = this.#resolveSpecification(config.workflow_specification);
    } else if (typeof config.workflow_id === "string" && config.workflow_id.trim() !== "") {
      const found = this.get(config.workflow_id.trim());
      if (!found) {
        throw new VidrtcError(
          "NOT_FOUND",
          `Workflow "${config.workflow_id}" was not found. This server's built-in workflows are ${this.#list()}.`,
          { status: 404, details: { workflowId: config.workflow_id, builtins: this.ids() } },
        );
      }
      def = definitionOf(found);
    } else {
      throw new VidrtcError(
        "BAD_REQUEST",
        `The request names no workflow: set workflow_id to one of ${this.#list()}, or send a workflow_specification.`,
        { status: 400 },
      );
    }
    if (def.parameters) this.checkParameters(def.id, def.parameters);
    return def;
  }

  /** {@link normalizeParameters}, throwing `BAD_REQUEST` (cause: the {@link ParameterError}). */
  checkParameters(id: string, parameters: Record<string, unknown>): Record<string, number> {
    try {
      return this.normalizeParameters(id, parameters);
    } catch (error) {
      if (error instanceof ParameterError) {
        throw new VidrtcError("BAD_REQUEST", error.message, { status: 400, cause: error });
      }
      throw error;
    }
  }

  #list(): string {
    return this.ids()
      .map((id) => `"${id}"`)
      .join(", ");
  }

  #badSpec(reason: string): VidrtcError {
    return new VidrtcError(
      "BAD_REQUEST",
      `Unsupported workflow_specification: ${reason}. This server runs only its built-in workflows (${this.#list()}); ` +
        'name one with {"builtin": "<id>"} or {"steps": [{"type": "vidrtc/<id>@v1"}]}.',
    );
  }

  #stepTypeToId(type: string): string | undefined {
    const m = /^(?:vidrtc\/)?([a-z0-9][a-z0-9-]*)(?:@v\d+)?$/i.exec(type.trim());
    const id = m?.[1]?.toLowerCase();
    return id !== undefined && this.get(id) ? id : undefined;
  }

  #resolveSpecification(spec: unknown): WorkflowDefinition {
    let value = spec;
    if (typeof value === "string") {
      try {
        value = JSON.parse(value);
      } catch {
        throw this.#badSpec("it is a string that is not JSON");
      }
    }
    if (!isRecord(value)) throw this.#badSpec("it must be a JSON object");
    const topParameters = value.parameters;
    if (topParameters !== undefined && !isRecord(topParameters))
      throw this.#badSpec('"parameters" must be an object');
    if (value.builtin !== undefined) {
      if (typeof value.builtin !== "string") throw this.#badSpec('"builtin" must be a string');
      const found = this.get(value.builtin) ?? this.get(this.#stepTypeToId(value.builtin) ?? "");
      if (!found) throw this.#badSpec(`"builtin" names an unknown workflow "${value.builtin}"`);
      return definitionOf(found, { ...(topParameters ?? {}) });
    }
    if (Array.isArray(value.steps)) {
      if (value.steps.length !== 1)
        throw this.#badSpec(`it must have exactly one step (it has ${value.steps.length})`);
      const step = value.steps[0];
      if (!isRecord(step)) throw this.#badSpec("its step must be an object");
      const type = step.type ?? step.kind;
      if (typeof type !== "string") throw this.#badSpec('its step has no "type"');
      const id = this.#stepTypeToId(type);
      if (id === undefined) throw this.#badSpec(`step type "${type}" is not a built-in workflow`);
      const stepParameters: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(step)) {
        if (k === "type" || k === "kind" || k === "name" || k === "parameters") continue;
        stepParameters[k] = v;
      }
      if (step.parameters !== undefined && !isRecord(step.parameters)) {
        throw this.#badSpec('the step\'s "parameters" must be an object');
      }
      return definitionOf(this.get(id)!, {
        ...(topParameters ?? {}),
        ...stepParameters,
        ...((step.parameters as Record<string, unknown> | undefined) ?? {}),
      });
    }
    throw this.#badSpec('it names no built-in workflow (expected "builtin" or "steps")');
  }
}

/** A workflow's request-facing definition, with the specification's parameters when there are any. */
function definitionOf(workflow: AnyWorkflow, parameters: Record<string, unknown> = {}): WorkflowDefinition {
  const def: WorkflowDefinition = {
    id: workflow.id,
    description: workflow.description,
    outputs: workflow.outputs.map((o): WorkflowOutputSpec => ({ name: o.name, kind: o.kind })),
  };
  if (Object.keys(parameters).length > 0) def.parameters = parameters;
  return def;
}

/** The registry of the built-ins that the server uses unless given another. */
export const BUILTIN_REGISTRY: WorkflowRegistry = WorkflowRegistry.withBuiltins();
