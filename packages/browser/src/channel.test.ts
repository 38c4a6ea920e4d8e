import { describe, expect, it } from "vitest";
import { FALLBACK_MAX_MESSAGE_SIZE, fromRTCDataChannel } from "./channel.js";

/** Just enough of an RTCDataChannel, on a real EventTarget. */
class FakeDataChannel extends EventTarget {
  label = "video_upload";
  readyState: RTCDataChannelState = "open";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType: BinaryType = "blob";
  sent: unknown[] = [];
  closed = false;
  send(data: unknown) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
  receive(data: unknown) {
    this.dispatchEvent(new MessageEvent("message", { data }));
  }
}

const wrap = (dc: FakeDataChannel, pc?: { sctp: { maxMessageSize: number } | null }) =>
  fromRTCDataChannel(dc as unknown as RTCDataChannel, pc as unknown as RTCPeerConnection);

describe("fromRTCDataChannel", () => {
  it("switches the channel to ArrayBuffer messages and yields them as Uint8Array, text as string", () => {
    const dc = new FakeDataChannel();
    const channel = wrap(dc);
    expect(dc.binaryType).toBe("arraybuffer");
    const got: Array<Uint8Array | string> = [];
    channel.on("message", ({ data }) => got.push(data));
    dc.receive(new Uint8Array([1, 2, 3]).buffer);
    dc.receive('{"x":1}');
    expect(got[0]).toBeInstanceOf(Uint8Array);
    expect(Array.from(got[0] as Uint8Array)).toEqual([1, 2, 3]);
    expect(got[1]).toBe('{"x":1}');
  });

  it("passes state, buffered amount and threshold through live", () => {
    const dc = new FakeDataChannel();
    const channel = wrap(dc);
    expect(channel.label).toBe("video_upload");
    dc.bufferedAmount = 12345;
    dc.readyState = "closing";
    expect(channel.bufferedAmount).toBe(12345);
    expect(channel.readyState).toBe("closing");
    channel.bufferedAmountLowThreshold = 4096;
    expect(dc.bufferedAmountLowThreshold).toBe(4096);
    dc.bufferedAmountLowThreshold = 7;
    expect(channel.bufferedAmountLowThreshold).toBe(7);
  });

  it("sends bytes and text unchanged, and closes the channel", () => {
    const dc = new FakeDataChannel();
    const channel = wrap(dc);
    const bytes = new Uint8Array([9, 8, 7]);
    channel.send(bytes);
    channel.send("ping");
    expect(dc.sent).toEqual([bytes, "ping"]);
    expect(dc.sent[0]).toBe(bytes);
    channel.close();
    expect(dc.closed).toBe(true);
  });

  it("reads maxMessageSize from the SCTP transport once known, else the 64 KiB fallback", () => {
    const dc = new FakeDataChannel();
    const pc: { sctp: { maxMessageSize: number } | null } = { sctp: null };
    const channel = wrap(dc, pc);
    expect(channel.maxMessageSize).toBe(FALLBACK_MAX_MESSAGE_SIZE);
    pc.sctp = { maxMessageSize: 262_144 };
    expect(channel.maxMessageSize).toBe(262_144);
    expect(wrap(new FakeDataChannel()).maxMessageSize).toBe(65_536);
  });

  it("maps open, close, bufferedamountlow and error events, and unsubscribes", () => {
    const dc = new FakeDataChannel();
    const channel = wrap(dc);
    const seen: string[] = [];
    const offs = [
      channel.on("open", (e) => seen.push(`open:${String(e)}`)),
      channel.on("close", () => seen.push("close")),
      channel.on("bufferedamountlow", () => seen.push("low")),
      channel.on("error", (e) => seen.push(`error:${e instanceof Error ? e.message : "?"}`)),
    ];
    dc.dispatchEvent(new Event("open"));
    dc.dispatchEvent(new Event("bufferedamountlow"));
    const withError = new Event("error") as Event & { error?: Error };
    withError.error = new Error("sctp failure");
    dc.dispatchEvent(withError);
    dc.dispatchEvent(new Event("error"));
    dc.dispatchEvent(new Event("close"));
    expect(seen).toEqual([
      "open:undefined",
      "low",
      "error:sctp failure",
      'error:Data channel "video_upload" reported an error.',
      "close",
    ]);
    for (const off of offs) off();
    dc.dispatchEvent(new Event("open"));
    dc.dispatchEvent(new Event("close"));
    expect(seen).toHaveLength(5);
  });
});
