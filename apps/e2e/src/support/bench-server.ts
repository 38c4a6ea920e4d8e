/**
 * A `@vidrtc/server` alone in a child process for the upload benchmarks, so that its CPU and RSS
 * are measured without the client's: its session events travel over IPC with the child's wall
 * clock ({@link wallNow}), comparable with the parent's.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, type ServerOptions, type SessionEvent } from "@vidrtc/server";

const SERVER_FLAG = "--as-bench-server";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

/** What the server child is started with. */
export interface BenchServerOptions {
  maxUploadBytes: number;
  /** The server's WebRTC stack (default: the server's default, werift). */
  transport?: ServerOptions["transport"];
  /** Host candidate addresses (node-datachannel needs the sealed fake NIC's address). */
  iceHostAddresses?: string[];
  /** Directory served over HTTP (the browser benchmarks' test page). */
  staticDir?: string;
}

/** Messages from the server child. `at` is the child's wall clock ({@link wallNow}). */
type ServerMessage =
  | { kind: "ready"; url: string; pid: number }
  | { kind: "event"; event: SessionEvent; at: number }
  | { kind: "error"; message: string };

async function runServerChild(options: BenchServerOptions): Promise<void> {
  const { maxUploadBytes, transport, iceHostAddresses, staticDir } = options;
  const send = (m: ServerMessage) => process.send?.(m);
  const tempDir = await mkdtemp(join(tmpdir(), "vidrtc-bench-upload-"));
  const server = createServer({
    host: "127.0.0.1",
    port: 0,
    tempDir,
    maxUploadBytes,
    maxSessions: 2,
    idleTimeoutMs: 60_000,
    lingerMs: 2_000,
    ...(transport !== undefined ? { transport } : {}),
    ...(iceHostAddresses !== undefined ? { iceHostAddresses } : {}),
    ...(staticDir !== undefined ? { staticDir } : {}),
    // One line per problem on stderr; the events (with their time) travel over IPC.
    logger: { info() {}, error: (line: string) => console.error(`[server] ${line}`), debug() {} },
    onSessionEvent: (event) => send({ kind: "event", event, at: wallNow() }),
  });
  const { url } = await server.listen();
  const shutdown = async () => {
    await server.close().catch(() => {});
    await rm(tempDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("message", (m: unknown) => {
    if ((m as { kind?: string }).kind === "stop") void shutdown();
  });
  process.on("disconnect", () => void shutdown());
  send({ kind: "ready", url, pid: process.pid });
}

/** The parent's handle on the server child. */
export interface ServerChild {
  child: ChildProcess;
  url: string;
  pid: number;
  events: { event: SessionEvent; at: number }[];
  /** First event of `type` at index >= `since` (wait at most `timeoutMs`). */
  waitEvent<T extends SessionEvent["type"]>(
    type: T,
    since: number,
    timeoutMs: number,
  ): Promise<{ event: Extract<SessionEvent, { type: T }>; at: number }>;
  stop(): Promise<void>;
}

export async function startServerChild(options: BenchServerOptions): Promise<ServerChild> {
  const child = fork(fileURLToPath(import.meta.url), [SERVER_FLAG, JSON.stringify(options)], {
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const events: { event: SessionEvent; at: number }[] = [];
  const listeners = new Set<() => void>();
  let exited = false;
  child.on("exit", () => {
    exited = true;
    for (const l of [...listeners]) l();
  });
  const ready = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server child did not start within 30 s")), 30_000);
    child.on("exit", (code) => reject(new Error(`the server child exited during start-up (${code})`)));
    child.on("message", (raw) => {
      const m = raw as ServerMessage;
      if (m.kind === "ready") {
        clearTimeout(timer);
        resolve(m);
      } else if (m.kind === "event") {
        events.push({ event: m.event, at: m.at });
        for (const l of [...listeners]) l();
      } else if (m.kind === "error") reject(new Error(`server child: ${m.message}`));
    });
  });
  return {
    child,
    url: ready.url,
    pid: ready.pid,
    events,
    waitEvent(type, since, timeoutMs) {
      type Hit = { event: Extract<SessionEvent, { type: typeof type }>; at: number };
      return new Promise<Hit>((resolve, reject) => {
        const check = () => {
          const hit = events.slice(since).find((e) => e.event.type === type);
          if (hit) {
            finish();
            resolve(hit as Hit);
          } else if (exited) {
            finish();
            reject(new Error(`the server child exited while waiting for ${type}`));
          }
        };
        const finish = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const timer = setTimeout(() => {
          finish();
          const seen = events.slice(since).map((e) => e.event.type);
          reject(
            new Error(`no ${type} server event within ${timeoutMs} ms (saw ${seen.join(", ") || "none"})`),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.send({ kind: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes(SERVER_FLAG)) {
  const options = JSON.parse(
    process.argv[process.argv.indexOf(SERVER_FLAG) + 1] ?? "{}",
  ) as BenchServerOptions;
  runServerChild(options).catch((error: unknown) => {
    process.send?.({ kind: "error", message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  });
}
