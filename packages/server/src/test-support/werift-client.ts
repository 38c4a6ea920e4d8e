/**
 * A minimal werift client for the server's tests: offers `inference` + `video_upload` (and
 * optionally a recv-only video m-line), POSTs the offer, uploads raw messages with backpressure
 * and collects decoded results until `processing_complete`. Loopback only.
 */
import { decodeResultPayload, ResultDeframer, UPLOAD_CHUNK_SIZE, type WebRTCOutput } from "@vidrtc/protocol";
import { type RTCDataChannel, RTCPeerConnection } from "werift";

/** One decoded result with its header frame id and arrival time. */
export interface ReceivedResult {
  headerFrameId: number;
  output: WebRTCOutput;
  at: number;
}

export interface TestClientOptions {
  url: string;
  body?: Record<string, unknown>;
  /** Ask for video back (adds a recv-only video transceiver first). */
  video?: boolean;
  /** Rewrites the offer SDP before it is POSTed (e.g. to fake mDNS candidates). */
  mangleOffer?: (sdp: string) => string;
}

/** Frames a file into `video_upload` messages (8-byte header + 48 KiB payloads). */
export function frameFile(bytes: Uint8Array, chunkSize = UPLOAD_CHUNK_SIZE): Uint8Array[] {
  const total = Math.ceil(bytes.byteLength / chunkSize);
  const out: Uint8Array[] = [];
  for (let i = 0; i < total; i++)
    out.push(uploadMessage(i, total, bytes.subarray(i * chunkSize, (i + 1) * chunkSize)));
  return out;
}

/** One upload message with an arbitrary header. */
export function uploadMessage(index: number, total: number, payload: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + payload.byteLength);
  const v = new DataView(m.buffer);
  v.setUint32(0, index, true);
  v.setUint32(4, total, true);
  m.set(payload, 8);
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TestClient {
  readonly pc: RTCPeerConnection;
  readonly inference: RTCDataChannel;
  readonly upload: RTCDataChannel;
  readonly results: ReceivedResult[] = [];
  readonly echoes: Buffer[] = [];
  /** Acknowledge each result after this delay (ms); undefined = never ACK. */
  ackDelayMs: number | undefined;
  #deframer = new ResultDeframer();
  #waiters: (() => void)[] = [];
  #decodeChain: Promise<void> = Promise.resolve();
  videoRtpPackets = 0;
  closed = false;

  constructor(readonly options: TestClientOptions) {
    this.pc = new RTCPeerConnection({
      iceServers: [{ urls: "stun:127.0.0.1:9" }],
      iceStunGatherTimeout: 0.1,
      iceAdditionalHostAddresses: ["127.0.0.1"],
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceInterfaceAddresses: { udp4: "127.0.0.1" },
    });
    if (options.video) {
      const t = this.pc.addTransceiver("video", { direction: "recvonly" });
      t.onTrack.subscribe((track) => {
        track.onReceiveRtp.subscribe(() => {
          this.videoRtpPackets++;
        });
      });
    }
    this.inference = this.pc.createDataChannel("inference", { ordered: true });
    this.upload = this.pc.createDataChannel("video_upload");
    this.inference.onMessage.subscribe((data) => {
      if (typeof data === "string") return;
      const done = this.#deframer.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (!done) return;
      const at = Date.now();
      this.#decodeChain = this.#decodeChain.then(async () => {
        const output = await decodeResultPayload(done.payload);
        this.results.push({ headerFrameId: done.frameId, output, at });
        for (const w of this.#waiters.splice(0)) w();
        if (this.ackDelayMs !== undefined && !output.processing_complete) {
          await sleep(this.ackDelayMs);
          if (this.inference.readyState === "open")
            this.inference.send(JSON.stringify({ ack: done.frameId }));
        }
      });
    });
    this.upload.onMessage.subscribe((data) => {
      if (typeof data !== "string") this.echoes.push(data);
    });
  }

  /** Offer, POST, answer. Returns the HTTP status and JSON body. */
  async connect(): Promise<{ status: number; json: Record<string, unknown> }> {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    const deadline = Date.now() + 5_000;
    while (this.pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(10);
    const body = {
      workflow_configuration: {
        type: "WorkflowConfiguration",
        workflow_id: "frame-stats",
        workspace_name: "local",
      },
      webrtc_offer: {
        type: "offer",
        sdp: (this.options.mangleOffer ?? ((x: string) => x))(this.pc.localDescription?.sdp ?? ""),
      },
      webrtc_realtime_processing: false,
      stream_output: [],
      data_output: ["*"],
      ...this.options.body,
    };
    const res = await fetch(`${this.options.url}/initialise_webrtc_worker`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status === 200) await this.pc.setRemoteDescription({ type: "answer", sdp: json.sdp as string });
    return { status: res.status, json };
  }

  async waitOpen(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.upload.readyState !== "open" || this.inference.readyState !== "open") {
      if (Date.now() > deadline) throw new Error("channels did not open");
      await sleep(10);
    }
  }

  /** Sends messages on `video_upload` with bufferedAmount backpressure. */
  async send(messages: Iterable<Uint8Array | string>): Promise<void> {
    await this.waitOpen();
    for (const m of messages) {
      while (this.upload.bufferedAmount > 1024 * 1024) await sleep(5);
      if (this.upload.readyState !== "open") throw new Error("upload channel closed");
      this.upload.send(typeof m === "string" ? m : Buffer.from(m));
    }
  }

  /** Waits for `processing_complete` (or throws after the timeout). */
  async waitComplete(timeoutMs = 20_000): Promise<ReceivedResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const done = this.results.find((r) => r.output.processing_complete);
      if (done) return done;
      if (Date.now() > deadline)
        throw new Error(`no processing_complete within ${timeoutMs} ms (${this.results.length} results)`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pc.close();
  }
}
