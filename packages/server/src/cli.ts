#!/usr/bin/env node
/**
 * `vidrtc-server`: starts the local inference server from a shell.
 */
import { constants as fsConstants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { VidrtcError } from "@vidrtc/protocol";
import { Command, InvalidArgumentError, Option } from "commander";
import { demoDirectory } from "./demo.js";
import { isLoopbackHost } from "./http.js";
import { createConsoleLogger } from "./log.js";
import { checkFfmpeg } from "./media/probe.js";
import { createServer, SERVER_TRANSPORT_NAMES, SERVER_VERSION, type ServerTransportName } from "./server.js";

const int = (name: string, min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}.`);
  return n;
};

const positiveNumber = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number.`);
  return n;
};

const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
];

interface CliOptions {
  host: string;
  port: number;
  maxSessions: number;
  maxUploadMb: number;
  idleTimeout: number;
  livenessTimeout: number;
  gzip: boolean;
  staticDir?: string;
  demo?: boolean;
  verbose?: boolean;
  iceHost?: string[];
  iceInterfaces?: boolean;
  iceServer?: string[];
  apiKey?: string;
  allowOrigin?: string[];
  ffmpeg?: string;
  ffprobe?: string;
  tempDir?: string;
  transport?: ServerTransportName;
}

/** Why `dir` cannot be served (missing, not a directory, unreadable), or null when it can. */
async function directoryProblem(dir: string): Promise<string | null> {
  try {
    if (!(await stat(dir)).isDirectory()) return "not a directory";
    await access(dir, fsConstants.R_OK | fsConstants.X_OK);
    return null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT"
      ? "no such directory"
      : code === "EACCES"
        ? "permission denied"
        : String(code ?? error);
  }
}

/** Runs the CLI with `argv` (as `process.argv`). Resolves once the server is listening. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = new Command()
    .name("vidrtc-server")
    .description(
      "Local inference server speaking Roboflow's WebRTC video-upload protocol (POST /initialise_webrtc_worker).",
    )
    .version(SERVER_VERSION)
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--port <port>", "TCP port (0 = any free port)", int("--port", 0), 9001)
    .option("--max-sessions <n>", "concurrent sessions; more get HTTP 429", int("--max-sessions", 1), 4)
    .option("--max-upload-mb <n>", "largest upload in MiB", positiveNumber("--max-upload-mb"), 512)
    .option(
      "--idle-timeout <seconds>",
      "end a session whose upload makes no progress for this long",
      positiveNumber("--idle-timeout"),
      30,
    )
    .option(
      "--liveness-timeout <seconds>",
      "end a session, in any state, when nothing (not even an ICE consent check, sent every 4-6 s by live clients) arrives from its client for this long",
      positiveNumber("--liveness-timeout"),
      15,
    )
    .option("--no-gzip", "never gzip result messages (the browser SDK v0.1.13 cannot read gzip)")
    .option(
      "--demo",
      "serve the demo page shipped with this package at / (open the printed URL in a browser)",
    )
    .option("--static-dir <dir>", "serve this directory at / instead (your own pages; not with --demo)")
    .option(
      "--ice-host <address...>",
      "host candidate address(es) for WebRTC (default 127.0.0.1; give a LAN address for other machines)",
      list,
    )
    .option("--ice-interfaces", "also offer host candidates on every non-loopback IPv4 interface (LAN)")
    .option(
      "--ice-server <url...>",
      "STUN/TURN server URL(s) for the server's peers (default: none, host candidates only)",
      list,
    )
    .option("--api-key <key>", "require this API key (body api_key or Authorization: Bearer)")
    .option(
      "--allow-origin <origin...>",
      "web origin(s) allowed to call the server from a browser, e.g. https://app.example.com ('*' = any; default: any on loopback without --api-key, none otherwise)",
      list,
    )
    .option("--temp-dir <dir>", "directory for uploads (default: a fresh one under the system temp dir)")
    .option("--ffmpeg <path>", "ffmpeg executable", undefined)
    .option("--ffprobe <path>", "ffprobe executable", undefined)
    .addOption(
      new Option(
        "--transport <name>",
        "WebRTC stack: werift (pure JS, default), node-datachannel (native, faster; needs the node-datachannel package and a non-loopback interface) or auto (node-datachannel when it can run, else werift with a warning)",
      ).choices([...SERVER_TRANSPORT_NAMES]),
    )
    .option("-v, --verbose", "log more detail per session");
  program.parse(argv);
  const opts = program.opts<CliOptions>();
  const logger = createConsoleLogger({ verbose: opts.verbose ?? false });

  if (opts.demo && opts.staticDir !== undefined) {
    process.stderr.write(
      "vidrtc-server: --demo and --static-dir cannot be used together: both serve /; give one of them\n",
    );
    process.exitCode = 2;
    return;
  }
  let staticDir = opts.staticDir;
  if (opts.demo) {
    staticDir = demoDirectory();
    const index = path.join(staticDir, "index.html");
    const problem = await access(index, fsConstants.R_OK).then(
      () => null,
      (error: NodeJS.ErrnoException) => error.code ?? String(error),
    );
    if (problem) {
      process.stderr.write(
        `vidrtc-server: --demo: the demo page is missing from this installation (${index}: ${problem}); reinstall @vidrtc/server, or run \`pnpm build\` in a checkout\n`,
      );
      process.exitCode = 2;
      return;
    }
  } else if (staticDir !== undefined) {
    const problem = await directoryProblem(staticDir);
    if (problem) {
      process.stderr.write(`vidrtc-server: --static-dir ${staticDir}: ${problem}\n`);
      process.exitCode = 2;
      return;
    }
  }

  const tools = await checkFfmpeg({
    ...(opts.ffmpeg ? { ffmpegPath: opts.ffmpeg } : {}),
    ...(opts.ffprobe ? { ffprobePath: opts.ffprobe } : {}),
  });
  if (!tools.ok) {
    process.stderr.write(`vidrtc-server: ffmpeg/ffprobe are required to decode uploads.\n${tools.message}\n`);
    process.exitCode = 1;
    return;
  }
  logger.debug(`ffmpeg ${tools.ffmpegVersion}`);

  const server = createServer({
    host: opts.host,
    port: opts.port,
    maxSessions: opts.maxSessions,
    maxUploadBytes: Math.floor(opts.maxUploadMb * 1024 * 1024),
    idleTimeoutMs: Math.round(opts.idleTimeout * 1000),
    livenessTimeoutMs: Math.round(opts.livenessTimeout * 1000),
    gzip: opts.gzip,
    logger,
    ...(staticDir ? { staticDir } : {}),
    ...(opts.iceHost && opts.iceHost.length > 0 ? { iceHostAddresses: opts.iceHost } : {}),
    ...(opts.iceInterfaces ? { iceUseInterfaceAddresses: true } : {}),
    ...(opts.iceServer && opts.iceServer.length > 0
      ? { iceServers: opts.iceServer.map((urls) => ({ urls })) }
      : {}),
    ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
    ...(opts.allowOrigin && opts.allowOrigin.length > 0 ? { allowOrigins: opts.allowOrigin } : {}),
    ...(opts.tempDir ? { tempDir: opts.tempDir } : {}),
    ...(opts.transport ? { transport: opts.transport } : {}),
    ...(opts.ffmpeg ? { ffmpegPath: opts.ffmpeg } : {}),
    ...(opts.ffprobe ? { ffprobePath: opts.ffprobe } : {}),
  });
  let address: Awaited<ReturnType<typeof server.listen>>;
  try {
    address = await server.listen();
  } catch (error) {
    process.stderr.write(
      VidrtcError.hasCode(error, "TRANSPORT_UNAVAILABLE")
        ? `vidrtc-server: ${error.message}\n`
        : `vidrtc-server: could not listen on ${opts.host}:${opts.port}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
    return;
  }
  if (!isLoopbackHost(opts.host) && !opts.apiKey) {
    logger.info(
      `warning: listening on ${opts.host} without --api-key: anyone who can reach this port can start sessions (see "Running vidrtc-server on a network" in the README)`,
    );
  }
  process.stdout.write(
    `vidrtc-server ${SERVER_VERSION} ready: ${address.url}  (POST ${address.url}/initialise_webrtc_worker)\n`,
  );
  if (opts.demo) process.stdout.write(`demo page: ${address.url}/\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.exit(130);
    }
    stopping = true;
    logger.info(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error) => {
  process.stderr.write(`vidrtc-server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
