/**
 * The conformance contract every `DataChannelLike` adapter is held to, as a vitest suite that a
 * test file instantiates per subject (the in-memory fake, werift, node-datachannel, each offerer x
 * answerer pair). Not part of the build.
 */
import type { DataChannelLike } from "@vidrtc/protocol";
import { VidrtcError } from "@vidrtc/protocol";
import { afterEach, describe, expect, it } from "vitest";

/** Two open, connected channels: `local` on the offering side, `remote` on the answering side. */
export interface ChannelPair {
  local: DataChannelLike;
  remote: DataChannelLike;
  close(): Promise<void>;
}

export interface ContractSubject {
  name: string;
  pair(label: string): Promise<ChannelPair>;
  /** `send()` errors are `VidrtcError`s with codes (adapters); a raw browser-like fake throws DOM errors. */
  typedErrors: boolean;
}

/** Resolves with the first event of `type` on `channel`, bounded. */
export function once<T>(
  channel: DataChannelLike,
  type: "open" | "close" | "bufferedamountlow" | "message" | "error",
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${type}" on "${channel.label}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = channel.on(type, (event) => {
      clearTimeout(timer);
      off();
      resolve(event as T);
    });
  });
}

/** Collects `count` messages from `channel`, bounded. */
export function collect(
  channel: DataChannelLike,
  count: number,
  timeoutMs = 10_000,
): Promise<(Uint8Array | string)[]> {
  const got: (Uint8Array | string)[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(
        new Error(`only ${got.length} of ${count} messages on "${channel.label}" within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const off = channel.on("message", ({ data }) => {
      got.push(data);
      if (got.length === count) {
        clearTimeout(timer);
        off();
        resolve(got);
      }
    });
  });
}

function expectSendError(fn: () => void, code: string, typed: boolean): void {
  let error: unknown = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, "send() must throw").not.toBeNull();
  if (typed) {
    expect(VidrtcError.isInstance(error), `expected a VidrtcError, got ${String(error)}`).toBe(true);
    expect((error as VidrtcError).code).toBe(code);
  }
}

export function describeChannelContract(subject: ContractSubject): void {
  describe(`DataChannelLike contract: ${subject.name}`, () => {
    const pairs: ChannelPair[] = [];
    const open = async (label: string) => {
      const p = await subject.pair(label);
      pairs.push(p);
      return p;
    };
    afterEach(async () => {
      for (const p of pairs.splice(0)) await p.close();
    });

    it("opens on both ends with the label, carries binary as Uint8Array and text as string, in order, both ways", async () => {
      const { local, remote } = await open("inference");
      expect(local.readyState).toBe("open");
      expect(remote.readyState).toBe("open");
      expect(local.label).toBe("inference");
      expect(remote.label).toBe("inference");
      const atRemote = collect(remote, 3);
      local.send(new Uint8Array([1, 2, 3]));
      local.send("héllo ✓");
      local.send(new Uint8Array(48 * 1024).fill(7));
      const [a, b, c] = await atRemote;
      expect(a).toBeInstanceOf(Uint8Array);
      expect([...(a as Uint8Array)]).toEqual([1, 2, 3]);
      expect(b).toBe("héllo ✓");
      expect((c as Uint8Array).byteLength).toBe(48 * 1024);
      expect((c as Uint8Array).every((x) => x === 7)).toBe(true);
      const atLocal = collect(local, 2);
      remote.send('{"ack":1}');
      remote.send(new Uint8Array([9]));
      const [d, e] = await atLocal;
      expect(d).toBe('{"ack":1}');
      expect(e).toBeInstanceOf(Uint8Array);
      expect([...(e as Uint8Array)]).toEqual([9]);
    });

    it("reports bufferedAmount and fires bufferedamountlow once it drains to the threshold", async () => {
      const { local, remote } = await open("video_upload");
      const threshold = 64 * 1024;
      local.bufferedAmountLowThreshold = threshold;
      expect(local.bufferedAmountLowThreshold).toBe(threshold);
      // Stacks with a deep transport buffer (node-datachannel's SCTP send buffer) report
      // bufferedAmount only once that is full: send until it rises well above the threshold.
      let received = 0;
      remote.on("message", () => {
        received++;
      });
      const low = once<undefined>(local, "bufferedamountlow", 30_000);
      let peak = 0;
      let sent = 0;
      while (peak <= 4 * threshold && sent < 512) {
        local.send(new Uint8Array(48 * 1024));
        sent++;
        peak = Math.max(peak, local.bufferedAmount);
      }
      expect(peak).toBeGreaterThan(4 * threshold);
      await low;
      expect(local.bufferedAmount).toBeLessThanOrEqual(threshold);
      const deadline = Date.now() + 30_000;
      while (received < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(received).toBe(sent);
    });

    it("reports a max message size, refuses a message above it and stays usable", async () => {
      const { local, remote } = await open("inference");
      const max = local.maxMessageSize;
      expect(max).toBeGreaterThanOrEqual(16 * 1024);
      if (Number.isFinite(max)) {
        expectSendError(() => local.send(new Uint8Array(max + 1)), "MESSAGE_TOO_LARGE", subject.typedErrors);
      }
      const next = once<{ data: Uint8Array | string }>(remote, "message");
      local.send("still open");
      expect((await next).data).toBe("still open");
    });

    it("surfaces a close on both ends and refuses sends afterwards", async () => {
      const { local, remote } = await open("inference");
      const closedLocal = once(local, "close");
      const closedRemote = once(remote, "close");
      local.close();
      await Promise.all([closedLocal, closedRemote]);
      expect(local.readyState).toBe("closed");
      expect(remote.readyState).toBe("closed");
      expectSendError(() => local.send("x"), "CHANNEL_CLOSED", subject.typedErrors);
      expectSendError(() => remote.send("x"), "CHANNEL_CLOSED", subject.typedErrors);
    });

    it("surfaces a close from the remote end", async () => {
      const { local, remote } = await open("video_upload");
      const closedLocal = once(local, "close");
      remote.close();
      await closedLocal;
      expect(local.readyState).toBe("closed");
    });
  });
}
