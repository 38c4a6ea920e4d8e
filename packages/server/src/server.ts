/**
 * `createServer(options)`: the local inference server's HTTP front (`node:http`) and the
 * session registry. `POST /initialise_webrtc_worker` answers an SDP offer (@vidrtc/protocol's PROTOCOL.md §2),
 * `GET /healthz` reports liveness, and an optional static directory is served at `/`.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { type IceServerLike, INITIALISE_PATH, MAX_UPLOAD_BYTES, VidrtcError } from "@vidrtc/protocol";
import {
  type AnswererConfig,
  loadTransport,
  TRANSPORT_NAMES,
  type Transport,
  type TransportName,
} from "@vidrtc/transport";
import {
  BodyTooLargeError,
  type CorsPolicy,
  corsHeaders,
  corsPolicy,
  jsonDepthExceeds,
  originAllowed,
  readBody,
  sendJson,
  serveStatic,
} from "./http.js";
import { createConsoleLogger, prefixLogger, type ServerLogger } from "./log.js";
import {
  checkOfferSdp,
  checkOutputNames,
  jsonErrorDetail,
  type RequestIceServer,
  resolveStreamOutput,
  type ValidationIssue,
  validateInitialiseRequest,
} from "./request.js";
import { Session, type SessionEvent } from "./session/index.js";
import { DEFAULT_LIVENESS_TIMEOUT_MS } from "./session/liveness.js";
import { type WorkflowDefinition, WorkflowRegistry } from "./workflows/index.js";
import { ParameterError } from "./workflows/workflow.js";

/** Version reported by `/healthz` (this package's version). */
export const SERVER_VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
  } catch {
    return "0.0.0";
  }
})();

/** Options of {@link createServer}. */
export interface ServerOptions {
  /**
   * The WebRTC stack of the server's peers. Default `"werift"` (pure JS, the stack every test runs
   * on). `"node-datachannel"` (libdatachannel, native, several times faster per MiB) needs the
   * optional `node-datachannel` package and a non-loopback IPv4 interface (libjuice skips loopback
   * addresses). `"auto"` picks node-datachannel when both hold, else werift with one warning line
   * naming the reason. Naming a stack explicitly never falls back: `listen()` rejects with
   * `TRANSPORT_UNAVAILABLE` when it cannot load.
   */
  transport?: ServerTransportName;
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** TCP port (default 9001, Roboflow's; 0 = ephemeral). */
  port?: number;
  /** Concurrent sessions; more answer 429 (default 4). */
  maxSessions?: number;
  /** Largest upload in bytes (default 512 MiB). */
  maxUploadBytes?: number;
  /** An upload without progress, or a client that never opens it, ends the session after this (ms, default 30000). */
  idleTimeoutMs?: number;
  /** After `processing_complete` the server closes the peer itself after this (ms, default 30000). */
  lingerMs?: number;
  /**
   * Nothing received from a client for this long (ms, default 15000) ends its session in any state,
   * also while the server waits for an ACK: a killed or unplugged client frees its slot, ffmpeg
   * child and temp file within this bound. Live clients send ICE consent checks about every 5 s.
   */
  livenessTimeoutMs?: number;
  /**
   * The result channel drained nothing for this long (ms, default 60000): the client stopped reading,
   * and the session ends at once (its error result and `processing_complete`, which could not be
   * delivered either, are abandoned rather than waited for).
   */
  resultStallMs?: number;
  /** gzip data messages when `data_output` is non-empty, as Roboflow's server does (default true). */
  gzip?: boolean;
  /** Directory for uploads (default: a fresh `vidrtc-*` directory under `os.tmpdir()`, removed on close). */
  tempDir?: string;
  /**
   * ICE servers for the server's peers. Default none: host candidates only. werift would use a public
   * STUN server when this list has no STUN entry, so a loopback placeholder is always added then.
   */
  iceServers?: IceServerLike[];
  /** Use the `webrtc_config.iceServers` a client sends (default false: never contact servers a client names). */
  useClientIceServers?: boolean;
  /** Host candidate addresses (default `["127.0.0.1"]`). Give a LAN address to serve other machines. */
  iceHostAddresses?: string[];
  /** Host candidate addresses added to `iceHostAddresses` (werift's option of the same name). */
  iceAdditionalHostAddresses?: string[];
  /** Also gather host candidates on every non-loopback IPv4 interface (LAN use; default false). */
  iceUseInterfaceAddresses?: boolean;
  /** Seconds to wait for server-reflexive candidates (default 0.1 with no real STUN server, else 3). */
  iceStunGatherTimeoutSeconds?: number;
  /** UDP port range for ICE, e.g. for a firewall. */
  icePortRange?: [number, number];
  /**
   * Answer as an ICE-lite agent (host candidates only, the client's checks drive the connection, so
   * peer-reflexive candidates work when an offer only has mDNS names). Default: true unless
   * ICE servers are configured (a lite agent gathers no STUN/TURN candidates).
   */
  iceLite?: boolean;
  /** Resolve mDNS (`.local`) candidates of offers by multicast DNS (default false: they are dropped). */
  resolveMdnsCandidates?: boolean;
  /** When set, requests must carry this API key (body `api_key` or `Authorization: Bearer`), else 401. */
  apiKey?: string;
  /**
   * Web origins (`scheme://host[:port]`) allowed to call the server from a browser; `"*"` allows any.
   * Default: any origin for a loopback server without `apiKey`, none otherwise (requests with another
   * `Origin` header are refused with 403; clients that send no `Origin`, like the Node binding, are unaffected).
   */
  allowOrigins?: string[];
  /** Largest accepted request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Serve this directory's files at `/` (demo page). */
  staticDir?: string;
  /**
   * The workflows this server runs (default: the built-ins). Start from
   * `WorkflowRegistry.withBuiltins()` and `register()` your own; see the README's "Adding a workflow".
   */
  workflows?: WorkflowRegistry;
  /** ffmpeg executable used to decode uploads and encode the video track (default `ffmpeg` on `PATH`). */
  ffmpegPath?: string;
  /** ffprobe executable used to probe uploads (default `ffprobe` on `PATH`). */
  ffprobePath?: string;
  /** Where log lines go (default: stderr, one line per session event). */
  logger?: ServerLogger;
  /** With the default logger: also write debug lines. */
  verbose?: boolean;
  /** Called for every session event (start, upload complete, processing complete, end, error). */
  onSessionEvent?: (event: SessionEvent) => void;
}

/** Where a listening server can be reached. */
export interface ListeningAddress {
  /** Base URL clients use as `apiUrl`, e.g. `http://127.0.0.1:9001`. */
  url: string;
  /** TCP port listened on (the actual one when `0` was asked). */
  port: number;
  /** Address listened on, as the socket reports it. */
  host: string;
}

/** A created server. */
export interface VidrtcServer {
  /** Starts listening; resolves with the bound address. */
  listen(): Promise<ListeningAddress>;
  /** Ends every session (their temp files and processes), stops listening. Idempotent. */
  close(): Promise<void>;
  /** Sessions currently alive (including ones being set up). */
  readonly sessions: number;
  /** The WebRTC stack the sessions run on (known once `listen()` resolved, else null). */
  readonly transport: TransportName | null;
}

interface Resolved {
  host: string;
  port: number;
  maxSessions: number;
  maxUploadBytes: number;
  idleTimeoutMs: number;
  lingerMs: number;
  livenessTimeoutMs: number;
  resultStallMs: number | undefined;
  gzip: boolean;
  maxBodyBytes: number;
  logger: ServerLogger;
  cors: CorsPolicy;
}

/** Deepest JSON nesting accepted in a request body (a real request nests about 8 levels). */
export const MAX_JSON_DEPTH = 64;

/** True when `given` equals `expected`, in time independent of where they differ. */
function sameKey(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The API key a body carries, read without validating the rest (`Authorization: Bearer` wins). */
function presentedKey(body: unknown, authorization: string | undefined): string | null {
  const bearer = authorization?.match(/^\s*Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) return bearer;
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    const key = (body as Record<string, unknown>).api_key;
    if (typeof key === "string") return key;
  }
  return null;
}

/** True for `application/json` (any parameters, any case, `+json` suffix types too). */
function isJsonContentType(value: string | undefined): boolean {
  const type = value?.split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new VidrtcError("INVALID_OPTIONS", `${name} must be a positive number, got ${String(value)}.`);
  }
  return value;
}

/** The values of {@link ServerOptions.transport}: a stack's name, or `"auto"`. */
export type ServerTransportName = TransportName | "auto";

/** Every accepted {@link ServerOptions.transport} value. */
export const SERVER_TRANSPORT_NAMES: readonly ServerTransportName[] = [...TRANSPORT_NAMES, "auto"];

/** What {@link chooseServerTransport} may consult (injectable for tests). */
export interface TransportChoiceEnvironment {
  /** Loads a transport by name (default `loadTransport` of `@vidrtc/transport`). */
  load?: (name: TransportName) => Promise<Transport>;
  /** True when the machine has a non-loopback IPv4 address (default: from `os.networkInterfaces()`). */
  hasNonLoopbackIpv4?: () => boolean;
}

/** The transport the server will use, and why it is not the default when it fell back. */
export interface TransportChoice {
  /** The loaded WebRTC stack sessions will run on. */
  transport: Transport;
  /** Set when `"auto"` could not use node-datachannel: the one-line reason. */
  fallbackReason: string | null;
}

function machineHasNonLoopbackIpv4(): boolean {
  return Object.values(os.networkInterfaces()).some((addresses) =>
    (addresses ?? []).some((a) => a.family === "IPv4" && !a.internal),
  );
}

/**
 * Picks the server's transport. No `requested` name means werift. A stack's name is loaded as is
 * (errors propagate: `TRANSPORT_UNAVAILABLE`, `INVALID_OPTIONS`). `"auto"` uses node-datachannel
 * when it loads and ICE can gather a usable host candidate with it (a non-loopback IPv4 interface,
 * or a non-loopback `iceHostAddresses` entry); otherwise werift, with the reason in `fallbackReason`.
 */
export async function chooseServerTransport(
  requested: ServerTransportName | undefined,
  options: Pick<ServerOptions, "iceHostAddresses" | "iceAdditionalHostAddresses"> = {},
  env: TransportChoiceEnvironment = {},
): Promise<TransportChoice> {
  const load = env.load ?? loadTransport;
  if (requested === undefined) return { transport: await load("werift"), fallbackReason: null };
  if (requested !== "auto") return { transport: await load(requested), fallbackReason: null };
  const hosts = [...(options.iceHostAddresses ?? []), ...(options.iceAdditionalHostAddresses ?? [])];
  const nonLoopbackHost = hosts.some((h) => h !== "::1" && !h.startsWith("127.") && h !== "localhost");
  if (!nonLoopbackHost && !(env.hasNonLoopbackIpv4 ?? machineHasNonLoopbackIpv4)()) {
    return {
      transport: await load("werift"),
      fallbackReason:
        "node-datachannel needs a non-loopback network interface (libjuice skips loopback addresses) and this machine has none",
    };
  }
  try {
    return { transport: await load("node-datachannel"), fallbackReason: null };
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim();
    return { transport: await load("werift"), fallbackReason: reason };
  }
}

/** Builds the stack-neutral answerer configuration for one session (exported for tests). */
export function buildAnswererConfig(
  options: ServerOptions,
  clientIceServers: RequestIceServer[] | null,
): AnswererConfig {
  const servers: IceServerLike[] = [...(options.iceServers ?? [])];
  if (options.useClientIceServers && clientIceServers) {
    for (const s of clientIceServers)
      servers.push({
        urls: s.urls,
        ...(s.username ? { username: s.username } : {}),
        ...(s.credential ? { credential: s.credential } : {}),
      });
  }
  const hosts = [
    ...new Set([
      ...(options.iceHostAddresses ?? ["127.0.0.1"]),
      ...(options.iceAdditionalHostAddresses ?? []),
    ]),
  ];
  return {
    iceServers: servers,
    hostAddresses: hosts,
    useInterfaceAddresses: options.iceUseInterfaceAddresses ?? false,
    stripMdns: !(options.resolveMdnsCandidates ?? false),
    ...(options.iceLite === undefined ? {} : { iceLite: options.iceLite }),
    ...(options.iceStunGatherTimeoutSeconds === undefined
      ? {}
      : { stunGatherTimeoutSeconds: options.iceStunGatherTimeoutSeconds }),
    ...(options.icePortRange ? { portRange: options.icePortRange } : {}),
  };
}

/**
 * The invalid parameter of a 400 as a FastAPI-style issue: `loc` points into `workflows_parameters` when
 * the value came from there, else into the specification.
 */
function parameterIssue(
  error: unknown,
  requestParameters: Record<string, unknown> | null,
): ValidationIssue | null {
  const cause = error instanceof ParameterError ? error : (error as { cause?: unknown } | null)?.cause;
  const issue = cause instanceof ParameterError ? cause.issue : undefined;
  if (!issue) return null;
  const fromRequest = requestParameters !== null && Object.hasOwn(requestParameters, issue.parameter);
  return {
    type: issue.type,
    loc: [
      "body",
      "workflow_configuration",
      ...(fromRequest ? ["workflows_parameters"] : ["workflow_specification"]),
      issue.parameter,
    ],
    msg: issue.msg,
    input: issue.input,
    ...(issue.ctx ? { ctx: issue.ctx } : {}),
  };
}

function outputNames(workflow: WorkflowDefinition): { all: string[]; images: string[] } {
  return {
    all: workflow.outputs.map((o) => o.name),
    images: workflow.outputs.filter((o) => o.kind === "image").map((o) => o.name),
  };
}

/**
 * Creates the local inference server. Nothing happens until `listen()`.
 */
export function createServer(options: ServerOptions = {}): VidrtcServer {
  if (options.transport !== undefined && !SERVER_TRANSPORT_NAMES.includes(options.transport)) {
    throw new VidrtcError(
      "INVALID_OPTIONS",
      `transport must be one of ${SERVER_TRANSPORT_NAMES.map((n) => `"${n}"`).join(", ")}, got ${JSON.stringify(options.transport)}.`,
    );
  }
  if (options.workflows !== undefined && !(options.workflows instanceof WorkflowRegistry)) {
    throw new VidrtcError("INVALID_OPTIONS", "workflows must be a WorkflowRegistry.");
  }
  const workflows = options.workflows ?? WorkflowRegistry.withBuiltins();
  const r: Resolved = {
    host: options.host ?? "127.0.0.1",
    port: positive("port", options.port, 9001, true),
    maxSessions: positive("maxSessions", options.maxSessions, 4),
    maxUploadBytes: positive("maxUploadBytes", options.maxUploadBytes, MAX_UPLOAD_BYTES),
    idleTimeoutMs: positive("idleTimeoutMs", options.idleTimeoutMs, 30_000),
    lingerMs: positive("lingerMs", options.lingerMs, 30_000),
    livenessTimeoutMs: positive("livenessTimeoutMs", options.livenessTimeoutMs, DEFAULT_LIVENESS_TIMEOUT_MS),
    resultStallMs:
      options.resultStallMs === undefined ? undefined : positive("resultStallMs", options.resultStallMs, 0),
    gzip: options.gzip ?? true,
    maxBodyBytes: positive("maxBodyBytes", options.maxBodyBytes, 1024 * 1024),
    logger: options.logger ?? createConsoleLogger({ verbose: options.verbose ?? false }),
    cors: (() => {
      try {
        return corsPolicy(options.host ?? "127.0.0.1", options.apiKey, options.allowOrigins);
      } catch (error) {
        throw new VidrtcError(
          "INVALID_OPTIONS",
          `allowOrigins: ${error instanceof Error ? error.message : String(error)}.`,
        );
      }
    })(),
  };
  const log = r.logger;
  const sessions = new Map<string, Session>();
  let pending = 0; // sessions being negotiated (slot reserved)
  let http: Server | null = null;
  let tempRoot: string | null = null;
  let ownTempRoot = false;
  let closing: Promise<void> | null = null;
  let transport: Transport | null = null;
  let listenCalled = false;

  const emit = (event: SessionEvent) => {
    try {
      options.onSessionEvent?.(event);
    } catch (error) {
      log.error(`onSessionEvent threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  /** CORS headers of each answer, by request (set in `handle`). */
  const corsOf = new WeakMap<ServerResponse, Record<string, string>>();
  const reply = (res: ServerResponse, status: number, body: unknown) =>
    sendJson(res, status, body, corsOf.get(res) ?? corsHeaders(r.cors, undefined));
  const errorBody = (res: ServerResponse, status: number, message: string, errorType: string) =>
    reply(res, status, { message, error_type: errorType });

  async function handleInitialise(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // JSON only: a text/plain or form body is a CORS "simple" request a web page can send without
    // a preflight, so refusing it keeps pages on other origins from starting sessions.
    if (!isJsonContentType(req.headers["content-type"])) {
      req.resume();
      errorBody(
        res,
        415,
        "The request body must be JSON (Content-Type: application/json).",
        "UnsupportedMediaType",
      );
      return;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, r.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        errorBody(res, 413, `Request body larger than ${r.maxBodyBytes} bytes.`, "RequestEntityTooLarge");
      } else errorBody(res, 400, error instanceof Error ? error.message : String(error), "BadRequest");
      return;
    }
    const text = raw.toString("utf8");
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
      errorBody(res, 400, `The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels.`, "BadRequest");
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      reply(res, 422, { detail: jsonErrorDetail(error) });
      return;
    }
    // The key is checked before anything else, so an unauthenticated caller learns nothing about
    // the body (no 422 echo) and never reaches the session slots.
    if (
      options.apiKey !== undefined &&
      !sameKey(presentedKey(body, req.headers.authorization), options.apiKey)
    ) {
      errorBody(
        res,
        401,
        "Unauthorized: a valid API key is required (api_key or Authorization: Bearer).",
        "RoboflowAPINotAuthorizedError",
      );
      return;
    }
    const parsed = validateInitialiseRequest(body, req.headers.authorization ?? null);
    if (!parsed.ok) {
      reply(res, 422, { detail: parsed.detail });
      return;
    }
    const request = parsed.request;
    let workflow: WorkflowDefinition;
    try {
      workflow = workflows.resolve(request.workflowConfiguration);
      // workflows_parameters override the specification's; check them now rather than mid-session.
      workflows.normalizeParameters(workflow.id, {
        ...workflow.parameters,
        ...request.workflowConfiguration.workflows_parameters,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (VidrtcError.hasCode(error, "NOT_FOUND"))
        errorBody(res, 404, message, "RoboflowAPINotNotFoundError");
      else if (VidrtcError.isInstance(error) || error instanceof ParameterError) {
        const issue = parameterIssue(error, request.workflowConfiguration.workflows_parameters);
        reply(res, 400, {
          message,
          error_type: "WorkflowSyntaxError",
          ...(issue ? { detail: [issue] } : {}),
        });
      } else throw error;
      return;
    }
    const names = outputNames(workflow);
    const badOutputs = checkOutputNames(request, names);
    if (badOutputs) {
      errorBody(res, 400, badOutputs, "WebRTCConfigurationError");
      return;
    }
    // The WebRTC stack's SDP parsing costs grow steeply with the m-sections, and an offer it cannot
    // use would hold a slot until the gathering timeout: refuse those here, at once.
    const badSdp = checkOfferSdp(request.offer.sdp);
    if (badSdp) {
      errorBody(res, 400, `Invalid WebRTC offer: ${badSdp}`, "WebRTCConfigurationError");
      return;
    }
    if (sessions.size + pending >= r.maxSessions) {
      errorBody(
        res,
        429,
        `You have reached the maximum of ${r.maxSessions} concurrent sessions.`,
        "TooManySessions",
      );
      return;
    }
    if (closing || !tempRoot || !transport) {
      errorBody(res, 503, "The server is shutting down.", "ServiceUnavailable");
      return;
    }
    pending++;
    const id = randomBytes(6).toString("hex");
    const slog = prefixLogger(log, id);
    let session: Session;
    let sdp: string;
    try {
      ({ session, sdp } = await Session.start(
        {
          id,
          request,
          workflow,
          workflows,
          tempRoot,
          peer: transport.createAnswerer(buildAnswererConfig(options, request.iceServers)),
          maxUploadBytes: r.maxUploadBytes,
          idleTimeoutMs: r.idleTimeoutMs,
          gzip: r.gzip,
          lingerMs: r.lingerMs,
          livenessTimeoutMs: r.livenessTimeoutMs,
          ...(r.resultStallMs === undefined ? {} : { resultStallMs: r.resultStallMs }),
          gatherTimeoutMs: 10_000,
          ...(options.ffmpegPath ? { ffmpegPath: options.ffmpegPath } : {}),
          ...(options.ffprobePath ? { ffprobePath: options.ffprobePath } : {}),
          logger: slog,
          onEvent: emit,
          onClosed: () => sessions.delete(id),
        },
        resolveStreamOutput(request.streamOutput, names),
      ));
    } catch (error) {
      pending--;
      const message = error instanceof Error ? error.message : String(error);
      slog.error(`could not answer the offer: ${message}`);
      errorBody(res, 400, `Could not answer the WebRTC offer: ${message}`, "WebRTCConfigurationError");
      return;
    }
    pending--;
    sessions.set(id, session);
    if (closing) {
      void session.close("server shutting down");
      errorBody(res, 503, "The server is shutting down.", "ServiceUnavailable");
      return;
    }
    slog.info(
      `session start: workflow=${workflow.id} realtime=${request.realtime} data_output=${JSON.stringify(request.dataOutput)} stream_output=${JSON.stringify(request.streamOutput)}`,
    );
    reply(res, 200, {
      status: "success",
      context: { request_id: null, pipeline_id: null },
      sdp,
      type: "answer",
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = url.pathname.replace(/\/+$/, "") || "/";
    const rawOrigin = typeof req.headers.origin === "string" ? req.headers.origin : undefined;
    // A page this server serves itself (its demo) calls it same-origin: that is not cross-origin.
    const sameOrigin =
      rawOrigin !== undefined &&
      req.headers.host !== undefined &&
      (rawOrigin === `http://${req.headers.host}` || rawOrigin === `https://${req.headers.host}`);
    const origin = sameOrigin ? undefined : rawOrigin;
    const cors = corsHeaders(r.cors, origin);
    corsOf.set(res, cors);
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...cors, "Content-Length": 0 });
      res.end();
      return;
    }
    // A browser on another origin: refused before any work (its page could not read the answer
    // anyway, but the request itself would still start a session).
    if (!originAllowed(r.cors, origin)) {
      req.resume();
      errorBody(res, 403, `Origin ${origin} is not allowed (see --allow-origin).`, "Forbidden");
      return;
    }
    if (route === INITIALISE_PATH) {
      if (req.method !== "POST") {
        res.setHeader("Allow", "POST, OPTIONS");
        errorBody(res, 405, "Method Not Allowed", "MethodNotAllowed");
        return;
      }
      await handleInitialise(req, res);
      return;
    }
    if (route === "/healthz") {
      reply(res, 200, {
        status: "ok",
        sessions: sessions.size,
        version: SERVER_VERSION,
        transport: transport?.name ?? null,
      });
      return;
    }
    if (options.staticDir && (req.method === "GET" || req.method === "HEAD")) {
      await serveStatic(options.staticDir, url.pathname, req, res, cors);
      return;
    }
    errorBody(res, 404, "Not found.", "NotFound");
  }

  return {
    get sessions() {
      return sessions.size + pending;
    },

    get transport() {
      return transport?.name ?? null;
    },

    async listen(): Promise<ListeningAddress> {
      if (listenCalled) throw new VidrtcError("INVALID_OPTIONS", "listen() was already called.");
      listenCalled = true;
      const choice = await chooseServerTransport(options.transport, options);
      if (choice.fallbackReason !== null) {
        log.info(`warning: using the werift transport: ${choice.fallbackReason}`);
      }
      transport = choice.transport;
      if (options.tempDir) {
        tempRoot = options.tempDir;
      } else {
        tempRoot = await mkdtemp(path.join(os.tmpdir(), "vidrtc-"));
        ownTempRoot = true;
      }
      const server = createHttpServer((req, res) => {
        handle(req, res).catch((error) => {
          log.error(
            `internal error on ${req.method} ${req.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
          );
          reply(res, 500, { message: "Internal error." });
        });
      });
      http = server;
      server.keepAliveTimeout = 5_000;
      server.headersTimeout = 30_000;
      server.requestTimeout = 60_000;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(r.port, r.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      const urlHost =
        address.family === "IPv6" || address.address.includes(":") ? `[${address.address}]` : address.address;
      const result = { url: `http://${urlHost}:${address.port}`, port: address.port, host: address.address };
      log.info(
        `vidrtc-server listening on ${result.url} (transport ${transport.name}, max ${r.maxSessions} sessions, uploads up to ${r.maxUploadBytes} bytes)`,
      );
      return result;
    },

    close(): Promise<void> {
      if (closing) return closing;
      closing = (async () => {
        const server = http;
        const stopped = server
          ? new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeIdleConnections?.();
            })
          : Promise.resolve();
        await Promise.all([...sessions.values()].map((s) => s.shutdown().catch(() => {})));
        // Sessions still negotiating register themselves and are closed as they appear.
        const deadline = Date.now() + 5_000;
        while ((pending > 0 || sessions.size > 0) && Date.now() < deadline) {
          await Promise.all([...sessions.values()].map((s) => s.close("server shutdown").catch(() => {})));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        server?.closeAllConnections?.();
        await stopped;
        if (ownTempRoot && tempRoot) await rm(tempRoot, { recursive: true, force: true }).catch(() => {});
        log.info("vidrtc-server closed");
      })();
      return closing;
    },
  };
}
