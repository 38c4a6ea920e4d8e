/**
 * vidrtc's own names for the werift objects and options that its public API passes through.
 *
 * werift's declarations are kept out of vidrtc's: they import the untyped `multicast-dns`
 * package, so a consumer's type check with `skipLibCheck: false` would fail on them. These types
 * describe the part that vidrtc and most callers use. At run time the objects are werift's own;
 * for the rest of werift's API, cast to werift's own type (for example `peer.raw` to werift's
 * `RTCPeerConnection`). The adapters pass werift's objects and options where these types are
 * expected, so the compiler checks that werift's types still fit them.
 *
 * @module
 */

/** A STUN or TURN server as werift takes it. */
export interface WeriftIceServer {
  /** One URL or several (`stun:host:port`, `turn:host:port?transport=udp`, ...). */
  urls: string | string[];
  /** TURN user name. */
  username?: string;
  /** TURN password. */
  credential?: string;
}

/**
 * The werift `RTCPeerConnection` options that vidrtc sets or documents (a subset of werift's
 * `RTCPeerConnectionConfig`, same meaning). They are passed to werift as given.
 */
export interface WeriftOptions {
  /** STUN/TURN servers. vidrtc adds its no-STUN sentinel when the list has no STUN URL. */
  iceServers?: WeriftIceServer[];
  /** `"relay"` to use TURN candidates only. */
  iceTransportPolicy?: "all" | "relay";
  /** Act as an ICE-lite agent (answering side, controlled role). */
  iceLite?: boolean;
  /** Smallest and largest local UDP port (they must differ). */
  icePortRange?: [number, number];
  /** Bind the UDP (and TCP) sockets to these addresses instead of all interfaces. */
  iceInterfaceAddresses?: {
    /** IPv4 address to bind. */
    udp4?: string;
    /** IPv6 address to bind. */
    udp6?: string;
  };
  /** Extra host addresses to gather candidates for, such as `127.0.0.1`. */
  iceAdditionalHostAddresses?: string[];
  /** Gather IPv4 host candidates of the machine's interfaces. */
  iceUseIpv4?: boolean;
  /** Gather IPv6 host candidates of the machine's interfaces. */
  iceUseIpv6?: boolean;
  /** Gather TCP candidates. */
  iceUseTcp?: boolean;
  /** Seconds to wait for server-reflexive candidates (werift's default: 5). */
  iceStunGatherTimeout?: number;
  /** SCTP settings: `mtu` is the outbound packet size (werift's default: 1191 bytes). */
  sctp?: {
    /** Outbound SCTP packet size in bytes (werift's default: 1191). */
    mtu?: number;
  };
}

/** A werift `RTCPeerConnection`, as `WeriftPeer.raw` exposes it. */
export interface WeriftConnection {
  /** The connection state, as in the WebRTC standard. */
  readonly connectionState: "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";
  /** The ICE connection state, as in the WebRTC standard. */
  readonly iceConnectionState:
    | "new"
    | "checking"
    | "connected"
    | "completed"
    | "disconnected"
    | "failed"
    | "closed";
  /** werift's statistics report (cast to werift's `RTCStatsReport` to read it). */
  getStats(): Promise<unknown>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** A werift `RTCDataChannel`, as `wrapWeriftChannel` takes it. */
export interface WeriftChannel {
  /** The channel's label. */
  readonly label: string;
  /** `"connecting"`, `"open"`, `"closing"` or `"closed"`. */
  readonly readyState: string;
  /** Bytes queued and not yet handed to SCTP. */
  readonly bufferedAmount: number;
  /** Closes the channel. */
  close(): void;
}

/** A werift `MediaStreamTrack`, as `WeriftPeer.videoTrack` and `recordVideoToWebm` use it. */
export interface WeriftTrack {
  /** `"video"` for the tracks vidrtc records. */
  readonly kind: string;
  /** The track's id (werift leaves it unset on some received tracks). */
  readonly id?: string | undefined;
}
