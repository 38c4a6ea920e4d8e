/**
 * Test helper: a vidrtc werift client peer connected on 127.0.0.1 to a plain werift "server" that
 * answers the offer and accepts the data channels, like an inference server does.
 */
import type { DataChannelLike } from "@vidrtc/protocol";
import { type RTCDataChannel, RTCPeerConnection, type RTCPeerConnectionConfig } from "werift";
import { loopbackIceOptions } from "../werift/ice.js";
import {
  createWeriftPeer,
  DEFAULT_SOCKET_BUFFER_BYTES,
  setWeriftSocketBuffers,
  type WeriftPeer,
  type WeriftPeerConfig,
  wrapWeriftChannel,
} from "../werift/peer.js";

/** Resolves when `pc` has finished gathering, or rejects after `timeoutMs`. */
export function gatheringComplete(pc: RTCPeerConnection, timeoutMs = 5_000): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`ICE gathering did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state !== "complete") return;
      clearTimeout(timer);
      sub.unSubscribe();
      resolve();
    });
  });
}

/** Resolves when the channel is open, or rejects after `timeoutMs`. */
export function channelOpen(channel: DataChannelLike, timeoutMs = 5_000): Promise<void> {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`channel "${channel.label}" did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = channel.on("open", () => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Resolves with the next event of `type`, or rejects after `timeoutMs`. */
export function nextEvent<K extends "open" | "close" | "bufferedamountlow" | "message">(
  channel: DataChannelLike,
  type: K,
  timeoutMs = 5_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${type}" on "${channel.label}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = channel.on(type, () => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** A connected client/server pair. */
export interface WeriftPair {
  client: WeriftPeer;
  server: RTCPeerConnection;
  /** The client's offer SDP, with candidates. */
  offerSdp: string;
  /** The server's answer SDP. */
  answerSdp: string;
  /** Server-side channels by label, wrapped. Resolves when the client's channel reaches the server. */
  serverChannel(label: string): Promise<DataChannelLike>;
  /** Raw werift channel on the server side, by label. */
  rawServerChannel(label: string): Promise<RTCDataChannel>;
  close(): Promise<void>;
}

/** Options of {@link createPair}. */
export interface PairOptions {
  /** Labels of the client channels created before the offer. */
  labels?: string[];
  /** Extra client config (merged over loopback ICE). */
  client?: WeriftPeerConfig;
  /** Extra server werift config (merged over loopback ICE). */
  server?: Partial<RTCPeerConnectionConfig>;
  /** Called on the server after it applied the offer and before it answers (add tracks here). */
  beforeAnswer?: (server: RTCPeerConnection) => void | Promise<void>;
  /** Called on the client before the offer (e.g. `addVideoReceiver`). */
  beforeOffer?: (client: WeriftPeer) => void;
}

/**
 * Creates the client (via `createWeriftPeer` with `loopbackIceOptions()`) and the server, runs
 * offer/answer, and returns once both sides have applied the descriptions. Client channels are
 * returned in `channels`, in the order of `labels`.
 */
export async function createPair(
  options: PairOptions = {},
): Promise<WeriftPair & { channels: DataChannelLike[] }> {
  const client = createWeriftPeer({
    ...options.client,
    werift: { ...loopbackIceOptions(), ...options.client?.werift },
  });
  const server = new RTCPeerConnection({ ...loopbackIceOptions(), ...options.server });
  const rawChannels = new Map<string, RTCDataChannel>();
  const waiters = new Map<string, ((dc: RTCDataChannel) => void)[]>();
  server.onDataChannel.subscribe((dc) => {
    rawChannels.set(dc.label, dc);
    for (const resolve of waiters.get(dc.label) ?? []) resolve(dc);
    waiters.delete(dc.label);
  });
  const rawServerChannel = (label: string): Promise<RTCDataChannel> => {
    const existing = rawChannels.get(label);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server never saw channel "${label}"`)), 5_000);
      const list = waiters.get(label) ?? [];
      list.push((dc) => {
        clearTimeout(timer);
        resolve(dc);
      });
      waiters.set(label, list);
    });
  };
  const wrapped = new Map<string, DataChannelLike>();
  const serverChannel = async (label: string): Promise<DataChannelLike> => {
    const dc = await rawServerChannel(label);
    let channel = wrapped.get(label);
    if (!channel) {
      channel = wrapWeriftChannel(dc);
      wrapped.set(label, channel);
    }
    return channel;
  };

  options.beforeOffer?.(client);
  const channels = (options.labels ?? ["inference", "video_upload"]).map((label) =>
    client.createDataChannel(label),
  );
  const offer = await client.createOffer({ timeoutMs: 5_000 });
  await server.setRemoteDescription(offer);
  await options.beforeAnswer?.(server);
  await server.setLocalDescription(await server.createAnswer());
  await gatheringComplete(server);
  setWeriftSocketBuffers(server, DEFAULT_SOCKET_BUFFER_BYTES);
  const answerSdp = server.localDescription!.sdp;
  await client.setAnswer({ type: "answer", sdp: answerSdp });
  return {
    client,
    server,
    channels,
    offerSdp: offer.sdp,
    answerSdp,
    serverChannel,
    rawServerChannel,
    close: async () => {
      client.close();
      await server.close().catch(() => {});
    },
  };
}
