import { describe, expect, it } from "vitest";
import type { DataChannelLike, Unsubscribe } from "../channel.js";
import { VidrtcError } from "../errors.js";
import { UploadReceiver } from "../receiver.js";
import { encodeResultMessage, type WebRTCOutput } from "../results.js";
import { FakeChannel } from "../test-support/fake-channel.js";
import type { PeerConnectionLike, PeerConnectionState, SessionDescriptionLike } from "./peer.js";
import { type SessionOptions, startSession } from "./session.js";

/** A fake peer whose channels are in-memory FakeChannels wired to an in-memory "server". */
class FakePeer implements PeerConnectionLike {
  connectionState: PeerConnectionState = "new";
  channels = new Map<string, FakeChannel>();
  created: string[] = [];
  video = false;
  closed = false;
  #listeners = new Set<(s: PeerConnectionState) => void>();
  constructor(private readonly server: FakeServer) {}
  addVideoReceiver(): void {
    this.video = true;
    this.created.push("video");
  }
  createDataChannel(label: string): DataChannelLike {
    const ch = new FakeChannel({
      label,
      readyState: "connecting",
      drainBytesPerTick: 256 * 1024,
      tickMs: 1,
      capture: false,
      echo: label === "video_upload",
      onDeliver: (data) => this.server.onClientMessage(label, data),
    });
    this.channels.set(label, ch);
    this.created.push(label);
    return ch;
  }
  async createOffer(): Promise<SessionDescriptionLike> {
    return { type: "offer", sdp: "v=0 fake-offer" };
  }
  async setAnswer(answer: SessionDescriptionLike): Promise<void> {
    expect(answer.sdp).toBe("v=0 fake-answer");
    this.setState("connected");
    this.server.attach(this);
    setTimeout(() => {
      for (const ch of this.channels.values()) ch.open();
    }, 5);
  }
  onConnectionStateChange(listener: (s: PeerConnectionState) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  setState(s: PeerConnectionState): void {
    this.connectionState = s;
    for (const l of this.#listeners) l(s);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of this.channels.values()) ch.dispose();
    this.connectionState = "closed";
  }
}

interface ServerBehaviour {
  frames?: number;
  gzip?: boolean;
  /** Called instead of normal processing when the upload completes. */
  onComplete?: (server: FakeServer) => void;
  silent?: boolean;
  /** Simulated processing time per frame. */
  frameDelayMs?: number;
  /** One-way delay of ACKs from the client (a round trip on the ACK path). */
  ackDelayMs?: number;
}

/** An in-memory server speaking the protocol: receiver, ACK pacing (window 1), results. */
class FakeServer {
  peer: FakePeer | null = null;
  receiver = new UploadReceiver({ echo: (d) => this.peer?.channels.get("video_upload")?.receive(d) });
  bytes: Uint8Array[] = [];
  acks: number[] = [];
  /** Non-ACK control messages (reconfigure). */
  controls: Array<Record<string, unknown>> = [];
  /** Largest `produced - lastAck` once pacing is on (after the first ACK). */
  maxAhead = 0;
  produced = 0;
  /** Times production had to wait for an ACK. */
  waits = 0;
  /** ACK count when frame 1 was produced. */
  acksAtFirstFrame = -1;
  #ackWaiters: Array<() => void> = [];
  constructor(readonly behaviour: ServerBehaviour = {}) {}
  attach(peer: FakePeer): void {
    this.peer = peer;
  }
  get received(): Uint8Array {
    const total = this.bytes.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const b of this.bytes) {
      out.set(b, o);
      o += b.byteLength;
    }
    return out;
  }
  onClientMessage(label: string, data: Uint8Array | string): void {
    if (label === "video_upload") {
      const wasComplete = this.receiver.complete;
      if (wasComplete && (typeof data === "string" || data.byteLength > 1))
        throw new Error("data after completion");
      for (const p of this.receiver.push(data)) this.bytes.push(p.slice());
      if (!wasComplete && this.receiver.complete) {
        if (this.behaviour.onComplete) this.behaviour.onComplete(this);
        else if (!this.behaviour.silent) void this.process();
      }
      return;
    }
    if (typeof data === "string") {
      const msg = JSON.parse(data) as { ack?: number };
      if (!("ack" in msg)) this.controls.push(msg);
      if (typeof msg.ack === "number") {
        const ack = msg.ack;
        const apply = () => {
          this.acks.push(ack);
          for (const w of this.#ackWaiters.splice(0)) w();
        };
        if (this.behaviour.ackDelayMs) setTimeout(apply, this.behaviour.ackDelayMs);
        else apply();
      }
    }
  }
  lastAck(): number {
    return this.acks.length ? Math.max(...this.acks) : 0;
  }
  async send(frameId: number, output: WebRTCOutput, gzip = false): Promise<void> {
    const ch = this.peer!.channels.get("inference")!;
    for (const m of await encodeResultMessage(frameId, output, { gzip })) ch.receive(m);
  }
  async process(): Promise<void> {
    const n = this.behaviour.frames ?? 5;
    for (let k = 1; k <= n; k++) {
      if (k === 1) this.acksAtFirstFrame = this.acks.length;
      if (this.acks.length > 0 && k > this.lastAck() + 1) this.waits += 1;
      while (this.acks.length > 0 && k > this.lastAck() + 1) {
        await new Promise<void>((r) => this.#ackWaiters.push(r));
      }
      if (this.acks.length > 0) this.maxAhead = Math.max(this.maxAhead, k - this.lastAck());
      this.produced = k;
      if (this.behaviour.frameDelayMs) await new Promise((r) => setTimeout(r, this.behaviour.frameDelayMs));
      await this.send(
        k,
        {
          serialized_output_data: { count: k },
          video_metadata: { frame_id: k },
          errors: [],
          processing_complete: false,
          termination_reason: null,
        },
        this.behaviour.gzip ?? false,
      );
    }
    await this.send(n + 1, {
      serialized_output_data: null,
      video_metadata: { frame_id: n },
      errors: [],
      processing_complete: true,
      termination_reason: null,
    });
  }
}

function bytesSource(size: number) {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
  return {
    data,
    source: {
      size,
      name: "clip.mp4",
      stream: () => new Blob([data]).stream() as ReadableStream<Uint8Array>,
    },
  };
}

function answerFetch(calls: Array<{ url: string; body: unknown }>, status = 200, body?: unknown) {
  return async (url: string, init?: RequestInit): Promise<Response> => {
    calls.push({ url, body: init?.body ? JSON.parse(String(init.body)) : null });
    return new Response(
      JSON.stringify(
        body ?? {
          status: "success",
          context: { request_id: null, pipeline_id: null },
          sdp: "v=0 fake-answer",
          type: "answer",
        },
      ),
      { status, headers: { "content-type": "application/json" } },
    );
  };
}

function setup(size: number, behaviour: ServerBehaviour = {}, extra: Partial<SessionOptions> = {}) {
  const server = new FakeServer(behaviour);
  const peers: FakePeer[] = [];
  const calls: Array<{ url: string; body: unknown }> = [];
  const { data, source } = bytesSource(size);
  const options: SessionOptions = {
    apiUrl: "http://127.0.0.1:9001",
    workflow: "motion",
    workspace: "local",
    dataOutput: ["*"],
    source,
    fetch: answerFetch(calls),
    createPeer: () => {
      const p = new FakePeer(server);
      peers.push(p);
      return p;
    },
    keepalive: { intervalMs: 20, maxMissed: 3 },
    ...extra,
  };
  return { server, peers, calls, data, options };
}

describe("startSession", () => {
  it("creates channels in protocol order, uploads byte-exact, yields every result, ACKs after consumption", async () => {
    const { server, peers, calls, data, options } = setup(300_000, { frames: 6 }, { readAhead: 0 });
    const session = await startSession(options);
    expect(peers[0]!.created).toEqual(["inference", "video_upload"]);
    expect(calls[0]!.url).toBe("http://127.0.0.1:9001/initialise_webrtc_worker");
    const body = calls[0]!.body as Record<string, unknown>;
    expect(body.stream_output).toEqual([]);
    expect(body.data_output).toEqual(["*"]);
    expect(body.webrtc_realtime_processing).toBe(false);
    const ids: number[] = [];
    for await (const r of session) {
      // the result being handled is never ACKed yet
      expect(server.lastAck()).toBeLessThan(r.frameId);
      ids.push(r.frameId);
    }
    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
    const summary = await session.done;
    expect(summary.framesProcessed).toBe(6);
    expect(summary.resultsReceived).toBe(6);
    expect(summary.terminationReason).toBeNull();
    expect(server.received).toEqual(data);
    expect((await session.uploaded).bytes).toBe(300_000);
    // ACKs are cumulative and monotonic (the last ones may still be queued when the peer closes).
    expect(server.acks).toEqual([...server.acks].sort((a, b) => a - b));
    expect(new Set(server.acks).size).toBe(server.acks.length);
    expect(peers[0]!.closed).toBe(true);
  });

  it("a slow consumer paces the server: never more than one frame ahead, nothing lost", async () => {
    const { server, options } = setup(100_000, { frames: 12, gzip: true, frameDelayMs: 2 }, { readAhead: 0 });
    const session = await startSession(options);
    const seen: number[] = [];
    await session.run({
      onData: async (r) => {
        seen.push(r.frameId);
        await new Promise((res) => setTimeout(res, 15));
        // Not ACKed while the consumer still holds it (an early ACK would have arrived by now).
        expect(server.lastAck()).toBeLessThan(r.frameId);
      },
    });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // Before the first ACK the server is unpaced (protocol §4.3); after it, window 1.
    expect(server.acks.length).toBeGreaterThan(0);
    expect(server.maxAhead).toBe(1);
    expect(server.produced).toBe(12);
  });

  it("adds a recv-only video transceiver first when video is wanted", async () => {
    const { peers, options } = setup(10_000, { frames: 1 }, { streamOutput: ["annotated"] });
    const session = await startSession(options);
    expect(peers[0]!.created).toEqual(["video", "inference", "video_upload"]);
    await session.run();
  });

  it("reports upload progress up to the whole file", async () => {
    const seen: number[] = [];
    const { options } = setup(
      500_000,
      { frames: 1 },
      { onUploadProgress: (p) => seen.push(p.bytesUploaded) },
    );
    const session = await startSession(options);
    await session.run();
    expect(seen.length).toBeGreaterThan(0);
    expect(Math.max(...seen)).toBe(500_000);
  });

  it("refuses an empty source before creating a peer", async () => {
    const { peers, options } = setup(0);
    await expect(startSession(options)).rejects.toMatchObject({ code: "EMPTY_FILE" });
    expect(peers).toHaveLength(0);
  });

  it('refuses "*" mixed with names in dataOutput, and a bad URL, before creating a peer', async () => {
    const mixed = setup(10_000, {}, { dataOutput: ["*", "predictions"] });
    await expect(startSession(mixed.options)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    expect(mixed.peers).toHaveLength(0);
    expect(mixed.calls).toHaveLength(0);
    const badUrl = setup(10_000, {}, { apiUrl: "ftp://example.invalid" });
    await expect(startSession(badUrl.options)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    expect(badUrl.peers).toHaveLength(0);
  });

  it("puts a multi-line server termination error on one bounded line", async () => {
    const { options } = setup(10_000, {
      onComplete: (server) =>
        void server.send(1, {
          serialized_output_data: null,
          video_metadata: null,
          errors: [`Traceback (most recent call last):\n  File "x.py"\n${"z".repeat(1_000_000)}`],
          processing_complete: true,
          termination_reason: "error",
        }),
    });
    const session = await startSession(options);
    const err = await session.done.catch((e) => e);
    expect(VidrtcError.hasCode(err, "PROCESSING_FAILED")).toBe(true);
    expect(err.message).toMatch(
      /^The server ended processing: Traceback \(most recent call last\): File "x.py" z+…\.$/,
    );
    expect(err.message.length).toBeLessThan(400);
  });

  it("maps a signalling error and closes the peer", async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    const { peers, options } = setup(
      10_000,
      {},
      {
        fetch: answerFetch(calls, 404, { message: "Workflow nope not found", error_type: "NotFound" }),
      },
    );
    const err = await startSession(options).catch((e) => e);
    expect(VidrtcError.hasCode(err, "NOT_FOUND")).toBe(true);
    expect(String(err.message)).toContain("Workflow nope not found");
    expect(peers[0]!.closed).toBe(true);
  });

  it("aborts mid-upload within a bound", async () => {
    const controller = new AbortController();
    const { peers, options } = setup(8 * 1024 * 1024, { silent: true }, { signal: controller.signal });
    // Slow drain so the upload is still running.
    const session = await startSession(options);
    peers[0]!.channels.get("video_upload")!.setDrainRate(64 * 1024, 5);
    setTimeout(() => controller.abort(), 30);
    const t0 = Date.now();
    const err = await session.done.catch((e) => e);
    expect(VidrtcError.hasCode(err, "ABORTED")).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(session.uploaded).rejects.toMatchObject({ code: "ABORTED" });
    expect(peers[0]!.closed).toBe(true);
  });

  it("a result channel closing early is a typed error for the consumer", async () => {
    const { peers, options } = setup(10_000, {
      onComplete: () => peers[0]!.channels.get("inference")!.close(),
    });
    const session = await startSession(options);
    const err = await (async () => {
      for await (const _ of session) {
        // none
      }
    })().catch((e) => e);
    expect(VidrtcError.hasCode(err, "CHANNEL_CLOSED")).toBe(true);
  });

  it("no results after the upload ends in NO_RESULTS_TIMEOUT", async () => {
    const { options } = setup(10_000, { silent: true }, { timeouts: { result: 100 } });
    const session = await startSession(options);
    await expect(session.done).rejects.toMatchObject({ code: "NO_RESULTS_TIMEOUT" });
  });

  it("a server-side failure with a termination reason rejects with the server's message", async () => {
    const { options } = setup(10_000, {
      onComplete: (s) => {
        void (async () => {
          await s.send(1, {
            serialized_output_data: null,
            video_metadata: null,
            errors: ["The uploaded file is not a decodable video"],
            processing_complete: false,
            termination_reason: "processing_error",
          });
          await s.send(1, {
            serialized_output_data: null,
            video_metadata: { frame_id: 0 },
            errors: ["The uploaded file is not a decodable video"],
            processing_complete: true,
            termination_reason: "processing_error",
          });
        })();
      },
    });
    const session = await startSession(options);
    const results: unknown[] = [];
    const err = await session.run({ onData: (r) => results.push(r) }).catch((e) => e);
    expect(VidrtcError.hasCode(err, "PROCESSING_FAILED")).toBe(true);
    expect(err.message).toContain("not a decodable video");
    expect(results).toHaveLength(1);
  });

  it("a server that closes right after its error result and processing_complete is reported with its own message", async () => {
    const failure = "The upload ended early: 37 of the 150 frames the file announces were decoded.";
    const { peers, options } = setup(10_000, {
      onComplete: () => {
        void (async () => {
          const frame = await encodeResultMessage(
            1,
            {
              serialized_output_data: { count: 1 },
              video_metadata: { frame_id: 1 },
              errors: [],
              processing_complete: false,
              termination_reason: null,
            },
            { gzip: true },
          );
          const report = await encodeResultMessage(2, {
            serialized_output_data: null,
            video_metadata: { frame_id: 1 },
            errors: [failure],
            processing_complete: false,
            termination_reason: "processing_error",
          });
          const complete = await encodeResultMessage(2, {
            serialized_output_data: null,
            video_metadata: { frame_id: 1 },
            errors: [failure],
            processing_complete: true,
            termination_reason: "processing_error",
          });
          // All delivered, then the channel closes and the connection fails in the same tick:
          // decoding (gzip) has not finished when the close events fire.
          const peer = peers[0]!;
          const channel = peer.channels.get("inference")!;
          for (const m of [...frame, ...report, ...complete]) channel.receive(m);
          channel.close();
          peer.setState("closed");
        })();
      },
    });
    const session = await startSession(options);
    const results: Array<{ errors: string[] }> = [];
    const err = await session.run({ onData: (r) => results.push(r) }).catch((e) => e);
    expect(err).toMatchObject({ code: "PROCESSING_FAILED" });
    expect(err.message).toContain(failure);
    expect(results).toHaveLength(2);
    expect(results[1]!.errors).toEqual([failure]);
  });

  it("breaking out of iteration closes the session without an error", async () => {
    const { peers, options } = setup(10_000, { frames: 5 });
    const session = await startSession(options);
    for await (const r of session) {
      if (r.frameId === 2) break;
    }
    expect(peers[0]!.closed).toBe(true);
    await expect(session.done).rejects.toMatchObject({ code: "ABORTED" });
  });

  it("fetches TURN servers for Roboflow-hosted URLs and sends them to both sides", async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    const turn = [{ urls: "turn:turn.example.invalid:3478", username: "u", credential: "c" }];
    const answer = answerFetch(calls);
    const seenIce: unknown[] = [];
    const { options } = setup(
      10_000,
      { frames: 1 },
      {
        apiUrl: "https://serverless.roboflow.com",
        apiKey: "KEY",
        fetch: async (url, init) => {
          if (url.includes("webrtc_turn_config")) {
            calls.push({ url, body: null });
            return new Response(JSON.stringify(turn), { status: 200 });
          }
          return answer(url, init);
        },
      },
    );
    const base = options.createPeer;
    options.createPeer = (config) => {
      seenIce.push(config.iceServers);
      return base(config);
    };
    const session = await startSession(options);
    await session.run();
    expect(calls[0]!.url).toContain("webrtc_turn_config?api_key=KEY");
    const normalised = [{ urls: ["turn:turn.example.invalid:3478"], username: "u", credential: "c" }];
    expect(seenIce[0]).toEqual(normalised);
    expect((calls[1]!.body as { webrtc_config: unknown }).webrtc_config).toEqual({ iceServers: normalised });
  });

  it("goes on without TURN when the TURN lookup fails, as Roboflow's SDKs do", async () => {
    const calls: Array<{ url: string; body: unknown }> = [];
    const answer = answerFetch(calls);
    const logs: string[] = [];
    const { options } = setup(
      10_000,
      { frames: 1 },
      {
        apiUrl: "https://serverless.roboflow.com",
        apiKey: "KEY",
        onLog: (m) => logs.push(m),
        fetch: async (url, init) => {
          if (url.includes("webrtc_turn_config")) return new Response("nope", { status: 500 });
          return answer(url, init);
        },
      },
    );
    const session = await startSession(options);
    await session.run();
    expect(logs.join("\n")).toContain("continuing without TURN");
    expect((calls[0]!.body as { webrtc_config: unknown }).webrtc_config).toBeNull();
  });
});

describe("startSession with proxyUrl (the key stays on the backend)", () => {
  it("gets ICE servers from GET {proxyUrl}, POSTs the offer there without any key, uses the answer", async () => {
    const calls: Array<{ url: string; method: string; body: unknown; headers: Record<string, string> }> = [];
    const answer = answerFetch([]);
    const servers = [{ urls: ["turn:turn.example.invalid:3478"], username: "u", credential: "c" }];
    const seenIce: unknown[] = [];
    const { options } = setup(
      10_000,
      { frames: 2 },
      {
        proxyUrl: "https://app.example.test/api/vidrtc",
        fetch: async (url, init) => {
          calls.push({
            url,
            method: init?.method ?? "GET",
            body: init?.body ? JSON.parse(String(init.body)) : null,
            headers: (init?.headers ?? {}) as Record<string, string>,
          });
          if ((init?.method ?? "GET") === "GET") return Response.json({ iceServers: servers });
          return answer(url, init);
        },
      },
    );
    const base = options.createPeer;
    options.createPeer = (config) => {
      seenIce.push(config.iceServers);
      return base(config);
    };
    const session = await startSession(options);
    const summary = await session.run();
    expect(summary.framesProcessed).toBe(2);
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "GET https://app.example.test/api/vidrtc",
      "POST https://app.example.test/api/vidrtc",
    ]);
    const body = calls[1]!.body as Record<string, unknown>;
    expect(body).not.toHaveProperty("api_key");
    expect(Object.keys(calls[1]!.headers).map((h) => h.toLowerCase())).not.toContain("authorization");
    expect(body.webrtc_config).toEqual({ iceServers: servers });
    expect(seenIce[0]).toEqual(servers);
  });

  it("goes on without ICE servers when GET {proxyUrl} fails; autoTurn false or iceServers skip it", async () => {
    const logs: string[] = [];
    const calls: Array<{ url: string; body: unknown }> = [];
    const answer = answerFetch(calls);
    const { options } = setup(
      10_000,
      { frames: 1 },
      {
        proxyUrl: "http://127.0.0.1:8080/signal",
        onLog: (m) => logs.push(m),
        fetch: async (url, init) =>
          (init?.method ?? "GET") === "GET" ? new Response("no", { status: 405 }) : answer(url, init),
      },
    );
    await (await startSession(options)).run();
    expect(logs.join("\n")).toMatch(/ICE servers unavailable from the proxy.*HTTP 405/);
    expect((calls[0]!.body as { webrtc_config: unknown }).webrtc_config).toBeNull();

    const only: string[] = [];
    const second = setup(
      10_000,
      { frames: 1 },
      { proxyUrl: "http://127.0.0.1:8080/signal", autoTurn: false },
    );
    const postOnly = answerFetch([]);
    second.options.fetch = async (url, init) => {
      only.push(init?.method ?? "GET");
      return postOnly(url, init);
    };
    await (await startSession(second.options)).run();
    expect(only).toEqual(["POST"]);
  });

  it("refuses apiKey with proxyUrl, and a relative or non-http proxyUrl, before connecting", async () => {
    for (const [extra, pattern] of [
      [
        { proxyUrl: "https://app.example.test/api/vidrtc", apiKey: "KEY" },
        /apiKey cannot be combined with proxyUrl/,
      ],
      [{ proxyUrl: "/api/vidrtc" }, /must be an absolute http or https URL/],
      [{ proxyUrl: "ftp://x/y" }, /must be an absolute http or https URL/],
    ] as const) {
      const { options, peers, calls } = setup(10_000, { frames: 1 }, extra);
      await expect(startSession(options)).rejects.toMatchObject({
        code: "INVALID_OPTIONS",
        message: expect.stringMatching(pattern),
      });
      expect(peers).toHaveLength(0);
      expect(calls).toHaveLength(0);
    }
  });
});

describe("read-ahead (credit ACKs)", () => {
  it("grants credit before the first frame and keeps the server within `frames` of the consumer", async () => {
    const F = 4;
    const { server, options } = setup(50_000, { frames: 20, frameDelayMs: 1 }, { readAhead: { frames: F } });
    const session = await startSession(options);
    const seen: number[] = [];
    let maxBuffered = 0;
    let maxAheadOfConsumer = 0;
    await session.run({
      onData: async (r) => {
        seen.push(r.frameId);
        maxBuffered = Math.max(maxBuffered, session.bufferedResults);
        // Everything before r is consumed; the server may be at most F frames beyond that.
        await new Promise((res) => setTimeout(res, 8));
        expect(server.produced).toBeLessThanOrEqual(r.frameId - 1 + F);
        maxAheadOfConsumer = Math.max(maxAheadOfConsumer, server.produced - (r.frameId - 1));
      },
    });
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // The first credit (F - 1, the server's window being 1) arrived before frame 1 was made.
    expect(server.acks[0]).toBe(F - 1);
    expect(server.acksAtFirstFrame).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(F);
    // The slow consumer really filled the read-ahead (the bound was reached, not just respected).
    expect(maxAheadOfConsumer).toBe(F);
    expect(server.acks).toEqual([...server.acks].sort((a, b) => a - b));
  });

  it("hides ACK latency: the server never waits with enough credit, strict mode waits every frame", async () => {
    const behaviour = { frames: 20, frameDelayMs: 3, ackDelayMs: 25 };
    const credit = setup(20_000, behaviour, { readAhead: { frames: 16 } });
    await (await startSession(credit.options)).run();
    expect(credit.server.waits).toBe(0);
    expect(credit.server.produced).toBe(20);

    const strict = setup(20_000, behaviour, { readAhead: 0 });
    await (await startSession(strict.options)).run();
    // Strict ACK-after-consume: after the first ACK, every frame waits for one round trip.
    expect(strict.server.waits).toBeGreaterThanOrEqual(8);
  });

  it("does not extend credit while the buffer holds `bytes` or more", async () => {
    const { server, options } = setup(20_000, { frames: 12 }, { readAhead: { frames: 8, bytes: 1 } });
    const session = await startSession(options);
    await session.uploaded;
    // Let the first credit's frames arrive while nobody consumes.
    await new Promise((res) => setTimeout(res, 80));
    const before = server.lastAck();
    expect(before).toBe(7);
    expect(server.produced).toBe(8);
    const seen: number[] = [];
    await session.run({ onData: (r) => void seen.push(r.frameId) });
    expect(seen).toHaveLength(12);
  });

  it("refuses a bad readAhead before creating a peer", async () => {
    for (const bad of [{ frames: 0 }, { frames: 1.5 }, { bytes: -1 }, 3 as unknown as 0]) {
      const { peers, options } = setup(1000, {}, { readAhead: bad });
      await expect(startSession(options)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
      expect(peers).toHaveLength(0);
    }
  });

  it("realtime mode bounds the queue: drops the oldest results and counts them", async () => {
    const { options, server } = setup(20_000, { frames: 30 }, { realtime: true, readAhead: { frames: 4 } });
    const session = await startSession(options);
    const summary = await session.done; // nobody consumed while the server ran
    expect(server.acks).toHaveLength(0);
    expect(session.droppedResults).toBe(26);
    expect(summary.droppedResults).toBe(26);
    const ids: number[] = [];
    for await (const r of session) ids.push(r.frameId);
    expect(ids).toEqual([27, 28, 29, 30]);
  });
});

describe("reconfigure", () => {
  it("sends the protocol's reconfigure message on the result channel, validates, refuses after the end", async () => {
    const { server, options } = setup(20_000, { frames: 3 });
    const session = await startSession(options);
    session.reconfigure({ dataOutput: ["motion_score"] });
    session.reconfigure({ streamOutput: [], dataOutput: [] });
    expect(() => session.reconfigure({})).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }) as unknown as Error,
    );
    expect(() => session.reconfigure({ dataOutput: ["*", "x"] })).toThrow(/mixes "\*"/);
    expect(() => session.reconfigure({ dataOutput: [1 as unknown as string] })).toThrow(VidrtcError);
    await session.run();
    expect(server.controls).toEqual([
      { stream_output: null, data_output: ["motion_score"] },
      { stream_output: [], data_output: [] },
    ]);
    expect(() => session.reconfigure({ dataOutput: ["x"] })).toThrow(
      expect.objectContaining({ code: "CHANNEL_CLOSED" }) as unknown as Error,
    );
  });
});
