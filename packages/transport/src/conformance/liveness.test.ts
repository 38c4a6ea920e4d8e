/**
 * `AnsweringPeerLike.lastActivityAt()`, the signal a server's liveness watchdog polls, for every
 * offerer x answerer pair (node-datachannel pairs need the sealed fake NIC): it stays fresh while a
 * live remote peer sends nothing at the application level, and stops advancing once the remote
 * peer is gone. The idle window is long enough to span several consent-check periods (~5 s).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { connectPeers, fakeNicAddress, opened, type PeerPair } from "../test-support/peers.js";
import type { TransportName } from "../types.js";

beforeAll(() => assertIsolatedNetwork());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const IDLE_MS = 16_000;
const SAMPLE_MS = 250;

const stacks: TransportName[] = fakeNicAddress() ? ["werift", "node-datachannel"] : ["werift"];
const pairs = stacks.flatMap((offer) => stacks.map((answer) => [offer, answer] as const));

describe("answerer liveness signal", () => {
  it(`stays fresh while the remote peer is idle but alive, and stops once it is gone (${pairs.length} pairs at once)`, async () => {
    // All pairs idle together so the test costs one idle window, not one per pair; they are
    // connected and closed one at a time (node-datachannel's global cleanup dislikes overlap).
    const all: PeerPair[] = [];
    let results: { pair: string; worst: number; frozen: boolean; sinceLast: number }[] = [];
    try {
      for (const [offer, answer] of pairs) {
        const peers = await connectPeers(offer, answer, { labels: ["inference", "video_upload"] });
        all.push(peers);
        for (const ch of peers.channels) await opened(ch);
        await peers.remote("inference");
        // One message, then silence at the application level.
        peers.channels[0]?.send("hello");
      }
      const worst = all.map(() => 0);
      const until = Date.now() + IDLE_MS;
      while (Date.now() < until) {
        await sleep(SAMPLE_MS);
        all.forEach((peers, i) => {
          const at = peers.answerer.lastActivityAt();
          expect(at).not.toBeNull();
          worst[i] = Math.max(worst[i] as number, Date.now() - (at as number));
        });
      }
      for (const peers of all) await peers.offerer.closeAndWait();
      // Give in-flight packets (close alerts, a last heartbeat) a moment, then it must stop. 3 s:
      // on a machine loaded to ~25 runnable processes the close alerts were seen after 1 s.
      await sleep(3_000);
      const last = all.map((peers) => peers.answerer.lastActivityAt() as number);
      await sleep(4_000);
      results = all.map((peers, i) => {
        const after = peers.answerer.lastActivityAt() as number;
        return {
          pair: `${pairs[i]?.[0]} -> ${pairs[i]?.[1]}`,
          worst: worst[i] as number,
          frozen: after === last[i],
          sinceLast: Date.now() - after,
        };
      });
    } finally {
      for (const peers of all) await peers.close();
    }
    for (const r of results) {
      console.log(
        `[liveness] ${r.pair}: oldest activity while idle ${r.worst} ms over ${IDLE_MS} ms; after the offerer closed: frozen=${r.frozen}, ${r.sinceLast} ms since the last activity`,
      );
    }
    for (const r of results) {
      // A live peer is seen at least every 10 s (consent checks every ~5 s), well inside the
      // server's default 15 s bound.
      expect(r.worst, r.pair).toBeLessThan(10_000);
      expect(r.frozen, r.pair).toBe(true);
      expect(r.sinceLast, r.pair).toBeGreaterThanOrEqual(4_000);
    }
  }, 90_000);
});
