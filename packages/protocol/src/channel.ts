/**
 * The seam between vidrtc and a WebRTC stack: the minimal data-channel interface the sink,
 * keepalive and session use. A browser `RTCDataChannel` satisfies it through
 * `fromRTCDataChannel`; werift's channel is wrapped in `@vidrtc/node`; tests use an in-memory fake.
 */

export type ChannelState = "connecting" | "open" | "closing" | "closed";

/** Payload of a channel's `message` event. */
export interface ChannelMessageEvent {
  /** Binary messages arrive as `Uint8Array`, text messages as `string`. */
  data: Uint8Array | string;
}

/** The events of a {@link DataChannelLike} and the value each listener receives. */
export interface ChannelEventMap {
  /** The channel became `open`. */
  open: undefined;
  /** A message arrived from the peer. */
  message: ChannelMessageEvent;
  /** `bufferedAmount` fell to or below `bufferedAmountLowThreshold`. */
  bufferedamountlow: undefined;
  /** The channel is `closed` (by either side or by the connection ending). */
  close: undefined;
  /** The transport reported an error on the channel. */
  error: Error;
}

/** Removes the listener it was returned for; calling it again does nothing. */
export type Unsubscribe = () => void;

/** A WebRTC data channel as vidrtc uses it (the `inference` and `video_upload` channels of PROTOCOL.md §1). */
export interface DataChannelLike {
  /** The channel's label, e.g. `inference` or `video_upload`. */
  readonly label: string;
  /** Current state, as `RTCDataChannel.readyState`. */
  readonly readyState: ChannelState;
  /** Bytes handed to `send` and not yet passed to the network. */
  readonly bufferedAmount: number;
  /** `bufferedamountlow` fires when `bufferedAmount` falls to this many bytes or below. */
  bufferedAmountLowThreshold: number;
  /** Largest message the peer accepts (bytes); `Infinity` when unlimited or unknown-but-unbounded. */
  readonly maxMessageSize: number;
  /**
   * Hands a message to the transport. The transport may keep a reference to `data`:
   * callers never reuse or mutate a buffer after sending it.
   */
  send(data: Uint8Array | string): void;
  /** Closes the channel; a no-op when it is already closing or closed. */
  close(): void;
  /** Subscribes `listener` to event `type`; returns a function that unsubscribes it. */
  on<K extends keyof ChannelEventMap>(type: K, listener: (event: ChannelEventMap[K]) => void): Unsubscribe;
}
