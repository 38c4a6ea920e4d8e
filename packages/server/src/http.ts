/**
 * Small HTTP helpers on `node:http`: CORS, JSON answers, bounded body reading and a static
 * file handler that cannot escape its directory.
 */
import { createReadStream } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";

/** CORS headers of every answer, apart from `Access-Control-Allow-Origin` (see {@link CorsPolicy}). */
const CORS_BASE_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Allow-Headers": "content-type, authorization",
  "Access-Control-Max-Age": "600",
};

/** CORS headers for any origin (Roboflow's server allows any origin too): a loopback server without a key. */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
  ...CORS_BASE_HEADERS,
};

/**
 * Which web origins may call the server. `any`: every origin (`*`). Otherwise only the listed ones
 * (an exact `scheme://host[:port]` match) get CORS headers, and requests that carry another `Origin`
 * are refused before they are handled.
 */
export type CorsPolicy = { any: true } | { any: false; origins: ReadonlySet<string> };

/** True for `127.0.0.0/8`, `::1`, `localhost` (what a listen address on this machine only looks like). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::ffff:127.0.0.1";
}

/** Normalises an origin (`http://Host:80/` -> `http://host`); throws on anything that is not one. */
export function normalizeOrigin(origin: string): string {
  if (origin === "*" || origin === "null") return origin;
  const url = new URL(origin);
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`not an http(s) origin: ${origin}`);
  if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    throw new Error(`an origin has no path, query or credentials: ${origin}`);
  }
  return url.origin;
}

/**
 * The CORS policy: `allowOrigins` when given (`*` in it = any origin); else any origin for a loopback
 * server without an API key (local development), and no cross-origin caller at all otherwise.
 */
export function corsPolicy(
  host: string,
  apiKey: string | undefined,
  allowOrigins: readonly string[] | undefined,
): CorsPolicy {
  if (allowOrigins && allowOrigins.length > 0) {
    const origins = new Set(allowOrigins.map(normalizeOrigin));
    return origins.has("*") ? { any: true } : { any: false, origins };
  }
  if (isLoopbackHost(host) && apiKey === undefined) return { any: true };
  return { any: false, origins: new Set() };
}

/** True when `origin` (the request's `Origin` header, if any) may call a server with `policy`. */
export function originAllowed(policy: CorsPolicy, origin: string | undefined): boolean {
  if (origin === undefined || policy.any) return true;
  try {
    return policy.origins.has(normalizeOrigin(origin));
  } catch {
    return false;
  }
}

/** The CORS headers for an answer to a request from `origin` under `policy`. */
export function corsHeaders(policy: CorsPolicy, origin: string | undefined): Record<string, string> {
  if (policy.any) return { ...CORS_HEADERS };
  if (origin !== undefined && originAllowed(policy, origin)) {
    return { "Access-Control-Allow-Origin": origin, Vary: "Origin", ...CORS_BASE_HEADERS };
  }
  return { Vary: "Origin" };
}

/** Writes a JSON answer with CORS headers (`*` unless `cors` is given). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  cors: Readonly<Record<string, string>> = CORS_HEADERS,
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...cors,
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

/**
 * Deepest nesting of arrays/objects in a JSON text (strings skipped), stopping early once past
 * `limit`: lets a server refuse pathological bodies before anything recurses over them.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Thrown by {@link readBody} when the body is larger than allowed. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`Request body larger than ${limit} bytes.`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Reads a request body up to `limit` bytes (rejects with {@link BodyTooLargeError} beyond it),
 * bounded in time by `timeoutMs`.
 */
export function readBody(req: IncomingMessage, limit: number, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new BodyTooLargeError(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (error: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      if (error) {
        req.resume();
        reject(error);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(new BodyTooLargeError(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = (error: Error) => finish(error);
    const timer = setTimeout(
      () => finish(new Error(`Request body not received within ${timeoutMs} ms.`)),
      timeoutMs,
    );
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".mp4": "video/mp4",
  ".webm": "video/webm",
};

/** Content type for a file name (by extension; `application/octet-stream` when unknown). */
export function contentTypeFor(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

/**
 * Serves `urlPath` from `root` (`/` and directories -> `index.html`). Answers 404 for anything
 * missing or outside `root` (after decoding and resolving symlinks), 405 for methods other than
 * GET/HEAD. Returns once the answer is written.
 */
export async function serveStatic(
  root: string,
  urlPath: string,
  req: IncomingMessage,
  res: ServerResponse,
  cors: Readonly<Record<string, string>> = CORS_HEADERS,
): Promise<void> {
  const notFound = () => sendJson(res, 404, { message: "Not found.", error_type: "NotFound" }, cors);
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendJson(res, 405, { message: "Method not allowed.", error_type: "MethodNotAllowed" }, cors);
    return;
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    notFound();
    return;
  }
  if (decoded.includes("\0")) {
    notFound();
    return;
  }
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    notFound();
    return;
  }
  // Normalise as a URL path first, so `..` can never climb above `/`.
  const relative = path.posix.normalize(`/${decoded}`).replace(/^\/+/, "");
  let file = path.resolve(realRoot, relative);
  try {
    let info = await stat(file);
    if (info.isDirectory()) {
      file = path.join(file, "index.html");
      info = await stat(file);
    }
    if (!info.isFile()) {
      notFound();
      return;
    }
    const real = await realpath(file);
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      notFound();
      return;
    }
    res.writeHead(200, {
      ...cors,
      "Content-Type": contentTypeFor(real),
      "Content-Length": info.size,
      "Cache-Control": "no-cache",
      "X-Content-Type-Options": "nosniff",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    await new Promise<void>((resolve) => {
      const stream = createReadStream(real);
      stream.on("error", () => {
        res.destroy();
        resolve();
      });
      res.on("close", () => {
        stream.destroy();
        resolve();
      });
      stream.pipe(res);
    });
  } catch {
    notFound();
  }
}
