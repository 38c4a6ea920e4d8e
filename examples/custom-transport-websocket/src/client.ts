/**
 * The client side of the upload and result protocol over WebSockets, built only from
 * @vidrtc/protocol and `ws`: the same pipeline the WebRTC bindings use, on another transport.
 */
import {
  ackMessage,
  type ChannelMessageEvent,
  createChannelSink,
  createUploadStream,
  creditAck,
  type DataChannelLike,
  decodeResultPayload,
  Keepalive,
  type KeepaliveStats,
  RESULT_CHANNEL_LABEL,
  ResultDeframer,
  type ResultMessage,
  type SinkProgress,
  toResultMessage,
  UPLOAD_CHANNEL_LABEL,
  VidrtcError,
} from "@vidrtc/protocol";
import WebSocket from "ws";
import { webSocketChannel } from "./ws-channel.ts";

export interface WsUploadOptions {
  /** `ws://host:port` of the server. */
  url: string;
  /** Session id shared by the two sockets. */
  session: string;
  /** The file as a byte stream and its exact size (sent in every chunk header). */
  source: ReadableStream<Uint8Array>;
  size: number;
  signal?: AbortSignal;
  onProgress?: (progress: SinkProgress) => void;
  /** Results the consumer may be behind the server (ACK credit); default 8. */
  readAhead?: number;
  /** Keepalive ping interval (ms); default 3000. */
  keepaliveMs?: number;
}

export interface WsUploadSummary {
  bytesSent: number;
  results: number;
  framesProcessed: number;
  keepalive: KeepaliveStats;
}

function connect(url: string, label: string): Promise<DataChannelLike> {
  const channel = webSocketChannel(new WebSocket(url), label);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new VidrtcError("CHANNEL_OPEN_TIMEOUT", `${label}: no connection within 10 s`)),
      10_000,
    );
    channel.on("open", () => {
      clearTimeout(timer);
      resolve(channel);
    });
    channel.on("error", (error) => {
      clearTimeout(timer);
      reject(new VidrtcError("CONNECTION_FAILED", `${label}: ${error.message}`, { cause: error }));
    });
  });
}

/**
 * Uploads `source` and yields every per-frame result in order, ACKing with read-ahead credit as
 * the consumer asks for the next one; returns the summary once `processing_complete` arrives.
 */
export async function* uploadOverWebSocket(
  options: WsUploadOptions,
): AsyncGenerator<ResultMessage, WsUploadSummary> {
  const query = `?session=${encodeURIComponent(options.session)}`;
  const results = await connect(`${options.url}/${RESULT_CHANNEL_LABEL}${query}`, RESULT_CHANNEL_LABEL);
  const upload = await connect(`${options.url}/${UPLOAD_CHANNEL_LABEL}${query}`, UPLOAD_CHANNEL_LABEL);
  const readAhead = options.readAhead ?? 8;

  // Results: 12-byte deframing, gzip or JSON, queued for the consumer.
  const deframer = new ResultDeframer();
  const queue: ResultMessage[] = [];
  let wake: (() => void) | null = null;
  let failure: unknown = null;
  let decoding = Promise.resolve();
  const offResults = results.on("message", ({ data }: ChannelMessageEvent) => {
    if (typeof data === "string") return;
    decoding = decoding.then(async () => {
      try {
        const frame = deframer.push(data);
        if (frame) queue.push(toResultMessage(frame.frameId, await decodeResultPayload(frame.payload)));
      } catch (error) {
        failure = error;
      }
      wake?.();
    });
  });
  results.on("close", () => {
    failure ??= new VidrtcError("CHANNEL_CLOSED", "The result socket closed before processing_complete.");
    wake?.();
  });
  results.send(ackMessage(creditAck(0, readAhead))); // pacing on from frame 1

  const keepalive = new Keepalive(upload, { intervalMs: options.keepaliveMs ?? 3_000 });
  keepalive.start();
  let bytesSent = 0;
  const uploaded = createUploadStream(options.source, options.size)
    .pipeTo(
      createChannelSink(upload, {
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (p) => {
          bytesSent = p.bytesSent;
          options.onProgress?.(p);
        },
      }),
    )
    .catch((error: unknown) => {
      failure ??= error;
      wake?.();
    });

  let consumed = 0;
  try {
    for (;;) {
      const next = queue.shift();
      if (next === undefined) {
        if (failure !== null) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
          const timer = setTimeout(resolve, 1_000); // re-check the abort signal and failures
          timer.unref();
        });
        wake = null;
        if (options.signal?.aborted) throw new VidrtcError("ABORTED", "Cancelled.");
        continue;
      }
      if (next.processingComplete) {
        await uploaded;
        return {
          bytesSent,
          results: consumed,
          framesProcessed: next.metadata?.frame_id ?? consumed,
          keepalive: keepalive.stats,
        };
      }
      yield next;
      consumed = next.frameId;
      results.send(ackMessage(creditAck(consumed, readAhead))); // a slot is free again
    }
  } finally {
    offResults();
    keepalive.stop();
    upload.close();
    results.close();
  }
}
