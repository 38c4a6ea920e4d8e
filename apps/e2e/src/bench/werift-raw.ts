/**
 * Baseline: raw werift ↔ werift data-channel throughput on 127.0.0.1, with no vidrtc code in the
 * path. A bare send loop pushes `video_upload`-sized messages (8 + 49152 bytes), pauses when
 * `bufferedAmount` exceeds a high-water mark and resumes on `bufferedamountlow` (with a 50 ms poll
 * as a safety net). It prints MiB/s for several high-water marks. The upload benchmark is compared
 * with these numbers.
 *
 * The receiving peer runs in a child process by default, as a server does for a client.
 * `--receiver inline` puts both peers on one event loop instead. The UDP receive-buffer drops the kernel counted during each run
 * (`RcvbufErrors` in this namespace's /proc/net/snmp) are printed too, and `--rcvbuf <bytes>` sets
 * SO_RCVBUF/SO_SNDBUF on werift's sockets to show how much such drops cost.
 *
 * Run in a network namespace (nothing may leave the machine):
 *   unshare -n sh -c 'ip link set lo up; exec node --import tsx apps/e2e/src/bench/werift-raw.ts'
 * Options: --mib <n> (default 256), --hwm <KiB,...> (default 256,1024,4096),
 *   --low <fraction of hwm> (default 0.25), --receiver process|inline, --rcvbuf <bytes> (default: OS default),
 *   --sctp-mtu <bytes> (werift's `sctp.mtu`, default 1191; larger packets are only sane on loopback).
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { RTCPeerConnection, type RTCPeerConnectionConfig } from "werift";

const MESSAGE_SIZE = 8 + 49_152;
/** argv flag that makes this script the receiving side (in the child process). */
const RECEIVER_FLAG = "--as-receiver";

/**
 * Same settings as `loopbackIceOptions()` in @vidrtc/node, repeated here so that this baseline
 * depends on werift only: one 127.0.0.1 host candidate, and the IPv6 sentinel STUN URL that
 * switches off werift's public STUN fallback.
 */
const LOOPBACK: RTCPeerConnectionConfig = {
  iceServers: [{ urls: "stun:[::1]:9" }],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceAdditionalHostAddresses: ["127.0.0.1"],
  iceInterfaceAddresses: { udp4: "127.0.0.1" },
  iceStunGatherTimeout: 0.2,
};

interface ReceiverInput {
  offer: { type: "offer"; sdp: string };
  messages: number;
  rcvbuf: number;
  sctpMtu: number;
}

/** werift options of one side: loopback ICE, plus an SCTP packet size when `mtu` > 0. */
function peerConfig(mtu: number): RTCPeerConnectionConfig {
  return mtu > 0 ? { ...LOOPBACK, sctp: { mtu } } : LOOPBACK;
}

type ReceiverOutput =
  | { kind: "answer"; sdp: string }
  | { kind: "done"; bytes: number; at: number; cpuMs: number }
  | { kind: "error"; message: string };

function assertIsolated(): void {
  const exposed = Object.entries(networkInterfaces()).flatMap(([name, infos]) =>
    (infos ?? [])
      .filter((i) => !i.internal && !i.address.startsWith("192.0.2.") && !i.address.startsWith("fe80:"))
      .map((i) => `${name} ${i.address}`),
  );
  if (exposed.length > 0) {
    throw new Error(
      `Run this benchmark in a network namespace (unshare -n); reachable interfaces: ${exposed.join(", ")}`,
    );
  }
}

/** UDP receive-buffer drops so far in this network namespace. */
function udpRcvbufErrors(): number {
  const lines = readFileSync("/proc/net/snmp", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("Udp:"));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  const index = names?.indexOf("RcvbufErrors") ?? -1;
  return index > 0 ? Number(values?.[index]) : Number.NaN;
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === "complete") {
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

/** Sets socket buffer sizes on werift's UDP sockets (internal fields; a no-op if they move). */
function setSocketBuffers(pc: RTCPeerConnection, bytes: number): void {
  if (!(bytes > 0)) return;
  for (const transport of pc.iceTransports) {
    const protocols = (transport.connection as unknown as { protocols?: unknown[] }).protocols ?? [];
    for (const protocol of protocols) {
      const socket = (protocol as { transport?: { socket?: import("node:dgram").Socket } }).transport?.socket;
      socket?.setRecvBufferSize(bytes);
      socket?.setSendBufferSize(bytes);
    }
  }
}

/** The receiving side: answers the offer and counts bytes until all messages have arrived. */
async function receiver(
  input: ReceiverInput,
  post: (message: ReceiverOutput) => void,
): Promise<RTCPeerConnection> {
  const pc = new RTCPeerConnection(peerConfig(input.sctpMtu));
  pc.onDataChannel.subscribe((dc) => {
    let bytes = 0;
    let count = 0;
    let cpuStart: NodeJS.CpuUsage | null = null;
    dc.onMessage.subscribe((data: Buffer | string) => {
      cpuStart ??= process.cpuUsage();
      bytes += typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
      if (++count === input.messages) {
        const cpu = process.cpuUsage(cpuStart);
        const cpuMs = (cpu.user + cpu.system) / 1000;
        post({ kind: "done", bytes, at: performance.timeOrigin + performance.now(), cpuMs });
      }
    });
  });
  await pc.setRemoteDescription(input.offer);
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  setSocketBuffers(pc, input.rcvbuf);
  post({ kind: "answer", sdp: pc.localDescription!.sdp });
  return pc;
}

/** Starts the receiver in a child process or inline; returns its messages as events. */
function startReceiver(
  input: ReceiverInput,
  inline: boolean,
): { next: (kind: ReceiverOutput["kind"]) => Promise<ReceiverOutput>; stop: () => Promise<void> } {
  const queue: ReceiverOutput[] = [];
  const waiters: ((m: ReceiverOutput) => void)[] = [];
  const deliver = (m: ReceiverOutput) => {
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  };
  const next = async (kind: ReceiverOutput["kind"]) => {
    const m = queue.shift() ?? (await new Promise<ReceiverOutput>((r) => waiters.push(r)));
    if (m.kind === "error") throw new Error(`receiver: ${m.message}`);
    if (m.kind !== kind) throw new Error(`receiver sent ${m.kind}, expected ${kind}`);
    return m;
  };
  if (inline) {
    const pc = receiver(input, deliver);
    return { next, stop: async () => (await pc).close() };
  }
  const child = fork(fileURLToPath(import.meta.url), [RECEIVER_FLAG], { execArgv: process.execArgv });
  child.on("message", (m) => deliver(m as ReceiverOutput));
  child.on("error", (e) => deliver({ kind: "error", message: String(e) }));
  child.send(input);
  return {
    next,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill();
        await exited;
      }
    },
  };
}

interface RunResult {
  seconds: number;
  mibPerSecond: number;
  pauses: number;
  lowEvents: number;
  maxBuffered: number;
  drops: number;
  /** CPU time over wall time, per side (1 = one core busy); both include the other side when inline. */
  senderCpu: number;
  receiverCpu: number;
}

async function run(
  totalBytes: number,
  hwm: number,
  lowFraction: number,
  inline: boolean,
  rcvbuf: number,
  sctpMtu: number,
) {
  const messages = Math.ceil(totalBytes / MESSAGE_SIZE);
  const a = new RTCPeerConnection(peerConfig(sctpMtu));
  const tx = a.createDataChannel("video_upload", { ordered: true });
  await a.setLocalDescription(await a.createOffer());
  await gathered(a);
  const rx = startReceiver(
    { offer: { type: "offer", sdp: a.localDescription!.sdp }, messages, rcvbuf, sctpMtu },
    inline,
  );
  const answer = (await rx.next("answer")) as { sdp: string };
  await a.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  setSocketBuffers(a, rcvbuf);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("data channel did not open within 10 s")), 10_000);
    const check = (state: string) => {
      if (state === "open") {
        clearTimeout(timer);
        resolve();
      }
    };
    check(tx.readyState);
    tx.stateChanged.subscribe(check);
  });

  const low = Math.floor(hwm * lowFraction);
  tx.bufferedAmountLowThreshold = low;
  let lowEvents = 0;
  let wake: (() => void) | null = null;
  tx.bufferedAmountLow.subscribe(() => {
    lowEvents++;
    wake?.();
  });
  const done = rx.next("done") as Promise<{ bytes: number; at: number; cpuMs: number }>;
  const cpuStart = process.cpuUsage();
  const dropsBefore = udpRcvbufErrors();
  let pauses = 0;
  let maxBuffered = 0;
  const started = performance.timeOrigin + performance.now();
  for (let i = 0; i < messages; i++) {
    while (tx.bufferedAmount > hwm) {
      pauses++;
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (tx.bufferedAmount <= low) finish();
        }, 50);
        const finish = () => {
          clearInterval(poll);
          wake = null;
          resolve();
        };
        wake = finish;
      });
    }
    // A fresh buffer per message, as the upload pipeline produces (werift keeps a reference).
    const message = Buffer.allocUnsafe(MESSAGE_SIZE);
    message.writeUInt32LE(i, 0);
    message.writeUInt32LE(messages, 4);
    tx.send(message);
    if (tx.bufferedAmount > maxBuffered) maxBuffered = tx.bufferedAmount;
  }
  const result = await done;
  const seconds = (result.at - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const senderCpu = (cpu.user + cpu.system) / 1000 / 1000 / seconds;
  const drops = udpRcvbufErrors() - dropsBefore;
  await a.close();
  await rx.stop();
  return {
    seconds,
    mibPerSecond: result.bytes / (1024 * 1024) / seconds,
    pauses,
    lowEvents,
    maxBuffered,
    drops,
    senderCpu,
    receiverCpu: result.cpuMs / 1000 / seconds,
  } satisfies RunResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: "string", default: "256" },
      hwm: { type: "string", default: "256,1024,4096" },
      low: { type: "string", default: "0.25" },
      receiver: { type: "string", default: "process" },
      rcvbuf: { type: "string", default: "0" },
      "sctp-mtu": { type: "string", default: "0" },
    },
  });
  assertIsolated();
  const totalBytes = Number(values.mib) * 1024 * 1024;
  const lowFraction = Number(values.low);
  const inline = values.receiver === "inline";
  const rcvbuf = Number(values.rcvbuf);
  const sctpMtu = Number(values["sctp-mtu"]);
  const marks = values.hwm.split(",").map((k) => Number(k) * 1024);
  console.log(
    `werift raw: ${MESSAGE_SIZE}-byte messages, ${values.mib} MiB per run, low-water = ${lowFraction} × hwm, ` +
      `receiver ${inline ? "on the same event loop" : "in a child process"}, ` +
      `socket buffers ${rcvbuf > 0 ? `${rcvbuf} bytes` : "OS default"}, ` +
      `SCTP MTU ${sctpMtu > 0 ? sctpMtu : "werift default (1191)"}`,
  );
  for (const hwm of marks) {
    const r = await run(totalBytes, hwm, lowFraction, inline, rcvbuf, sctpMtu);
    console.log(
      `hwm ${String(hwm / 1024).padStart(5)} KiB: ${r.mibPerSecond.toFixed(1).padStart(6)} MiB/s ` +
        `(${r.seconds.toFixed(2)} s, ${r.pauses} pauses, ${r.lowEvents} bufferedamountlow, ` +
        `max buffered ${(r.maxBuffered / 1024).toFixed(0)} KiB, ${r.drops} UDP drops, ` +
        `CPU sender ${(r.senderCpu * 100).toFixed(0)}% receiver ${(r.receiverCpu * 100).toFixed(0)}%)`,
    );
  }
}

if (process.argv.includes(RECEIVER_FLAG)) {
  process.once("message", (input) => {
    receiver(input as ReceiverInput, (m) => process.send?.(m)).catch((error: unknown) =>
      process.send?.({ kind: "error", message: String(error) } satisfies ReceiverOutput),
    );
  });
} else {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
