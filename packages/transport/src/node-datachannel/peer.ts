/**
 * Both roles on node-datachannel (libdatachannel, native; optional dependency).
 *
 * Facts (node-datachannel 0.33.4, checked in a namespace with a sealed fake NIC):
 * - With `iceServers: []` libjuice sends no STUN request and gathers host candidates only, in a few
 *   milliseconds. It skips loopback addresses: on a machine whose only interface is `lo` there is
 *   no candidate at all, so both peers need a real (or sealed fake) interface.
 * - The native threads keep the process alive after every peer has closed until the library's
 *   global `cleanup()` runs. This module counts its live peers and calls `cleanup()` when the last
 *   one has closed, so a process exits on its own. (Another user of node-datachannel in the same
 *   process would see its peers closed by that call: do not share the library with other code.)
 *   After a peer whose connection failed (its remote vanished), `cleanup()` waits 30 s: called at
 *   once it blocked the event loop for 10 s and threw, which ended the process.
 * - Auto-negotiation is turned off: the offer is made once every channel and track exists, and
 *   `localDescription()` lists the candidates once gathering is complete (no trickle).
 */
import {
  type AnsweringPeerLike,
  type AnswerOptions,
  abortError,
  type DataChannelLike,
  type IceServerLike,
  type PeerConnectionState,
  type SessionDescriptionLike,
  throwIfAborted,
  type Unsubscribe,
  type VideoSenderLike,
  VidrtcError,
} from "@vidrtc/protocol";
import ndc from "node-datachannel";
import { looksLikeSdp, offerHasVideo, stripMdnsCandidates } from "../sdp.js";
import { ChannelHandover } from "../shared.js";
import type {
  AnswererConfig,
  OffererConfig,
  OfferingPeer,
  PeerConfigBase,
  RecordVideoOptions,
  TransportName,
  VideoRecording,
} from "../types.js";
import { NdcDataChannel } from "./channel.js";
import { type RtpVideoRecorder, recordRtpToWebm } from "./webm.js";

type NativePeer = InstanceType<typeof ndc.PeerConnection>;
type NativeTrack = ReturnType<NativePeer["addTrack"]>;
type RtcConfig = ConstructorParameters<typeof ndc.PeerConnection>[1];

/** Confirms that the native binary loads (throws otherwise). */
export function nativeLibraryVersion(): string {
  return ndc.getLibraryVersion();
}

let livePeers = 0;
let cleanupPending = false;
/**
 * Until when (`Date.now()` ms) a peer closed after its connection failed may still hold native
 * resources. Measured (a client SIGKILLed, the server's peer failed on libjuice's consent timeout,
 * then closed): `cleanup()` right after that close blocked the event loop for its full 10 s and then
 * threw "cleanup timeout (possible deadlock)" (an uncaught exception that ended the process); 20 s
 * later it returned in 4 ms.
 */
let settleUntil = 0;
const FAILED_PEER_SETTLE_MS = 30_000;
let cleanupRetries = 0;

function peerOpened(): void {
  livePeers++;
}

function peerClosed(failed: boolean): void {
  livePeers--;
  if (failed) settleUntil = Math.max(settleUntil, Date.now() + FAILED_PEER_SETTLE_MS);
  scheduleCleanup();
}

function scheduleCleanup(): void {
  if (livePeers > 0 || cleanupPending) return;
  cleanupPending = true;
  const run = (): void => {
    cleanupPending = false;
    if (livePeers > 0) return;
    if (Date.now() < settleUntil) {
      scheduleCleanup();
      return;
    }
    try {
      ndc.cleanup();
      cleanupRetries = 0;
    } catch {
      // libdatachannel gave up waiting for a peer's native side (it throws after 10 s). Never let
      // that end the process: try once more after the settle time; a later close retries too.
      if (cleanupRetries++ < 1) {
        settleUntil = Date.now() + FAILED_PEER_SETTLE_MS;
        scheduleCleanup();
      }
    }
  };
  const wait = settleUntil - Date.now();
  // No failed peer to wait for: let the close callbacks already queued run first, then stop the
  // library's threads (so a process exits on its own).
  if (wait <= 0) setImmediate(run);
  else setTimeout(run, wait);
}

/** Turns `RTCIceServer`-style entries into libdatachannel's URL strings (credentials in the URL). */
export function ndcIceServers(servers: readonly IceServerLike[] | undefined): string[] {
  const out: string[] = [];
  for (const server of servers ?? []) {
    for (const raw of Array.isArray(server.urls) ? server.urls : [server.urls]) {
      const url = raw.trim();
      const match = /^(turns?|stuns?):(.*)$/i.exec(url);
      if (!match) {
        throw new VidrtcError("INVALID_OPTIONS", `Unsupported ICE server URL: ${url}`);
      }
      const scheme = match[1]!.toLowerCase();
      if (scheme.startsWith("turn") && server.username !== undefined && !match[2]!.includes("@")) {
        const user = encodeURIComponent(server.username);
        const pass = encodeURIComponent(server.credential ?? "");
        out.push(`${scheme}:${user}:${pass}@${match[2]}`);
      } else out.push(`${scheme}:${match[2]}`);
    }
  }
  return out;
}

function rtcConfig(config: PeerConfigBase, bindAddress: string | undefined): RtcConfig {
  const out: RtcConfig = {
    iceServers: ndcIceServers(config.iceServers),
    disableAutoNegotiation: true,
  };
  if (bindAddress !== undefined) out.bindAddress = bindAddress;
  if (config.portRange) {
    const [min, max] = config.portRange;
    if (!(Number.isInteger(min) && Number.isInteger(max) && min > 0 && max <= 65_535 && min <= max)) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        `portRange must be [min, max] within 1..65535, got [${min}, ${max}].`,
      );
    }
    out.portRangeBegin = min;
    out.portRangeEnd = max;
  }
  return out;
}

/** Socket buffers for libdatachannel's SCTP (its UDP sockets are not reachable from JS). */
let sctpConfigured = false;
function configureSctp(bytes: number | undefined): void {
  if (sctpConfigured || bytes === 0) return;
  sctpConfigured = true;
  const size = bytes ?? 4 * 1024 * 1024;
  ndc.setSctpSettings({ recvBufferSize: size, sendBufferSize: size });
}

/** Shared lifecycle: state, channels, bounded gathering, close with cleanup. */
abstract class NdcPeerBase {
  readonly transport: TransportName = "node-datachannel";
  protected readonly pc: NativePeer;
  readonly #stateListeners = new Set<(state: PeerConnectionState) => void>();
  readonly #gatherWaiters = new Set<() => void>();
  protected readonly channels = new Set<NdcDataChannel>();
  #state: PeerConnectionState = "new";
  #closing: Promise<void> | null = null;
  #released = false;
  /** The connection failed or was disconnected at some point (its close may take the library a while). */
  #failed = false;

  constructor(name: string, config: PeerConfigBase, bindAddress: string | undefined) {
    configureSctp(config.socketBufferBytes);
    this.pc = new ndc.PeerConnection(name, rtcConfig(config, bindAddress));
    peerOpened();
    this.pc.onStateChange((state) => {
      const mapped = state as PeerConnectionState;
      if (mapped === this.#state || this.#state === "closed") return;
      this.#state = mapped;
      if (mapped === "failed" || mapped === "disconnected") this.#failed = true;
      for (const listener of [...this.#stateListeners]) {
        try {
          listener(mapped);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
      if (mapped === "closed") this.#release();
    });
    this.pc.onGatheringStateChange((state) => {
      if (state !== "complete") return;
      for (const resolve of [...this.#gatherWaiters]) resolve();
    });
  }

  get connectionState(): PeerConnectionState {
    return this.#state;
  }

  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe {
    this.#stateListeners.add(listener);
    return () => {
      this.#stateListeners.delete(listener);
    };
  }

  protected get closed(): boolean {
    return this.#closing !== null;
  }

  protected assertOpen(): void {
    if (this.#closing) throw new VidrtcError("CONNECTION_FAILED", "The peer connection is closed.");
  }

  /** Waits until gathering is complete, at most `timeoutMs` (then returns if a candidate exists). */
  protected gathered(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#gatherWaiters.delete(onComplete);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onComplete = () => done();
      const timer = setTimeout(() => {
        if (/^a=candidate:/m.test(this.pc.localDescription()?.sdp ?? "")) done();
        else
          done(
            new VidrtcError(
              "ICE_GATHERING_TIMEOUT",
              `ICE gathering found no candidate within ${timeoutMs} ms (node-datachannel skips loopback-only hosts: is there a network interface?).`,
              { details: { timeoutMs } },
            ),
          );
      }, timeoutMs);
      const onAbort = () => done(abortError(signal, "ICE gathering"));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#gatherWaiters.add(onComplete);
      if (this.pc.gatheringState() === "complete") done();
    });
  }

  protected localSdp(type: "offer" | "answer"): SessionDescriptionLike {
    const local = this.pc.localDescription();
    if (!local) throw new VidrtcError("SIGNALING_FAILED", "node-datachannel produced no local description.");
    if (!/^a=candidate:/m.test(local.sdp)) {
      throw new VidrtcError(
        "CONNECTION_FAILED",
        "ICE gathering found no candidate: node-datachannel needs a non-loopback network interface, or a STUN/TURN server.",
      );
    }
    return { type, sdp: local.sdp };
  }

  protected wrap(dc: ReturnType<NativePeer["createDataChannel"]>): NdcDataChannel {
    const channel = new NdcDataChannel(dc);
    this.channels.add(channel);
    channel.on("close", () => this.channels.delete(channel));
    return channel;
  }

  protected beforeClose(): void {}

  closeAndWait(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.beforeClose();
    this.#closing = new Promise<void>((resolve) => {
      for (const channel of this.channels) channel.close();
      try {
        this.pc.close();
      } catch {
        // already gone
      }
      // libdatachannel reports "closed" through onStateChange; do not depend on it.
      this.#release();
      resolve();
    });
    return this.#closing;
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const channel of [...this.channels]) channel.peerClosed();
    this.channels.clear();
    this.#gatherWaiters.clear();
    if (this.#state !== "closed") {
      this.#state = "closed";
      for (const listener of [...this.#stateListeners]) {
        try {
          listener("closed");
        } catch {
          // ignore
        }
      }
    }
    peerClosed(this.#failed);
  }
}

/** VP8 payload type used by the offerer's receive-only video section. */
const OFFER_VP8_PAYLOAD_TYPE = 96;

class NdcOfferer extends NdcPeerBase implements OfferingPeer {
  #video: NativeTrack | null = null;
  #recorder: RtpVideoRecorder | null = null;

  constructor(config: OffererConfig) {
    super("vidrtc-offerer", config, config.loopbackOnly ? "127.0.0.1" : undefined);
  }

  get receivesVideo(): boolean {
    return this.#video !== null;
  }

  addVideoReceiver(): void {
    this.assertOpen();
    if (this.#video) return;
    const video = new ndc.Video("video", "RecvOnly");
    video.addVP8Codec(OFFER_VP8_PAYLOAD_TYPE);
    const track = this.pc.addTrack(video);
    track.setMediaHandler(new ndc.RtcpReceivingSession());
    this.#video = track;
  }

  createDataChannel(label: string): DataChannelLike {
    this.assertOpen();
    return this.wrap(this.pc.createDataChannel(label));
  }

  async createOffer(options: { timeoutMs: number; signal?: AbortSignal }): Promise<SessionDescriptionLike> {
    throwIfAborted(options.signal, "offer");
    this.assertOpen();
    this.pc.setLocalDescription("offer");
    await this.gathered(options.timeoutMs, options.signal);
    return this.localSdp("offer");
  }

  async setAnswer(answer: SessionDescriptionLike): Promise<void> {
    this.assertOpen();
    if (answer.type !== "answer" || !looksLikeSdp(answer.sdp)) {
      throw new VidrtcError(
        "SIGNALING_FAILED",
        "The server's answer is not an SDP answer with media sections.",
        {
          details: { type: answer.type },
        },
      );
    }
    try {
      this.pc.setRemoteDescription(answer.sdp, "answer");
    } catch (error) {
      throw new VidrtcError("SIGNALING_FAILED", `node-datachannel rejected the answer: ${String(error)}`, {
        cause: error,
      });
    }
  }

  async recordVideo(path: string, options: RecordVideoOptions = {}): Promise<VideoRecording> {
    const track = this.#video;
    if (!track) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        "No video receiver on this peer: call addVideoReceiver() before the offer.",
      );
    }
    if (this.#recorder) throw new VidrtcError("INVALID_OPTIONS", "This peer is already recording its video.");
    this.assertOpen();
    const recorder = recordRtpToWebm(path, options);
    this.#recorder = recorder;
    track.onMessage((packet: Buffer) => recorder.push(packet));
    return { stop: () => recorder.stop() };
  }

  close(): void {
    void this.closeAndWait();
  }
}

class NdcVideoSender implements VideoSenderLike {
  readonly mimeType = "video/VP8";
  constructor(
    readonly payloadType: number,
    readonly ssrc: number,
    private readonly track: NativeTrack,
    private readonly isClosed: () => boolean,
  ) {}

  writeRtp(packet: Uint8Array): void {
    if (this.isClosed() || packet.byteLength < 12) return;
    const copy = Buffer.from(packet);
    copy.writeUInt32BE(this.ssrc, 8); // the SSRC announced in the answer
    try {
      if (this.track.isOpen()) this.track.sendMessageBinary(copy);
    } catch {
      // dropped: the peer is going away
    }
  }
}

/** The mid and VP8 payload type of the offer's video section, if any. */
function offeredVideo(sdp: string): { mid: string; vp8: number | null } | null {
  const sections = sdp.split(/\r?\n(?=m=)/);
  for (const section of sections) {
    if (!/^m=video [1-9]/.test(section)) continue;
    const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
    if (!mid) return null;
    const vp8 = /^a=rtpmap:(\d+) VP8\/90000/im.exec(section)?.[1];
    return { mid, vp8: vp8 === undefined ? null : Number(vp8) };
  }
  return null;
}

/**
 * libdatachannel binds to one address or to all: `loopbackOnly` binds to 127.0.0.1, a single
 * non-loopback host address binds to it, anything else (including the werift-style default
 * `["127.0.0.1"]`, which libjuice could not use) binds to all interfaces.
 */
function answererBindAddress(config: AnswererConfig): string | undefined {
  if (config.loopbackOnly) return "127.0.0.1";
  const hosts = [...new Set(config.hostAddresses ?? [])].filter((h) => h !== "127.0.0.1" && h !== "::1");
  return hosts.length === 1 && !config.useInterfaceAddresses ? hosts[0] : undefined;
}

/**
 * The answering side on node-datachannel.
 *
 * Liveness (`lastActivityAt()`): libdatachannel gives JS no per-packet hook and hides libjuice's
 * STUN traffic. What can be observed: (a) a rise of `bytesReceived()`, read at each call (so its
 * resolution is the caller's polling period), which counts data channel payload only (checked:
 * an idle but live werift client raised it not once in 70 s, SCTP heartbeats and SACKs do not
 * count); (b) a data channel arriving; (c) the peer state. libjuice is a full ICE agent and sends
 * RFC 7675 consent checks of its own; the peer stays `connected` only while the client answers
 * them, so `connected` is taken as "seen now". A vanished client is therefore noticed when libjuice
 * gives up on consent and the state leaves `connected` (its consent timeout, 30 s), not within a
 * shorter bound: with this stack the server's liveness bound is libjuice's.
 */
class NdcAnswerer extends NdcPeerBase implements AnsweringPeerLike {
  readonly #stripMdns: boolean;
  readonly #channels = new ChannelHandover();
  #videoSender: VideoSenderLike | null = null;
  #inactiveTrack: NativeTrack | null = null;
  #answered = false;
  #lastActivity: number | null = null;
  #bytesReceived = 0;

  constructor(config: AnswererConfig) {
    super("vidrtc-answerer", config, answererBindAddress(config));
    this.#stripMdns = config.stripMdns ?? true;
    this.pc.onDataChannel((dc) => {
      this.#lastActivity = Date.now();
      this.#channels.arrive(this.wrap(dc));
    });
    this.onConnectionStateChange((state) => {
      if (state === "connected") this.#lastActivity = Date.now();
    });
  }

  lastActivityAt(): number | null {
    if (!this.closed) {
      let bytes = this.#bytesReceived;
      try {
        bytes = this.pc.bytesReceived();
      } catch {
        // closed underneath: nothing more will arrive
      }
      if (bytes > this.#bytesReceived) {
        this.#bytesReceived = bytes;
        this.#lastActivity = Date.now();
      }
      // Consent is fresh while connected (see the class notes).
      if (this.connectionState === "connected") this.#lastActivity = Date.now();
    }
    return this.#lastActivity;
  }

  get videoSender(): VideoSenderLike | null {
    return this.#videoSender;
  }

  protected override beforeClose(): void {
    try {
      this.#inactiveTrack?.close();
    } catch {
      // already gone with the peer
    }
  }

  onDataChannel(listener: (channel: DataChannelLike) => void): Unsubscribe {
    return this.#channels.subscribe(listener);
  }

  async answer(offer: SessionDescriptionLike, options: AnswerOptions): Promise<SessionDescriptionLike> {
    throwIfAborted(options.signal, "answer");
    this.assertOpen();
    if (this.#answered) throw new VidrtcError("INVALID_OPTIONS", "answer() may be called only once.");
    this.#answered = true;
    if (offer?.type !== "offer" || !looksLikeSdp(offer.sdp)) {
      throw new VidrtcError("SIGNALING_FAILED", "The offer is not an SDP offer with media sections.", {
        details: { type: offer?.type },
      });
    }
    const sdp = this.#stripMdns ? stripMdnsCandidates(offer.sdp) : offer.sdp;
    try {
      this.pc.setRemoteDescription(sdp, "offer");
    } catch (error) {
      throw new VidrtcError("SIGNALING_FAILED", `node-datachannel rejected the offer: ${String(error)}`, {
        cause: error,
      });
    }
    let sender: NdcVideoSender | null = null;
    const video = offerHasVideo(sdp) ? offeredVideo(sdp) : null;
    if (video && options.sendVideo && video.vp8 !== null) {
      const ssrc = (Math.random() * 0xffff_fffe + 1) >>> 0;
      const media = new ndc.Video(video.mid, "SendOnly");
      media.addVP8Codec(video.vp8);
      media.addSSRC(ssrc, "vidrtc", "vidrtc", "vidrtc-video");
      const track = this.pc.addTrack(media);
      sender = new NdcVideoSender(video.vp8, ssrc, track, () => this.closed);
    } else if (video) {
      // Without a local track libdatachannel answers an offered recvonly section "sendonly" and
      // never sends on it; say what is true instead: nothing flows on that section.
      const media = new ndc.Video(video.mid, "Inactive");
      if (video.vp8 !== null) media.addVP8Codec(video.vp8);
      // Held for the peer's lifetime: a native track whose JS handle is collected early can crash.
      this.#inactiveTrack = this.pc.addTrack(media);
    }
    try {
      this.pc.setLocalDescription("answer");
    } catch (error) {
      throw new VidrtcError("SIGNALING_FAILED", `node-datachannel could not answer: ${String(error)}`, {
        cause: error,
      });
    }
    await this.gathered(options.timeoutMs, options.signal);
    const local = this.localSdp("answer");
    this.#videoSender = sender;
    return local;
  }

  close(): Promise<void> {
    return this.closeAndWait();
  }
}

/** Creates an offering peer on node-datachannel. */
export function createNdcOfferer(config: OffererConfig = {}): OfferingPeer {
  return new NdcOfferer(config);
}

/** Creates an answering peer on node-datachannel (always a full ICE agent; `iceLite` is ignored). */
export function createNdcAnswerer(config: AnswererConfig = {}): AnsweringPeerLike {
  return new NdcAnswerer(config);
}
