/**
 * A small receiving server for the vidrtc upload and result protocol over WebSockets, built only
 * from @vidrtc/protocol and `ws`. A client opens two sockets for one session, like the two data
 * channels of the WebRTC protocol:
 *
 *   ws://HOST:PORT/video_upload?session=ID   8-byte framed 48 KiB chunks; 0/1-byte keepalives echoed
 *   ws://HOST:PORT/inference?session=ID      results (12-byte framed JSON, gzipped) out, `{"ack":n}` in
 *
 * The upload is validated message by message (`UploadReceiver`) and appended to a file; once it is
 * complete, ffprobe lists the video's frames and the server sends one result per frame (its
 * picture type, key-frame flag and pts), paced by the client's ACKs (`AckWindow`), then
 * `processing_complete`. Any upload error comes back as an error result and `processing_complete`.
 */
import { execFile } from "node:child_process";
import { open } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  AckWindow,
  type DataChannelLike,
  encodeResultMessage,
  RESULT_CHANNEL_LABEL,
  UPLOAD_CHANNEL_LABEL,
  UploadReceiver,
  VidrtcError,
  type WebRTCOutput,
} from "@vidrtc/protocol";
import { WebSocketServer } from "ws";
import { WS_MAX_MESSAGE_SIZE, webSocketChannel } from "./ws-channel.ts";

/** One upload the server has finished. */
export interface ReceivedUpload {
  session: string;
  path: string;
  bytes: number;
  frames: number;
  error: string | null;
}

export interface WsServerOptions {
  /** Where uploaded files are written (one `<session>.bin` each). */
  dir: string;
  port?: number;
  onUpload?: (upload: ReceivedUpload) => void;
}

interface Pending {
  upload?: DataChannelLike;
  results?: DataChannelLike;
  acks: AckWindow;
}

/** Starts the server on 127.0.0.1; resolves with its `ws://` URL and a `close()`. */
export async function startWsInferenceServer(
  options: WsServerOptions,
): Promise<{ url: string; close: () => Promise<void> }> {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: options.port ?? 0,
    maxPayload: WS_MAX_MESSAGE_SIZE,
  });
  const sessions = new Map<string, Pending>();
  wss.on("connection", (ws, request) => {
    const url = new URL(request.url ?? "/", "ws://localhost");
    const id = url.searchParams.get("session") ?? "";
    const label = url.pathname.slice(1);
    if (
      !/^[A-Za-z0-9-]{1,64}$/.test(id) ||
      (label !== UPLOAD_CHANNEL_LABEL && label !== RESULT_CHANNEL_LABEL)
    ) {
      ws.close(1008, "expected /video_upload or /inference with ?session=ID");
      return;
    }
    const pending = sessions.get(id) ?? { acks: new AckWindow(1) };
    sessions.set(id, pending);
    const channel = webSocketChannel(ws, label);
    if (label === RESULT_CHANNEL_LABEL) {
      pending.results = channel;
      channel.on("message", ({ data }) => {
        if (typeof data !== "string") return;
        try {
          const control = JSON.parse(data) as { ack?: unknown };
          pending.acks.accept(control.ack);
        } catch {
          // not JSON: ignored, like the real server's unknown control messages
        }
      });
    } else {
      pending.upload = channel;
    }
    if (pending.upload && pending.results) {
      sessions.delete(id);
      void runSession(id, pending.upload, pending.results, pending.acks, options);
    }
  });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

async function runSession(
  id: string,
  upload: DataChannelLike,
  results: DataChannelLike,
  acks: AckWindow,
  options: WsServerOptions,
): Promise<void> {
  const path = join(options.dir, `${id}.bin`);
  // The message listener goes on before anything is awaited: a message that arrives while the
  // file is still opening would otherwise be lost (the socket does not buffer for late listeners).
  const opening = open(path, "w");
  opening.catch(() => {}); // its failure is reported through `writing` below
  let bytes = 0;
  let error: string | null = null;
  let frames = 0;
  try {
    // Receive: validate every message, echo keepalives, append contiguous payloads in file order.
    await new Promise<void>((resolve, reject) => {
      const receiver = new UploadReceiver({ echo: (ping) => upload.send(ping) });
      let writing: Promise<unknown> = opening;
      const offMessage = upload.on("message", ({ data }) => {
        let ready: Uint8Array[];
        try {
          ready = receiver.push(data);
        } catch (e) {
          offMessage();
          reject(e);
          return;
        }
        for (const payload of ready) {
          bytes += payload.byteLength;
          writing = writing.then(() => opening.then((file) => file.write(payload)));
        }
        if (receiver.complete) {
          offMessage();
          writing.then(() => resolve(), reject);
        }
      });
      upload.on("close", () =>
        reject(new VidrtcError("CHANNEL_CLOSED", "The upload socket closed before the upload was complete.")),
      );
    });
    await (await opening).close();

    // "Process": one result per decoded frame, each admitted by the client's ACK credit.
    for (const [i, frame] of (await probeFrames(path)).entries()) {
      const frameId = i + 1;
      await acks.waitFor(frameId, AbortSignal.timeout(60_000));
      await sendResult(
        results,
        frameId,
        {
          serialized_output_data: {
            picture_type: frame.pict_type ?? null,
            key_frame: frame.key_frame === 1,
            pts: frame.pts ?? null,
          },
          video_metadata: {
            frame_id: frameId,
            received_at: new Date().toISOString(),
            pts: frame.pts ?? null,
            time_base: null,
            declared_fps: null,
            measured_fps: null,
          },
          errors: [],
          processing_complete: false,
          termination_reason: null,
        },
        true,
      );
      frames = frameId;
    }
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    await opening.then((file) => file.close()).catch(() => {});
    if (results.readyState === "open") {
      await sendResult(
        results,
        frames + 1,
        {
          serialized_output_data: null,
          video_metadata: null,
          errors: [error],
          processing_complete: false,
          termination_reason: "upload_error",
        },
        false,
      );
    }
  }
  if (results.readyState === "open") {
    await sendResult(
      results,
      frames + 1,
      {
        serialized_output_data: null,
        video_metadata: { frame_id: frames },
        errors: [],
        processing_complete: true,
        termination_reason: error === null ? null : "upload_error",
      },
      false,
    ); // processing_complete is never gzipped
  }
  options.onUpload?.({ session: id, path, bytes, frames, error });
}

async function sendResult(
  channel: DataChannelLike,
  frameId: number,
  output: WebRTCOutput,
  gzip: boolean,
): Promise<void> {
  for (const message of await encodeResultMessage(frameId, output, { gzip })) channel.send(message);
}

interface ProbedFrame {
  pict_type?: string;
  key_frame?: number;
  pts?: number;
}

function probeFrames(path: string): Promise<ProbedFrame[]> {
  return new Promise((resolve, reject) => {
    execFile(
      "ffprobe",
      [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "frame=pts,key_frame,pict_type",
        "-of",
        "json",
        path,
      ],
      { timeout: 120_000, maxBuffer: 64 << 20, encoding: "utf8" },
      (err, stdout) => {
        if (err)
          reject(
            new VidrtcError(
              "MALFORMED_MESSAGE",
              `The upload is not a video ffprobe can read: ${err.message}`,
            ),
          );
        else resolve((JSON.parse(stdout) as { frames?: ProbedFrame[] }).frames ?? []);
      },
    );
  });
}
