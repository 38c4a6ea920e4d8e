/**
 * Adapts a browser `RTCDataChannel` to the protocol's `DataChannelLike` seam.
 */
import type { ChannelEventMap, ChannelState, DataChannelLike, Unsubscribe } from "@vidrtc/protocol";

/**
 * Maximum message size assumed when the SCTP transport does not report one yet: 65536 bytes, the
 * smallest limit among the stacks we talk to (werift, aiortc). An upload message is 49160 bytes.
 */
export const FALLBACK_MAX_MESSAGE_SIZE = 65_536;

/**
 * Wraps a browser `RTCDataChannel` as a `DataChannelLike`.
 *
 * - Sets `binaryType = "arraybuffer"`; binary messages arrive as `Uint8Array`, text as `string`.
 * - `maxMessageSize` is read live from `peerConnection.sctp.maxMessageSize` when the peer connection
 *   is given and its SCTP transport is known (after the answer), else {@link FALLBACK_MAX_MESSAGE_SIZE}.
 * - `send()` hands bytes to the channel. Chromium copies them synchronously, but per the seam's
 *   contract callers still never reuse or mutate a buffer after sending it.
 * - `error` events carry the `RTCError` (or a generic `Error` when the browser gives none).
 *
 * @param dc the channel, typically from `RTCPeerConnection.createDataChannel()`.
 * @param peerConnection its peer connection, used only to read the negotiated maximum message size.
 */
export function fromRTCDataChannel(dc: RTCDataChannel, peerConnection?: RTCPeerConnection): DataChannelLike {
  dc.binaryType = "arraybuffer";
  return {
    get label() {
      return dc.label;
    },
    get readyState() {
      return dc.readyState as ChannelState;
    },
    get bufferedAmount() {
      return dc.bufferedAmount;
    },
    get bufferedAmountLowThreshold() {
      return dc.bufferedAmountLowThreshold;
    },
    set bufferedAmountLowThreshold(value: number) {
      dc.bufferedAmountLowThreshold = value;
    },
    get maxMessageSize() {
      const size = peerConnection?.sctp?.maxMessageSize;
      return typeof size === "number" && size > 0 ? size : FALLBACK_MAX_MESSAGE_SIZE;
    },
    send(data: Uint8Array | string) {
      // The DOM typings want ArrayBufferView<ArrayBuffer>; a Uint8Array over any buffer is accepted at run time.
      dc.send(data as Uint8Array<ArrayBuffer>);
    },
    close() {
      dc.close();
    },
    on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe {
      const emit = listener as (event: unknown) => void;
      let handler: (event: Event) => void;
      switch (type) {
        case "message":
          handler = (event) => {
            const data: unknown = (event as MessageEvent).data;
            if (typeof data === "string") emit({ data });
            else if (data instanceof ArrayBuffer) emit({ data: new Uint8Array(data) });
            else if (ArrayBuffer.isView(data))
              emit({ data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
            // Blobs cannot occur with binaryType "arraybuffer".
          };
          break;
        case "error":
          handler = (event) => {
            const error = (event as RTCErrorEvent).error;
            emit(error instanceof Error ? error : new Error(`Data channel "${dc.label}" reported an error.`));
          };
          break;
        default:
          handler = () => emit(undefined);
      }
      dc.addEventListener(type, handler);
      return () => dc.removeEventListener(type, handler);
    },
  };
}
