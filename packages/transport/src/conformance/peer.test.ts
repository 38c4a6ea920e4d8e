/**
 * PeerConnectionLike (offerer) and AnsweringPeerLike (answerer) contract, for every offerer x
 * answerer pair of werift and node-datachannel (node-datachannel pairs need the sealed fake NIC).
 */
import type { PeerConnectionState } from "@vidrtc/protocol";
import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { once } from "../test-support/contract.js";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { connectPeers, fakeNicAddress, opened, type PeerPair } from "../test-support/peers.js";
import type { TransportName } from "../types.js";

beforeAll(() => assertIsolatedNetwork());

function reaches(
  peer: {
    connectionState: PeerConnectionState;
    onConnectionStateChange(l: (s: PeerConnectionState) => void): () => void;
  },
  states: PeerConnectionState[],
  timeoutMs = 15_000,
): Promise<PeerConnectionState> {
  if (states.includes(peer.connectionState)) return Promise.resolve(peer.connectionState);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`state ${peer.connectionState}, not ${states.join("/")} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = peer.onConnectionStateChange((s) => {
      if (!states.includes(s)) return;
      clearTimeout(timer);
      off();
      resolve(s);
    });
  });
}

const stacks: TransportName[] = fakeNicAddress() ? ["werift", "node-datachannel"] : ["werift"];
for (const offer of stacks) {
  for (const answer of stacks) {
    describe(`peer contract: ${offer} offerer x ${answer} answerer`, () => {
      const open: PeerPair[] = [];
      afterEach(async () => {
        for (const p of open.splice(0)) await p.close();
      });

      it("connects both sides, hands over every channel exactly once, and closes idempotently", async () => {
        const peers = await connectPeers(offer, answer, { labels: ["inference", "video_upload"] });
        open.push(peers);
        const labels: string[] = [];
        peers.answerer.onDataChannel((ch) => labels.push(ch.label));
        await reaches(peers.offerer, ["connected"]);
        await reaches(peers.answerer, ["connected"]);
        for (const ch of peers.channels) await opened(ch);
        await peers.remote("video_upload");
        await peers.remote("inference");
        // Each channel exactly once; the order of arrival is not part of the contract
        // (a node-datachannel offerer opens them in reverse order).
        expect([...labels].sort()).toEqual(["inference", "video_upload"]);
        expect(peers.offerer.transport).toBe(offer);

        const remote = await peers.remote("video_upload");
        const remoteClosed = once(remote, "close", 20_000);
        peers.offerer.close();
        peers.offerer.close();
        await peers.offerer.closeAndWait();
        expect(peers.offerer.connectionState).toBe("closed");
        await remoteClosed;
        expect(() => peers.offerer.createDataChannel("late")).toThrowError(
          expect.objectContaining({ code: "CONNECTION_FAILED" }),
        );
        await peers.answerer.close();
        await peers.answerer.close();
        expect(peers.answerer.connectionState).toBe("closed");
      });

      it("refuses a malformed answer with SIGNALING_FAILED and answer() after close", async () => {
        const { o, a } = { o: offer, a: answer };
        const offerer = (await import("../load.js"))
          .loadTransport(o)
          .then((t) =>
            t.createOfferer(fakeNicAddress() ? { includeLoopback: false } : { loopbackOnly: true }),
          );
        const peer = await offerer;
        peer.createDataChannel("inference");
        await peer.createOffer({ timeoutMs: 5_000 });
        const error = await peer.setAnswer({ type: "answer", sdp: "not sdp" }).catch((e: unknown) => e);
        expect(VidrtcError.isInstance(error) && error.code).toBe("SIGNALING_FAILED");
        await peer.closeAndWait();
        const answerer = (await (await import("../load.js")).loadTransport(a)).createAnswerer({});
        await answerer.close();
        const late = await answerer
          .answer(
            { type: "offer", sdp: "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" },
            { timeoutMs: 1_000, sendVideo: false },
          )
          .catch((e: unknown) => e);
        expect(VidrtcError.isInstance(late) && late.code).toBe("CONNECTION_FAILED");
      });
    });
  }
}
