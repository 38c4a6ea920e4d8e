/**
 * `@vidrtc/server/proxy`: a signalling proxy for your own backend, so that a browser app never
 * holds the inference server's API key. The page creates its client with
 * `new InferenceClient({ proxyUrl: "/api/vidrtc" })`; the backend mounts the handler there:
 *
 * - `POST` takes the page's `/initialise_webrtc_worker` body (JSON, size-capped), drops any
 *   `api_key` in it, adds the backend's key (body and `Authorization: Bearer`), forwards it to
 *   the real server (redirects refused) and answers with the SDP answer only. Upstream failures
 *   become one-line `{"message", "error_type"}` bodies that never contain the key.
 * - `GET` answers `{"iceServers": [...]}`: the configured ones, or TURN servers fetched with the
 *   backend's key for Roboflow-hosted URLs, or `[]`.
 *
 * Only `@vidrtc/protocol` is used at run time; `handle` needs nothing but the web `Request` and
 * `Response`, `node` takes Node's (or Express's) request and response.
 *
 * The proxy spends your key on whatever workflow the page asks for: restrict it with `prepare`
 * (check the user's session, pin the workflow) before exposing it to the internet.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  DEFAULT_SIGNALING_TIMEOUT_MS,
  type FetchLike,
  fetchTurnConfig,
  type IceServerLike,
  type InitialiseRequestBody,
  initialiseUrl,
  isRoboflowHostedUrl,
  oneLine,
  postInitialiseBody,
  readTextCapped,
  VidrtcError,
} from "@vidrtc/protocol";

/** Default cap on a request body: an offer with its candidates is a few kB, a workflow spec more. */
export const DEFAULT_PROXY_MAX_BODY_BYTES = 256 * 1024;
/** Default bound on reading a request body in {@link SignallingProxy.node}. */
export const DEFAULT_PROXY_BODY_TIMEOUT_MS = 10_000;

/** What {@link SignallingProxyOptions.prepare} sees of the incoming request. */
export interface ProxyRequestInfo {
  method: string;
  /** The page's request headers (cookies, your own auth header, ...). */
  headers: Headers;
}

/** Options of {@link createSignallingProxy}. */
export interface SignallingProxyOptions {
  /** The real inference server's base URL, e.g. `https://serverless.roboflow.com` or `http://127.0.0.1:9001`. */
  apiUrl: string;
  /** The API key added to every forwarded request; it never reaches the page. */
  apiKey?: string;
  /** ICE servers handed to pages on `GET` (and used server-side when a page sends none). */
  iceServers?: IceServerLike[];
  /** Fetch TURN servers with `apiKey` for Roboflow-hosted `apiUrl`s on `GET`. Default true. */
  autoTurn?: boolean;
  /** TURN config endpoint (default Roboflow's `https://api.roboflow.com/webrtc_turn_config`). */
  turnConfigUrl?: string;
  /** Largest accepted request body in bytes (default 256 KiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Bound on reading a request body with {@link SignallingProxy.node} (default 10 s); then 408. */
  bodyTimeoutMs?: number;
  /** Bound on the upstream request (default 90 s); then 504. */
  timeoutMs?: number;
  /** `fetch` used for upstream requests (default the global one). */
  fetch?: FetchLike;
  /**
   * Checks or rewrites the page's body before the key is added: authorise the user from
   * `request.headers`, pin `workflow_configuration`, cap `processing_timeout`. Return a new body
   * or nothing (keep it); throw to refuse (403, or the `status` of a thrown `VidrtcError`).
   */
  prepare?: (
    body: InitialiseRequestBody,
    request: ProxyRequestInfo,
  ) => InitialiseRequestBody | undefined | Promise<InitialiseRequestBody | undefined>;
  /** Diagnostics for the backend's log, one line each, the key removed. */
  onLog?: (line: string) => void;
}

/** The handler returned by {@link createSignallingProxy}. */
export interface SignallingProxy {
  /**
   * Web-standard handler (Hono, Bun, Deno, workers):
   * `app.all("/api/vidrtc", (c) => proxy.handle(c.req.raw))`.
   */
  handle(request: Request): Promise<Response>;
  /**
   * Node `http` / Express handler: `app.all("/api/vidrtc", proxy.node)`. A body already parsed by
   * `express.json()` (`req.body`) is used as is; otherwise the stream is read, size-capped.
   */
  node(req: IncomingMessage & { body?: unknown }, res: ServerResponse): Promise<void>;
}

interface Outcome {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
  /** The request body was not read to its end: close the connection after answering. */
  close?: boolean;
}

/** A refusal with its HTTP status (internal). */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorType: string,
    readonly close = false,
  ) {
    super(message);
  }
}

type BodyRead = { text: string } | { parsed: unknown };

const JSON_HEADERS: Record<string, string> = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new VidrtcError("INVALID_OPTIONS", `${name} must be a positive number, got ${String(value)}.`);
  }
  return value;
}

/** The server's own words from an error body (message, FastAPI detail without its `input`), bounded. */
function upstreamWords(body: unknown): string | undefined {
  if (typeof body === "string") return oneLine(body, 300) || undefined;
  if (!isPlainObject(body)) return undefined;
  if (typeof body.message === "string") return oneLine(body.message, 300) || undefined;
  const detail = body.detail;
  if (typeof detail === "string") return oneLine(detail, 300) || undefined;
  if (Array.isArray(detail)) {
    const parts = detail.map((item) => {
      if (!isPlainObject(item)) return "";
      const loc = Array.isArray(item.loc) ? item.loc.map(String).join(".") : "";
      const msg = typeof item.msg === "string" ? item.msg : "";
      return loc && msg ? `${loc}: ${msg}` : msg;
    });
    return oneLine(parts.filter(Boolean).join("; "), 300) || undefined;
  }
  if (typeof body.error === "string") return oneLine(body.error, 300) || undefined;
  return undefined;
}

/** Maps an upstream failure to what the page may see (status, one line, no URL, no key). */
function upstreamFailure(error: unknown, timeoutMs: number): Refusal {
  if (!VidrtcError.isInstance(error)) {
    return new Refusal(502, "The signalling proxy failed to forward the request.", "BAD_GATEWAY");
  }
  const status = error.status;
  const words = upstreamWords(error.details?.body);
  const said = words ? `: ${words}` : "";
  if (error.code === "CONNECTION_FAILED") {
    return new Refusal(502, "The signalling proxy could not reach the inference server.", "BAD_GATEWAY");
  }
  if (status === undefined) {
    if (typeof error.details?.timeoutMs === "number") {
      return new Refusal(504, `The inference server did not answer within ${timeoutMs} ms.`, "BAD_GATEWAY");
    }
    return new Refusal(502, "The signalling proxy failed to forward the request.", "BAD_GATEWAY");
  }
  if (status >= 300 && status < 400) {
    return new Refusal(
      502,
      `The inference server answered with a redirect (HTTP ${status}), which the proxy does not follow.`,
      "BAD_GATEWAY",
    );
  }
  if (status === 401 || status === 403) {
    return new Refusal(
      502,
      `The inference server refused the backend's API key (HTTP ${status})${said}.`,
      "BAD_GATEWAY",
    );
  }
  if (status >= 400 && status < 500) {
    return new Refusal(
      status,
      `The inference server refused the request (HTTP ${status})${said}.`,
      error.code,
    );
  }
  if (status >= 200 && status < 300) {
    return new Refusal(502, "The inference server's answer has no SDP.", "BAD_GATEWAY");
  }
  return new Refusal(
    status === 504 ? 504 : 502,
    `The inference server failed (HTTP ${status})${said}.`,
    "BAD_GATEWAY",
  );
}

function checkOffer(body: unknown): InitialiseRequestBody {
  if (!isPlainObject(body)) {
    throw new Refusal(400, "The request body must be a JSON object (the initialise request).", "BAD_REQUEST");
  }
  const offer = body.webrtc_offer;
  if (!isPlainObject(offer) || offer.type !== "offer" || typeof offer.sdp !== "string" || offer.sdp === "") {
    throw new Refusal(
      400,
      'webrtc_offer must be {"type": "offer", "sdp": "..."} with a non-empty SDP.',
      "BAD_REQUEST",
    );
  }
  if (!isPlainObject(body.workflow_configuration)) {
    throw new Refusal(400, "workflow_configuration must be an object.", "BAD_REQUEST");
  }
  return body as InitialiseRequestBody;
}

function isJsonType(contentType: string | null): boolean {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

function tooLarge(max: number): Refusal {
  return new Refusal(413, `The request body is larger than ${max} bytes.`, "BAD_REQUEST", true);
}

function declaredTooLarge(headers: Headers, max: number): boolean {
  const length = headers.get("content-length");
  return length !== null && /^\d+$/.test(length.trim()) && Number(length) > max;
}

/**
 * Creates the signalling proxy. Throws `INVALID_OPTIONS` for a bad `apiUrl` or bound, at
 * start-up rather than on the first request.
 */
export function createSignallingProxy(options: SignallingProxyOptions): SignallingProxy {
  if (!isPlainObject(options))
    throw new VidrtcError("INVALID_OPTIONS", "createSignallingProxy needs options.");
  const upstream = initialiseUrl(options.apiUrl);
  const apiKey = options.apiKey;
  if (apiKey !== undefined && (typeof apiKey !== "string" || apiKey.trim() === "")) {
    throw new VidrtcError("INVALID_OPTIONS", "apiKey must be a non-empty string.");
  }
  const maxBodyBytes = positive("maxBodyBytes", options.maxBodyBytes, DEFAULT_PROXY_MAX_BODY_BYTES);
  const bodyTimeoutMs = positive("bodyTimeoutMs", options.bodyTimeoutMs, DEFAULT_PROXY_BODY_TIMEOUT_MS);
  const timeoutMs = positive("timeoutMs", options.timeoutMs, DEFAULT_SIGNALING_TIMEOUT_MS);
  const hostedTurn =
    options.autoTurn !== false && apiKey !== undefined && isRoboflowHostedUrl(options.apiUrl);

  /** Removes the key (raw and URL-encoded) from anything the page or the log may see. */
  const scrub = (text: string): string => {
    if (apiKey === undefined) return text;
    let out = text.split(apiKey).join("[redacted]");
    const encoded = encodeURIComponent(apiKey);
    if (encoded !== apiKey) out = out.split(encoded).join("[redacted]");
    return out;
  };
  const log = (line: string) => options.onLog?.(scrub(oneLine(line)));

  async function iceServers(signal: AbortSignal | undefined): Promise<Outcome> {
    if (options.iceServers) return { status: 200, body: { iceServers: options.iceServers } };
    if (!hostedTurn) return { status: 200, body: { iceServers: [] } };
    try {
      const servers = await fetchTurnConfig(apiKey!, {
        ...(options.turnConfigUrl === undefined ? {} : { url: options.turnConfigUrl }),
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        ...(signal === undefined ? {} : { signal }),
      });
      return { status: 200, body: { iceServers: servers } };
    } catch (error) {
      log(`signalling proxy: TURN config unavailable: ${(error as Error).message}`);
      throw new Refusal(502, "TURN servers are unavailable right now.", "BAD_GATEWAY");
    }
  }

  async function forward(
    read: (max: number) => Promise<BodyRead>,
    request: ProxyRequestInfo,
    signal: AbortSignal | undefined,
  ): Promise<Outcome> {
    if (!isJsonType(request.headers.get("content-type"))) {
      throw new Refusal(
        415,
        "The request body must be JSON (Content-Type: application/json).",
        "BAD_REQUEST",
      );
    }
    if (declaredTooLarge(request.headers, maxBodyBytes)) throw tooLarge(maxBodyBytes);
    const got = await read(maxBodyBytes);
    let parsed: unknown;
    if ("parsed" in got) parsed = got.parsed;
    else {
      try {
        parsed = JSON.parse(got.text);
      } catch {
        throw new Refusal(400, "The request body is not valid JSON.", "BAD_REQUEST");
      }
    }
    let body = checkOffer(parsed);
    body = { ...body };
    delete body.api_key; // a page's own key is never forwarded
    if (options.prepare) {
      try {
        const prepared = await options.prepare(body, request);
        if (prepared !== undefined) body = { ...checkOffer(prepared) };
        delete body.api_key;
      } catch (error) {
        if (error instanceof Refusal) throw error;
        const status =
          VidrtcError.isInstance(error) && error.status && error.status >= 400 && error.status < 500;
        throw new Refusal(
          status ? (error as VidrtcError).status! : 403,
          oneLine(error instanceof Error ? error.message : String(error), 300) || "Refused.",
          "REFUSED",
        );
      }
    }
    if ((body.webrtc_config === null || body.webrtc_config === undefined) && options.iceServers?.length) {
      body.webrtc_config = { iceServers: options.iceServers };
    }
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Accept: "application/json",
    };
    if (apiKey !== undefined) {
      body.api_key = apiKey;
      headers.Authorization = `Bearer ${apiKey}`;
    }
    try {
      const answer = await postInitialiseBody(upstream, body, headers, {
        timeoutMs,
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        ...(signal === undefined ? {} : { signal }),
      });
      return { status: 200, body: { type: answer.type, sdp: answer.sdp, context: answer.context } };
    } catch (error) {
      log(`signalling proxy: upstream failed: ${(error as Error).message}`);
      throw upstreamFailure(error, timeoutMs);
    }
  }

  async function respond(
    method: string,
    headers: Headers,
    read: (max: number) => Promise<BodyRead>,
    signal: AbortSignal | undefined,
  ): Promise<Outcome> {
    try {
      if (method === "GET") return await iceServers(signal);
      if (method === "POST") return await forward(read, { method, headers }, signal);
      throw new Refusal(
        405,
        `Method ${oneLine(method, 20)} is not allowed: use POST (offer) or GET (ICE servers).`,
        "BAD_REQUEST",
      );
    } catch (error) {
      const refusal =
        error instanceof Refusal ? error : new Refusal(500, "The signalling proxy failed.", "SERVER_ERROR");
      if (!(error instanceof Refusal)) log(`signalling proxy: ${(error as Error)?.message ?? String(error)}`);
      return {
        status: refusal.status,
        body: { message: scrub(oneLine(refusal.message, 400)), error_type: refusal.errorType },
        ...(refusal.status === 405 ? { headers: { allow: "GET, POST" } } : {}),
        ...(refusal.close ? { close: true } : {}),
      };
    }
  }

  const handle = async (request: Request): Promise<Response> => {
    const outcome = await respond(
      request.method.toUpperCase(),
      request.headers,
      (max) => readWebBody(request, max),
      request.signal,
    );
    const body = JSON.stringify(outcome.body);
    return new Response(body, {
      status: outcome.status,
      headers: { ...JSON_HEADERS, ...outcome.headers, ...(outcome.close ? { connection: "close" } : {}) },
    });
  };

  const node = async (req: IncomingMessage & { body?: unknown }, res: ServerResponse): Promise<void> => {
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableEnded) controller.abort(new VidrtcError("ABORTED", "The page closed the request."));
    };
    res.once("close", onClose);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const outcome = await respond(
      (req.method ?? "GET").toUpperCase(),
      headers,
      (max) => readNodeBody(req, max, bodyTimeoutMs),
      controller.signal,
    );
    if (res.headersSent || res.destroyed) return;
    const body = JSON.stringify(outcome.body);
    res.writeHead(outcome.status, {
      ...JSON_HEADERS,
      "content-length": String(Buffer.byteLength(body)),
      ...outcome.headers,
      ...(outcome.close ? { connection: "close" } : {}),
    });
    res.end(body);
  };

  return { handle, node };
}

async function readWebBody(request: Request, max: number): Promise<BodyRead> {
  return { text: await readTextCapped(request.body, max, () => tooLarge(max)) };
}

function readNodeBody(
  req: IncomingMessage & { body?: unknown },
  max: number,
  timeoutMs: number,
): Promise<BodyRead> {
  // A body parser (express.json(), ...) may have read the stream already.
  const pre = req.body;
  if (pre !== undefined && !(isPlainObject(pre) && Object.keys(pre).length === 0 && !req.readableEnded)) {
    if (typeof pre === "string") {
      if (Buffer.byteLength(pre) > max) return Promise.reject(tooLarge(max));
      return Promise.resolve({ text: pre });
    }
    if (pre instanceof Uint8Array) {
      if (pre.byteLength > max) return Promise.reject(tooLarge(max));
      return Promise.resolve({ text: new TextDecoder().decode(pre) });
    }
    if (JSON.stringify(pre).length > max) return Promise.reject(tooLarge(max));
    return Promise.resolve({ parsed: pre });
  }
  if (req.readableEnded) {
    return Promise.reject(
      new Refusal(
        500,
        "The request body was consumed before the signalling proxy could read it.",
        "SERVER_ERROR",
      ),
    );
  }
  return new Promise<BodyRead>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (error: Refusal | null) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onError);
      if (error) {
        req.pause();
        reject(error);
      } else resolve({ text: Buffer.concat(chunks).toString("utf8") });
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) finish(tooLarge(max));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = () =>
      finish(new Refusal(400, "The request body could not be read.", "BAD_REQUEST", true));
    const timer = setTimeout(
      () =>
        finish(
          new Refusal(408, `The request body did not arrive within ${timeoutMs} ms.`, "BAD_REQUEST", true),
        ),
      timeoutMs,
    );
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    req.once("aborted", onError);
  });
}
