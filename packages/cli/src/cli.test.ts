import { VidrtcError } from "@vidrtc/protocol";
import { describe, expect, it } from "vitest";
import { EXIT, exitCodeFor } from "./cli.js";

describe("exitCodeFor", () => {
  it("maps error codes to the documented exit codes", () => {
    expect(exitCodeFor(new VidrtcError("FILE_NOT_FOUND", "x"))).toBe(EXIT.input);
    expect(exitCodeFor(new VidrtcError("NOT_FOUND", "x"))).toBe(EXIT.server);
    expect(exitCodeFor(new VidrtcError("CONNECTION_FAILED", "x"))).toBe(EXIT.connection);
    expect(exitCodeFor(new VidrtcError("ABORTED", "x"))).toBe(EXIT.aborted);
    expect(exitCodeFor(new Error("x"))).toBe(EXIT.failure);
  });
});
