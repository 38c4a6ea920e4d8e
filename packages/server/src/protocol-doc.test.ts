/**
 * The doc comments of every package cite the wire protocol as "PROTOCOL.md §N" (or §N.M). That
 * file ships in @vidrtc/protocol's package, so a reader of any .d.ts can follow the citation: every
 * cited section must exist there, citations outside @vidrtc/protocol must say whose file it is,
 * and the file must be in the package's `files`.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const packagesDir = path.join(import.meta.dirname, "..", "..");
const protocolDir = path.join(packagesDir, "protocol");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ts$/.test(e.name) && !/\.test\.ts$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .filter((f) => !f.includes(`${path.sep}test-support${path.sep}`));
}

interface Citation {
  file: string;
  line: number;
  text: string;
  section: string | null;
}

function citations(): Citation[] {
  const out: Citation[] = [];
  for (const pkg of readdirSync(packagesDir)) {
    const src = path.join(packagesDir, pkg, "src");
    let files: string[];
    try {
      files = sources(src);
    } catch {
      continue;
    }
    for (const file of files) {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((text, i) => {
          for (const m of text.matchAll(/PROTOCOL\.md(?: §(\d+(?:\.\d+)?))?/g)) {
            out.push({ file: path.relative(packagesDir, file), line: i + 1, text, section: m[1] ?? null });
          }
        });
    }
  }
  return out;
}

/** "2", "4.3"... for every numbered heading of PROTOCOL.md. */
function sections(): Set<string> {
  const doc = readFileSync(path.join(protocolDir, "PROTOCOL.md"), "utf8");
  return new Set([...doc.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map((m) => m[1] as string));
}

describe("PROTOCOL.md citations", () => {
  const found = citations();

  it("finds the citations (the scan works)", () => {
    expect(found.length).toBeGreaterThan(10);
    expect(found.some((c) => c.file.startsWith("server"))).toBe(true);
  });

  it("every cited section exists in the shipped PROTOCOL.md", () => {
    const have = sections();
    expect(have).toContain("4.3");
    const missing = found
      .filter((c) => c.section !== null && !have.has(c.section))
      .map((c) => `${c.file}:${c.line} cites §${c.section}`);
    expect(missing).toEqual([]);
  });

  it("citations outside @vidrtc/protocol name the package whose PROTOCOL.md it is", () => {
    const bare = found
      .filter(
        (c) =>
          !c.file.startsWith(`protocol${path.sep}`) && !c.text.includes("@vidrtc/protocol's PROTOCOL.md"),
      )
      .map((c) => `${c.file}:${c.line}`);
    expect(bare).toEqual([]);
  });

  it("PROTOCOL.md is in @vidrtc/protocol's published files", () => {
    const pkg = JSON.parse(readFileSync(path.join(protocolDir, "package.json"), "utf8")) as {
      files: string[];
    };
    expect(pkg.files).toContain("PROTOCOL.md");
  });
});

describe("module documentation", () => {
  it("every source module of every package opens with a doc comment (after a shebang line)", () => {
    const undocumented: string[] = [];
    for (const pkg of readdirSync(packagesDir)) {
      let files: string[];
      try {
        files = sources(path.join(packagesDir, pkg, "src"));
      } catch {
        continue;
      }
      for (const file of files) {
        const text = readFileSync(file, "utf8").replace(/^#![^\n]*\n/, "");
        if (!text.startsWith("/**")) undocumented.push(path.relative(packagesDir, file));
      }
    }
    expect(undocumented).toEqual([]);
  });
});
