import { VidrtcError } from "@vidrtc/protocol";
import { describe, expect, it } from "vitest";
import { buildProgram, EXIT, exitCodeFor } from "./cli.js";

describe("exitCodeFor", () => {
  it("maps error codes to the documented exit codes", () => {
    expect(exitCodeFor(new VidrtcError("FILE_NOT_FOUND", "x"))).toBe(EXIT.input);
    expect(exitCodeFor(new VidrtcError("NOT_FOUND", "x"))).toBe(EXIT.server);
    expect(exitCodeFor(new VidrtcError("CONNECTION_FAILED", "x"))).toBe(EXIT.connection);
    expect(exitCodeFor(new VidrtcError("ABORTED", "x"))).toBe(EXIT.aborted);
    expect(exitCodeFor(new Error("x"))).toBe(EXIT.failure);
  });
});

describe("--transport", () => {
  it("maps TRANSPORT_UNAVAILABLE to the usage exit code", () => {
    expect(exitCodeFor(new VidrtcError("TRANSPORT_UNAVAILABLE", "x"))).toBe(EXIT.usage);
  });

  it("accepts werift and node-datachannel and refuses other stacks before connecting", async () => {
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) > 0 } };
    const program = buildProgram(
      io as unknown as { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
    );
    await expect(
      program.parseAsync(["run", "clip.mp4", "-w", "motion", "--transport", "libwebrtc"], { from: "user" }),
    ).rejects.toMatchObject({ code: "commander.invalidArgument" });
    expect(err.join("")).toMatch(/werift, node-datachannel/);
    const run = program.commands.find((c) => c.name() === "run")!;
    expect(run.options.find((o) => o.long === "--transport")?.defaultValue).toBe("werift");
  });
});
