import dns from "node:dns";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { RTCPeerConnection } from "werift";
import { assertIsolatedNetwork, exposedAddresses } from "../test-support/netns.js";
import { channelOpen, createPair, gatheringComplete, nextEvent } from "../test-support/werift-pair.js";
import { defaultIceOptions, NO_STUN_SERVER, sdpCandidates } from "./ice.js";

describe("defaultIceOptions", () => {
  it("switches werift's public STUN fallback off when no servers are given", () => {
    const o = defaultIceOptions();
    expect(o.iceServers).toEqual([{ urls: NO_STUN_SERVER }]);
    expect(o.iceUseIpv4).toBe(true);
    expect(o.iceUseIpv6).toBe(true);
    expect(o.iceAdditionalHostAddresses).toEqual(["127.0.0.1"]);
    expect(o.iceStunGatherTimeout).toBeLessThan(1);
  });

  it("uses the user's STUN and TURN servers as given, without the sentinel", () => {
    const servers = [
      { urls: "stun:stun.example.org:3478" },
      { urls: ["turn:turn.example.org:3478?transport=udp"], username: "u", credential: "p" },
    ];
    const o = defaultIceOptions(servers);
    expect(o.iceServers).toEqual(servers);
    expect(o.iceServers).not.toBe(servers);
    expect(o.iceStunGatherTimeout).toBeUndefined();
  });

  it("adds the sentinel to a TURN-only list so werift does not add Google's STUN", () => {
    const o = defaultIceOptions([{ urls: "turns:turn.example.org:5349", username: "u", credential: "p" }]);
    expect(o.iceServers).toEqual([
      { urls: "turns:turn.example.org:5349", username: "u", credential: "p" },
      { urls: NO_STUN_SERVER },
    ]);
  });

  it("can leave loopback out", () => {
    expect(
      defaultIceOptions(undefined, { includeLoopback: false }).iceAdditionalHostAddresses,
    ).toBeUndefined();
  });
});

describe("sdpCandidates", () => {
  it("parses candidate lines", () => {
    const sdp =
      "v=0\r\na=candidate:abc 1 udp 2116026367 127.0.0.1 60774 typ host generation 0\r\n" +
      "a=candidate:def 1 udp 1677729535 203.0.113.5 50000 typ srflx raddr 10.0.0.2 rport 50000\r\n";
    expect(sdpCandidates(sdp)).toEqual([
      { address: "127.0.0.1", port: 60774, type: "host" },
      { address: "203.0.113.5", port: 50000, type: "srflx" },
    ]);
  });
});

/**
 * Replaces `dns.promises.lookup` (what werift uses to resolve STUN/TURN host names) with a spy that
 * fails at once, so that no test can send a DNS query, even through a resolver outside the namespace.
 */
function blockDnsLookups() {
  return vi.spyOn(dns.promises, "lookup").mockRejectedValue(new Error("DNS lookups are blocked in tests"));
}

describe("werift ICE inside a network namespace", () => {
  beforeAll(() => {
    assertIsolatedNetwork();
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("loopback mode: only 127.0.0.1 candidates, no DNS, connect and echo in < 2 s", async () => {
    const lookup = blockDnsLookups();
    const lookupCb = vi.spyOn(dns, "lookup");
    const started = performance.now();
    const pair = await createPair({ labels: ["echo"] });
    try {
      const gatheredMs = performance.now() - started;
      for (const sdp of [pair.offerSdp, pair.answerSdp]) {
        const candidates = sdpCandidates(sdp);
        expect(candidates.length).toBeGreaterThan(0);
        for (const c of candidates) {
          expect(c).toMatchObject({ address: "127.0.0.1", type: "host" });
        }
      }
      const [channel] = pair.channels;
      await channelOpen(channel!);
      const server = await pair.serverChannel("echo");
      server.on("message", ({ data }) => server.send(data));
      const echoed = new Promise<string>((resolve) =>
        channel!.on("message", ({ data }) => resolve(String(data))),
      );
      channel!.send("ping");
      expect(await echoed).toBe("ping");
      const totalMs = performance.now() - started;
      expect(totalMs).toBeLessThan(2_000);
      // Gathering with the sentinel STUN server must not wait on any timeout.
      expect(gatheredMs).toBeLessThan(1_500);
      // dns.lookup with an IP literal is what dgram does for every send; no name may be looked up.
      expect(lookup).not.toHaveBeenCalled();
      for (const call of lookupCb.mock.calls) {
        expect(String(call[0])).toMatch(/^(127\.0\.0\.1|0\.0\.0\.0|::1?)$/);
      }
    } finally {
      await pair.close();
    }
  });

  it("default mode gathers at once, with no DNS lookup, and finds the loopback candidate", async () => {
    const lookup = blockDnsLookups();
    const pc = new RTCPeerConnection({ ...defaultIceOptions() });
    try {
      pc.createDataChannel("x");
      const started = performance.now();
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc, 3_000);
      expect(performance.now() - started).toBeLessThan(1_000);
      const addresses = sdpCandidates(pc.localDescription!.sdp).map((c) => c.address);
      expect(addresses).toContain("127.0.0.1");
      // Only loopback, plus the fake NIC when the namespace has one.
      const allowed = new Set(["127.0.0.1", ...exposedAddresses()]);
      for (const a of addresses)
        expect(allowed.has(a) || a.startsWith("192.0.2.") || a.startsWith("fe80")).toBe(true);
      expect(lookup).not.toHaveBeenCalled();
    } finally {
      await pc.close();
    }
  });

  it("control: an empty iceServers list makes werift look up its public STUN server", async () => {
    // This documents why the sentinel exists. The lookup fails in the namespace (no DNS).
    // Only interfaces werift accepts trigger STUN; with only `lo` nothing is queried at all,
    // so add the loopback host explicitly.
    const lookup = blockDnsLookups();
    const pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ["127.0.0.1"],
      iceStunGatherTimeout: 0.3,
    });
    try {
      pc.createDataChannel("x");
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc, 3_000);
      expect(lookup.mock.calls.map((c) => c[0])).toContain("stun.l.google.com");
    } finally {
      await pc.close();
    }
  });

  it("closing the client closes the server's channel too", async () => {
    const pair = await createPair({ labels: ["c"] });
    try {
      await channelOpen(pair.channels[0]!);
      const server = await pair.serverChannel("c");
      const closed = nextEvent(server, "close");
      pair.client.close();
      await closed;
      expect(server.readyState).toBe("closed");
    } finally {
      await pair.close();
    }
  });
});
