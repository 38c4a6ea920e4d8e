/** The impairment relay itself, with plain UDP sockets on 127.0.0.1 (no WebRTC). */
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { type PathImpairment, rewriteCandidates, UdpRelay } from "./support/relay.js";

interface Echo {
  socket: Socket;
  port: number;
  received: Array<{ at: number; data: Buffer }>;
}

/** A UDP "server" that records packets and echoes them back. */
async function echoServer(): Promise<Echo> {
  const socket = createSocket("udp4");
  const received: Echo["received"] = [];
  socket.on("message", (data, rinfo) => {
    received.push({ at: performance.now(), data });
    socket.send(data, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { socket, port: socket.address().port, received };
}

async function clientSocket(): Promise<{ socket: Socket; replies: Array<{ at: number; data: Buffer }> }> {
  const socket = createSocket("udp4");
  const replies: Array<{ at: number; data: Buffer }> = [];
  socket.on("message", (data) => replies.push({ at: performance.now(), data }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { socket, replies };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function setup(imp: PathImpairment = {}) {
  const server = await echoServer();
  const relay = await UdpRelay.start({ host: "127.0.0.1", port: server.port }, imp);
  const client = await clientSocket();
  open.push(relay, { close: () => server.socket.close() }, { close: () => client.socket.close() });
  // In bursts of at most 100 so no socket buffer on the way overflows.
  const send = async (n: number, size = 100) => {
    for (let i = 0; i < n; i++) {
      const b = Buffer.alloc(size);
      b.writeUInt32BE(i, 0);
      client.socket.send(b, relay.port, "127.0.0.1");
      if (i % 100 === 99) await sleep(5);
    }
  };
  return { server, relay, client, send };
}

describe("UdpRelay", () => {
  it("relays both ways unimpaired, in order, and the server sees the relay as the client", async () => {
    const { server, relay, client, send } = await setup();
    await send(200);
    await sleep(300);
    expect(server.received.map((r) => r.data.readUInt32BE(0))).toEqual([...Array(200).keys()]);
    expect(client.replies).toHaveLength(200);
    expect(relay.stats().up.packetsOut).toBe(200);
    expect(relay.stats().down.packetsOut).toBe(200);
  });

  it("delays each direction by its own delay, with jitter but no reordering", async () => {
    const { server, client, send } = await setup({
      up: { delayMs: 60, jitterMs: 20 },
      down: { delayMs: 40 },
    });
    const t0 = performance.now();
    await send(50);
    await sleep(400);
    const up = server.received.map((r) => r.at - t0);
    expect(up).toHaveLength(50);
    expect(Math.min(...up)).toBeGreaterThanOrEqual(38); // 60 - 20 jitter, minus timer slack
    expect(server.received.map((r) => r.data.readUInt32BE(0))).toEqual([...Array(50).keys()]);
    const rtt = client.replies.map((r) => r.at - t0);
    expect(rtt).toHaveLength(50);
    expect(Math.min(...rtt)).toBeGreaterThanOrEqual(78);
  });

  it("drops the configured fraction at random", async () => {
    const { server, relay, send } = await setup({ up: { loss: 0.3 } });
    await send(2000, 20);
    await sleep(400);
    // Judged on the relay's own counters (the loaded box may drop a few datagrams in sockets).
    const st = relay.stats().up;
    expect(st.packetsIn).toBeGreaterThan(1500);
    const ratio = st.droppedLoss / st.packetsIn;
    expect(ratio).toBeGreaterThan(0.25);
    expect(ratio).toBeLessThan(0.35);
    expect(st.packetsOut).toBe(st.packetsIn - st.droppedLoss);
    expect(server.received.length).toBeLessThanOrEqual(st.packetsOut);
  });

  it("a rate cap paces delivery and its bounded queue drops the overflow", async () => {
    // 100 KB/s with a 10 KB queue; a 100 x 1000 B burst: ~10 fit, the rest overflow.
    const { server, relay, send } = await setup({ up: { rateBytesPerSecond: 100_000, queueBytes: 10_000 } });
    const t0 = performance.now();
    await send(100, 1000);
    await sleep(50);
    expect(relay.queuedBytes("up")).toBeGreaterThan(0);
    expect(relay.queuedBytes("up")).toBeLessThanOrEqual(10_000);
    await sleep(300);
    const s = relay.stats().up;
    expect(s.packetsIn).toBeGreaterThan(80);
    expect(s.packetsOut + s.droppedQueue).toBe(s.packetsIn);
    expect(s.droppedQueue).toBeGreaterThanOrEqual(40);
    expect(s.packetsOut).toBeLessThanOrEqual(30);
    // Delivered at no more than the cap: n packets of 1000 B at 100 KB/s take (n - 1) * 10 ms.
    const at = server.received.map((r) => r.at - t0);
    expect(Math.max(...at) - Math.min(...at)).toBeGreaterThanOrEqual((s.packetsOut - 1) * 10 * 0.9);
    expect(relay.queuedBytes("up")).toBe(0);
  });

  it("an outage drops everything until it ends, then traffic flows again", async () => {
    const { server, relay, send } = await setup();
    relay.outage(150);
    await send(20);
    await sleep(200);
    expect(server.received).toHaveLength(0);
    expect(relay.stats().up.droppedOutage).toBe(20);
    await send(20);
    await sleep(100);
    expect(server.received).toHaveLength(20);
  });
});

describe("rewriteCandidates", () => {
  it("points UDP candidates at relays and removes the rest", async () => {
    const sdp = [
      "v=0",
      "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
      "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
      "a=candidate:3 1 UDP 2130706431 127.0.0.1 40002 typ host generation 0",
      "a=end-of-candidates",
    ].join("\r\n");
    const asked: number[] = [];
    const out = await rewriteCandidates(sdp, async (_host, port) => {
      asked.push(port);
      return { port: port + 1000 } as UdpRelay;
    });
    expect(asked).toEqual([40000, 40002]);
    expect(out.split("\r\n")).toEqual([
      "v=0",
      "a=candidate:1 1 udp 2130706431 127.0.0.1 41000 typ host",
      "a=candidate:3 1 UDP 2130706431 127.0.0.1 41002 typ host generation 0",
      "a=end-of-candidates",
    ]);
  });
});
