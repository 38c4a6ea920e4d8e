/**
 * @vidrtc/node against @vidrtc/server through the user-space impairment relay
 * (support/relay.ts): latency, loss, outages and a rate cap on a real werift path.
 */
import { InferenceClient, loopbackIceOptions, type UploadProgress, VidrtcError } from "@vidrtc/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { largeVideo, motionVideo } from "./support/fixtures.js";
import { type ImpairedPath, impairedPath, type PathImpairment } from "./support/relay.js";
import { eventually, startTestServer, type TestServer } from "./support/server.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("through the impairment relay", () => {
  let server: TestServer;
  let path: ImpairedPath | null = null;
  beforeAll(async () => {
    // Upload idle timeout above the 5 s outages, low enough to clean up after a dead client soon.
    server = await startTestServer({ idleTimeoutMs: 12_000 });
  });
  afterEach(async () => {
    await path?.close();
    path = null;
  });
  afterAll(async () => {
    await server?.close();
  });

  function client(impairment: PathImpairment): InferenceClient {
    path = impairedPath(impairment);
    return new InferenceClient({ apiUrl: server.url, werift: loopbackIceOptions(), fetch: path.fetch });
  }

  it("50 ms RTT and 1 % loss both ways: byte-exact upload and every result", async () => {
    const video = await largeVideo(6, { kind: "padded" });
    const lossy = { delayMs: 25, jitterMs: 2, loss: 0.01 };
    const session = await client({ up: lossy, down: lossy }).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
    });
    const ids: number[] = [];
    for await (const r of session) ids.push(r.frameId);
    expect(ids).toEqual(Array.from({ length: video.frames }, (_, i) => i + 1));
    const stats = path!.stats();
    expect(stats.up.droppedLoss + stats.down.droppedLoss).toBeGreaterThan(0); // loss really happened
    expect(stats.down.packetsOut).toBeGreaterThan(0);
    const upload = await server.waitFor(
      "upload-complete",
      10_000,
      (e) => e.bytes === video.bytes && e.sha256 === video.sha256,
    );
    expect(upload.sha256).toBe(video.sha256);
  });

  it("a 2 MiB/s cap: progress counts delivered bytes (not queued), rate and ETA honest; a 5 s outage mid-upload is survived", async () => {
    const video = await largeVideo(6, { kind: "padded" });
    const cap = 2 * MiB;
    const seen: Array<UploadProgress & { wire: number }> = [];
    let outage = false;
    const session = await client({
      up: { delayMs: 10, rateBytesPerSecond: cap, queueBytes: 256 * 1024 },
      down: { delayMs: 10 },
    }).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
      sink: { pollIntervalMs: 20 },
      onUploadProgress: (p) => {
        seen.push({ ...p, wire: path!.stats().up.bytesIn });
        if (!outage && p.bytesDelivered > video.bytes * 0.4) {
          outage = true;
          path!.outage(5_000);
        }
      },
    });
    const started = Date.now();
    const ids: number[] = [];
    for await (const r of session) ids.push(r.frameId);
    expect(ids).toHaveLength(video.frames);
    expect(outage).toBe(true);
    expect(path!.stats().up.droppedOutage).toBeGreaterThan(0);
    expect(Date.now() - started).toBeGreaterThan(5_000 + (video.bytes / cap) * 1000 * 0.8);
    const upload = await server.waitFor("upload-complete", 10_000, (e) => e.sha256 === video.sha256);
    expect(upload.bytes).toBe(video.bytes);

    // Delivered bytes never exceed what the client actually put on the network (the relay's
    // input), while bytes merely handed to the channel run ahead of it.
    const slack = 64 * 1024;
    console.log(
      `[impaired] max delivered-wire ${Math.max(...seen.map((p) => p.bytesDelivered - p.wire))}, max uploaded-wire ${Math.max(...seen.map((p) => p.bytesUploaded - p.wire))}`,
    );
    expect(Math.max(...seen.map((p) => p.bytesUploaded - p.wire))).toBeGreaterThan(slack);
    for (const p of seen) expect(p.bytesDelivered).toBeLessThanOrEqual(p.wire + slack);
    const mid = seen.filter(
      (p) => p.bytesDelivered > video.bytes * 0.1 && p.bytesDelivered < video.bytes * 0.35,
    );
    expect(mid.length).toBeGreaterThan(0);
    for (const p of mid) {
      expect(p.bytesPerSecond).toBeLessThan(cap * 1.5);
      expect(p.bytesPerSecond).toBeGreaterThan(cap * 0.3);
      expect(p.etaSeconds).not.toBeNull();
    }
  });

  it("a 5 s outage mid-results is survived and every result arrives", async () => {
    const video = await motionVideo({ seconds: 4, fps: 15 });
    const session = await client({ up: { delayMs: 5 }, down: { delayMs: 5 } }).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
    });
    const ids: number[] = [];
    await session.run({
      onData: async (r) => {
        ids.push(r.frameId);
        if (r.frameId === 10) path!.outage(5_000);
        await sleep(20);
      },
    });
    expect(ids).toEqual(Array.from({ length: video.frames }, (_, i) => i + 1));
    expect(path!.stats().down.droppedOutage + path!.stats().up.droppedOutage).toBeGreaterThan(0);
  });

  it("a permanent outage: typed LIVENESS_LOST or CONNECTION_FAILED within the keepalive bound, server cleaned up", async () => {
    const video = await largeVideo(6, { kind: "padded" });
    const before = server.sessions;
    let cut = 0;
    const session = await client({
      up: { rateBytesPerSecond: 2 * MiB, queueBytes: 256 * 1024 },
    }).webrtc.stream({
      source: video.path,
      workflow: "motion",
      dataOutput: ["motion_score"],
      keepalive: { intervalMs: 1_000, maxMissed: 3 },
      onUploadProgress: (p) => {
        if (!cut && p.bytesDelivered > 1 * MiB) {
          cut = Date.now();
          path!.outage(1e9);
        }
      },
    });
    const err = await session.done.catch((e) => e);
    const elapsed = Date.now() - cut;
    expect(cut).toBeGreaterThan(0);
    expect(VidrtcError.isInstance(err)).toBe(true);
    expect(["LIVENESS_LOST", "CONNECTION_FAILED"]).toContain((err as VidrtcError).code);
    // keepalive bound: maxMissed x interval after the last echo, plus one interval of slack.
    expect(elapsed).toBeLessThan(1_000 * (3 + 2) + 2_000);
    await eventually(
      async () => server.sessions <= before && (await server.tempFiles()).length === 0,
      45_000,
      "server cleaned up",
    );
  });
});
