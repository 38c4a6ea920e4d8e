/**
 * Signalling (PROTOCOL.md §2): building the `POST /initialise_webrtc_worker` request, mapping its
 * responses (and error bodies) to answers or `VidrtcError`s, and the hosted TURN-config lookup.
 * Uses only `fetch`/`Response` from the web platform; callers may inject their own `fetch`.
 */
import { INITIALISE_PATH, ROBOFLOW_TURN_CONFIG_URL } from "./constants.js";
import { abortError, oneLine, throwIfAborted, VidrtcError, type VidrtcErrorCode } from "./errors.js";
import { checkNumber, errorText, httpUrlOrNull, iceUrls, isPlainObject, readBounded } from "./internal.js";
import type { IceServerLike, SessionDescriptionLike } from "./session/peer.js";

/** `workflow_configuration` of the request, as on the wire. Unknown keys are passed through. */
export interface WorkflowConfigurationBody {
  /** Always `"WorkflowConfiguration"`. */
  type: "WorkflowConfiguration";
  /** Inline workflow specification; exclusive with `workspace_name` plus `workflow_id`. */
  workflow_specification?: Record<string, unknown>;
  /** Workspace of `workflow_id` on the platform. */
  workspace_name?: string;
  /** Id of a workflow stored on the platform. */
  workflow_id?: string;
  /** Name of the workflow's image input the video frames are fed to. */
  image_input_name: string;
  /** Extra workflow parameters, passed to every frame's run. */
  workflows_parameters?: Record<string, unknown>;
  [k: string]: unknown;
}

/** JSON body of `POST /initialise_webrtc_worker` (server model `WebRTCWorkerRequest`), snake_case as on the wire. */
export interface InitialiseRequestBody {
  /** The workflow to run (PROTOCOL.md §2). */
  workflow_configuration: WorkflowConfigurationBody;
  /** The client's SDP offer, ICE candidates included. */
  webrtc_offer: {
    /** Always `"offer"`. */
    type: "offer";
    /** The offer's SDP text. */
    sdp: string;
  };
  /** Present when the key travels in the body. */
  api_key?: string | null;
  /** STUN/TURN servers for the server's side, or `null`. */
  webrtc_config: {
    /** ICE servers, as in `RTCConfiguration.iceServers`. */
    iceServers: IceServerLike[];
  } | null;
  /** `false` = batch (every frame, ACK-paced, PROTOCOL.md §4.3); `true` = paced at the file's frame rate, frames may be dropped. */
  webrtc_realtime_processing: boolean;
  /** Image output for the processed video track: `null` = server picks, `[]` = no video, `["name"]` (PROTOCOL.md §5). */
  stream_output: string[] | null;
  /** Outputs sent as data: `null`/`[]` = none, exactly `["*"]` = every non-image output, or a list of names. */
  data_output: string[] | null;
  /** The file's frame rate as the client knows it. */
  declared_fps?: number;
  /** Seconds; omitted = server default (3600); explicit `null` = no limit on a local server. */
  processing_timeout?: number | null;
  /** Hosted only: the plan to run on. */
  requested_plan?: string;
  /** Hosted only: the region to run in. */
  requested_region?: string;
  [k: string]: unknown;
}

/** `context` of the success response; both ids are `null` on the worker path. */
export interface InitialiseContext {
  /** Request id, or `null`. */
  request_id: string | null;
  /** Pipeline id, or `null`. */
  pipeline_id: string | null;
}

/** HTTP 200 body of `/initialise_webrtc_worker`. */
export interface InitialiseResponseBody {
  /** `"success"`. */
  status: string;
  /** Ids of the started session. */
  context: InitialiseContext;
  /** The server's SDP answer, ICE candidates included. */
  sdp: string;
  /** Always `"answer"`. */
  type: "answer";
}

/** Error body of the inference server: `{"message": ..., "error_type": ...}` (plus extra keys). */
export interface ServerErrorBody {
  /** Human-readable error message. */
  message: string;
  /** The server's error class name, when given. */
  error_type?: string;
  [k: string]: unknown;
}

/** One FastAPI validation error. */
export interface ValidationErrorItem {
  /** Path of the offending field in the request body. */
  loc: Array<string | number>;
  /** What is wrong with it. */
  msg: string;
  /** Machine-readable error type. */
  type: string;
  [k: string]: unknown;
}

/** FastAPI 422 body: `{"detail": [{loc, msg, type}, ...]}`. */
export interface ValidationErrorBody {
  /** One entry per validation error. */
  detail: ValidationErrorItem[];
}

/** The answer as used by the session. */
export interface InitialiseAnswer {
  /** Always `"answer"`. */
  type: "answer";
  /** The server's SDP answer, ICE candidates included. */
  sdp: string;
  /** The `context` of the response. */
  context: InitialiseContext;
}

/** Friendly options for the initialise request; see {@link buildInitialiseRequest}. */
export interface InitialiseOptions {
  /** Workflow id on the platform (needs a server that can fetch it). Exclusive with `specification`. */
  workflow?: string;
  /** Workspace of `workflow`; sent as `workspace_name` only when given (Roboflow's hosted API needs it). */
  workspace?: string;
  /** Inline workflow specification. Exclusive with `workflow`. */
  specification?: Record<string, unknown>;
  /** Workflow image input name (default `"image"`). */
  imageInputName?: string;
  /** Extra workflow parameters (`workflows_parameters`). */
  workflowParameters?: Record<string, unknown>;
  /** `data_output`: `null`/`[]` = none, `["*"]` = all non-image outputs. Default `null`. */
  dataOutput?: string[] | null;
  /** `stream_output`: `[]` = no video (default; required when no video m-line), `null` = auto. */
  streamOutput?: string[] | null;
  /** `webrtc_realtime_processing`; default `false` (batch, every frame, ACK-paced). */
  realtime?: boolean;
  /** API key, if any. */
  apiKey?: string;
  /** Where the API key travels (default `"both"`). */
  apiKeyIn?: "body" | "header" | "both";
  /** ICE servers for the server side (`webrtc_config`); empty/absent -> `null`. */
  iceServers?: IceServerLike[];
  /** `processing_timeout` in whole seconds; `null` = explicit no limit; absent = server default. */
  processingTimeoutSeconds?: number | null;
  /** `declared_fps` (the server re-probes uploads). */
  declaredFps?: number;
  /** Hosted only: `requested_plan`. */
  requestedPlan?: string;
  /** Hosted only: `requested_region`. */
  requestedRegion?: string;
}

/** The request to send: JSON body and headers. */
export interface InitialiseRequest {
  /** JSON body of the POST. */
  body: InitialiseRequestBody;
  /** HTTP headers: JSON content type and, unless the key travels only in the body, `Authorization: Bearer <key>`. */
  headers: Record<string, string>;
}

function invalid(message: string): VidrtcError {
  return new VidrtcError("INVALID_OPTIONS", message);
}

function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") throw invalid(`${name} must be a non-empty string.`);
  return value;
}

function outputList(
  name: string,
  value: string[] | null | undefined,
  fallback: string[] | null,
): string[] | null {
  if (value === undefined) return fallback === null ? null : [...fallback];
  if (value === null) return null;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw invalid(`${name} must be an array of output names or null.`);
  }
  if (name === "dataOutput") checkDataOutput(value);
  return [...value];
}

/**
 * Roboflow's rule for `data_output`: exactly `["*"]` means every non-image output; in any other
 * list `"*"` is taken as an output name (a workflow id then fails every frame with
 * `Output '*' not found`, an inline specification is refused with 400). Throws `INVALID_OPTIONS`
 * for `"*"` mixed with other names, so a client that works here also works against Roboflow.
 */
export function checkDataOutput(value: readonly string[] | null | undefined): void {
  if (!Array.isArray(value) || value.length < 2 || !value.includes("*")) return;
  throw invalid(
    `dataOutput ${JSON.stringify(value).slice(0, 200)} mixes "*" with output names. Roboflow's servers read ["*"] alone as all non-image outputs and any other "*" as an output named "*" (every frame then fails with Output '*' not found): pass ["*"] alone, or list the outputs by name.`,
  );
}

/** What {@link reconfigureMessage} (and `session.reconfigure`) may change mid-session. */
export interface ReconfigureOptions {
  /** New `data_output` list (`[]` = no data, `["*"]` = all non-image outputs). Omit to keep. */
  dataOutput?: string[];
  /** New `stream_output` list (`[]` = no video, `["name"]` = that image output). Omit to keep. */
  streamOutput?: string[];
}

/**
 * The reconfigure control message (PROTOCOL.md §4.3):
 * `{"stream_output": [..] | null, "data_output": [..] | null}`, `null` = unchanged. Throws
 * `INVALID_OPTIONS` when neither list is given, a list is not an array of strings, or `"*"` is
 * mixed with output names.
 */
export function reconfigureMessage(options: ReconfigureOptions): string {
  if (!isPlainObject(options as unknown))
    throw invalid("reconfigure needs an object { dataOutput, streamOutput }.");
  const { dataOutput, streamOutput } = options;
  if (dataOutput === undefined && streamOutput === undefined) {
    throw invalid("reconfigure needs dataOutput, streamOutput or both.");
  }
  const list = (name: string, v: string[] | undefined): string[] | null => {
    if (v === undefined) return null;
    if (v === null)
      throw invalid(`${name} must be an array of output names (omit it to keep the current one).`);
    return outputList(name, v, null);
  };
  return JSON.stringify({
    stream_output: list("streamOutput", streamOutput),
    data_output: list("dataOutput", dataOutput),
  });
}

function checkIceServers(servers: readonly IceServerLike[]): IceServerLike[] {
  if (!Array.isArray(servers)) throw invalid("iceServers must be an array.");
  return servers.map((s, i) => {
    const urls = iceUrls(s?.urls);
    if (!urls) throw invalid(`iceServers[${i}].urls must be a string or a non-empty array of strings.`);
    const out: IceServerLike = { urls: Array.isArray(urls) ? [...urls] : urls };
    if (s.username !== undefined) out.username = s.username;
    if (s.credential !== undefined) out.credential = s.credential;
    return out;
  });
}

/**
 * Builds the `/initialise_webrtc_worker` body and headers from friendly options.
 * Throws `INVALID_OPTIONS` when neither or both of `workflow` and `specification` are given,
 * or any value has the wrong type. `workspace` is sent only with `workflow`.
 */
export function buildInitialiseRequest(
  offer: SessionDescriptionLike,
  options: InitialiseOptions,
): InitialiseRequest {
  if (typeof options !== "object" || options === null) throw invalid("Initialise options must be an object.");
  if (offer?.type !== "offer" || typeof offer.sdp !== "string" || offer.sdp === "") {
    throw invalid("The local description must be an offer with a non-empty SDP.");
  }
  const hasWorkflow = options.workflow !== undefined;
  const hasSpec = options.specification !== undefined;
  if (hasWorkflow === hasSpec) {
    throw invalid(
      hasWorkflow
        ? "Give either a workflow id or an inline workflow specification, not both."
        : "Give a workflow: either a workflow id (with its workspace) or an inline workflow specification.",
    );
  }
  const config: WorkflowConfigurationBody = {
    type: "WorkflowConfiguration",
    image_input_name:
      options.imageInputName === undefined
        ? "image"
        : nonEmptyString("imageInputName", options.imageInputName),
  };
  if (hasSpec) {
    if (!isPlainObject(options.specification))
      throw invalid("specification must be a JSON object (the workflow definition).");
    config.workflow_specification = options.specification;
  } else {
    if (options.workspace !== undefined)
      config.workspace_name = nonEmptyString("workspace", options.workspace);
    config.workflow_id = nonEmptyString("workflow", options.workflow);
  }
  if (options.workflowParameters !== undefined) {
    if (!isPlainObject(options.workflowParameters)) throw invalid("workflowParameters must be an object.");
    config.workflows_parameters = options.workflowParameters;
  }

  const apiKeyIn = options.apiKeyIn ?? "both";
  if (apiKeyIn !== "body" && apiKeyIn !== "header" && apiKeyIn !== "both") {
    throw invalid(`apiKeyIn must be "body", "header" or "both", got ${JSON.stringify(apiKeyIn)}.`);
  }
  const apiKey = options.apiKey === undefined ? undefined : nonEmptyString("apiKey", options.apiKey);
  if (options.realtime !== undefined && typeof options.realtime !== "boolean")
    throw invalid("realtime must be a boolean.");
  const iceServers = options.iceServers === undefined ? [] : checkIceServers(options.iceServers);

  const body: InitialiseRequestBody = {
    workflow_configuration: config,
    webrtc_offer: { type: "offer", sdp: offer.sdp },
    webrtc_config: iceServers.length > 0 ? { iceServers } : null,
    webrtc_realtime_processing: options.realtime ?? false,
    stream_output: outputList("streamOutput", options.streamOutput, []),
    data_output: outputList("dataOutput", options.dataOutput, null),
  };
  if (apiKey !== undefined && apiKeyIn !== "header") body.api_key = apiKey;
  if (options.declaredFps !== undefined) {
    checkNumber("declaredFps", options.declaredFps, false);
    body.declared_fps = options.declaredFps;
  }
  if (options.processingTimeoutSeconds !== undefined) {
    const t = options.processingTimeoutSeconds;
    if (t !== null && (!Number.isSafeInteger(t) || t <= 0)) {
      throw invalid(
        `processingTimeoutSeconds must be a positive whole number of seconds or null, got ${String(t)}.`,
      );
    }
    body.processing_timeout = t;
  }
  if (options.requestedPlan !== undefined)
    body.requested_plan = nonEmptyString("requestedPlan", options.requestedPlan);
  if (options.requestedRegion !== undefined)
    body.requested_region = nonEmptyString("requestedRegion", options.requestedRegion);

  const headers: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" };
  if (apiKey !== undefined && apiKeyIn !== "body") headers.Authorization = `Bearer ${apiKey}`;
  return { body, headers };
}

function parseHttpUrl(value: string, what: string): URL {
  const url = httpUrlOrNull(value);
  if (!url) throw invalid(`${what} ${JSON.stringify(value)} must be an absolute http or https URL.`);
  return url;
}

/**
 * The signalling URL for an API URL: `{apiUrl}/initialise_webrtc_worker`, without double
 * slashes, keeping any path prefix and query. Throws `INVALID_OPTIONS` for a non-http(s) URL.
 */
export function initialiseUrl(apiUrl: string): string {
  const url = parseHttpUrl(apiUrl, "API URL");
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${INITIALISE_PATH}`;
  url.hash = "";
  return url.toString();
}

/** A URL safe for error messages: no query (it may hold an API key), no credentials. */
function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    url.search = "";
    url.hash = "";
    url.username = "";
    url.password = "";
    return url.toString();
  } catch {
    return "(invalid URL)";
  }
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * Reads a body stream as UTF-8 text, at most `max` bytes: past that the stream is cancelled and
 * the error from `tooLarge()` is thrown. A `null` body reads as `""`.
 */
export async function readTextCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  tooLarge: () => Error,
): Promise<string> {
  return body === null ? "" : new TextDecoder().decode(await readBounded(body, max, tooLarge));
}

function readBodyText(response: Response): Promise<string> {
  return readTextCapped(
    response.body,
    MAX_BODY_BYTES,
    () =>
      new VidrtcError("SIGNALING_FAILED", `The server's response is larger than ${MAX_BODY_BYTES} bytes.`, {
        status: response.status,
      }),
  );
}

function summariseDetail(detail: unknown): string | undefined {
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return undefined;
  const lines = detail.map((item) => {
    if (!isPlainObject(item)) return JSON.stringify(item);
    const loc = Array.isArray(item.loc) ? item.loc.map(String).join(".") : undefined;
    const msg = typeof item.msg === "string" ? item.msg : JSON.stringify(item.msg);
    return loc ? `${loc}: ${msg}` : msg;
  });
  return lines.join("; ");
}

/** The server's own words for an error, as one bounded line (newlines, HTML and megabytes removed). */
function serverMessage(body: unknown, text: string): string | undefined {
  if (isPlainObject(body)) {
    if (typeof body.message === "string" && oneLine(body.message) !== "") return oneLine(body.message);
    const detail = summariseDetail(body.detail);
    if (detail && oneLine(detail) !== "") return oneLine(detail);
    if (typeof body.error === "string" && oneLine(body.error) !== "") return oneLine(body.error);
  }
  const line = oneLine(text);
  return line === "" ? undefined : line;
}

const STATUS_MAP: Record<number, { code: VidrtcErrorCode; advice: string }> = {
  400: { code: "BAD_REQUEST", advice: "Check the workflow configuration and the requested output names." },
  401: { code: "UNAUTHORIZED", advice: "Check your API key." },
  403: { code: "UNAUTHORIZED", advice: "Check your API key and that it has access to this workspace." },
  402: { code: "PAYMENT_REQUIRED", advice: "Your account is out of credits or quota; check your plan." },
  404: {
    code: "NOT_FOUND",
    advice: "Check the workflow id and workspace, and that the API URL points at an inference server.",
  },
  422: {
    code: "VALIDATION_FAILED",
    advice: "The server rejected the request body; check the options (and server version).",
  },
  429: { code: "RATE_LIMITED", advice: "Too many concurrent sessions or requests; wait and retry." },
  500: { code: "SERVER_ERROR", advice: "The inference server failed internally; check its logs and retry." },
  502: {
    code: "BAD_GATEWAY",
    advice: "The hosted backend is unavailable or the plan/region is unknown; retry later.",
  },
  503: { code: "BAD_GATEWAY", advice: "The server is unavailable; retry later." },
  504: { code: "BAD_GATEWAY", advice: "The hosted backend did not answer in time; retry later." },
};

function httpError(what: string, response: Response, body: unknown, text: string): VidrtcError {
  const mapped = STATUS_MAP[response.status];
  const code: VidrtcErrorCode = mapped?.code ?? "SIGNALING_FAILED";
  const from = response.url ? ` from ${redactUrl(response.url)}` : "";
  const said = serverMessage(body, text);
  const reason = said === undefined ? "" : `: ${said}`;
  const advice = mapped?.advice ?? "Check the API URL and the server.";
  const statusText = response.statusText ? ` ${response.statusText}` : "";
  return new VidrtcError(
    code,
    `${what} failed with HTTP ${response.status}${statusText}${from}${reason}. ${advice}`,
    {
      status: response.status,
      details: { body: body === undefined ? text : body },
    },
  );
}

function parseJsonOrUndefined(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Reads the `/initialise_webrtc_worker` response. Success (2xx with a non-empty `sdp`) gives the
 * answer; an HTTP error becomes a `VidrtcError` whose code follows the status (400 BAD_REQUEST,
 * 401/403 UNAUTHORIZED, 402 PAYMENT_REQUIRED, 404 NOT_FOUND, 422 VALIDATION_FAILED, 429
 * RATE_LIMITED, 500 SERVER_ERROR, 502/503/504 BAD_GATEWAY, other SIGNALING_FAILED) with `status`,
 * the server's message in the text and the parsed body in `details.body`.
 */
export async function parseInitialiseResponse(response: Response): Promise<InitialiseAnswer> {
  const text = await readBodyText(response);
  const body = parseJsonOrUndefined(text);
  if (!response.ok) throw httpError("Signalling (initialise_webrtc_worker)", response, body, text);
  if (!isPlainObject(body) || typeof body.sdp !== "string" || body.sdp === "") {
    throw new VidrtcError(
      "SIGNALING_FAILED",
      `Signalling succeeded with HTTP ${response.status} but the response has no SDP answer${body === undefined ? " (not JSON)" : ""}. Check that the API URL points at an inference server with WebRTC support.`,
      { status: response.status, details: { body: body === undefined ? text.slice(0, 2000) : body } },
    );
  }
  if (body.type !== undefined && body.type !== "answer") {
    throw new VidrtcError(
      "SIGNALING_FAILED",
      `Signalling returned a session description of type ${JSON.stringify(body.type)}, expected "answer".`,
      {
        status: response.status,
        details: { body },
      },
    );
  }
  const ctx = isPlainObject(body.context) ? body.context : {};
  const idOrNull = (v: unknown): string | null =>
    typeof v === "string" ? v : typeof v === "number" ? String(v) : null;
  return {
    type: "answer",
    sdp: body.sdp,
    context: { request_id: idOrNull(ctx.request_id), pipeline_id: idOrNull(ctx.pipeline_id) },
  };
}

/** A `fetch`-compatible function. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Transport options of {@link postInitialise} and {@link fetchTurnConfig}. */
export interface HttpOptions {
  /** `fetch` to use (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** Aborts the request; it then rejects with code `ABORTED`. */
  signal?: AbortSignal;
  /** Bound on the whole request including the body. */
  timeoutMs?: number;
}

/** Default bound of the initialise request (the hosted API itself waits up to 60 s for a worker). */
export const DEFAULT_SIGNALING_TIMEOUT_MS = 90_000;
/** Default bound of the TURN-config lookup. */
export const DEFAULT_TURN_CONFIG_TIMEOUT_MS = 5_000;

/**
 * Runs `work` with a signal that aborts on the caller's signal or after `timeoutMs`, mapping
 * failures: caller abort -> `ABORTED`, timeout -> `onTimeout()`, other non-vidrtc failures
 * -> `onNetworkError(error)`.
 */
async function withTimeout<T>(
  options: HttpOptions,
  defaultTimeoutMs: number,
  work: (fetchFn: FetchLike, signal: AbortSignal) => Promise<T>,
  onTimeout: (ms: number) => VidrtcError,
  onNetworkError: (error: unknown) => VidrtcError,
): Promise<T> {
  const { signal } = options;
  throwIfAborted(signal, "signalling request");
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  checkNumber("timeoutMs", timeoutMs, false);
  const fetchFn = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof fetchFn !== "function")
    throw invalid("No fetch implementation is available; pass options.fetch.");
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(onTimeout(timeoutMs));
  }, timeoutMs);
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // Race against the abort so a fetch that ignores its signal cannot hang us.
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    aborted.catch(() => undefined);
    return await Promise.race([work(fetchFn, controller.signal), aborted]);
  } catch (error) {
    if (timedOut) throw onTimeout(timeoutMs);
    if (signal?.aborted) throw abortError(signal, "signalling request");
    if (VidrtcError.isInstance(error)) throw error;
    throw onNetworkError(error);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Throws `SIGNALING_FAILED` when `response` is a redirect (a 3xx from `redirect: "manual"` in Node, or
 * the browser's opaque redirect). Redirects are never followed because the request carries the API key.
 */
function refuseRedirect(response: Response, shown: string): void {
  const redirected = response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400);
  if (!redirected) return;
  void response.body?.cancel().catch(() => undefined);
  const location = response.headers.get("location");
  throw new VidrtcError(
    "SIGNALING_FAILED",
    `${shown} answered with a redirect${response.status ? ` (HTTP ${response.status})` : ""}${location ? ` to ${redactUrl(location)}` : ""}; redirects are not followed because the request carries the API key. Use the final URL.`,
    response.status ? { status: response.status } : {},
  );
}

/**
 * Builds the request, POSTs it to `{apiUrl}/initialise_webrtc_worker` within `timeoutMs`
 * (default 90 s) and parses the answer. Errors: `INVALID_OPTIONS`, `CONNECTION_FAILED` (network
 * failure, names the URL), `SIGNALING_FAILED` (timeout, bad answer), `ABORTED`, or the HTTP
 * status codes of {@link parseInitialiseResponse}.
 */
export async function postInitialise(
  apiUrl: string,
  offer: SessionDescriptionLike,
  options: InitialiseOptions,
  http: HttpOptions = {},
): Promise<InitialiseAnswer> {
  const url = initialiseUrl(apiUrl);
  const { body, headers } = buildInitialiseRequest(offer, options);
  return postInitialiseBody(url, body, headers, http);
}

/**
 * POSTs an already built `/initialise_webrtc_worker` body as JSON to exactly `url` (no path is
 * appended: a signalling proxy's endpoint, or {@link initialiseUrl} of a server) and parses the
 * answer. Redirects are refused, never followed (the body may carry an API key). Errors as
 * {@link postInitialise}; messages name the URL without its query or credentials.
 */
export async function postInitialiseBody(
  url: string,
  body: InitialiseRequestBody,
  headers: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" },
  http: HttpOptions = {},
): Promise<InitialiseAnswer> {
  const target = parseHttpUrl(url, "Signalling URL").toString();
  const shown = redactUrl(target);
  return withTimeout(
    http,
    DEFAULT_SIGNALING_TIMEOUT_MS,
    async (fetchFn, signal) => {
      // Never follow a redirect: the API key is in the body (and maybe a header), and a 307/308
      // would resend both to wherever the Location points.
      const response = await fetchFn(target, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal,
        redirect: "manual",
      });
      refuseRedirect(response, shown);
      return parseInitialiseResponse(response);
    },
    (ms) =>
      new VidrtcError(
        "SIGNALING_FAILED",
        `No answer from ${shown} within ${ms} ms. Check that the server is running and reachable, or raise the timeout.`,
        { details: { timeoutMs: ms } },
      ),
    (error) =>
      new VidrtcError(
        "CONNECTION_FAILED",
        `Could not reach ${shown}: ${errorText(error)}. Check the API URL and that the server is running.`,
        { cause: error },
      ),
  );
}

/** True when `url` is a Roboflow-hosted URL (host `roboflow.com` or a subdomain); false for anything else, including invalid URLs. */
export function isRoboflowHostedUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase().replace(/\.$/, "");
    return host === "roboflow.com" || host.endsWith(".roboflow.com");
  } catch {
    return false;
  }
}

function normaliseIceServer(value: unknown, index: number): IceServerLike {
  const fail = () =>
    new VidrtcError(
      "SIGNALING_FAILED",
      `TURN config entry ${index} has no valid "urls" (string or array of strings).`,
      {
        details: { entry: value },
      },
    );
  const urls = isPlainObject(value) ? iceUrls(value.urls) : null;
  if (!urls) throw fail();
  const out: IceServerLike = { urls: Array.isArray(urls) ? [...urls] : [urls] };
  const { username, credential } = value as Record<string, unknown>;
  if (typeof username === "string") out.username = username;
  if (typeof credential === "string") out.credential = credential;
  return out;
}

/**
 * Parses a TURN-config body in any of the shapes Roboflow's API and SDKs use: an array of ICE
 * servers, `{iceServers:[...]}`, or a single `{urls, username, credential}` object.
 * `urls` is normalised to an array. Throws `SIGNALING_FAILED` for anything else.
 */
export function parseTurnConfig(body: unknown): IceServerLike[] {
  let list: unknown[];
  if (Array.isArray(body)) list = body;
  else if (isPlainObject(body) && Array.isArray(body.iceServers)) list = body.iceServers;
  else if (isPlainObject(body) && body.urls !== undefined) list = [body];
  else {
    throw new VidrtcError(
      "SIGNALING_FAILED",
      "TURN config response is neither an ICE server list, {iceServers:[...]}, nor a single ICE server.",
      {
        details: { body },
      },
    );
  }
  return list.map(normaliseIceServer);
}

/** Options of {@link fetchTurnConfig}. */
export interface TurnConfigOptions extends HttpOptions {
  /** Endpoint (default {@link ROBOFLOW_TURN_CONFIG_URL}). */
  url?: string;
}

/**
 * Fetches TURN/ICE servers for hosted Roboflow sessions:
 * `GET {url}?api_key=...` (default `https://api.roboflow.com/webrtc_turn_config`), bounded by
 * `timeoutMs` (default 5 s). The servers go both into the client's peer connection and into the
 * request's `iceServers`. HTTP errors map like {@link parseInitialiseResponse}; network failure ->
 * `CONNECTION_FAILED`; timeout or bad body -> `SIGNALING_FAILED`. The key never appears in errors.
 */
export async function fetchTurnConfig(
  apiKey: string,
  options: TurnConfigOptions = {},
): Promise<IceServerLike[]> {
  nonEmptyString("apiKey", apiKey);
  const url = parseHttpUrl(options.url ?? ROBOFLOW_TURN_CONFIG_URL, "TURN config URL");
  url.searchParams.set("api_key", apiKey);
  return getIceServers(url.toString(), "TURN config", options);
}

/**
 * Fetches ICE servers from a signalling proxy's endpoint (`GET {url}`, see `@vidrtc/server/proxy`),
 * which answers `{"iceServers": [...]}` (TURN servers for hosted URLs, fetched with the backend's
 * key). Bounded by `timeoutMs` (default 5 s); redirects refused; errors as {@link fetchTurnConfig}.
 */
export async function fetchIceServers(url: string, options: HttpOptions = {}): Promise<IceServerLike[]> {
  return getIceServers(parseHttpUrl(url, "ICE server URL").toString(), "ICE servers", options);
}

async function getIceServers(url: string, what: string, options: HttpOptions): Promise<IceServerLike[]> {
  const shown = redactUrl(url);
  return withTimeout(
    options,
    DEFAULT_TURN_CONFIG_TIMEOUT_MS,
    async (fetchFn, signal) => {
      const response = await fetchFn(url, {
        method: "GET",
        headers: { Accept: "application/json" },
        signal,
        // The key may be in the query: a redirect would hand it to the Location's host.
        redirect: "manual",
      });
      refuseRedirect(response, shown);
      const text = await readBodyText(response);
      const body = parseJsonOrUndefined(text);
      if (!response.ok) throw httpError(`${what} request`, response, body, text);
      if (body === undefined) {
        throw new VidrtcError("SIGNALING_FAILED", `${what} from ${shown} is not JSON.`, {
          status: response.status,
          details: { body: text.slice(0, 2000) },
        });
      }
      return parseTurnConfig(body);
    },
    (ms) => new VidrtcError("SIGNALING_FAILED", `No ${what} from ${shown} within ${ms} ms.`),
    (error) =>
      new VidrtcError("CONNECTION_FAILED", `Could not reach ${shown}: ${errorText(error)}.`, {
        cause: error,
      }),
  );
}
