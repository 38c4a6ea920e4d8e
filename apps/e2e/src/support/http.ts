/**
 * A tiny static HTTP server on 127.0.0.1 for browser tests: serves fixed routes (a test page,
 * a bundled script, a fixture file) to Chromium.
 */
import { createReadStream } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What one route serves: a body in memory, or a file streamed from disk. */
export type Route =
  | { body: string | Uint8Array; contentType?: string; headers?: Record<string, string> }
  | { file: string; contentType?: string; headers?: Record<string, string> };

/** A running {@link startHttpServer} server. */
export interface LocalHttpServer {
  /** Base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Requests served so far, as `METHOD path`. */
  readonly requests: readonly string[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
  /** Same as {@link LocalHttpServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Serves `routes` (path -> route, e.g. `"/": { body: html, contentType: "text/html" }`) on
 * 127.0.0.1 on a free port. Unknown paths get 404; `fallback` may handle them instead.
 */
export async function startHttpServer(
  routes: Record<string, Route>,
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<LocalHttpServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    requests.push(`${req.method ?? "GET"} ${path}`);
    const route = routes[path];
    if (!route) {
      if (fallback) {
        fallback(req, res);
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const headers = {
      "content-type": route.contentType ?? "application/octet-stream",
      "cache-control": "no-store",
      ...route.headers,
    };
    if ("file" in route) {
      res.writeHead(200, headers);
      const stream = createReadStream(route.file);
      stream.on("error", (error) => res.destroy(error));
      stream.pipe(res);
      return;
    }
    res.writeHead(200, headers).end(route.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  return { url: `http://127.0.0.1:${port}`, port, requests, close, [Symbol.asyncDispose]: close };
}

/** A signalling request body like the Node binding's (frame-stats, data only), with `sdp` as the offer. */
export function initialiseBody(
  sdp: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    workflow_configuration: {
      type: "WorkflowConfiguration",
      workflow_id: "frame-stats",
      workspace_name: "local",
      image_input_name: "image",
    },
    webrtc_offer: { type: "offer", sdp },
    webrtc_realtime_processing: false,
    stream_output: [],
    data_output: ["*"],
    ...overrides,
  };
}
