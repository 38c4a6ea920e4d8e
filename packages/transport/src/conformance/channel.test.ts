/**
 * Every DataChannelLike is held to one contract: the in-memory fake of @vidrtc/protocol (as two
 * fakes wired back to back), and every offerer x answerer pair of werift and node-datachannel.
 * Run inside `netns-run --nic 192.0.2.10/24` (scripts/test.sh does): node-datachannel skips
 * loopback-only hosts; without the fake NIC only the fake and werift x werift run.
 */
import { beforeAll } from "vitest";
import { FakeChannel } from "../../../protocol/src/test-support/fake-channel.js";
import { type ChannelPair, describeChannelContract } from "../test-support/contract.js";
import { assertIsolatedNetwork } from "../test-support/netns.js";
import { fakeNicAddress, stackChannelPair } from "../test-support/peers.js";
import type { TransportName } from "../types.js";

beforeAll(() => assertIsolatedNetwork());

function fakePair(label: string): Promise<ChannelPair> {
  let a: FakeChannel;
  const b: FakeChannel = new FakeChannel({
    label,
    drainBytesPerTick: 256 * 1024,
    onDeliver: (data) => a.receive(data),
  });
  a = new FakeChannel({ label, drainBytesPerTick: 256 * 1024, onDeliver: (data) => b.receive(data) });
  a.on("close", () => queueMicrotask(() => b.close()));
  b.on("close", () => queueMicrotask(() => a.close()));
  return Promise.resolve({
    local: a,
    remote: b,
    close: async () => {
      a.dispose();
      b.dispose();
    },
  });
}

describeChannelContract({ name: "in-memory fake", pair: fakePair, typedErrors: false });

const stacks: TransportName[] = fakeNicAddress() ? ["werift", "node-datachannel"] : ["werift"];
for (const offer of stacks) {
  for (const answer of stacks) {
    describeChannelContract({
      name: `${offer} offerer x ${answer} answerer`,
      pair: (label) => stackChannelPair(offer, answer, label),
      typedErrors: true,
    });
  }
}
