/**
 * A `DataChannelLike` over one WebSocket (the `ws` package): everything the protocol's sink,
 * keepalive, receiver and result decoder need from a transport, and nothing more.
 *
 * What a transport has to provide:
 * - `send(bytes | text)` that queues a whole message, and `bufferedAmount`: bytes queued but not
 *   yet handed to the network. `ws` counts them too (`WebSocket.bufferedAmount`).
 * - the `bufferedamountlow` event: fired when `bufferedAmount` falls to or below
 *   `bufferedAmountLowThreshold`. WebSockets have no such event, so we check after every write
 *   completes (the callback of `ws.send`) and fire on a crossing. The sink re-checks after arming
 *   and polls as a safety net, so a late event only costs time, never correctness.
 * - `maxMessageSize`: the largest message the peer accepts. A WebSocket has no negotiated limit;
 *   the receiving server sets `maxPayload`, and we advertise the same number so the sink refuses
 *   an oversized message (`MESSAGE_TOO_LARGE`) before sending it.
 * - `readyState` and the `open`, `message`, `close`, `error` events.
 */
import type { ChannelEventMap, ChannelState, DataChannelLike, Unsubscribe } from "@vidrtc/protocol";
import type WebSocket from "ws";

/** What the example server accepts per message: a 48 KiB chunk plus its 8-byte header, with room. */
export const WS_MAX_MESSAGE_SIZE = 64 * 1024;

const STATES: Record<number, ChannelState> = { 0: "connecting", 1: "open", 2: "closing", 3: "closed" };

/** Wraps an `ws` WebSocket (client or server side) as a `DataChannelLike` named `label`. */
export function webSocketChannel(
  ws: WebSocket,
  label: string,
  maxMessageSize = WS_MAX_MESSAGE_SIZE,
): DataChannelLike {
  ws.binaryType = "nodebuffer";
  type Listener = (event: never) => void;
  const listeners = new Map<keyof ChannelEventMap, Set<Listener>>();
  const emit = <K extends keyof ChannelEventMap>(type: K, event: ChannelEventMap[K]): void => {
    for (const l of [...(listeners.get(type) ?? [])]) (l as (e: ChannelEventMap[K]) => void)(event);
  };
  let threshold = 0;

  ws.on("open", () => emit("open", undefined));
  ws.on("close", () => emit("close", undefined));
  ws.on("error", (error) => emit("error", error));
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    // Binary frames arrive as Buffer (a Uint8Array); text frames become strings, as on RTCDataChannel.
    emit("message", {
      data: isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.toString("utf8"),
    });
  });

  return {
    label,
    get readyState() {
      return STATES[ws.readyState] ?? "closed";
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get bufferedAmountLowThreshold() {
      return threshold;
    },
    set bufferedAmountLowThreshold(value: number) {
      threshold = value;
    },
    maxMessageSize,
    send(data) {
      const before = ws.bufferedAmount;
      ws.send(data, { binary: typeof data !== "string" }, () => {
        // Written to the socket: fire the low event when this write brought the queue down to the threshold.
        const after = ws.bufferedAmount;
        if (after <= threshold && (before + byteLength(data) > threshold || after === 0)) {
          emit("bufferedamountlow", undefined);
        }
      });
    },
    close() {
      ws.close();
    },
    on(type, listener): Unsubscribe {
      const set = listeners.get(type) ?? new Set<Listener>();
      listeners.set(type, set);
      set.add(listener as Listener);
      return () => set.delete(listener as Listener);
    },
  };
}

function byteLength(data: Uint8Array | string): number {
  return typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
}
