import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createSignallingProxy, type SignallingProxyOptions } from "./proxy.js";

const KEY = "rf_live_SECRET_key_0123456789";
const OFFER = { type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };

function pageBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workflow_configuration: {
      type: "WorkflowConfiguration",
      workflow_id: "frame-stats",
      image_input_name: "image",
    },
    webrtc_offer: OFFER,
    webrtc_config: null,
    webrtc_realtime_processing: false,
    stream_output: [],
    data_output: ["*"],
    ...extra,
  };
}

interface Call {
  url: string;
  init: RequestInit | undefined;
  body: Record<string, unknown> | null;
}

/** A fake upstream `fetch`: records every call and answers with `reply`. */
function upstream(reply: (call: Call) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fetch = async (url: string, init?: RequestInit): Promise<Response> => {
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : null;
    const call = { url, init, body };
    calls.push(call);
    return reply(call);
  };
  return { calls, fetch };
}

const answer = () =>
  Response.json({
    status: "success",
    sdp: "v=0 answer",
    type: "answer",
    context: { request_id: "r1", pipeline_id: null },
  });

function proxyWith(
  reply: (call: Call) => Response | Promise<Response>,
  options: Partial<SignallingProxyOptions> = {},
) {
  const up = upstream(reply);
  const logs: string[] = [];
  const proxy = createSignallingProxy({
    apiUrl: "http://inference.internal:9001/base",
    apiKey: KEY,
    fetch: up.fetch,
    onLog: (line) => logs.push(line),
    ...options,
  });
  return { proxy, calls: up.calls, logs };
}

function post(
  body: unknown,
  headers: Record<string, string> = { "content-type": "application/json" },
): Request {
  return new Request("http://backend.test/api/vidrtc", {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function json(response: Response): Promise<{ text: string; body: Record<string, unknown> }> {
  const text = await response.text();
  return { text, body: JSON.parse(text) as Record<string, unknown> };
}

describe("signalling proxy: forwarding", () => {
  it("adds the backend's key (body and Bearer), replaces a page's own key, answers with the SDP only", async () => {
    const { proxy, calls } = proxyWith(() => answer());
    const response = await proxy.handle(post(pageBody({ api_key: "page-key" })));
    const { text, body } = await json(response);
    expect(response.status).toBe(200);
    expect(body).toEqual({
      type: "answer",
      sdp: "v=0 answer",
      context: { request_id: "r1", pipeline_id: null },
    });
    expect(text).not.toContain(KEY);

    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    expect(call.url).toBe("http://inference.internal:9001/base/initialise_webrtc_worker");
    expect(call.init?.method).toBe("POST");
    expect(call.init?.redirect).toBe("manual");
    expect((call.init!.headers as Record<string, string>).Authorization).toBe(`Bearer ${KEY}`);
    expect(call.body?.api_key).toBe(KEY);
    expect(call.body?.webrtc_offer).toEqual(OFFER);
    expect(call.body?.data_output).toEqual(["*"]);
    expect(JSON.stringify(call.body)).not.toContain("page-key");
  });

  it("without a key nothing is added (a keyless local server)", async () => {
    const { proxy, calls } = proxyWith(() => answer(), { apiKey: undefined });
    const response = await proxy.handle(post(pageBody({ api_key: "page-key" })));
    expect(response.status).toBe(200);
    expect(calls[0]!.body).not.toHaveProperty("api_key");
    expect(calls[0]!.init?.headers as Record<string, string>).not.toHaveProperty("Authorization");
  });

  it("prepare may pin the workflow or refuse (403, or the VidrtcError's status)", async () => {
    const { proxy, calls } = proxyWith(() => answer(), {
      prepare: (body, request) => {
        if (request.headers.get("x-user") !== "alice")
          throw new VidrtcError("UNAUTHORIZED", "Log in first.", { status: 401 });
        if (request.headers.get("x-plan") === "none") throw new Error("No plan.\nContact us.");
        return { ...body, workflow_configuration: { ...body.workflow_configuration, workflow_id: "motion" } };
      },
    });
    const anonymous = await proxy.handle(post(pageBody()));
    expect(anonymous.status).toBe(401);
    expect((await json(anonymous)).body.message).toBe("Log in first.");
    const noPlan = await proxy.handle(
      post(pageBody(), { "content-type": "application/json", "x-user": "alice", "x-plan": "none" }),
    );
    expect(noPlan.status).toBe(403);
    expect((await json(noPlan)).body.message).toBe("No plan. Contact us.");
    expect(calls).toHaveLength(0);
    const ok = await proxy.handle(
      post(pageBody(), { "content-type": "application/json", "x-user": "alice" }),
    );
    expect(ok.status).toBe(200);
    expect((calls[0]!.body!.workflow_configuration as Record<string, unknown>).workflow_id).toBe("motion");
    expect(calls[0]!.body?.api_key).toBe(KEY);
  });
});

describe("signalling proxy: bad requests are refused before anything is forwarded", () => {
  const cases: Array<[string, Request, number]> = [
    ["not JSON", post("{not json"), 400],
    ["a JSON array", post([1, 2]), 400],
    ["no offer", post({ ...pageBody(), webrtc_offer: undefined }), 400],
    ["an answer instead of an offer", post(pageBody({ webrtc_offer: { type: "answer", sdp: "x" } })), 400],
    ["no workflow_configuration", post({ webrtc_offer: OFFER }), 400],
    ["text/plain", post(pageBody(), { "content-type": "text/plain" }), 415],
    [
      "no content type",
      new Request("http://b/x", { method: "POST", body: new Blob([JSON.stringify(pageBody())]) }),
      415,
    ],
    ["a PUT", new Request("http://b/x", { method: "PUT", body: "{}" }), 405],
  ];
  for (const [name, request, status] of cases) {
    it(`${name} -> ${status}`, async () => {
      const { proxy, calls } = proxyWith(() => answer());
      const response = await proxy.handle(request);
      const { text, body } = await json(response);
      expect(response.status).toBe(status);
      expect(typeof body.message).toBe("string");
      expect(text).not.toContain("\\n");
      expect(calls).toHaveLength(0);
      if (status === 405) expect(response.headers.get("allow")).toBe("GET, POST");
    });
  }

  it("a body over maxBodyBytes -> 413, declared or streamed", async () => {
    const { proxy, calls } = proxyWith(() => answer(), { maxBodyBytes: 1024 });
    const big = pageBody({ padding: "x".repeat(2000) });
    const declared = await proxy.handle(post(big));
    expect(declared.status).toBe(413);
    // No Content-Length: a stream read until the cap is crossed.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(JSON.stringify(big)));
        controller.close();
      },
    });
    const streamed = await proxy.handle(
      new Request("http://b/x", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stream,
        duplex: "half",
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect((await json(streamed)).body.message).toBe("The request body is larger than 1024 bytes.");
    expect(calls).toHaveLength(0);
  });
});

describe("signalling proxy: upstream failures become one line without the key", () => {
  const reflect = (status: number) => (call: Call) =>
    // Like FastAPI's 422: the error echoes the input, API key included.
    Response.json(
      {
        detail: [
          {
            loc: ["body", "workflow_configuration"],
            msg: "Field required",
            type: "missing",
            input: call.body,
          },
        ],
        message: undefined,
      },
      { status },
    );

  const cases: Array<[string, (call: Call) => Response | Promise<Response>, number, RegExp]> = [
    [
      "422 echoing the body",
      reflect(422),
      422,
      /^The inference server refused the request \(HTTP 422\): body\.workflow_configuration: Field required\.$/,
    ],
    [
      "404 naming the key",
      () => Response.json({ message: `Workflow not found for key ${KEY}\nsee logs` }, { status: 404 }),
      404,
      /^The inference server refused the request \(HTTP 404\): Workflow not found for key \[redacted\] see logs\.$/,
    ],
    [
      "401",
      () => Response.json({ message: "Unauthorized api_key" }, { status: 401 }),
      502,
      /refused the backend's API key \(HTTP 401\)/,
    ],
    [
      "500 HTML page",
      () =>
        new Response(
          "<html><head><title>Internal Error</title></head><body><pre>trace\nline</pre></body></html>",
          { status: 500 },
        ),
      502,
      /^The inference server failed \(HTTP 500\): Internal Error\.$/,
    ],
    ["504", () => new Response("", { status: 504 }), 504, /^The inference server failed \(HTTP 504\)\.$/],
    [
      "307 redirect",
      () =>
        new Response(null, { status: 307, headers: { location: `https://elsewhere.test/?api_key=${KEY}` } }),
      502,
      /redirect \(HTTP 307\), which the proxy does not follow/,
    ],
    ["200 without SDP", () => Response.json({ status: "ok" }), 502, /answer has no SDP/],
    [
      "network failure",
      () => Promise.reject(new TypeError(`fetch failed: connect ECONNREFUSED http://x/?api_key=${KEY}`)),
      502,
      /^The signalling proxy could not reach the inference server\.$/,
    ],
  ];
  for (const [name, reply, status, message] of cases) {
    it(`${name} -> ${status}`, async () => {
      const { proxy, calls, logs } = proxyWith(reply);
      const response = await proxy.handle(post(pageBody()));
      const { text, body } = await json(response);
      expect(response.status).toBe(status);
      expect(body.message).toMatch(message);
      expect(String(body.message)).not.toMatch(/[\r\n]/);
      expect(text).not.toContain(KEY);
      expect(text).not.toContain("inference.internal");
      expect(calls).toHaveLength(1); // never retried, never followed
      expect(logs.join("\n")).not.toContain(KEY);
    });
  }

  it("an upstream that never answers -> 504 within timeoutMs", async () => {
    const { proxy } = proxyWith(() => new Promise<Response>(() => {}), { timeoutMs: 200 });
    const started = Date.now();
    const response = await proxy.handle(post(pageBody()));
    expect(response.status).toBe(504);
    expect((await json(response)).body.message).toBe("The inference server did not answer within 200 ms.");
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("refuses a bad apiUrl or bound at creation", () => {
    expect(() => createSignallingProxy({ apiUrl: "ftp://x" })).toThrow(
      /must be an absolute http or https URL/,
    );
    expect(() => createSignallingProxy({ apiUrl: "http://x", maxBodyBytes: 0 })).toThrow(/maxBodyBytes/);
    expect(() => createSignallingProxy({ apiUrl: "http://x", apiKey: "" })).toThrow(/apiKey/);
  });
});

describe("signalling proxy: ICE servers on GET", () => {
  const turn = [{ urls: "turn:turn.example.test:3478", username: "u", credential: "c" }];

  it("hosted URL: TURN fetched with the backend's key, handed over without it", async () => {
    const { proxy, calls } = proxyWith(
      (call) => (call.url.includes("webrtc_turn_config") ? Response.json(turn) : answer()),
      {
        apiUrl: "https://serverless.roboflow.com",
        turnConfigUrl: "https://api.roboflow.test/webrtc_turn_config",
      },
    );
    const response = await proxy.handle(new Request("http://b/api/vidrtc"));
    const { text, body } = await json(response);
    expect(response.status).toBe(200);
    expect(body).toEqual({
      iceServers: [{ urls: ["turn:turn.example.test:3478"], username: "u", credential: "c" }],
    });
    expect(text).not.toContain(KEY);
    expect(calls).toHaveLength(1);
    expect(new URL(calls[0]!.url).searchParams.get("api_key")).toBe(KEY);
    expect(calls[0]!.init?.redirect).toBe("manual");
  });

  it("hosted URL, TURN lookup failing -> 502, one line, no key", async () => {
    const { proxy, logs } = proxyWith(() => new Response(`bad key ${KEY}`, { status: 401 }), {
      apiUrl: "https://serverless.roboflow.com",
    });
    const response = await proxy.handle(new Request("http://b/api/vidrtc"));
    const { text, body } = await json(response);
    expect(response.status).toBe(502);
    expect(body.message).toBe("TURN servers are unavailable right now.");
    expect(text).not.toContain(KEY);
    expect(logs.join("\n")).not.toContain(KEY);
    expect(logs.join("\n")).toMatch(/HTTP 401/);
  });

  it("a local server: [] without asking anyone; configured servers are handed out and used upstream", async () => {
    const none = proxyWith(() => answer());
    const empty = await none.proxy.handle(new Request("http://b/api/vidrtc"));
    expect((await json(empty)).body).toEqual({ iceServers: [] });
    expect(none.calls).toHaveLength(0);

    const servers = [{ urls: ["turn:127.0.0.1:3478"], username: "a", credential: "b" }];
    const withServers = proxyWith(() => answer(), { iceServers: servers });
    expect((await json(await withServers.proxy.handle(new Request("http://b/x")))).body).toEqual({
      iceServers: servers,
    });
    await withServers.proxy.handle(post(pageBody()));
    expect(withServers.calls[0]!.body?.webrtc_config).toEqual({ iceServers: servers });
  });
});

describe("signalling proxy: Node http / Express adapter", () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
    server = null;
  });

  async function listen(
    handler: (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => void,
  ): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/api/vidrtc`;
  }

  it("reads the stream, forwards, answers; oversized bodies get 413 and a closed connection", async () => {
    const { proxy, calls } = proxyWith(() => answer(), { maxBodyBytes: 4096 });
    const url = await listen((req, res) => void proxy.node(req, res));
    const ok = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(pageBody()),
    });
    expect(ok.status).toBe(200);
    const text = await ok.text();
    expect(JSON.parse(text)).toMatchObject({ type: "answer", sdp: "v=0 answer" });
    expect(text).not.toContain(KEY);
    expect(calls[0]!.body?.api_key).toBe(KEY);

    const big = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(pageBody({ padding: "y".repeat(10_000) })),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get("connection")).toBe("close");
    expect(calls).toHaveLength(1);

    const bad = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "[",
    });
    expect(bad.status).toBe(400);
    const ice = await fetch(url);
    expect(await ice.json()).toEqual({ iceServers: [] });
  });

  it("uses a body already parsed by express.json()", async () => {
    const { proxy, calls } = proxyWith(() => answer());
    const url = await listen((req, res) => {
      // What express.json() leaves behind: the stream consumed, the object on req.body.
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        req.body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        void proxy.node(req, res);
      });
    });
    const ok = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(pageBody()),
    });
    expect(ok.status).toBe(200);
    expect(calls[0]!.body?.api_key).toBe(KEY);
    expect(calls[0]!.body?.webrtc_offer).toEqual(OFFER);
  });

  it("a body that never finishes -> 408 within bodyTimeoutMs", async () => {
    const { proxy, calls } = proxyWith(() => answer(), { bodyTimeoutMs: 300 });
    const url = await listen((req, res) => void proxy.node(req, res));
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        url,
        { method: "POST", headers: { "content-type": "application/json", "content-length": "100" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.write('{"webrtc_offer":'); // and then nothing more
    });
    expect(status).toBe(408);
    expect(calls).toHaveLength(0);
  });
});
