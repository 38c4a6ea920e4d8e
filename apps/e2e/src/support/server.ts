/**
 * Starts an in-process `@vidrtc/server` on an ephemeral loopback port for a test, with its own
 * temp directory and every session event recorded.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
