import { describe, expect, it } from "vitest";
import {
  checkOfferSdp,
  checkOutputNames,
  DEFAULT_PROCESSING_TIMEOUT_SECONDS,
  echoInput,
  MAX_VALIDATION_ISSUES,
  resolveStreamOutput,
  validateInitialiseRequest,
} from "./request.js";

const SDP = "v=0\r\n";
const minimal = {
  workflow_configuration: { type: "WorkflowConfiguration", workflow_id: "motion" },
  webrtc_offer: { type: "offer", sdp: SDP },
};

describe("validateInitialiseRequest", () => {
  it("applies Roboflow's defaults and ignores unknown keys", () => {
    const r = validateInitialiseRequest({ ...minimal, video_file_upload: true, manual_mode: true });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.request).toMatchObject({
      realtime: true,
      streamOutput: null,
      dataOutput: null,
      apiKey: null,
      iceServers: null,
      processingTimeoutSeconds: DEFAULT_PROCESSING_TIMEOUT_SECONDS,
    });
    expect(r.request.workflowConfiguration.image_input_name).toBe("image");
  });

  it("keeps an explicit null processing_timeout (no limit) and normalises ICE urls to lists", () => {
    const r = validateInitialiseRequest({
      ...minimal,
      processing_timeout: null,
      webrtc_config: { iceServers: [{ urls: "turn:x", username: "u", credential: "c" }] },
    });
    expect(r.ok && r.request.processingTimeoutSeconds).toBeNull();
    expect(r.ok && r.request.iceServers).toEqual([{ urls: ["turn:x"], username: "u", credential: "c" }]);
  });

  it("lets a Bearer header win over the body key", () => {
    const r = validateInitialiseRequest({ ...minimal, api_key: "body" }, "Bearer header-key");
    expect(r.ok && r.request.apiKey).toBe("header-key");
    const b = validateInitialiseRequest({ ...minimal, api_key: "body" }, null);
    expect(b.ok && b.request.apiKey).toBe("body");
  });

  it("rejects bad values with FastAPI-style locations", () => {
    const r = validateInitialiseRequest({
      ...minimal,
      processing_timeout: 0,
      declared_fps: "x",
      webrtc_config: { iceServers: [{}] },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.detail.map((d) => d.loc.join("."))).toEqual(
      expect.arrayContaining([
        "body.processing_timeout",
        "body.declared_fps",
        "body.webrtc_config.iceServers.0.urls",
      ]),
    );
  });
});

describe("output names", () => {
  const outputs = { all: ["predictions", "motion_score", "annotated"], images: ["annotated"] };
  it("resolves stream_output like Roboflow", () => {
    expect(resolveStreamOutput(null, outputs)).toBe("annotated");
    expect(resolveStreamOutput([], outputs)).toBeUndefined();
    expect(resolveStreamOutput(["", ""], outputs)).toBeUndefined();
    expect(resolveStreamOutput(["", "annotated"], outputs)).toBe("annotated");
  });
  it("accepts known names and '*', rejects unknown ones", () => {
    expect(
      checkOutputNames(
        { streamOutput: ["annotated"], dataOutput: ["*", "predictions", "annotated"] },
        outputs,
      ),
    ).toBeNull();
    expect(checkOutputNames({ streamOutput: null, dataOutput: ["nope"] }, outputs)).toMatch(/nope/);
    expect(checkOutputNames({ streamOutput: ["motion_score"], dataOutput: null }, outputs)).toMatch(
      /not an image output/,
    );
  });
});

describe("checkOfferSdp", () => {
  // A Chromium data-channel + video offer, trimmed (1 candidate).
  const REAL = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=msid-semantic: WMS",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
    "a=ice-ufrag:abcd",
    "a=ice-pwd:abcdefghijklmnopqrstuvwx",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 AA:BB:CC",
    "a=setup:actpass",
    "a=mid:0",
    "a=sctp-port:5000",
    "a=max-message-size:262144",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=mid:1",
    "a=recvonly",
    "a=rtpmap:96 VP8/90000",
    "",
  ].join("\r\n");

  it("accepts a real offer (CRLF or LF)", () => {
    expect(checkOfferSdp(REAL)).toBeNull();
    expect(checkOfferSdp(REAL.replaceAll("\r\n", "\n"))).toBeNull();
  });

  it("refuses too many m-sections, lines, bytes and long lines, cheaply", () => {
    const many = REAL + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:x\r\n".repeat(3000);
    const started = performance.now();
    expect(checkOfferSdp(many)).toMatch(/bytes/);
    expect(performance.now() - started).toBeLessThan(200);
    const twenty = REAL + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:x\r\n".repeat(18);
    expect(checkOfferSdp(twenty)).toMatch(/more than 8 media sections/);
    expect(checkOfferSdp(REAL + "a=x\r\n".repeat(1200))).toMatch(/lines/);
    expect(checkOfferSdp(REAL + `a=${"x".repeat(70_000)}\r\n`)).toMatch(/bytes/);
    expect(checkOfferSdp(REAL + `a=${"x".repeat(5000)}\r\n`)).toMatch(/characters long/);
  });

  it("refuses malformed offers: v=0 alone, binary junk, missing ICE or DTLS lines", () => {
    expect(checkOfferSdp("v=0")).toMatch(/lacks o=, s=, t=, m=/);
    expect(checkOfferSdp("v=0\r\n\u0001\u00ffjunk")).toMatch(/line 2/);
    expect(checkOfferSdp("junk\r\nv=0")).toMatch(/line 1/);
    expect(checkOfferSdp(REAL.replace(/a=fingerprint[^\r]*\r\n/, ""))).toMatch(/lacks a=fingerprint/);
    expect(checkOfferSdp(REAL.replace(/a=ice-pwd[^\r]*\r\n/, ""))).toMatch(/lacks a=ice-pwd/);
    expect(checkOfferSdp(`o=x\r\n${REAL}`)).toMatch(/start with/);
  });
});

describe("422 detail bounds", () => {
  it("lists at most MAX_VALIDATION_ISSUES issues and counts the rest", () => {
    const r = validateInitialiseRequest({ ...minimal, stream_output: new Array(1000).fill(0) });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.detail).toHaveLength(MAX_VALIDATION_ISSUES + 1);
    expect(r.detail.at(-1)).toMatchObject({
      type: "too_many_errors",
      msg: "980 more validation errors not shown",
    });
  });

  it("echoes inputs bounded and without secrets", () => {
    expect(echoInput("x".repeat(500))).toHaveLength(103);
    expect(echoInput({ api_key: "k", Authorization: "b", nested: { deep: { deeper: 1 } } })).toEqual({
      api_key: "[redacted]",
      Authorization: "[redacted]",
      nested: { deep: "{...}" },
    });
    expect(echoInput(new Array(50).fill(1))).toHaveLength(11);
  });
});
