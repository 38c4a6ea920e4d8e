/** SDP helpers shared by every stack (the one place for each of these regular expressions). */
import type { IceServerLike } from "@vidrtc/protocol";

const STUN_URL = /^stuns?:/i;

/** True when `servers` contains at least one `stun:` or `stuns:` URL. */
export function hasStunUrl(servers: readonly IceServerLike[] | undefined): boolean {
  return (servers ?? []).some((server) =>
    (Array.isArray(server.urls) ? server.urls : [server.urls]).some((url) => STUN_URL.test(url.trim())),
  );
}

/** Removes `a=candidate` lines whose address is an mDNS `.local` name. */
export function stripMdnsCandidates(sdp: string): string {
  return sdp
    .split(/\r?\n/)
    .filter((line) => !/^a=candidate:\S+ \d+ \S+ \d+ \S+\.local /i.test(line))
    .join("\r\n");
}

/** True when the SDP has a video m-line with a non-zero port. */
export function offerHasVideo(sdp: string): boolean {
  return /^m=video [1-9]/m.test(sdp);
}

/**
 * The `a=max-message-size` of an SDP's application m-section: the number, `Infinity` for 0
 * (unlimited), and 65536 when absent (RFC 8841's default for peers that do not say).
 */
export function sdpMaxMessageSize(sdp: string): number {
  const match = /^a=max-message-size:\s*(\d+)/m.exec(sdp);
  if (!match) return 65_536;
  const value = Number(match[1]);
  return value === 0 ? Number.POSITIVE_INFINITY : value;
}

/**
 * Lists the `a=candidate` lines of an SDP as `{ address, port, type }`, for checks and logs.
 * Candidates with other transports (TCP) are included.
 */
export function sdpCandidates(sdp: string): {
  /** The candidate's IP address (or mDNS name). */
  address: string;
  /** The candidate's port. */
  port: number;
  /** Candidate type: `host`, `srflx`, `prflx` or `relay`. */
  type: string;
}[] {
  const out: { address: string; port: number; type: string }[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    const match = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) (\d+) typ (\S+)/.exec(line);
    if (match) out.push({ address: match[1]!, port: Number(match[2]), type: match[3]! });
  }
  return out;
}

/** Checks that `sdp` looks like a session description with media sections. */
export function looksLikeSdp(sdp: unknown): sdp is string {
  return typeof sdp === "string" && /^v=0/m.test(sdp) && /^m=/m.test(sdp);
}
