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
