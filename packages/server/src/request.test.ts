import { describe, expect, it } from "vitest";
import {
  checkOutputNames,
  DEFAULT_PROCESSING_TIMEOUT_SECONDS,
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
