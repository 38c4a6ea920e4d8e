/**
 * The answering side on werift (what a server needs): apply the client's offer, optionally send a
 * VP8 track back, gather (bounded) and return the answer with its candidates; channels opened by
 * the client are handed over as `DataChannelLike`.
 *
 * werift 0.25.2 facts used here: `setLocalDescription` resolves once gathering has finished;
 * sockets exist only after gathering, so their buffers are enlarged afterwards; an ICE-lite agent
 * gathers host candidates only and lets the client's checks drive the connection (so
 * peer-reflexive candidates work when an offer only carries mDNS names).
 *
 * Liveness (`lastActivityAt()`): an ICE-lite agent sends no consent checks of its own, so a
 * vanished client would go unnoticed. Activity is (a) every STUN binding request whose USERNAME
 * names this answer's ICE ufrag (the client's connectivity and RFC 7675 consent checks, about every
 * 5 s from browsers, werift and libjuice), seen through werift's `iceFilterStunResponse` hook,
 * which always lets the request through; and (b) every non-STUN datagram (DTLS: SCTP data, SACKs,
 * heartbeats, SRTCP) the ICE connection delivers, through its `onData` event.
 */
import {
  type AnsweringPeerLike,
  type AnswerOptions,
  abortError,
  type DataChannelLike,
  type PeerConnectionState,
  type SessionDescriptionLike,
  throwIfAborted,
  type Unsubscribe,
  type VideoSenderLike,
  VidrtcError,
} from "@vidrtc/protocol";
import { MediaStreamTrack, type RTCDataChannel, RTCPeerConnection, type RTCRtpTransceiver } from "werift";
import { hasStunUrl, looksLikeSdp, offerHasVideo, stripMdnsCandidates } from "../sdp.js";
import { ChannelHandover } from "../shared.js";
import type { AnswererConfig } from "../types.js";
import { NO_STUN_SERVER, SENTINEL_STUN_GATHER_TIMEOUT_S } from "./ice.js";
import {
  closeWerift,
  DEFAULT_SOCKET_BUFFER_BYTES,
  setWeriftSocketBuffers,
  snapshotIceTransports,
  wrapWeriftChannel,
} from "./peer.js";
import type { WeriftOptions } from "./public-types.js";

/** Builds werift's configuration for an answering peer (exported for tests). */
export function weriftAnswererConfig(config: AnswererConfig = {}): WeriftOptions {
  const servers: NonNullable<WeriftOptions["iceServers"]> = (config.iceServers ?? []).map((s) => ({
    urls: Array.isArray(s.urls) ? [...s.urls] : (s.urls as string),
    ...(s.username === undefined ? {} : { username: s.username }),
    ...(s.credential === undefined ? {} : { credential: s.credential }),
  }));
  const realStun = hasStunUrl(servers);
  if (!realStun) servers.push({ urls: NO_STUN_SERVER });
  const loopbackOnly = config.loopbackOnly ?? false;
  const hosts = loopbackOnly ? ["127.0.0.1"] : [...new Set(config.hostAddresses ?? ["127.0.0.1"])];
  const useInterfaces = !loopbackOnly && (config.useInterfaceAddresses ?? false);
  const single = hosts.length === 1 && !useInterfaces ? hosts[0] : undefined;
  const out: WeriftOptions = {
    iceLite: config.iceLite ?? !(config.iceServers && config.iceServers.length > 0),
    iceServers: servers,
    iceAdditionalHostAddresses: hosts,
    iceUseIpv4: useInterfaces,
    iceUseIpv6: false,
    iceStunGatherTimeout: config.stunGatherTimeoutSeconds ?? (realStun ? 3 : SENTINEL_STUN_GATHER_TIMEOUT_S),
  };
  if (single !== undefined)
    out.iceInterfaceAddresses = single.includes(":") ? { udp6: single } : { udp4: single };
  if (config.portRange) {
    const [min, max] = config.portRange;
    if (!(Number.isInteger(min) && Number.isInteger(max) && min > 0 && max <= 65_535 && min <= max)) {
      throw new VidrtcError(
        "INVALID_OPTIONS",
        `portRange must be [min, max] within 1..65535, got [${min}, ${max}].`,
      );
    }
    out.icePortRange = [min, max];
  }
  return out;
}

class WeriftVideoSender implements VideoSenderLike {
  readonly mimeType = "video/VP8";
  constructor(
    readonly payloadType: number,
    private readonly track: MediaStreamTrack,
    private readonly isClosed: () => boolean,
  ) {}

  writeRtp(packet: Uint8Array): void {
    if (this.isClosed() || this.track.stopped) return;
    try {
      this.track.writeRtp(Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength));
    } catch {
      // dropped: the peer is going away
    }
  }
}

class WeriftAnsweringPeer implements AnsweringPeerLike {
  readonly #pc: RTCPeerConnection;
  readonly #stripMdns: boolean;
  readonly #socketBufferBytes: number;
  readonly #channels = new ChannelHandover();
  #videoSender: VideoSenderLike | null = null;
  #answered = false;
  #closing: Promise<void> | null = null;
  #iceTransports: readonly unknown[] = [];
  #localUfrag: string | null = null;
  #lastActivity: number | null = null;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(config: AnswererConfig) {
    this.#stripMdns = config.stripMdns ?? true;
    this.#socketBufferBytes = config.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    this.#pc = new RTCPeerConnection({
      ...weriftAnswererConfig(config),
      iceFilterStunResponse: (message: { getAttributeValue(name: "USERNAME"): unknown }) => {
        this.#onStunRequest(message.getAttributeValue("USERNAME"));
        return true;
      },
    });
    this.#pc.onDataChannel.subscribe((dc: RTCDataChannel) => {
      this.#channels.arrive(wrapWeriftChannel(dc));
    });
  }

  get videoSender(): VideoSenderLike | null {
    return this.#videoSender;
  }

  get connectionState(): PeerConnectionState {
    return this.#pc.connectionState;
  }

  onConnectionStateChange(listener: (state: PeerConnectionState) => void): Unsubscribe {
    const subscription = this.#pc.connectionStateChange.subscribe((state) => {
      try {
        listener(state);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    });
    return () => subscription.unSubscribe();
  }

  onDataChannel(listener: (channel: DataChannelLike) => void): Unsubscribe {
    return this.#channels.subscribe(listener);
  }

  lastActivityAt(): number | null {
    return this.#lastActivity;
  }

  /** A binding request for this answer's ufrag ("<ours>:<theirs>") counts as activity. */
  #onStunRequest(username: unknown): void {
    const ufrag = this.#localUfrag;
    if (ufrag !== null && typeof username === "string" && username.startsWith(`${ufrag}:`))
      this.#lastActivity = Date.now();
  }

  /** Every datagram the ICE connections deliver upwards (DTLS) counts as activity. */
  #watchData(transports: readonly unknown[]): void {
    for (const transport of transports) {
      const onData = (transport as { connection?: { onData?: unknown } } | null)?.connection?.onData as
        | { subscribe?: (fn: () => void) => { unSubscribe(): void } }
        | undefined;
      if (typeof onData?.subscribe !== "function") continue;
      const subscription = onData.subscribe(() => {
        this.#lastActivity = Date.now();
      });
      this.#unsubscribe.push(() => subscription.unSubscribe());
    }
  }

  async answer(offer: SessionDescriptionLike, options: AnswerOptions): Promise<SessionDescriptionLike> {
    const { timeoutMs, signal, sendVideo } = options;
    throwIfAborted(signal, "answer");
    if (this.#closing) throw new VidrtcError("CONNECTION_FAILED", "The peer connection is closed.");
    if (this.#answered) throw new VidrtcError("INVALID_OPTIONS", "answer() may be called only once.");
    this.#answered = true;
    if (offer?.type !== "offer" || !looksLikeSdp(offer.sdp)) {
      throw new VidrtcError("SIGNALING_FAILED", "The offer is not an SDP offer with media sections.", {
        details: { type: offer?.type },
      });
    }
    const sdp = this.#stripMdns ? stripMdnsCandidates(offer.sdp) : offer.sdp;
    const pc = this.#pc;
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
    } catch (error) {
      throw new VidrtcError("SIGNALING_FAILED", `werift rejected the offer: ${String(error)}`, {
        cause: error,
      });
    }
    let track: MediaStreamTrack | null = null;
    const video = (): RTCRtpTransceiver | undefined => pc.getTransceivers().find((t) => t.kind === "video");
    if (sendVideo && offerHasVideo(sdp)) {
      const transceiver = video();
      if (transceiver) {
        track = new MediaStreamTrack({ kind: "video" });
        transceiver.setDirection("sendonly");
        await transceiver.sender.replaceTrack(track);
      }
    }
    try {
      const answer = await pc.createAnswer();
      await this.#bounded(pc.setLocalDescription(answer), timeoutMs, signal);
    } catch (error) {
      if (VidrtcError.isInstance(error)) throw error;
      throw new VidrtcError("SIGNALING_FAILED", `werift could not answer the offer: ${String(error)}`, {
        cause: error,
      });
    }
    setWeriftSocketBuffers(pc, this.#socketBufferBytes);
    this.#iceTransports = snapshotIceTransports(pc);
    const description = pc.localDescription;
    if (!description) throw new VidrtcError("SIGNALING_FAILED", "werift produced no local description.");
    this.#localUfrag = /^a=ice-ufrag:(\S+)/m.exec(description.sdp)?.[1] ?? null;
    this.#watchData(this.#iceTransports);
    const local: SessionDescriptionLike = { type: "answer", sdp: description.sdp };
    if (track) {
      const vp8 = video()?.codecs.find((c) => c.mimeType.toLowerCase() === "video/vp8");
      if (vp8)
        this.#videoSender = new WeriftVideoSender(vp8.payloadType, track, () => this.#closing !== null);
    }
    return local;
  }

  /** Waits for `setLocal` (werift resolves it once gathering finished), at most `timeoutMs`. */
  #bounded(setLocal: Promise<unknown>, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const timer = setTimeout(() => {
        if (this.#pc.localDescription?.sdp.includes("a=candidate")) done();
        else
          done(
            new VidrtcError(
              "ICE_GATHERING_TIMEOUT",
              `ICE gathering did not complete within ${timeoutMs} ms.`,
              {
                details: { timeoutMs },
              },
            ),
          );
      }, timeoutMs);
      const onAbort = () => done(abortError(signal, "ICE gathering"));
      signal?.addEventListener("abort", onAbort, { once: true });
      setLocal.then(
        () => done(),
        (error: unknown) => done(error ?? new Error("setLocalDescription failed")),
      );
    });
  }

  close(): Promise<void> {
    if (!this.#closing) for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#closing ??= closeWerift(this.#pc, this.#iceTransports);
    return this.#closing;
  }
}

/** Creates an answering peer on werift (see {@link AnswererConfig} for the defaults). */
export function createWeriftAnswerer(config: AnswererConfig = {}): AnsweringPeerLike {
  return new WeriftAnsweringPeer(config);
}
