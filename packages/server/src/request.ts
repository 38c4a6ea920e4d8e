/**
 * Validation of the `POST /initialise_webrtc_worker` body (@vidrtc/protocol's PROTOCOL.md §2), answering like
 * FastAPI/pydantic does: a list of `{type, loc, msg, input}` issues for a 422, unknown keys ignored.
 */

/** One validation problem, FastAPI style (`loc` starts with `"body"`). */
export interface ValidationIssue {
  /** Machine-readable issue type, e.g. `missing` or `string_type`. */
  type: string;
  /** Path of the offending value, starting with `"body"`. */
  loc: (string | number)[];
  /** Human-readable message. */
  msg: string;
  /** The offending input, bounded and with secrets redacted (see `echoInput`). */
  input?: unknown;
  /** Extra context, e.g. `{ expected: ... }`. */
  ctx?: Record<string, unknown>;
}

/** An ICE server as a client may send it in `webrtc_config`. */
export interface RequestIceServer {
  /** STUN/TURN URLs (a single string in the body becomes a one-element list). */
  urls: string[];
  /** TURN user name. */
  username?: string;
  /** TURN password. */
  credential?: string;
}

/** `workflow_configuration` after validation (unknown keys dropped). */
export interface WorkflowConfiguration {
  /** Always `"WorkflowConfiguration"`. */
  type: "WorkflowConfiguration";
  /** An object, or a JSON string of one (as the workflow resolver accepts). */
  workflow_specification: Record<string, unknown> | string | null;
  /** Workspace of `workflow_id`, or `null`. */
  workspace_name: string | null;
  /** Id of the workflow to run, or `null` with an inline specification. */
  workflow_id: string | null;
  /** Name of the workflow's image input. */
  image_input_name: string;
  /** Extra workflow parameters, or `null`. */
  workflows_parameters: Record<string, unknown> | null;
}

/** A validated initialise request, with Roboflow's defaults applied. */
export interface InitialiseRequest {
  /** The validated `workflow_configuration`. */
  workflowConfiguration: WorkflowConfiguration;
  /** The validated `webrtc_offer`. */
  offer: {
    /** Always `"offer"` (anything else is a 422). */
    type: string;
    /** The client's SDP offer. */
    sdp: string;
  };
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
  /** `declared_fps`, or `null` when absent. */
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

/** At most this many issues are listed in a 422 body (a final `too_many_errors` entry counts the rest). */
export const MAX_VALIDATION_ISSUES = 20;
/** Strings echoed in an issue's `input` are cut to this many characters. */
const ECHO_STRING_CHARS = 100;
/** Arrays and objects echoed in `input` show at most this many entries, nested at most {@link ECHO_DEPTH}. */
const ECHO_ENTRIES = 10;
const ECHO_DEPTH = 2;
/** Keys whose values are never echoed: credentials of every kind. */
const SECRET_KEY = /api[_-]?key|credential|password|secret|token|authori[sz]ation|username|turn/i;

/**
 * What a 422 issue shows of an input: FastAPI echoes the value, but a hostile body must not get
 * itself (or its API key, or TURN credentials) back many times over. Bounded in depth, entries and
 * string length; secret-looking keys are replaced by `"[redacted]"`.
 */
export function echoInput(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    return value.length > ECHO_STRING_CHARS ? `${value.slice(0, ECHO_STRING_CHARS)}...` : value;
  }
  if (value === null || typeof value !== "object") return value;
  if (depth >= ECHO_DEPTH) return Array.isArray(value) ? `[list of ${value.length}]` : "{...}";
  if (Array.isArray(value)) {
    const shown = value.slice(0, ECHO_ENTRIES).map((v) => echoInput(v, depth + 1));
    if (value.length > ECHO_ENTRIES) shown.push(`... ${value.length - ECHO_ENTRIES} more`);
    return shown;
  }
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value);
  for (const key of keys.slice(0, ECHO_ENTRIES)) {
    out[key.slice(0, ECHO_STRING_CHARS)] = SECRET_KEY.test(key)
      ? "[redacted]"
      : echoInput((value as Obj)[key], depth + 1);
  }
  if (keys.length > ECHO_ENTRIES) out["..."] = `${keys.length - ECHO_ENTRIES} more keys`;
  return out;
}

class Collector {
  readonly issues: ValidationIssue[] = [];
  /** Issues found, including the ones past {@link MAX_VALIDATION_ISSUES} that are not listed. */
  total = 0;

  push(issue: ValidationIssue): void {
    this.total++;
    if (this.issues.length < MAX_VALIDATION_ISSUES) {
      const secret = issue.loc.some((part) => typeof part === "string" && SECRET_KEY.test(part));
      this.issues.push({ ...issue, input: secret ? "[redacted]" : echoInput(issue.input) });
    }
  }

  add(type: string, loc: (string | number)[], msg: string, input: unknown): void {
    this.push({ type, loc: ["body", ...loc], msg, input });
  }

  /** The 422 detail: the listed issues, plus one that counts those left out. */
  detail(): ValidationIssue[] {
    if (this.total <= this.issues.length) return this.issues;
    return [
      ...this.issues,
      {
        type: "too_many_errors",
        loc: ["body"],
        msg: `${this.total - this.issues.length} more validation errors not shown`,
      },
    ];
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
  const before = c.total;
  if (raw.type === undefined) c.missing([...loc, "type"], raw);
  else if (raw.type !== "WorkflowConfiguration") {
    c.push({
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
  if (c.total > before) return null;
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
  const before = c.total;
  for (const key of ["type", "sdp"] as const) {
    if (raw[key] === undefined || raw[key] === null) c.missing(["webrtc_offer", key], raw);
    else if (typeof raw[key] !== "string")
      c.add("string_type", ["webrtc_offer", key], "Input should be a valid string", raw[key]);
  }
  if (c.total > before) return null;
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
    c.push({
      type: "model_attributes_type",
      loc: ["body"],
      msg: "Input should be a valid dictionary or object to extract fields from",
      input: body,
    });
    return { ok: false, detail: c.detail() };
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
  if (c.total > 0 || workflowConfiguration === null || offer === null) {
    return { ok: false, detail: c.detail() };
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
  const full = error instanceof Error ? error.message : String(error);
  const message = full.length > 200 ? `${full.slice(0, 200)}...` : full;
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

/** Limits an offer's SDP must keep (a browser's or werift's offer is 1–3 KiB with 1–3 m-sections). */
export const SDP_LIMITS = {
  /** Largest SDP in bytes (UTF-16 code units, checked before anything else). */
  maxBytes: 64 * 1024,
  /** Most lines. */
  maxLines: 1000,
  /** Most `m=` sections (data channel + a video and an audio transceiver is 3). */
  maxMediaSections: 8,
  /** Longest line. */
  maxLineLength: 4096,
} as const;

/**
 * Checks an offer's SDP cheaply before the WebRTC stack parses it (whose cost grows steeply with the
 * number of m-sections): size, line count and length, m-section count, and the lines a usable offer
 * must have (`v=0` first, `o=`, `s=`, `t=`, at least one `m=` section, ICE credentials and a DTLS
 * fingerprint). Returns a message for a 400, or null when the offer may go to the stack.
 */
export function checkOfferSdp(sdp: string, limits: typeof SDP_LIMITS = SDP_LIMITS): string | null {
  if (sdp.length > limits.maxBytes) {
    return `The SDP offer is ${sdp.length} bytes; at most ${limits.maxBytes} are accepted.`;
  }
  const lines = sdp.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  if (lines.length > limits.maxLines) {
    return `The SDP offer has ${lines.length} lines; at most ${limits.maxLines} are accepted.`;
  }
  let media = 0;
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length > limits.maxLineLength) {
      return `SDP line ${i + 1} is ${line.length} characters long; at most ${limits.maxLineLength} are accepted.`;
    }
    // <type>=<value>, type one lowercase letter, printable text only (no control characters).
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
    if (!/^[a-z]=/.test(line) || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(line)) {
      return `SDP line ${i + 1} is not a valid "<type>=<value>" line.`;
    }
    const type = line[0] as string;
    seen.add(type);
    if (type === "m") {
      media++;
      if (media > limits.maxMediaSections) {
        return `The SDP offer has more than ${limits.maxMediaSections} media sections (m= lines).`;
      }
    } else if (type === "a") {
      const attribute = /^a=([a-z-]+)/i.exec(line)?.[1]?.toLowerCase();
      if (attribute) seen.add(`a=${attribute}`);
    }
  }
  if (lines[0] !== "v=0") return 'The SDP offer must start with a "v=0" line.';
  const missing = ["o", "s", "t", "m", "a=ice-ufrag", "a=ice-pwd", "a=fingerprint"].filter(
    (key) => !seen.has(key),
  );
  if (missing.length > 0) {
    return `The SDP offer lacks ${missing.map((key) => (key.length === 1 ? `${key}=` : key)).join(", ")}; it is not a usable WebRTC offer.`;
  }
  return null;
}
