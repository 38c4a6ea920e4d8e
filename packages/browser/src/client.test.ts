import { VidrtcError } from "@vidrtc/protocol";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_API_URL, InferenceClient } from "./client.js";
import { VideoFileSource } from "./file-source.js";

describe("InferenceClient (browser)", () => {
  it("defaults to the local server URL", () => {
    expect(new InferenceClient().apiUrl).toBe(DEFAULT_API_URL);
    expect(new InferenceClient({ apiUrl: "http://10.0.0.2:9001" }).apiUrl).toBe("http://10.0.0.2:9001");
  });

  it("refuses an empty file with EMPTY_FILE before connecting or signalling", async () => {
    const fetchSpy = vi.fn();
    const client = new InferenceClient({ fetch: fetchSpy as unknown as typeof fetch });
    const error = await client.webrtc
      .stream({ source: new File([], "empty.mp4"), workflow: "motion" })
      .catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "EMPTY_FILE")).toBe(true);
    expect((error as Error).message).toContain("empty.mp4");
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("refuses a file over maxUploadBytes with FILE_TOO_LARGE before connecting", async () => {
    const fetchSpy = vi.fn();
    const client = new InferenceClient({ fetch: fetchSpy as unknown as typeof fetch });
    const source = new VideoFileSource(new Blob([new Uint8Array(2048)]));
    const error = await client.webrtc
      .stream({ source, workflow: "motion", maxUploadBytes: 1024 })
      .catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "FILE_TOO_LARGE")).toBe(true);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("rejects with ABORTED when the signal is already aborted", async () => {
    const client = new InferenceClient();
    const error = await client.webrtc
      .stream({ source: new Blob(["x"]), workflow: "motion", signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "ABORTED")).toBe(true);
  });
});
