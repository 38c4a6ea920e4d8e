/**
 * `createServer(options)`: the local inference server's HTTP front (`node:http`) and the
 * session registry. `POST /initialise_webrtc_worker` answers an SDP offer (PROTOCOL.md §2),
 * `GET /healthz` reports liveness, and an optional static directory is served at `/`.
 */
import { randomBytes } from "node:crypto";
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
import { INITIALISE_PATH, MAX_UPLOAD_BYTES, VidrtcError } from "@vidrtc/protocol";
import type { RTCIceServer, RTCPeerConnectionConfig } from "werift";
import { BodyTooLargeError, CORS_HEADERS, readBody, sendJson, serveStatic } from "./http.js";
import { createConsoleLogger, prefixLogger, type ServerLogger } from "./log.js";
import {
  checkOutputNames,
  jsonErrorDetail,
  type RequestIceServer,
  resolveStreamOutput,
  validateInitialiseRequest,
} from "./request.js";
import { Session, type SessionEvent } from "./session.js";
import { normalizeParameters, ParameterError } from "./workflows/engine.js";
import { resolveWorkflow, type WorkflowDefinition } from "./workflows/index.js";

/** Version reported by `/healthz` (this package's version). */
export const SERVER_VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
  } catch {
    return "0.0.0";
  }
})();

/** Placeholder STUN server on loopback: keeps werift from falling back to a public one. */
export const LOOPBACK_STUN_URL = "stun:127.0.0.1:9";

/** Options of {@link createServer}. */
export interface ServerOptions {
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
  /** gzip data messages when `data_output` is non-empty, as Roboflow's server does (default true). */
  gzip?: boolean;
  /** Directory for uploads (default: a fresh `vidrtc-*` directory under `os.tmpdir()`, removed on close). */
  tempDir?: string;
  /**
   * ICE servers for the server's peers. Default none: host candidates only. werift would use a public
   * STUN server when this list has no STUN entry, so a loopback placeholder is always added then.
   */
  iceServers?: RTCIceServer[];
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
  /** Largest accepted request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Serve this directory's files at `/` (demo page). */
  staticDir?: string;
  ffmpegPath?: string;
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
  url: string;
  port: number;
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
}

interface Resolved {
  host: string;
  port: number;
  maxSessions: number;
  maxUploadBytes: number;
  idleTimeoutMs: number;
  lingerMs: number;
  gzip: boolean;
  maxBodyBytes: number;
  logger: ServerLogger;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new VidrtcError("INVALID_OPTIONS", `${name} must be a positive number, got ${String(value)}.`);
  }
  return value;
}

const hasStun = (servers: RTCIceServer[]): boolean =>
  servers.some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^stuns?:/i.test(u)));

/** Builds the werift configuration for one session (exported for tests). */
export function buildPeerConfig(
  options: ServerOptions,
  clientIceServers: RequestIceServer[] | null,
): RTCPeerConnectionConfig {
  const servers: RTCIceServer[] = [...(options.iceServers ?? [])];
  if (options.useClientIceServers && clientIceServers) {
    for (const s of clientIceServers)
      servers.push({
        urls: s.urls,
        ...(s.username ? { username: s.username } : {}),
        ...(s.credential ? { credential: s.credential } : {}),
      });
  }
  const realStun = hasStun(servers);
  if (!realStun) servers.unshift({ urls: LOOPBACK_STUN_URL });
  const hosts = [
    ...new Set([
      ...(options.iceHostAddresses ?? ["127.0.0.1"]),
      ...(options.iceAdditionalHostAddresses ?? []),
    ]),
  ];
  const useInterfaces = options.iceUseInterfaceAddresses ?? false;
  const single = hosts.length === 1 && !useInterfaces ? hosts[0] : undefined;
  const iceLite =
    options.iceLite ??
    !(options.iceServers?.length || (options.useClientIceServers && clientIceServers?.length));
  const config: RTCPeerConnectionConfig = {
    iceLite,
    iceServers: servers,
    iceAdditionalHostAddresses: hosts,
    iceUseIpv4: useInterfaces,
    iceUseIpv6: false,
    iceStunGatherTimeout: options.iceStunGatherTimeoutSeconds ?? (realStun ? 3 : 0.1),
  };
  if (single !== undefined)
    config.iceInterfaceAddresses = single.includes(":") ? { udp6: single } : { udp4: single };
  if (options.icePortRange) config.icePortRange = options.icePortRange;
  return config;
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
  const r: Resolved = {
    host: options.host ?? "127.0.0.1",
    port: positive("port", options.port, 9001, true),
    maxSessions: positive("maxSessions", options.maxSessions, 4),
    maxUploadBytes: positive("maxUploadBytes", options.maxUploadBytes, MAX_UPLOAD_BYTES),
    idleTimeoutMs: positive("idleTimeoutMs", options.idleTimeoutMs, 30_000),
    lingerMs: positive("lingerMs", options.lingerMs, 30_000),
    gzip: options.gzip ?? true,
    maxBodyBytes: positive("maxBodyBytes", options.maxBodyBytes, 1024 * 1024),
    logger: options.logger ?? createConsoleLogger({ verbose: options.verbose ?? false }),
  };
  const log = r.logger;
  const sessions = new Map<string, Session>();
  let pending = 0; // sessions being negotiated (slot reserved)
  let http: Server | null = null;
  let tempRoot: string | null = null;
  let ownTempRoot = false;
  let closing: Promise<void> | null = null;

  const emit = (event: SessionEvent) => {
    try {
      options.onSessionEvent?.(event);
    } catch (error) {
      log.error(`onSessionEvent threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  const errorBody = (res: ServerResponse, status: number, message: string, errorType: string) =>
    sendJson(res, status, { message, error_type: errorType });

  async function handleInitialise(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw: Buffer;
    try {
      raw = await readBody(req, r.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        errorBody(res, 413, `Request body larger than ${r.maxBodyBytes} bytes.`, "RequestEntityTooLarge");
      } else errorBody(res, 400, error instanceof Error ? error.message : String(error), "BadRequest");
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (error) {
      sendJson(res, 422, { detail: jsonErrorDetail(error) });
      return;
    }
    const parsed = validateInitialiseRequest(body, req.headers.authorization ?? null);
    if (!parsed.ok) {
      sendJson(res, 422, { detail: parsed.detail });
      return;
    }
    const request = parsed.request;
    if (options.apiKey !== undefined && request.apiKey !== options.apiKey) {
      errorBody(
        res,
        401,
        "Unauthorized: a valid API key is required (api_key or Authorization: Bearer).",
        "RoboflowAPINotAuthorizedError",
      );
      return;
    }
    let workflow: WorkflowDefinition;
    try {
      workflow = resolveWorkflow(request.workflowConfiguration);
      // workflows_parameters override the specification's; check them now rather than mid-session.
      normalizeParameters(workflow.id, {
        ...workflow.parameters,
        ...request.workflowConfiguration.workflows_parameters,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (VidrtcError.hasCode(error, "NOT_FOUND"))
        errorBody(res, 404, message, "RoboflowAPINotNotFoundError");
      else if (VidrtcError.isInstance(error) || error instanceof ParameterError) {
        errorBody(res, 400, message, "WorkflowSyntaxError");
      } else throw error;
      return;
    }
    const names = outputNames(workflow);
    const badOutputs = checkOutputNames(request, names);
    if (badOutputs) {
      errorBody(res, 400, badOutputs, "WebRTCConfigurationError");
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
    if (closing || !tempRoot) {
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
          tempRoot,
          peerConfig: buildPeerConfig(options, request.iceServers),
          maxUploadBytes: r.maxUploadBytes,
          idleTimeoutMs: r.idleTimeoutMs,
          gzip: r.gzip,
          lingerMs: r.lingerMs,
          gatherTimeoutMs: 10_000,
          resolveMdnsCandidates: options.resolveMdnsCandidates ?? false,
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
    sendJson(res, 200, {
      status: "success",
      context: { request_id: null, pipeline_id: null },
      sdp,
      type: "answer",
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = url.pathname.replace(/\/+$/, "") || "/";
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...CORS_HEADERS, "Content-Length": 0 });
      res.end();
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
      sendJson(res, 200, { status: "ok", sessions: sessions.size, version: SERVER_VERSION });
      return;
    }
    if (options.staticDir && (req.method === "GET" || req.method === "HEAD")) {
      await serveStatic(options.staticDir, url.pathname, req, res);
      return;
    }
    errorBody(res, 404, "Not found.", "NotFound");
  }

  return {
    get sessions() {
      return sessions.size + pending;
    },

    async listen(): Promise<ListeningAddress> {
      if (http) throw new VidrtcError("INVALID_OPTIONS", "listen() was already called.");
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
          sendJson(res, 500, { message: "Internal error." });
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
        `vidrtc-server listening on ${result.url} (max ${r.maxSessions} sessions, uploads up to ${r.maxUploadBytes} bytes)`,
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
