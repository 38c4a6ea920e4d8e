/**
 * The seam between vidrtc and a WebRTC stack: the minimal data-channel interface the sink,
 * keepalive and session use. A browser `RTCDataChannel` satisfies it through
 * `fromRTCDataChannel`; werift's channel is wrapped in `@vidrtc/node`; tests use an in-memory fake.
 */

export type ChannelState = "connecting" | "open" | "closing" | "closed";

export interface ChannelMessageEvent {
  /** Binary messages arrive as `Uint8Array`, text messages as `string`. */
  data: Uint8Array | string;
}

export interface ChannelEventMap {
  open: undefined;
  message: ChannelMessageEvent;
  bufferedamountlow: undefined;
  close: undefined;
  error: Error;
}

export type Unsubscribe = () => void;

export interface DataChannelLike {
  readonly label: string;
  readonly readyState: ChannelState;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  /** Largest message the peer accepts (bytes); `Infinity` when unlimited or unknown-but-unbounded. */
  readonly maxMessageSize: number;
  /**
   * Hands a message to the transport. The transport may keep a reference to `data`:
   * callers never reuse or mutate a buffer after sending it.
   */
  send(data: Uint8Array | string): void;
  close(): void;
  on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe;
}
