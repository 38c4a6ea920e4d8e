/**
 * A user-space UDP impairment relay for tests and benchmarks (the kernel here has no netem).
 *
 * The relay sits between a WebRTC client and `vidrtc-server` on 127.0.0.1: {@link ImpairedPath.fetch}
 * wraps the client's signalling `fetch` and rewrites the UDP candidates of the server's answer to
 * relay ports, one relay per server candidate. Each client address gets its own server-facing
 * socket, so the ICE-lite server sees the relay as the client (a peer-reflexive candidate) and the
 * client sees the server's answers come from the candidate it checked.
 *
 * Every direction has its own impairment: delay, jitter (without reordering), random loss, a rate
 * cap with a bounded queue (dropping on overflow like a real bottleneck) and outages (drop
 * everything for a while). Loopback only.
 */
import { createSocket, type Socket } from "node:dgram";

/** Impairment of one direction. */
export interface Impairment {
  /** One-way delay in ms. Default 0. */
  delayMs?: number;
  /** Uniform jitter added to the delay, +/- ms (packets are never reordered). Default 0. */
  jitterMs?: number;
  /** Probability of dropping each packet, 0..1. Default 0. */
  loss?: number;
  /** Rate cap in bytes/s (payload bytes). Default unlimited. */
  rateBytesPerSecond?: number;
  /** Bytes the bottleneck queue holds before it drops (with a rate cap). Default 64 KiB. */
  queueBytes?: number;
}

/** Counters of one direction. */
export interface DirectionStats {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  droppedLoss: number;
  droppedQueue: number;
  droppedOutage: number;
}

type Direction = "up" | "down";

/** Both directions' impairments: `up` = client -> server, `down` = server -> client. */
export interface PathImpairment {
  up?: Impairment;
  down?: Impairment;
}

/** A seeded PRNG (mulberry32) so runs are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function emptyStats(): DirectionStats {
  return {
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    droppedLoss: 0,
    droppedQueue: 0,
    droppedOutage: 0,
  };
}

/** One direction's pipeline: outage -> loss -> rate-capped bounded queue -> delay/jitter -> out. */
class Link {
  impairment: Required<Impairment> = {
    delayMs: 0,
    jitterMs: 0,
    loss: 0,
    rateBytesPerSecond: 0,
    queueBytes: 64 * 1024,
  };
  readonly stats = emptyStats();
  outageUntil = 0;
  #queued = 0;
  /** When the bottleneck finishes sending what it holds (ms, performance.now()). */
  #busyUntil = 0;
  /** Latest scheduled delivery, so jitter never reorders. */
  #lastDelivery = 0;
  constructor(private readonly random: () => number) {}

  set(imp: Impairment | undefined): void {
    const i = imp ?? {};
    this.impairment = {
      delayMs: i.delayMs ?? 0,
      jitterMs: i.jitterMs ?? 0,
      loss: i.loss ?? 0,
      rateBytesPerSecond: i.rateBytesPerSecond ?? 0,
      queueBytes: i.queueBytes ?? 64 * 1024,
    };
  }

  push(packet: Buffer, send: (p: Buffer) => void): void {
    const s = this.stats;
    s.packetsIn += 1;
    s.bytesIn += packet.byteLength;
    const now = performance.now();
    if (now < this.outageUntil) {
      s.droppedOutage += 1;
      return;
    }
    const { delayMs, jitterMs, loss, rateBytesPerSecond, queueBytes } = this.impairment;
    if (loss > 0 && this.random() < loss) {
      s.droppedLoss += 1;
      return;
    }
    let departure = now;
    if (rateBytesPerSecond > 0) {
      if (this.#queued + packet.byteLength > queueBytes) {
        s.droppedQueue += 1;
        return;
      }
      departure = Math.max(now, this.#busyUntil) + (packet.byteLength * 1000) / rateBytesPerSecond;
      this.#busyUntil = departure;
      this.#queued += packet.byteLength;
    }
    const jitter = jitterMs > 0 ? (this.random() * 2 - 1) * jitterMs : 0;
    const delivery = Math.max(departure + Math.max(0, delayMs + jitter), this.#lastDelivery);
    this.#lastDelivery = delivery;
    if (delivery - now < 0.5 && rateBytesPerSecond === 0 && this.#inFlight.length === 0) {
      s.packetsOut += 1;
      s.bytesOut += packet.byteLength;
      send(packet);
      return;
    }
    // One FIFO per direction: delivery times never decrease, so packets never reorder.
    this.#inFlight.push({ departure, delivery, packet, send, queued: rateBytesPerSecond > 0 });
    this.#schedule();
  }

  readonly #inFlight: Array<{
    departure: number;
    delivery: number;
    packet: Buffer;
    send: (p: Buffer) => void;
    queued: boolean;
  }> = [];
  #timer: ReturnType<typeof setTimeout> | null = null;

  #schedule(): void {
    if (this.#timer || this.#inFlight.length === 0) return;
    const now = performance.now();
    // Wake for the next departure from the bottleneck queue (for honest queue accounting) or delivery.
    let next = this.#inFlight[0]!.delivery;
    for (const p of this.#inFlight) {
      if (p.queued) {
        next = Math.min(next, p.departure);
        break;
      }
    }
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#run();
      },
      Math.max(0, next - now),
    );
  }

  #run(): void {
    const now = performance.now() + 0.5;
    for (const p of this.#inFlight) {
      if (p.queued && p.departure <= now) {
        p.queued = false;
        this.#queued -= p.packet.byteLength;
      }
    }
    while (this.#inFlight.length > 0 && this.#inFlight[0]!.delivery <= now) {
      const p = this.#inFlight.shift()!;
      if (p.queued) {
        p.queued = false;
        this.#queued -= p.packet.byteLength;
      }
      this.stats.packetsOut += 1;
      this.stats.bytesOut += p.packet.byteLength;
      p.send(p.packet);
    }
    this.#schedule();
  }

  /** Bytes currently waiting in the bottleneck queue. */
  get queuedBytes(): number {
    return this.#queued;
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#inFlight.length = 0;
  }
}

/** A UDP relay from one local port to one target port, impaired per direction. */
export class UdpRelay {
  readonly #front: Socket;
  readonly #backs = new Map<string, Socket>();
  readonly #links: Record<Direction, Link>;
  #port = 0;
  #closed = false;

  private constructor(
    readonly targetHost: string,
    readonly targetPort: number,
    seed: number,
  ) {
    const random = prng(seed);
    this.#links = { up: new Link(random), down: new Link(random) };
    this.#front = createSocket("udp4");
  }

  /** Starts a relay on 127.0.0.1 (ephemeral port) forwarding to `targetHost:targetPort`. */
  static async start(
    target: { host: string; port: number },
    impairment: PathImpairment = {},
    seed = 1,
  ): Promise<UdpRelay> {
    const relay = new UdpRelay(target.host, target.port, seed);
    relay.impair(impairment);
    await relay.#listen();
    return relay;
  }

  async #listen(): Promise<void> {
    this.#front.on("message", (msg, rinfo) => this.#fromClient(msg, rinfo.address, rinfo.port));
    this.#front.on("error", () => {});
    await new Promise<void>((resolve) => this.#front.bind(0, "127.0.0.1", resolve));
    this.#port = this.#front.address().port;
  }

  /** The relay's client-facing port on 127.0.0.1. */
  get port(): number {
    return this.#port;
  }

  /** Replaces the impairment of the given directions. */
  impair(impairment: PathImpairment): void {
    if (impairment.up) this.#links.up.set(impairment.up);
    if (impairment.down) this.#links.down.set(impairment.down);
  }

  /** Drops everything in both directions (or one) for `ms` from now. */
  outage(ms: number, direction: Direction | "both" = "both"): void {
    const until = performance.now() + ms;
    for (const d of ["up", "down"] as const)
      if (direction === "both" || direction === d) this.#links[d].outageUntil = until;
  }

  /** Counters per direction. */
  stats(): Record<Direction, DirectionStats> {
    return { up: { ...this.#links.up.stats }, down: { ...this.#links.down.stats } };
  }

  /** Bytes queued at the rate-capped bottleneck of a direction. */
  queuedBytes(direction: Direction): number {
    return this.#links[direction].queuedBytes;
  }

  #fromClient(msg: Buffer, host: string, port: number): void {
    if (this.#closed) return;
    const key = `${host}:${port}`;
    let back = this.#backs.get(key);
    if (!back) {
      const sock = createSocket("udp4");
      sock.on("error", () => {});
      sock.on("message", (reply) => {
        if (this.#closed) return;
        this.#links.down.push(reply, (p) => this.#front.send(p, port, host));
      });
      sock.bind(0, "127.0.0.1");
      this.#backs.set(key, sock);
      back = sock;
    }
    const out = back;
    this.#links.up.push(msg, (p) => {
      if (!this.#closed) out.send(p, this.targetPort, this.targetHost);
    });
  }

  /** Stops relaying and closes every socket. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#links.up.close();
    this.#links.down.close();
    const closing = [this.#front, ...this.#backs.values()].map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    this.#backs.clear();
    await Promise.all(closing);
  }
}

/** The candidate line's address and port (`a=candidate:<f> <c> udp <prio> <addr> <port> typ ...`). */
const CANDIDATE = /^(a=candidate:\S+ \d+ )(\S+)( \d+ )(\S+) (\d+)( typ .*)$/i;

/**
 * Rewrites every UDP candidate of an SDP to a relay (created by `relayFor` per distinct
 * address:port) and removes the others, so all media goes through relays.
 */
export async function rewriteCandidates(
  sdp: string,
  relayFor: (host: string, port: number) => Promise<UdpRelay>,
): Promise<string> {
  const lines = sdp.split(/\r\n|\n/);
  const out: string[] = [];
  for (const line of lines) {
    const m = CANDIDATE.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const [, head, transport, prio, host, port, tail] = m as unknown as string[];
    if (transport!.toLowerCase() !== "udp" || host!.includes(":")) continue;
    const relay = await relayFor(host!, Number(port));
    out.push(`${head}${transport}${prio}127.0.0.1 ${relay.port}${tail}`);
  }
  return out.join("\r\n");
}

/** A signalling `fetch` that puts an impairment relay in front of every answer's candidates. */
export interface ImpairedPath {
  /** Pass as the client's `fetch`. */
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  /** Relays created so far (one per server candidate). */
  readonly relays: UdpRelay[];
  /** Applies an impairment to every relay, current and future. */
  impair(impairment: PathImpairment): void;
  /** An outage on every relay for `ms`. */
  outage(ms: number, direction?: Direction | "both"): void;
  /** Counters summed over relays. */
  stats(): Record<Direction, DirectionStats>;
  close(): Promise<void>;
}

/** Creates an {@link ImpairedPath} with the given starting impairment. */
export function impairedPath(impairment: PathImpairment = {}, seed = 1): ImpairedPath {
  const relays: UdpRelay[] = [];
  let current: PathImpairment = { up: { ...impairment.up }, down: { ...impairment.down } };
  return {
    relays,
    async fetch(url, init) {
      const res = await fetch(url, init);
      if (!url.includes("initialise_webrtc_worker") || !res.ok) return res;
      const body = (await res.json()) as { sdp?: string; [k: string]: unknown };
      if (typeof body.sdp === "string") {
        body.sdp = await rewriteCandidates(body.sdp, async (host, port) => {
          const relay = await UdpRelay.start({ host, port }, current, seed + relays.length);
          relays.push(relay);
          return relay;
        });
      }
      return new Response(JSON.stringify(body), {
        status: res.status,
        headers: { "content-type": "application/json" },
      });
    },
    impair(next) {
      current = { up: next.up ?? current.up, down: next.down ?? current.down };
      for (const r of relays) r.impair(next);
    },
    outage(ms, direction = "both") {
      for (const r of relays) r.outage(ms, direction);
    },
    stats() {
      const sum = { up: emptyStats(), down: emptyStats() };
      for (const r of relays) {
        const s = r.stats();
        for (const d of ["up", "down"] as const)
          for (const k of Object.keys(sum[d]) as (keyof DirectionStats)[]) sum[d][k] += s[d][k];
      }
      return sum;
    },
    async close() {
      await Promise.all(relays.map((r) => r.close()));
    },
  };
}
