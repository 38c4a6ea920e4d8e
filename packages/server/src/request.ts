/**
 * Validation of the `POST /initialise_webrtc_worker` body (PROTOCOL.md §2), answering like
 * FastAPI/pydantic does: a list of `{type, loc, msg, input}` issues for a 422, unknown keys ignored.
 */

/** One validation problem, FastAPI style (`loc` starts with `"body"`). */
export interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

/** An ICE server as a client may send it in `webrtc_config`. */
export interface RequestIceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** `workflow_configuration` after validation (unknown keys dropped). */
export interface WorkflowConfiguration {
  type: "WorkflowConfiguration";
  /** An object, or a JSON string of one (as the workflow resolver accepts). */
  workflow_specification: Record<string, unknown> | string | null;
  workspace_name: string | null;
  workflow_id: string | null;
  image_input_name: string;
  workflows_parameters: Record<string, unknown> | null;
}

/** A validated initialise request, with Roboflow's defaults applied. */
export interface InitialiseRequest {
  workflowConfiguration: WorkflowConfiguration;
  offer: { type: string; sdp: string };
  /** Body `api_key`, or the `Authorization: Bearer` key when present (header wins). */
  apiKey: string | null;
  /** `webrtc_config.iceServers`, or null when absent. */
  iceServers: RequestIceServer[] | null;
  /** `webrtc_realtime_processing` (default true, as on Roboflow's server). */
  realtime: boolean;
  /** `stream_output` as sent (`null` = auto-detect). */
  streamOutput: string[] | null;
  /** `data_output` as sent (`null`/`[]` = no data fields). */
  dataOutput: string[] | null;
  declaredFps: number | null;
  /** Seconds; default 3600; `null` (explicit) = no limit. */
  processingTimeoutSeconds: number | null;
}

/** Result of {@link parseInitialiseRequest}. */
export type ParseResult = { ok: true; request: InitialiseRequest } | { ok: false; detail: ValidationIssue[] };

/** Default `processing_timeout` when the field is omitted (Roboflow's default). */
export const DEFAULT_PROCESSING_TIMEOUT_SECONDS = 3600;

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

class Collector {
  readonly issues: ValidationIssue[] = [];

  add(type: string, loc: (string | number)[], msg: string, input: unknown): void {
    this.issues.push({ type, loc: ["body", ...loc], msg, input });
  }

  missing(loc: (string | number)[], input: unknown): void {
    this.add("missing", loc, "Field required", input);
  }

  optString(obj: Obj, key: string, loc: (string | number)[]): string | null {
    const v = obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string") {
      this.add("string_type", [...loc, key], "Input should be a valid string", v);
      return null;
    }
    return v;
  }

  optStringList(obj: Obj, key: string): string[] | null {
    const v = obj[key];
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v)) {
      this.add("list_type", [key], "Input should be a valid list", v);
      return null;
    }
    const out: string[] = [];
    v.forEach((item, i) => {
      if (typeof item !== "string") this.add("string_type", [key, i], "Input should be a valid string", item);
      else out.push(item);
    });
    return out;
  }

  optDict(obj: Obj, key: string, loc: (string | number)[]): Record<string, unknown> | null {
    const v = obj[key];
    if (v === undefined || v === null) return null;
    if (!isObject(v)) {
      this.add("dict_type", [...loc, key], "Input should be a valid dictionary", v);
      return null;
    }
    return v;
  }
}

function parseWorkflowConfiguration(c: Collector, body: Obj): WorkflowConfiguration | null {
  const raw = body.workflow_configuration;
  if (raw === undefined) {
    c.missing(["workflow_configuration"], body);
    return null;
  }
  const loc = ["workflow_configuration"];
  if (!isObject(raw)) {
    c.add(
      "model_attributes_type",
      loc,
      "Input should be a valid dictionary or object to extract fields from",
      raw,
    );
    return null;
  }
  const before = c.issues.length;
  if (raw.type === undefined) c.missing([...loc, "type"], raw);
  else if (raw.type !== "WorkflowConfiguration") {
    c.issues.push({
      type: "literal_error",
      loc: ["body", ...loc, "type"],
      msg: "Input should be 'WorkflowConfiguration'",
      input: raw.type,
      ctx: { expected: "'WorkflowConfiguration'" },
    });
  }
  const spec =
    typeof raw.workflow_specification === "string"
      ? raw.workflow_specification
      : c.optDict(raw, "workflow_specification", loc);
  const workspace = c.optString(raw, "workspace_name", loc);
  const id = c.optString(raw, "workflow_id", loc);
  const inputName = raw.image_input_name === undefined ? "image" : c.optString(raw, "image_input_name", loc);
  const params = c.optDict(raw, "workflows_parameters", loc);
  if (c.issues.length > before) return null;
  return {
    type: "WorkflowConfiguration",
    workflow_specification: spec,
    workspace_name: workspace,
    workflow_id: id,
    image_input_name: inputName ?? "image",
    workflows_parameters: params,
  };
}

function parseOffer(c: Collector, body: Obj): { type: string; sdp: string } | null {
  const raw = body.webrtc_offer;
  if (raw === undefined) {
    c.missing(["webrtc_offer"], body);
    return null;
  }
  if (!isObject(raw)) {
    c.add(
      "model_attributes_type",
      ["webrtc_offer"],
      "Input should be a valid dictionary or object to extract fields from",
      raw,
    );
    return null;
  }
  const before = c.issues.length;
  for (const key of ["type", "sdp"] as const) {
    if (raw[key] === undefined || raw[key] === null) c.missing(["webrtc_offer", key], raw);
    else if (typeof raw[key] !== "string")
      c.add("string_type", ["webrtc_offer", key], "Input should be a valid string", raw[key]);
  }
  if (c.issues.length > before) return null;
  const type = raw.type as string;
  const sdp = raw.sdp as string;
  if (type !== "offer") {
    c.add(
      "value_error",
      ["webrtc_offer", "type"],
      `Value error, expected an SDP offer, got type '${type}'`,
      type,
    );
    return null;
  }
  if (!sdp.startsWith("v=0")) {
    c.add(
      "value_error",
      ["webrtc_offer", "sdp"],
      "Value error, not an SDP session description (must start with v=0)",
      sdp.slice(0, 40),
    );
    return null;
  }
  return { type, sdp };
}

function parseIceServers(c: Collector, body: Obj): RequestIceServer[] | null {
  const raw = body.webrtc_config;
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    c.add(
      "model_attributes_type",
      ["webrtc_config"],
      "Input should be a valid dictionary or object to extract fields from",
      raw,
    );
    return null;
  }
  const list = raw.iceServers;
  if (list === undefined) {
    c.missing(["webrtc_config", "iceServers"], raw);
    return null;
  }
  if (!Array.isArray(list)) {
    c.add("list_type", ["webrtc_config", "iceServers"], "Input should be a valid list", list);
    return null;
  }
  const out: RequestIceServer[] = [];
  list.forEach((server, i) => {
    const loc = ["webrtc_config", "iceServers", i];
    if (!isObject(server)) {
      c.add(
        "model_attributes_type",
        loc,
        "Input should be a valid dictionary or object to extract fields from",
        server,
      );
      return;
    }
    const urls = server.urls;
    let urlList: string[] | null = null;
    if (urls === undefined) c.missing([...loc, "urls"], server);
    else if (typeof urls === "string") urlList = [urls];
    else if (Array.isArray(urls) && urls.every((u) => typeof u === "string")) urlList = urls as string[];
    else c.add("string_type", [...loc, "urls"], "Input should be a valid string or a list of strings", urls);
    const username = c.optString(server, "username", loc);
    const credential = c.optString(server, "credential", loc);
    if (urlList) {
      out.push({
        urls: urlList,
        ...(username === null ? {} : { username }),
        ...(credential === null ? {} : { credential }),
      });
    }
  });
  return out;
}

function parseBool(c: Collector, body: Obj, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined) return fallback;
  if (typeof v === "boolean") return v;
  // pydantic (lax mode) accepts these spellings too.
  if (v === 0 || v === 1) return v === 1;
  if (typeof v === "string") {
    const s = v.toLowerCase();
    if (["true", "1", "yes", "on", "t", "y"].includes(s)) return true;
    if (["false", "0", "no", "off", "f", "n"].includes(s)) return false;
  }
  c.add("bool_parsing", [key], "Input should be a valid boolean", v);
  return fallback;
}

function parseNumber(c: Collector, body: Obj, key: string, integer: boolean): number | null | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    c.add(
      integer ? "int_type" : "float_type",
      [key],
      integer ? "Input should be a valid integer" : "Input should be a valid number",
      v,
    );
    return undefined;
  }
  if (integer && !Number.isInteger(v)) {
    c.add("int_from_float", [key], "Input should be a valid integer, got a number with a fractional part", v);
    return undefined;
  }
  return v;
}

/**
 * Validates a parsed JSON body. `authorization` is the raw `Authorization` header; a
 * `Bearer <key>` there overrides the body's `api_key`.
 */
export function validateInitialiseRequest(body: unknown, authorization?: string | null): ParseResult {
  const c = new Collector();
  if (!isObject(body)) {
    c.issues.push({
      type: "model_attributes_type",
      loc: ["body"],
      msg: "Input should be a valid dictionary or object to extract fields from",
      input: body,
    });
    return { ok: false, detail: c.issues };
  }
  const workflowConfiguration = parseWorkflowConfiguration(c, body);
  const offer = parseOffer(c, body);
  const bodyKey = c.optString(body, "api_key", []);
  const iceServers = parseIceServers(c, body);
  const realtime = parseBool(c, body, "webrtc_realtime_processing", true);
  const streamOutput = c.optStringList(body, "stream_output");
  const dataOutput = c.optStringList(body, "data_output");
  const declaredFps = parseNumber(c, body, "declared_fps", false);
  const timeout = parseNumber(c, body, "processing_timeout", true);
  if (typeof timeout === "number" && timeout <= 0) {
    c.add("greater_than", ["processing_timeout"], "Input should be greater than 0", timeout);
  }
  if (c.issues.length > 0 || workflowConfiguration === null || offer === null) {
    return { ok: false, detail: c.issues };
  }
  const bearer = authorization?.match(/^\s*Bearer\s+(\S+)\s*$/i)?.[1] ?? null;
  return {
    ok: true,
    request: {
      workflowConfiguration,
      offer,
      apiKey: bearer ?? bodyKey,
      iceServers,
      realtime,
      streamOutput,
      dataOutput,
      declaredFps: declaredFps ?? null,
      processingTimeoutSeconds: timeout === undefined ? DEFAULT_PROCESSING_TIMEOUT_SECONDS : timeout,
    },
  };
}

/** The 422 detail FastAPI gives for a body that is not valid JSON. */
export function jsonErrorDetail(error: unknown): ValidationIssue[] {
  const message = error instanceof Error ? error.message : String(error);
  return [
    { type: "json_invalid", loc: ["body", 0], msg: "JSON decode error", input: {}, ctx: { error: message } },
  ];
}

/** Image/data output names a workflow declares. */
export interface OutputNames {
  all: string[];
  images: string[];
}

/**
 * Resolves `stream_output` like Roboflow's server: `null` = the first image output (auto-detect),
 * `[]` or only empty strings = no video, otherwise the first non-empty name.
 * Returns `undefined` when no video is wanted or available.
 */
export function resolveStreamOutput(streamOutput: string[] | null, outputs: OutputNames): string | undefined {
  if (streamOutput === null) return outputs.images[0];
  return streamOutput.find((name) => name.length > 0);
}

/**
 * Checks `stream_output` / `data_output` names against a workflow's outputs.
 * Returns an error message for a 400, or null when every name is known.
 */
export function checkOutputNames(
  request: Pick<InitialiseRequest, "streamOutput" | "dataOutput">,
  outputs: OutputNames,
): string | null {
  const problems: string[] = [];
  const unknownData = (request.dataOutput ?? []).filter(
    (name) => name !== "*" && name !== "" && !outputs.all.includes(name),
  );
  if (unknownData.length > 0) problems.push(`data_output names unknown outputs: ${unknownData.join(", ")}`);
  const stream = request.streamOutput ?? [];
  const unknownStream = stream.filter((name) => name !== "" && !outputs.all.includes(name));
  if (unknownStream.length > 0)
    problems.push(`stream_output names unknown outputs: ${unknownStream.join(", ")}`);
  const first = stream.find((name) => name.length > 0);
  if (first !== undefined && outputs.all.includes(first) && !outputs.images.includes(first)) {
    problems.push(`stream_output '${first}' is not an image output`);
  }
  if (problems.length === 0) return null;
  return `Invalid output configuration: ${problems.join("; ")}. Available outputs: ${outputs.all.join(", ")} (images: ${outputs.images.join(", ") || "none"}).`;
}
