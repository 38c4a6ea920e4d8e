/**
 * The emitted declarations never mention werift as a module: werift's own `.d.ts` files import
 * the untyped `multicast-dns`, so a consumer's type check with `skipLibCheck: false` would fail
 * on them. vidrtc's own types (`WeriftOptions`, `WeriftConnection`, ...) stand in for them.
 * Runs on the built `dist/` (the test task depends on the build).
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";

const dist = path.join(import.meta.dirname, "..", "dist");

/** Any way a declaration file can pull in the `werift` module (or a subpath of it). */
const WERIFT_MODULE =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*|\breference\s+types\s*=\s*)["']werift(?:\/[^"']*)?["']/;

async function declarationFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".d.ts"))
    .map((e) => path.join(e.parentPath, e.name));
}

describe("public declarations", () => {
  it("the pattern catches every form of a werift import", () => {
    for (const line of [
      'import type { RTCPeerConnection } from "werift";',
      "import { MediaStreamTrack } from 'werift';",
      'export type { PeerConfig } from "werift";',
      'readonly raw: import("werift").RTCPeerConnection;',
      'import "werift";',
      '/// <reference types="werift" />',
      'import type { X } from "werift/lib/webrtc";',
    ]) {
      expect(WERIFT_MODULE.test(line), line).toBe(true);
    }
    for (const line of [
      'export type TransportName = "werift" | "node-datachannel";',
      "/** Wraps a werift `RTCDataChannel` (from werift 0.25.2). */",
      'import type { WeriftOptions } from "./werift/public-types.js";',
    ]) {
      expect(WERIFT_MODULE.test(line), line).toBe(false);
    }
  });

  it("no emitted .d.ts imports werift", async () => {
    const files = await declarationFiles(dist).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`${dist} is missing (${error.code}): build the package first (pnpm build).`);
    });
    expect(files.length).toBeGreaterThan(1);
    const offenders: string[] = [];
    for (const file of files) {
      const text = await readFile(file, "utf8");
      text.split("\n").forEach((line, i) => {
        if (WERIFT_MODULE.test(line)) offenders.push(`${path.relative(dist, file)}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
