import { describe, expect, it } from "vitest";
import { Lifecycle, type SessionState } from "./lifecycle.js";

describe("Lifecycle", () => {
  it("follows the happy path and records each change", () => {
    const seen: string[] = [];
    const l = new Lifecycle((from, to) => seen.push(`${from}>${to}`));
    for (const s of ["uploading", "processing", "done", "closed"] as SessionState[])
      expect(l.to(s)).toBe(true);
    expect(seen).toEqual(["connecting>uploading", "uploading>processing", "processing>done", "done>closed"]);
  });

  it("refuses going back and leaving closed; failing only leads to closed", () => {
    const l = new Lifecycle();
    expect(l.to("processing")).toBe(false);
    expect(l.to("uploading")).toBe(true);
    expect(l.to("connecting")).toBe(false);
    expect(l.to("failing")).toBe(true);
    expect(l.ending).toBe(true);
    expect(l.to("done")).toBe(false);
    expect(l.to("closed")).toBe(true);
    expect(l.to("failing")).toBe(false);
    expect(l.state).toBe("closed");
  });
});
