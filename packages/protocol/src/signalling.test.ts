import { describe, expect, it } from "vitest";
import { ONE_LINE_MAX } from "./errors.js";
import {
  buildInitialiseRequest,
  type FetchLike,
  fetchTurnConfig,
  type InitialiseOptions,
  initialiseUrl,
  isRoboflowHostedUrl,
  parseInitialiseResponse,
  parseTurnConfig,
  postInitialise,
} from "./signalling.js";
import { rejection, thrown } from "./test-support/errors.js";

const offer = { type: "offer" as const, sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };
const spec = { version: "1.0", inputs: [{ type: "WorkflowImage", name: "image" }], steps: [], outputs: [] };

function json(body: unknown, status = 200, statusText = ""): Response {
  return new Response(JSON.stringify(body), {
    status,
    statusText,
    headers: { "content-type": "application/json" },
  });
}

const answerBody = {
  status: "success",
  context: { request_id: null, pipeline_id: null },
  sdp: "v=0\r\nanswer",
  type: "answer",
};

interface Call {
  url: string;
  init: RequestInit | undefined;
}

function stubFetch(respond: (call: Call) => Response | Promise<Response>): {
  fetch: FetchLike;
  calls: Call[];
} {
  const calls: Call[] = [];
  return {
    calls,
    fetch: async (url, init) => {
      const call = { url, init };
      calls.push(call);
      return respond(call);
    },
  };
}

describe("buildInitialiseRequest", () => {
  it("builds the wire body with PROTOCOL defaults for an inline specification", () => {
    const { body, headers } = buildInitialiseRequest(offer, { specification: spec });
    expect(body).toEqual({
      workflow_configuration: {
        type: "WorkflowConfiguration",
        image_input_name: "image",
        workflow_specification: spec,
      },
      webrtc_offer: { type: "offer", sdp: offer.sdp },
      webrtc_config: null,
      webrtc_realtime_processing: false,
      stream_output: [],
      data_output: null,
    });
    expect(headers).toEqual({ "Content-Type": "application/json", Accept: "application/json" });
    expect(JSON.parse(JSON.stringify(body))).toEqual(body);
  });

  it("sends workflow id, workspace and every optional field when given", () => {
    const iceServers = [{ urls: "turn:127.0.0.1:3478", username: "u", credential: "c" }];
    const options: InitialiseOptions = {
      workflow: "my-flow",
      workspace: "my-ws",
      imageInputName: "frame",
      workflowParameters: { confidence: 0.5 },
      dataOutput: ["*"],
      streamOutput: null,
      realtime: true,
      apiKey: "KEY",
      apiKeyIn: "both",
      iceServers,
      processingTimeoutSeconds: 600,
      declaredFps: 29.97,
      requestedPlan: "webrtc-gpu-small",
      requestedRegion: "us",
    };
    const { body, headers } = buildInitialiseRequest(offer, options);
    expect(body).toEqual({
      workflow_configuration: {
        type: "WorkflowConfiguration",
        image_input_name: "frame",
        workspace_name: "my-ws",
        workflow_id: "my-flow",
        workflows_parameters: { confidence: 0.5 },
      },
      webrtc_offer: { type: "offer", sdp: offer.sdp },
      api_key: "KEY",
      webrtc_config: { iceServers },
      webrtc_realtime_processing: true,
      stream_output: null,
      data_output: ["*"],
      declared_fps: 29.97,
      processing_timeout: 600,
      requested_plan: "webrtc-gpu-small",
      requested_region: "us",
    });
    expect(headers.Authorization).toBe("Bearer KEY");
    // The options' arrays are copied, not shared.
    expect((body.webrtc_config?.iceServers ?? [])[0]).not.toBe(iceServers[0]);
  });

  it("omits workspace_name when no workspace is given, and passes an explicit null timeout", () => {
    const { body } = buildInitialiseRequest(offer, { workflow: "wf", processingTimeoutSeconds: null });
    expect(body.workflow_configuration).toEqual({
      type: "WorkflowConfiguration",
      image_input_name: "image",
      workflow_id: "wf",
    });
    expect(body.processing_timeout).toBeNull();
    expect("processing_timeout" in buildInitialiseRequest(offer, { workflow: "wf" }).body).toBe(false);
  });

  it("puts the API key where asked", () => {
    const body = buildInitialiseRequest(offer, { workflow: "wf", apiKey: "K", apiKeyIn: "body" });
    expect(body.body.api_key).toBe("K");
    expect(body.headers.Authorization).toBeUndefined();
    const header = buildInitialiseRequest(offer, { workflow: "wf", apiKey: "K", apiKeyIn: "header" });
    expect("api_key" in header.body).toBe(false);
    expect(header.headers.Authorization).toBe("Bearer K");
    const none = buildInitialiseRequest(offer, { workflow: "wf" });
    expect("api_key" in none.body).toBe(false);
    expect(none.headers.Authorization).toBeUndefined();
  });

  it('refuses "*" mixed with output names in dataOutput (Roboflow\'s rule), accepts ["*"] alone', () => {
    for (const dataOutput of [
      ["*", "predictions"],
      ["predictions", "*"],
      ["*", "*"],
    ]) {
      const e = thrown(() => buildInitialiseRequest(offer, { workflow: "w", dataOutput }));
      expect(e.code).toBe("INVALID_OPTIONS");
      expect(e.message).toContain('["*"] alone');
      expect(e.message).toContain("Output '*' not found");
      expect(e.message).toContain("list the outputs by name");
    }
    expect(buildInitialiseRequest(offer, { workflow: "w", dataOutput: ["*"] }).body.data_output).toEqual([
      "*",
    ]);
    expect(buildInitialiseRequest(offer, { workflow: "w", dataOutput: ["a", "b"] }).body.data_output).toEqual(
      ["a", "b"],
    );
  });

  it("rejects invalid options with INVALID_OPTIONS", () => {
    const cases: Array<[InitialiseOptions, RegExp]> = [
      [{}, /either a workflow id .* or an inline/],
      [{ workflow: "a", specification: spec }, /not both/],
      [{ workflow: "" }, /workflow must be a non-empty string/],
      [{ workflow: "a", workspace: " " }, /workspace/],
      [{ specification: [] as unknown as Record<string, unknown> }, /JSON object/],
      [{ workflow: "a", apiKeyIn: "query" as "body" }, /apiKeyIn/],
      [{ workflow: "a", processingTimeoutSeconds: 1.5 }, /processingTimeoutSeconds/],
      [{ workflow: "a", processingTimeoutSeconds: 0 }, /processingTimeoutSeconds/],
      [{ workflow: "a", declaredFps: -1 }, /declaredFps/],
      [{ workflow: "a", dataOutput: [1] as unknown as string[] }, /dataOutput/],
      [{ workflow: "a", iceServers: [{ urls: [] }] }, /iceServers\[0\]\.urls/],
      [{ workflow: "a", apiKey: "" }, /apiKey/],
    ];
    for (const [options, pattern] of cases) {
      const e = thrown(() => buildInitialiseRequest(offer, options));
      expect(e.code).toBe("INVALID_OPTIONS");
      expect(e.message).toMatch(pattern);
    }
    expect(thrown(() => buildInitialiseRequest({ type: "answer", sdp: "x" }, { workflow: "a" })).code).toBe(
      "INVALID_OPTIONS",
    );
    expect(thrown(() => buildInitialiseRequest({ type: "offer", sdp: "" }, { workflow: "a" })).code).toBe(
      "INVALID_OPTIONS",
    );
  });
});

describe("initialiseUrl", () => {
  it("joins the path without double slashes, keeping prefixes and queries", () => {
    expect(initialiseUrl("http://127.0.0.1:9001")).toBe("http://127.0.0.1:9001/initialise_webrtc_worker");
    expect(initialiseUrl("http://127.0.0.1:9001/")).toBe("http://127.0.0.1:9001/initialise_webrtc_worker");
    expect(initialiseUrl("https://example.test/api//")).toBe(
      "https://example.test/api/initialise_webrtc_worker",
    );
    expect(initialiseUrl("https://example.test/api?x=1#frag")).toBe(
      "https://example.test/api/initialise_webrtc_worker?x=1",
    );
  });

  it("rejects non-http(s) and invalid URLs", () => {
    for (const bad of ["not a url", "ftp://example.test", "", "localhost:9001"]) {
      expect(thrown(() => initialiseUrl(bad)).code).toBe("INVALID_OPTIONS");
    }
  });
});

describe("parseInitialiseResponse", () => {
  it("returns the answer and context", async () => {
    expect(await parseInitialiseResponse(json(answerBody))).toEqual({
      type: "answer",
      sdp: "v=0\r\nanswer",
      context: { request_id: null, pipeline_id: null },
    });
    const noContext = await parseInitialiseResponse(json({ sdp: "x", context: { pipeline_id: "p1" } }));
    expect(noContext).toEqual({ type: "answer", sdp: "x", context: { request_id: null, pipeline_id: "p1" } });
  });

  it("maps HTTP statuses to codes, with status, server message, advice and body", async () => {
    const cases: Array<[number, unknown, string, RegExp]> = [
      [
        400,
        { message: "Invalid output names: foo", error_type: "WebRTCConfigurationError" },
        "BAD_REQUEST",
        /Invalid output names: foo/,
      ],
      [401, { message: "Unauthorized access to roboflow API" }, "UNAUTHORIZED", /check your API key/i],
      [403, { message: "Forbidden" }, "UNAUTHORIZED", /API key/],
      [
        402,
        { message: "Not enough credits", error_type: "CreditsExceededError" },
        "PAYMENT_REQUIRED",
        /Not enough credits.*credits or quota/,
      ],
      [404, { detail: "Not Found" }, "NOT_FOUND", /Not Found.*workflow id/],
      [
        429,
        { message: "You have reached the maximum of 10 concurrent streams." },
        "RATE_LIMITED",
        /maximum of 10.*retry/,
      ],
      [500, { message: "Internal error." }, "SERVER_ERROR", /Internal error\..*logs/],
      [
        502,
        { message: "Internal error. Request to Roboflow API failed." },
        "BAD_GATEWAY",
        /Request to Roboflow API failed/,
      ],
      [503, { message: "down" }, "BAD_GATEWAY", /down/],
      [
        504,
        { message: "Timeout when attempting to connect to Roboflow API." },
        "BAD_GATEWAY",
        /Timeout when/,
      ],
      [418, { message: "teapot" }, "SIGNALING_FAILED", /HTTP 418.*teapot/],
    ];
    for (const [status, body, code, pattern] of cases) {
      const e = await rejection(parseInitialiseResponse(json(body, status)));
      expect(e.code).toBe(code);
      expect(e.status).toBe(status);
      expect(e.message).toMatch(new RegExp(`HTTP ${status}`));
      expect(e.message).toMatch(pattern);
      expect(e.details?.body).toEqual(body);
    }
  });

  it("summarises FastAPI 422 details as loc: msg", async () => {
    const body = {
      detail: [
        { loc: ["body", "webrtc_offer"], msg: "Field required", type: "missing" },
        {
          loc: ["body", "workflow_configuration", "type"],
          msg: "Input should be 'WorkflowConfiguration'",
          type: "literal_error",
        },
      ],
    };
    const e = await rejection(parseInitialiseResponse(json(body, 422)));
    expect(e.code).toBe("VALIDATION_FAILED");
    expect(e.message).toContain(
      "body.webrtc_offer: Field required; body.workflow_configuration.type: Input should be 'WorkflowConfiguration'",
    );
    expect(e.details?.body).toEqual(body);
  });

  it("handles non-JSON error bodies", async () => {
    const html = "<html><body>502 Bad Gateway</body></html>";
    const e = await rejection(
      parseInitialiseResponse(new Response(html, { status: 502, statusText: "Bad Gateway" })),
    );
    expect(e.code).toBe("BAD_GATEWAY");
    expect(e.message).toContain("HTTP 502 Bad Gateway");
    expect(e.message).toContain(": 502 Bad Gateway.");
    expect(e.message).not.toContain("<");
    expect(e.details?.body).toBe(html);
    const long = await rejection(parseInitialiseResponse(new Response("x".repeat(5000), { status: 500 })));
    expect(long.message.length).toBeLessThan(800);
    const empty = await rejection(parseInitialiseResponse(new Response(null, { status: 401 })));
    expect(empty.code).toBe("UNAUTHORIZED");
  });

  it("collapses multi-line, megabyte and HTML error text to one bounded line", async () => {
    const multi = await rejection(
      parseInitialiseResponse(json({ message: "line one\nline two\r\n\tline three" }, 500)),
    );
    expect(multi.message).toContain("line one line two line three");
    expect(multi.message).not.toMatch(/[\r\n\t]/);
    const huge = await rejection(parseInitialiseResponse(json({ message: "y".repeat(1_000_000) }, 500)));
    expect(huge.message).not.toMatch(/[\r\n]/);
    expect(huge.message.length).toBeLessThan(ONE_LINE_MAX + 200);
    expect(huge.message).toContain("…");
    const page = [
      "<!DOCTYPE html>",
      "<html>",
      "<head><title>500 Internal Server Error</title><style>body { color: red }</style></head>",
      "<body>",
      "<h1>Internal Server Error</h1>",
      "<p>The server encountered an internal error.</p>",
      "</body>",
      "</html>",
    ].join("\n");
    const html = await rejection(parseInitialiseResponse(new Response(page, { status: 500 })));
    expect(html.message).toContain(": 500 Internal Server Error.");
    expect(html.message).not.toMatch(/[<\n]/);
  });

  it("rejects a success without an SDP answer", async () => {
    for (const response of [
      json({ status: "success" }),
      new Response("ok"),
      json({ sdp: "" }),
      json([answerBody]),
    ]) {
      const e = await rejection(parseInitialiseResponse(response));
      expect(e.code).toBe("SIGNALING_FAILED");
      expect(e.message).toMatch(/no SDP answer/);
    }
    const wrongType = await rejection(parseInitialiseResponse(json({ sdp: "x", type: "offer" })));
    expect(wrongType.code).toBe("SIGNALING_FAILED");
  });
});

describe("postInitialise", () => {
  it("POSTs the built request and parses the answer", async () => {
    const { fetch, calls } = stubFetch(() => json(answerBody));
    const answer = await postInitialise(
      "http://127.0.0.1:9001/",
      offer,
      { specification: spec, apiKey: "K" },
      { fetch },
    );
    expect(answer.sdp).toBe(answerBody.sdp);
    expect(calls).toHaveLength(1);
    const call = calls[0] as Call;
    expect(call.url).toBe("http://127.0.0.1:9001/initialise_webrtc_worker");
    expect(call.init?.method).toBe("POST");
    expect((call.init?.headers as Record<string, string> | undefined)?.Authorization).toBe("Bearer K");
    expect(JSON.parse(String(call.init?.body))).toEqual(
      buildInitialiseRequest(offer, { specification: spec, apiKey: "K" }).body,
    );
    expect(call.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it("validates before any request", async () => {
    const { fetch, calls } = stubFetch(() => json(answerBody));
    expect((await rejection(postInitialise("nope", offer, { workflow: "a" }, { fetch }))).code).toBe(
      "INVALID_OPTIONS",
    );
    expect((await rejection(postInitialise("http://127.0.0.1:1", offer, {}, { fetch }))).code).toBe(
      "INVALID_OPTIONS",
    );
    expect(calls).toHaveLength(0);
  });

  it("maps network failures to CONNECTION_FAILED naming the URL (without query secrets)", async () => {
    const fetch: FetchLike = async () => {
      throw new TypeError("fetch failed");
    };
    const e = await rejection(
      postInitialise("http://127.0.0.1:9/?api_key=SECRET", offer, { workflow: "a" }, { fetch }),
    );
    expect(e.code).toBe("CONNECTION_FAILED");
    expect(e.message).toContain("http://127.0.0.1:9/initialise_webrtc_worker");
    expect(e.message).toContain("fetch failed");
    expect(e.message).not.toContain("SECRET");
    expect(e.cause).toBeInstanceOf(TypeError);
  });

  it("passes HTTP errors through", async () => {
    const { fetch } = stubFetch(() => json({ message: "bad key" }, 401));
    const e = await rejection(postInitialise("http://127.0.0.1:9001", offer, { workflow: "a" }, { fetch }));
    expect(e.code).toBe("UNAUTHORIZED");
  });

  it("times out with SIGNALING_FAILED even when fetch ignores its signal", async () => {
    const fetch: FetchLike = () => new Promise<Response>(() => undefined);
    const started = Date.now();
    const e = await rejection(
      postInitialise("http://127.0.0.1:9001", offer, { workflow: "a" }, { fetch, timeoutMs: 50 }),
    );
    expect(e.code).toBe("SIGNALING_FAILED");
    expect(e.message).toMatch(/within 50 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("times out while the body is still streaming", async () => {
    const fetch: FetchLike = async (_url, init) =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"sdp":'));
            init?.signal?.addEventListener("abort", () => controller.error(init.signal?.reason));
          },
        }),
      );
    const e = await rejection(
      postInitialise("http://127.0.0.1:9001", offer, { workflow: "a" }, { fetch, timeoutMs: 50 }),
    );
    expect(e.code).toBe("SIGNALING_FAILED");
  });

  it("aborts with ABORTED on the caller's signal, before or during the request", async () => {
    const before = new AbortController();
    before.abort();
    const { fetch, calls } = stubFetch(() => json(answerBody));
    expect(
      (
        await rejection(
          postInitialise("http://127.0.0.1:9001", offer, { workflow: "a" }, { fetch, signal: before.signal }),
        )
      ).code,
    ).toBe("ABORTED");
    expect(calls).toHaveLength(0);

    const during = new AbortController();
    const hanging: FetchLike = () => new Promise<Response>(() => undefined);
    const pending = postInitialise(
      "http://127.0.0.1:9001",
      offer,
      { workflow: "a" },
      { fetch: hanging, signal: during.signal },
    );
    setTimeout(() => during.abort(new Error("user")), 10);
    const e = await rejection(pending);
    expect(e.code).toBe("ABORTED");
    expect((e.cause as Error).message).toBe("user");
  });
});

describe("isRoboflowHostedUrl", () => {
  it("matches roboflow.com hosts only", () => {
    expect(isRoboflowHostedUrl("https://serverless.roboflow.com")).toBe(true);
    expect(isRoboflowHostedUrl("https://serverless.roboflow.com/")).toBe(true);
    expect(isRoboflowHostedUrl("https://API.Roboflow.com/x")).toBe(true);
    expect(isRoboflowHostedUrl("https://roboflow.com")).toBe(true);
    expect(isRoboflowHostedUrl("http://127.0.0.1:9001")).toBe(false);
    expect(isRoboflowHostedUrl("https://notroboflow.com")).toBe(false);
    expect(isRoboflowHostedUrl("https://roboflow.com.evil.test")).toBe(false);
    expect(isRoboflowHostedUrl("https://evil.test/?u=roboflow.com")).toBe(false);
    expect(isRoboflowHostedUrl("not a url")).toBe(false);
  });
});

describe("parseTurnConfig / fetchTurnConfig", () => {
  const servers = [
    {
      urls: ["turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:443"],
      username: "u",
      credential: "c",
    },
  ];

  it("accepts the array, {iceServers} and single-server shapes, normalising urls to arrays", () => {
    expect(parseTurnConfig(servers)).toEqual(servers);
    expect(parseTurnConfig({ iceServers: servers })).toEqual(servers);
    expect(parseTurnConfig({ urls: "turn:x:3478", username: "u", credential: "c" })).toEqual([
      { urls: ["turn:x:3478"], username: "u", credential: "c" },
    ]);
    expect(parseTurnConfig({ iceServers: [{ urls: "stun:x", extra: 1 }] })).toEqual([{ urls: ["stun:x"] }]);
    for (const bad of [null, 3, {}, { iceServers: [{}] }, [{ urls: [1] }], { urls: [] }]) {
      expect(thrown(() => parseTurnConfig(bad)).code).toBe("SIGNALING_FAILED");
    }
  });

  it("GETs the default endpoint with the key as a query parameter", async () => {
    const { fetch, calls } = stubFetch(() => json({ iceServers: servers }));
    expect(await fetchTurnConfig("k&y=1", { fetch })).toEqual(servers);
    const call = calls[0] as Call;
    const url = new URL(call.url);
    expect(`${url.origin}${url.pathname}`).toBe("https://api.roboflow.com/webrtc_turn_config");
    expect(url.searchParams.get("api_key")).toBe("k&y=1");
    expect(call.init?.method).toBe("GET");
  });

  it("uses a custom URL", async () => {
    const { fetch, calls } = stubFetch(() => json(servers));
    await fetchTurnConfig("k", { fetch, url: "http://127.0.0.1:9/turn?x=1" });
    expect((calls[0] as Call).url).toBe("http://127.0.0.1:9/turn?x=1&api_key=k");
  });

  it("reports HTTP, body, network and timeout failures without leaking the key", async () => {
    const unauthorized = stubFetch(() => json({ message: "invalid key" }, 401));
    const e401 = await rejection(fetchTurnConfig("SECRET", { fetch: unauthorized.fetch }));
    expect(e401.code).toBe("UNAUTHORIZED");
    expect(e401.message).toMatch(/invalid key/);

    const html = stubFetch(() => new Response("<html>"));
    const eHtml = await rejection(fetchTurnConfig("SECRET", { fetch: html.fetch }));
    expect(eHtml.code).toBe("SIGNALING_FAILED");
    expect(eHtml.message).toMatch(/not JSON/);

    const shape = stubFetch(() => json({ nope: true }));
    expect((await rejection(fetchTurnConfig("SECRET", { fetch: shape.fetch }))).code).toBe(
      "SIGNALING_FAILED",
    );

    const down: FetchLike = async () => {
      throw new TypeError("getaddrinfo ENOTFOUND");
    };
    const eDown = await rejection(fetchTurnConfig("SECRET", { fetch: down }));
    expect(eDown.code).toBe("CONNECTION_FAILED");
    expect(eDown.message).toContain("https://api.roboflow.com/webrtc_turn_config");

    const hang: FetchLike = () => new Promise<Response>(() => undefined);
    const eHang = await rejection(fetchTurnConfig("SECRET", { fetch: hang, timeoutMs: 30 }));
    expect(eHang.code).toBe("SIGNALING_FAILED");

    for (const e of [e401, eHtml, eDown, eHang]) expect(e.message).not.toContain("SECRET");
    expect((await rejection(fetchTurnConfig("", { fetch: hang }))).code).toBe("INVALID_OPTIONS");
  });
});
