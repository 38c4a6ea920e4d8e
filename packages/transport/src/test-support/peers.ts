/**
 * Test helper: an offerer of one stack connected to an answerer of another, through the seam only.
 * node-datachannel needs a non-loopback interface: inside `netns-run --nic 192.0.2.10/24` both
 * stacks use the sealed fake NIC; without it only werift pairs on 127.0.0.1 are possible.
 */
import { networkInterfaces } from "node:os";
import type { AnsweringPeerLike, DataChannelLike } from "@vidrtc/protocol";
import { loadTransport } from "../load.js";
import type { AnswererConfig, OffererConfig, OfferingPeer, TransportName } from "../types.js";
import type { ChannelPair } from "./contract.js";

/** The sealed fake NIC's IPv4 address, if this namespace has one. */
export function fakeNicAddress(): string | null {
  for (const infos of Object.values(networkInterfaces())) {
    for (const info of infos ?? []) {
      if (info.family === "IPv4" && !info.internal && info.address.startsWith("192.0.2."))
        return info.address;
    }
  }
  return null;
}

function configs(offer: TransportName, answer: TransportName): { o: OffererConfig; a: AnswererConfig } {
  const nic = fakeNicAddress();
  if (offer === "werift" && answer === "werift" && !nic)
    return { o: { loopbackOnly: true }, a: { loopbackOnly: true } };
  if (!nic)
    throw new Error("node-datachannel pairs need the sealed fake NIC (netns-run --nic 192.0.2.10/24)");
  return { o: { includeLoopback: false }, a: { hostAddresses: [nic] } };
}

export interface PeerPair {
  offerer: OfferingPeer;
  answerer: AnsweringPeerLike;
  channels: DataChannelLike[];
  remote(label: string): Promise<DataChannelLike>;
  offerSdp: string;
  answerSdp: string;
  close(): Promise<void>;
}

export async function connectPeers(
  offerStack: TransportName,
  answerStack: TransportName,
  options: { labels?: string[]; video?: boolean; offerer?: OffererConfig; answerer?: AnswererConfig } = {},
): Promise<PeerPair> {
  const { o, a } = configs(offerStack, answerStack);
  const offerer = (await loadTransport(offerStack)).createOfferer({ ...o, ...options.offerer });
  const answerer = (await loadTransport(answerStack)).createAnswerer({ ...a, ...options.answerer });
  const seen = new Map<string, DataChannelLike>();
  const waiters = new Map<string, (ch: DataChannelLike) => void>();
  answerer.onDataChannel((ch) => {
    seen.set(ch.label, ch);
    waiters.get(ch.label)?.(ch);
  });
  if (options.video) offerer.addVideoReceiver();
  const channels = (options.labels ?? ["inference", "video_upload"]).map((l) => offerer.createDataChannel(l));
  const offer = await offerer.createOffer({ timeoutMs: 5_000 });
  const answer = await answerer.answer(offer, { timeoutMs: 5_000, sendVideo: options.video ?? false });
  await offerer.setAnswer(answer);
  const remote = (label: string) =>
    new Promise<DataChannelLike>((resolve, reject) => {
      const ch = seen.get(label);
      if (ch) return resolve(ch);
      const timer = setTimeout(() => reject(new Error(`answerer never saw channel "${label}"`)), 10_000);
      waiters.set(label, (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  return {
    offerer,
    answerer,
    channels,
    remote,
    offerSdp: offer.sdp,
    answerSdp: answer.sdp,
    close: async () => {
      await offerer.closeAndWait();
      await answerer.close();
    },
  };
}

/** Resolves when `channel` is open, bounded. */
export function opened(channel: DataChannelLike, timeoutMs = 10_000): Promise<void> {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`"${channel.label}" did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = channel.on("open", () => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** A {@link ChannelPair} over a fresh offerer/answerer pair. */
export async function stackChannelPair(
  offer: TransportName,
  answer: TransportName,
  label: string,
): Promise<ChannelPair> {
  const peers = await connectPeers(offer, answer, { labels: [label] });
  const local = peers.channels[0]!;
  await opened(local);
  const remote = await peers.remote(label);
  await opened(remote);
  return { local, remote, close: peers.close };
}
