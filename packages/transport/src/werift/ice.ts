/**
 * ICE configuration for werift that never contacts a public STUN server on its own.
 *
 * Findings (werift 0.25.2, read from its source and checked in a network namespace):
 *
 * - **The hidden STUN fallback.** werift's ICE agent resolves its STUN server as
 *   `parsedStunServer ?? ["stun.l.google.com", 19302]`. The default `RTCPeerConnection` config also
 *   lists that server. So `iceServers: []`, or a list with only TURN URLs, still makes werift run a
 *   DNS lookup of `stun.l.google.com` and send a STUN binding request from every IPv4 host
 *   candidate, and gathering then waits `iceStunGatherTimeout` (default 5 s) when that fails.
 *   Measured in a namespace with one fake NIC: 5.1 s to gather, with the DNS lookup logged.
 * - **Turning STUN off.** werift queries STUN only from IPv4 host sockets, and checks the address
 *   family before sending: an IPv6 literal STUN address used from an IPv4 socket fails at once with
 *   `AddressFamilyMismatch`, before any DNS lookup or packet. So the sentinel
 *   {@link NO_STUN_SERVER} (`stun:[::1]:9`) switches server-reflexive gathering off: no DNS, no
 *   packet, and gathering finishes in about 50 ms. If a later werift sent the request anyway, it
 *   would go to the IPv6 loopback discard port, which still never leaves the machine. The options
 *   also set a short `iceStunGatherTimeout` as a second bound.
 *   A `stun:127.0.0.1:9` sentinel also works, but it sends real packets to port 9 and gathering
 *   waits for the whole timeout.
 * - **Host candidates.** werift lists host addresses with `os.networkInterfaces()` and drops
 *   `internal` (loopback) addresses, link-local addresses (unless `iceUseLinkLocalAddress`) and
 *   interfaces whose names start with `veth`, `vmnet`, `tun`, `tap`, `utun` or `ipsec`.
 *   `iceUseIpv4: false` and `iceUseIpv6: false` make that list empty; these two flags affect
 *   nothing else. `iceAdditionalHostAddresses` is then added as-is, so `["127.0.0.1"]` gives exactly
 *   one host candidate, 127.0.0.1. `iceInterfaceAddresses: { udp4: "127.0.0.1" }` also binds the
 *   UDP socket to 127.0.0.1 rather than 0.0.0.0. Used on its own, `iceInterfaceAddresses` does not
 *   restrict candidates: when no listed address matches, werift falls back to all interfaces.
 * - **mDNS.** werift uses multicast DNS only to resolve remote candidates whose host name ends in
 *   `.local`. Browsers advertise such candidates; werift and aiortc peers do not.
 */
import type { IceServerLike } from "@vidrtc/protocol";
import { hasStunUrl } from "../sdp.js";
import type { WeriftOptions } from "./public-types.js";

/** STUN URL used as an "off switch" for werift's built-in public STUN fallback (see module docs). */
export const NO_STUN_SERVER = "stun:[::1]:9";

/** The werift options that {@link loopbackIceOptions} and {@link defaultIceOptions} set. */
export type WeriftIceOptions = Pick<
  WeriftOptions,
  | "iceServers"
  | "iceUseIpv4"
  | "iceUseIpv6"
  | "iceAdditionalHostAddresses"
  | "iceInterfaceAddresses"
  | "iceStunGatherTimeout"
>;

/** Seconds werift waits for a server-reflexive candidate when the STUN server is only a sentinel. */
export const SENTINEL_STUN_GATHER_TIMEOUT_S = 0.2;

/**
 * werift options for tests and demos: one host candidate, 127.0.0.1, on a socket bound to
 * 127.0.0.1; no STUN, no DNS, no other interface. Gathering completes in tens of milliseconds.
 * Both peers must use it (or otherwise offer a 127.0.0.1 candidate) to connect.
 */
export function loopbackIceOptions(): WeriftIceOptions {
  return {
    iceServers: [{ urls: NO_STUN_SERVER }],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
    iceStunGatherTimeout: SENTINEL_STUN_GATHER_TIMEOUT_S,
  };
}

/**
 * SCTP packet size for connections that stay on 127.0.0.1. werift's default (1191 bytes) suits
 * internet paths. On loopback (MTU 65536), 16000-byte packets still fit one DTLS record (at most
 * 16384 bytes of plaintext). Measured werift to werift over 256 MiB with 4 MiB socket buffers:
 * 32–43 MiB/s, against 5–11 MiB/s with the default size.
 * Never use it for a peer across a real network: such datagrams would be IP-fragmented or dropped.
 */
export const LOOPBACK_SCTP_MTU = 16_000;

/**
 * {@link loopbackIceOptions} plus the large loopback SCTP packet size ({@link LOOPBACK_SCTP_MTU}):
 * werift options for tests, benchmarks and demos where both peers run on this machine.
 */
export function loopbackPeerOptions(): WeriftIceOptions & {
  /** SCTP settings. */
  sctp: {
    /** Outbound SCTP packet size in bytes: {@link LOOPBACK_SCTP_MTU}. */
    mtu: number;
  };
} {
  return { ...loopbackIceOptions(), sctp: { mtu: LOOPBACK_SCTP_MTU } };
}

/** Options of {@link defaultIceOptions}. */
export interface DefaultIceOptionsConfig {
  /**
   * Also offer a 127.0.0.1 host candidate, which werift leaves out by default, so that a server
   * on the same machine can be reached even with no network interface. Default `true`.
   */
  includeLoopback?: boolean;
}

/**
 * The library's ICE options when the user gives none, or gives only `iceServers`:
 *
 * - host candidates on every interface werift accepts (IPv4 and IPv6), plus 127.0.0.1 unless
 *   `includeLoopback: false`;
 * - no public STUN lookup. Without user servers, werift's `stun.l.google.com` fallback is switched
 *   off with {@link NO_STUN_SERVER}.
 * - with user servers, those servers (STUN and TURN, with credentials) are used as given. If they
 *   contain no STUN URL (for example TURN only), the sentinel is added so that werift does not
 *   add Google's STUN server.
 *
 * Without a real STUN URL, `iceStunGatherTimeout` is short. With one, werift's default (5 s)
 * applies, and the session's `createOffer` timeout bounds the whole gathering.
 */
export function defaultIceOptions(
  iceServers?: readonly IceServerLike[],
  config: DefaultIceOptionsConfig = {},
): WeriftIceOptions {
  const userServers = (iceServers ?? []).map((server) => ({
    urls: Array.isArray(server.urls) ? [...server.urls] : server.urls,
    ...(server.username === undefined ? {} : { username: server.username }),
    ...(server.credential === undefined ? {} : { credential: server.credential }),
  }));
  const userStun = hasStunUrl(userServers);
  const servers = userStun ? userServers : [...userServers, { urls: NO_STUN_SERVER }];
  return {
    iceServers: servers,
    iceUseIpv4: true,
    iceUseIpv6: true,
    iceAdditionalHostAddresses: config.includeLoopback === false ? undefined : ["127.0.0.1"],
    iceInterfaceAddresses: undefined,
    iceStunGatherTimeout: userStun ? undefined : SENTINEL_STUN_GATHER_TIMEOUT_S,
  };
}

export { sdpCandidates } from "../sdp.js";
