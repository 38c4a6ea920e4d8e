/**
 * Starts an in-process `@vidrtc/server` on an ephemeral loopback port for a test, with its own
 * temp directory and every session event recorded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createServer, type ServerOptions, type SessionEvent } from "@vidrtc/server";

/** A running test server. */
export interface TestServer {
  url: string;
  port: number;
  tempDir: string;
  events: SessionEvent[];
  readonly sessions: number;
  /** Resolves with the first event of `type` (optionally matching `filter`) seen so far or later. */
  waitFor<T extends SessionEvent["type"]>(
    type: T,
    timeoutMs?: number,
    filter?: (e: Extract<SessionEvent, { type: T }>) => boolean,
  ): Promise<Extract<SessionEvent, { type: T }>>;
  /** Files left in the server's temp directory. */
  tempFiles(): Promise<string[]>;
  close(): Promise<void>;
}

/** Starts a server with test-friendly defaults (quiet logs, 127.0.0.1:0, fresh temp dir). */
export async function startTestServer(options: ServerOptions = {}): Promise<TestServer> {
  const tempDir = await mkdtemp(join(tmpdir(), "vidrtc-e2e-server-"));
  const events: SessionEvent[] = [];
  const waiters = new Set<() => void>();
  const server = createServer({
    host: "127.0.0.1",
    port: 0,
    tempDir,
    logger: { info() {}, error() {}, debug() {} },
    ...options,
    onSessionEvent: (event) => {
      events.push(event);
      options.onSessionEvent?.(event);
      for (const w of [...waiters]) w();
    },
  });
  const { url, port } = await server.listen();
  return {
    url,
    port,
    tempDir,
    events,
    get sessions() {
      return server.sessions;
    },
    waitFor(type, timeoutMs = 30_000, filter) {
      type E = Extract<SessionEvent, { type: typeof type }>;
      const find = () => events.find((e): e is E => e.type === type && (!filter || filter(e as never)));
      return new Promise((resolve, reject) => {
        const hit = find();
        if (hit) return resolve(hit as never);
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no "${type}" server event within ${timeoutMs} ms; saw ${events.map((e) => e.type).join(", ")}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const e = find();
          if (e) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(e as never);
          }
        };
        waiters.add(check);
      });
    },
    tempFiles: () => readdir(tempDir).catch(() => []),
    async close() {
      await server.close();
      await rm(tempDir, { recursive: true, force: true });
    },
  };
}

/** Polls `predicate` every 20 ms until true or `timeoutMs` passes (then throws `message`). */
export async function eventually(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The installed `vidrtc-server` executable (the built `@vidrtc/server` package's bin). */
export const SERVER_BIN = join(
  dirname(createRequire(import.meta.url).resolve("@vidrtc/server/package.json")),
  "dist",
  "cli.js",
);

/** A `vidrtc-server` child process. */
export interface CliServer {
  url: string;
  child: ChildProcess;
  /** Everything it printed on stdout so far. */
  stdout(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it exited. */
  close(): Promise<void>;
}

/** Runs `vidrtc-server --port 0 ...args` and resolves once it prints its ready line (bound: `timeoutMs`). */
export async function startCliServer(args: string[], timeoutMs = 20_000): Promise<CliServer> {
  const child = spawn(process.execPath, [SERVER_BIN, "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(force);
    }
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`vidrtc-server was not ready within ${timeoutMs} ms: ${out}${err}`)),
        timeoutMs,
      );
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`vidrtc-server exited with ${code} before it was ready: ${out}${err}`));
      });
      child.stdout!.on("data", (d) => {
        out += String(d);
        const m = /ready: (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    return { url, child, stdout: () => out, close };
  } catch (error) {
    await close();
    throw error;
  }
}
