/**
 * HTTP layer of the server, without WebRTC: validation (422/404/400/413/401), CORS, healthz,
 * routing and static files.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "./log.js";
import { createServer, type VidrtcServer } from "./server.js";

let dir: string;
let tempDir: string;
let server: VidrtcServer;
let base: string;

const FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workflow_configuration: {
      type: "WorkflowConfiguration",
      workflow_id: "frame-stats",
      workspace_name: "local",
    },
    webrtc_offer: { type: "offer", sdp: FAKE_SDP },
    webrtc_realtime_processing: false,
    stream_output: [],
    data_output: ["*"],
    ...overrides,
  };
}

async function post(payload: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/initialise_webrtc_worker`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vidrtc-http-test-"));
  tempDir = path.join(dir, "uploads");
  await mkdir(tempDir);
  const site = path.join(dir, "site");
  await mkdir(path.join(site, "sub"), { recursive: true });
  await writeFile(path.join(site, "index.html"), "<!doctype html><title>demo</title>");
  await writeFile(path.join(site, "app.js"), "console.log(1);");
  await writeFile(path.join(site, "style.css"), "body{}");
  await writeFile(path.join(site, "sub", "index.html"), "sub index");
  await writeFile(path.join(dir, "secret.txt"), "top secret");
  await symlink(path.join(dir, "secret.txt"), path.join(site, "link.txt"));
  server = createServer({ port: 0, staticDir: site, tempDir, logger: silentLogger, maxBodyBytes: 64 * 1024 });
  base = (await server.listen()).url;
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("routes", () => {
  it("answers /healthz", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const json = (await res.json()) as Record<string, unknown>;
    expect(json).toMatchObject({ status: "ok", sessions: 0 });
    expect(typeof json.version).toBe("string");
  });

  it("answers CORS preflights", async () => {
    const res = await fetch(`${base}/initialise_webrtc_worker`, {
      method: "OPTIONS",
      headers: {
        origin: "http://example.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-headers")).toMatch(/content-type/);
    expect(res.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    expect(res.headers.get("access-control-allow-methods")).toMatch(/POST/);
  });

  it("404s unknown routes and 405s GET on the signalling route", async () => {
    const res = await fetch(`${base}/nope`, { method: "POST" });
    expect(res.status).toBe(404);
    expect(await res.json()).toHaveProperty("message");
    const get = await fetch(`${base}/initialise_webrtc_worker`);
    expect(get.status).toBe(405);
  });
});

describe("POST /initialise_webrtc_worker validation", () => {
  it("422s malformed JSON, FastAPI style", async () => {
    const res = await post("{not json");
    expect(res.status).toBe(422);
    const detail = res.json.detail as Array<Record<string, unknown>>;
    expect(detail[0]).toMatchObject({ type: "json_invalid", loc: ["body", 0] });
    expect(typeof detail[0]?.msg).toBe("string");
  });

  it("422s a body that is not an object", async () => {
    const res = await post([1, 2]);
    expect(res.status).toBe(422);
    expect((res.json.detail as unknown[]).length).toBe(1);
  });

  it("422s missing required fields with their locations", async () => {
    const res = await post({ api_key: null });
    expect(res.status).toBe(422);
    const locs = (res.json.detail as Array<{ loc: unknown[]; type: string; msg: string }>).map((d) =>
      d.loc.join("."),
    );
    expect(locs).toContain("body.workflow_configuration");
    expect(locs).toContain("body.webrtc_offer");
    for (const d of res.json.detail as Array<{ type: string; msg: string }>) {
      expect(d.type).toBe("missing");
      expect(d.msg).toBe("Field required");
    }
  });

  it("422s wrong types", async () => {
    const res = await post(
      body({
        webrtc_offer: { type: "offer", sdp: 5 },
        data_output: "predictions",
        stream_output: [1],
        processing_timeout: 1.5,
        webrtc_realtime_processing: "maybe",
        workflow_configuration: { type: "Other", workflow_id: "frame-stats" },
      }),
    );
    expect(res.status).toBe(422);
    const locs = (res.json.detail as Array<{ loc: unknown[] }>).map((d) => d.loc.join("."));
    expect(locs).toEqual(
      expect.arrayContaining([
        "body.webrtc_offer.sdp",
        "body.data_output",
        "body.stream_output.0",
        "body.processing_timeout",
        "body.webrtc_realtime_processing",
        "body.workflow_configuration.type",
      ]),
    );
  });

  it("422s an answer instead of an offer", async () => {
    const res = await post(body({ webrtc_offer: { type: "answer", sdp: FAKE_SDP } }));
    expect(res.status).toBe(422);
  });

  it("404s an unknown workflow", async () => {
    const res = await post(
      body({
        workflow_configuration: {
          type: "WorkflowConfiguration",
          workspace_name: "w",
          workflow_id: "no-such-flow",
        },
      }),
    );
    expect(res.status).toBe(404);
    expect(typeof res.json.message).toBe("string");
    expect(typeof res.json.error_type).toBe("string");
    expect(res.json.message).toMatch(/no-such-flow/);
  });

  it("400s a specification that names no built-in, and a request with no workflow", async () => {
    const spec = await post(
      body({
        workflow_configuration: { type: "WorkflowConfiguration", workflow_specification: { steps: [] } },
      }),
    );
    expect(spec.status).toBe(400);
    expect(spec.json).toHaveProperty("error_type");
    const none = await post(body({ workflow_configuration: { type: "WorkflowConfiguration" } }));
    expect(none.status).toBe(400);
  });

  it("400s out-of-range workflow parameters", async () => {
    const res = await post(
      body({
        workflow_configuration: {
          type: "WorkflowConfiguration",
          workflow_id: "motion",
          workflows_parameters: { threshold: -5 },
        },
      }),
    );
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/threshold/);
  });

  it("400s unknown output names", async () => {
    const data = await post(
      body({
        workflow_configuration: { type: "WorkflowConfiguration", workflow_id: "motion" },
        data_output: ["predictions", "bogus"],
      }),
    );
    expect(data.status).toBe(400);
    expect(data.json.message).toMatch(/bogus/);
    expect(data.json.error_type).toBe("WebRTCConfigurationError");
    const stream = await post(
      body({
        workflow_configuration: { type: "WorkflowConfiguration", workflow_id: "motion" },
        stream_output: ["nope"],
      }),
    );
    expect(stream.status).toBe(400);
    const notImage = await post(
      body({
        workflow_configuration: { type: "WorkflowConfiguration", workflow_id: "motion" },
        stream_output: ["predictions"],
      }),
    );
    expect(notImage.status).toBe(400);
    expect(notImage.json.message).toMatch(/not an image output/);
  });

  it("413s an oversized body", async () => {
    const res = await post(body({ padding: "x".repeat(100 * 1024) }));
    expect(res.status).toBe(413);
  });

  it("leaves no session and no temp files behind after rejected requests", async () => {
    expect(server.sessions).toBe(0);
    expect(await readdir(tempDir)).toEqual([]);
  });
});

describe("api key", () => {
  it("401s without the configured key and lets the Bearer header win over the body", async () => {
    const keyed = createServer({ port: 0, apiKey: "sekrit", logger: silentLogger });
    const { url } = await keyed.listen();
    try {
      const send = (payload: unknown, headers: Record<string, string> = {}) =>
        fetch(`${url}/initialise_webrtc_worker`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(payload),
        });
      expect((await send(body())).status).toBe(401);
      expect((await send(body({ api_key: "wrong" }))).status).toBe(401);
      expect((await send(body({ api_key: "sekrit" }), { authorization: "Bearer wrong" })).status).toBe(401);
      // Right key: gets past auth (and then fails validation of the unknown workflow -> 404).
      const ok = await send(
        body({
          api_key: "wrong",
          workflow_configuration: { type: "WorkflowConfiguration", workflow_id: "x" },
        }),
        { authorization: "Bearer sekrit" },
      );
      expect(ok.status).toBe(404);
    } finally {
      await keyed.close();
    }
  });
});

describe("static files", () => {
  it("serves index.html, js and css with content types", async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await index.text()).toContain("demo");
    const js = await fetch(`${base}/app.js`);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    const css = await fetch(`${base}/style.css`);
    expect(css.headers.get("content-type")).toMatch(/^text\/css/);
    const sub = await fetch(`${base}/sub/`);
    expect(await sub.text()).toBe("sub index");
  });

  it("never leaves the static directory", async () => {
    for (const p of [
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/sub/%2e%2e/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/link.txt",
      "/%00",
      "/missing.js",
    ]) {
      const res = await fetch(`${base}${p}`);
      expect(res.status, p).toBe(404);
      expect(await res.text()).not.toContain("top secret");
    }
  });
});

describe("hostile request bodies", () => {
  const SECRET = "sekrit-api-key-77";
  const TURN_SECRET = "turn-credential-91";

  it("a 781 KiB body with 400k bad items gets a small 422 that echoes no secret, and memory stays bounded", async () => {
    const big = createServer({ port: 0, logger: silentLogger, tempDir });
    const { url } = await big.listen();
    try {
      const payload = JSON.stringify(
        body({
          api_key: SECRET,
          webrtc_config: {
            iceServers: [{ urls: "turn:127.0.0.1:3478", username: "u", credential: TURN_SECRET }],
          },
          stream_output: new Array(400_000).fill(1),
        }),
      );
      expect(payload.length).toBeGreaterThan(780 * 1024);
      expect(payload.length).toBeLessThan(1024 * 1024);
      const send = async () => {
        const res = await fetch(`${url}/initialise_webrtc_worker`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: payload,
        });
        return { status: res.status, text: await res.text() };
      };
      const first = await send();
      expect(first.status).toBe(422);
      expect(first.text.length).toBeLessThan(16 * 1024);
      expect(first.text).not.toContain(SECRET);
      expect(first.text).not.toContain(TURN_SECRET);
      const detail = (JSON.parse(first.text) as { detail: Array<{ type: string; msg: string }> }).detail;
      expect(detail.length).toBeLessThanOrEqual(21);
      expect(detail.at(-1)?.type).toBe("too_many_errors");
      expect(detail.at(-1)?.msg).toMatch(/^399980 more validation errors/);
      // 8 at once (the audit's 1.5 GiB case): every answer small, the process grows little.
      globalThis.gc?.();
      const before = process.memoryUsage().rss;
      const all = await Promise.all(Array.from({ length: 8 }, send));
      const grown = process.memoryUsage().rss - before;
      for (const r of all) {
        expect(r.status).toBe(422);
        expect(r.text.length).toBeLessThan(16 * 1024);
      }
      console.log(
        `[hardening] ${(payload.length / 1024).toFixed(0)} KiB body with 400k bad items: 422 of ${first.text.length} bytes, ${detail.length} issues; 8 in parallel grew RSS by ${(grown / 1024 / 1024).toFixed(1)} MiB`,
      );
      expect(grown).toBeLessThan(256 * 1024 * 1024);
    } finally {
      await big.close();
    }
  });

  it("secrets are never echoed, whatever field fails", async () => {
    const res = await post(
      body({
        api_key: 12345,
        webrtc_config: { iceServers: [{ urls: 5, username: SECRET, credential: TURN_SECRET }] },
        webrtc_offer: { type: "offer", sdp: 5 },
      }),
    );
    expect(res.status).toBe(422);
    const text = JSON.stringify(res.json);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(TURN_SECRET);
    expect(text).not.toContain("12345");
    const missing = await post({
      api_key: SECRET,
      webrtc_config: { iceServers: [{ credential: TURN_SECRET }] },
    });
    expect(missing.status).toBe(422);
    expect(JSON.stringify(missing.json)).not.toContain(SECRET);
    expect(JSON.stringify(missing.json)).not.toContain(TURN_SECRET);
  });

  it("deeply nested JSON gets a 4xx, never a 500", async () => {
    const depth = 20_000;
    const nested = `${"[".repeat(depth)}1${"]".repeat(depth)}`;
    const object = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    for (const payload of [
      `{"stream_output":[${nested}]}`,
      `{"workflow_configuration":${object}}`,
      `{"workflow_configuration":{"type":"WorkflowConfiguration","workflow_specification":${object}},"webrtc_offer":{"type":"offer","sdp":"v=0"}}`,
      nested,
    ]) {
      const res = await post(payload);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    // Just under the limit is still validated normally.
    const ok = await post(body({ padding: JSON.parse(`${"[".repeat(60)}${"]".repeat(60)}`) }));
    expect(ok.status).not.toBe(500);
  });

  it("415s bodies that are not JSON (text/plain is a CORS simple request) and starts no session", async () => {
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const res = await fetch(`${base}/initialise_webrtc_worker`, {
        method: "POST",
        headers: { "content-type": type },
        body: JSON.stringify(body()),
      });
      expect(res.status).toBe(415);
    }
    const none = await fetch(`${base}/initialise_webrtc_worker`, {
      method: "POST",
      body: JSON.stringify(body()),
    });
    expect([400, 415]).toContain(none.status);
    expect((await post(body({}), { "content-type": "application/json; charset=utf-8" })).status).toBe(400);
    expect(server.sessions).toBe(0);
  });

  it("400s unusable offers (v=0 alone, binary junk, 3000 m-sections) at once, without a session slot", async () => {
    const many = `${FAKE_SDP}a=ice-ufrag:x\r\na=ice-pwd:y\r\na=fingerprint:sha-256 00\r\n${"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n".repeat(3000)}`;
    expect(many.length).toBeGreaterThan(120 * 1024);
    const wide = createServer({ port: 0, logger: silentLogger, tempDir, maxSessions: 1 });
    const { url } = await wide.listen();
    try {
      for (const sdp of ["v=0", "v=0\r\n", `v=0\r\n${"\u0001\u00ff\u0000junk".repeat(50)}`, many]) {
        const started = performance.now();
        const res = await fetch(`${url}/initialise_webrtc_worker`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body({ webrtc_offer: { type: "offer", sdp } })),
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { message: string }).message).toMatch(/^Invalid WebRTC offer: /);
        expect(performance.now() - started).toBeLessThan(2_000);
        expect(wide.sessions).toBe(0);
      }
    } finally {
      await wide.close();
    }
  });
});

describe("origins (CORS)", () => {
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/initialise_webrtc_worker`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
  const postFrom = (url: string, origin: string | undefined, payload: unknown) =>
    fetch(`${url}/initialise_webrtc_worker`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(origin ? { origin } : {}) },
      body: JSON.stringify(payload),
    });

  it("with an API key and no allowOrigins: no CORS for other origins, their POSTs 403 before any work", async () => {
    const keyed = createServer({ port: 0, apiKey: "k", logger: silentLogger, tempDir });
    const { url, port } = await keyed.listen();
    try {
      const pre = await preflight(url, "http://evil.test");
      expect(pre.headers.get("access-control-allow-origin")).toBeNull();
      const res = await postFrom(url, "http://evil.test", body({ api_key: "k" }));
      expect(res.status).toBe(403);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      // Clients without an Origin (Node, curl) and the server's own pages are unaffected.
      expect((await postFrom(url, undefined, body({ api_key: "k" }))).status).toBe(400);
      expect((await postFrom(url, `http://127.0.0.1:${port}`, body({ api_key: "k" }))).status).toBe(400);
      // Unauthenticated: 401 before validation (no 422 echo of the body).
      const unauth = await postFrom(url, undefined, { junk: "x".repeat(1000) });
      expect(unauth.status).toBe(401);
      expect(keyed.sessions).toBe(0);
    } finally {
      await keyed.close();
    }
  });

  it("allowOrigins: only the listed origins get CORS headers; others are refused", async () => {
    const listed = createServer({
      port: 0,
      allowOrigins: ["http://good.test", "https://app.example.com:8443/"],
      logger: silentLogger,
      tempDir,
    });
    const { url } = await listed.listen();
    try {
      const good = await preflight(url, "http://good.test");
      expect(good.headers.get("access-control-allow-origin")).toBe("http://good.test");
      expect(good.headers.get("vary")).toMatch(/Origin/);
      const other = await preflight(url, "https://app.example.com:8443");
      expect(other.headers.get("access-control-allow-origin")).toBe("https://app.example.com:8443");
      expect(
        (await preflight(url, "http://evil.test")).headers.get("access-control-allow-origin"),
      ).toBeNull();
      expect((await postFrom(url, "http://evil.test", body())).status).toBe(403);
      expect((await postFrom(url, "http://good.test.evil.test", body())).status).toBe(403);
      const ok = await postFrom(url, "http://good.test", body());
      expect(ok.status).toBe(400); // past the origin check: FAKE_SDP is not a usable offer
      expect(ok.headers.get("access-control-allow-origin")).toBe("http://good.test");
    } finally {
      await listed.close();
    }
    expect(() => createServer({ allowOrigins: ["not an origin"] })).toThrow(/allowOrigins/);
    expect(() => createServer({ allowOrigins: ["http://a.test/path"] })).toThrow(/allowOrigins/);
  });

  it("a loopback server without a key still allows any origin (local development)", async () => {
    const res = await postFrom(base, "http://example.test", body());
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });
});

describe("vidrtc-server --allow-origin", () => {
  it("is repeatable and restricts CORS to the given origins", async () => {
    const { spawn } = await import("node:child_process");
    const cli = path.join(import.meta.dirname, "..", "dist", "cli.js");
    const child = spawn(
      process.execPath,
      [
        cli,
        "--port",
        "0",
        "--api-key",
        "k",
        "--allow-origin",
        "http://a.test",
        "--allow-origin",
        "http://b.test",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`no ready line within 20 s: ${out}`)), 20_000);
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          const m = /ready: (http:\/\/\S+)/.exec(out);
          if (m?.[1]) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        child.once("exit", (code) => reject(new Error(`vidrtc-server exited with ${code}: ${out}`)));
      });
      const allowed = async (origin: string) =>
        (
          await fetch(`${url}/initialise_webrtc_worker`, {
            method: "OPTIONS",
            headers: { origin, "access-control-request-method": "POST" },
          })
        ).headers.get("access-control-allow-origin");
      expect(await allowed("http://a.test")).toBe("http://a.test");
      expect(await allowed("http://b.test")).toBe("http://b.test");
      expect(await allowed("http://c.test")).toBeNull();
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(null)));
    }
  });
});
