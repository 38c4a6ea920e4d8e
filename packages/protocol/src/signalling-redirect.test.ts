/// <reference types="node" />
/**
 * The signalling and TURN requests carry the API key (JSON body, Authorization header, query). A
 * redirect must not hand it to another origin: two real local HTTP servers, the first answering
 * 307/308/302 to the second, which records everything it receives.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchTurnConfig, postInitialise } from "./signalling.js";
import { rejection } from "./test-support/errors.js";

const KEY = "secret-key-3f9a";
const offer = { type: "offer" as const, sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };
const spec = { version: "1.0", inputs: [{ type: "WorkflowImage", name: "image" }], steps: [], outputs: [] };

interface Received {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

function listen(handler: (req: IncomingMessage, body: string) => [number, Record<string, string>, string]) {
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      const [status, headers, text] = handler(req, body);
      res.writeHead(status, headers);
      res.end(text);
    });
  });
  return new Promise<{ server: Server; origin: string }>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    });
  });
}

describe("signalling and TURN requests never follow a redirect", () => {
  let target: { server: Server; origin: string };
  let redirector: { server: Server; origin: string };
  const received: Received[] = [];
  let status = 307;

  beforeAll(async () => {
    // The other origin: answers like a real server would, and records what reached it.
    target = await listen((req, body) => {
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        authorization: req.headers.authorization,
        body,
      });
      return [
        200,
        { "content-type": "application/json" },
        req.method === "GET"
          ? JSON.stringify([{ urls: "turn:127.0.0.1:3478" }])
          : JSON.stringify({ status: "success", sdp: "v=0\r\n", type: "answer", context: {} }),
      ];
    });
    redirector = await listen((req) => [status, { location: `${target.origin}${req.url ?? "/"}` }, ""]);
  });

  afterAll(async () => {
    await Promise.all(
      [target?.server, redirector?.server].map(
        (s) => new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve())),
      ),
    );
  });

  for (const code of [307, 308, 302]) {
    it(`initialise: a ${code} to another origin fails with SIGNALING_FAILED and the key never arrives there`, async () => {
      status = code;
      received.length = 0;
      const e = await rejection(
        postInitialise(
          redirector.origin,
          offer,
          { specification: spec, apiKey: KEY, apiKeyIn: "both" },
          { timeoutMs: 5_000 },
        ),
      );
      expect(e.code).toBe("SIGNALING_FAILED");
      expect(e.message).toMatch(/redirect/);
      expect(e.message).not.toContain(KEY);
      expect(e.status).toBe(code);
      expect(received).toEqual([]);
    });
  }

  it("TURN config: a 307 to another origin fails and the key in the query never arrives there", async () => {
    status = 307;
    received.length = 0;
    const e = await rejection(
      fetchTurnConfig(KEY, { url: `${redirector.origin}/webrtc_turn_config`, timeoutMs: 5_000 }),
    );
    expect(e.code).toBe("SIGNALING_FAILED");
    expect(e.message).toMatch(/redirect/);
    expect(e.message).not.toContain(KEY);
    expect(received).toEqual([]);
  });

  it("the same requests straight to the target succeed (the servers work)", async () => {
    received.length = 0;
    await postInitialise(target.origin, offer, { specification: spec, apiKey: KEY }, { timeoutMs: 5_000 });
    const servers = await fetchTurnConfig(KEY, { url: `${target.origin}/t`, timeoutMs: 5_000 });
    expect(servers).toEqual([{ urls: ["turn:127.0.0.1:3478"] }]);
    expect(received.map((r) => r.method)).toEqual(["POST", "GET"]);
    expect(received[0]?.body).toContain(KEY);
  });
});
