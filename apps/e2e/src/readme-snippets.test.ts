/**
 * The root README's TypeScript snippets cannot drift from working code: each is type-checked against
 * the built packages (strict + exactOptionalPropertyTypes) or compared with the example it is taken
 * from (see support/readme-snippets.ts for the markers).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkReadmeSnippets, extractSnippets, isVerbatimIn } from "./support/readme-snippets.js";

const e2eRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const root = path.resolve(e2eRoot, "..", "..");

function workDir(tag: string): string {
  return path.join(e2eRoot, "node_modules", ".cache", `readme-snippets-${tag}-${process.pid}`);
}

function format(problems: { line: number; message: string }[]): string {
  return problems.map((p) => `README.md:${p.line}: ${p.message}`).join("\n");
}

describe("README snippets", () => {
  it("every ```ts block of README.md type-checks or is verbatim from its example", async () => {
    const readme = await readFile(path.join(root, "README.md"), "utf8");
    const result = await checkReadmeSnippets(readme, { root, workDir: workDir("main") });
    expect(format(result.problems)).toBe("");
    expect(result.checked + result.verbatim).toBe(extractSnippets(readme).length);
    expect(result.checked + result.verbatim).toBeGreaterThanOrEqual(4);
  });

  it("fails when a snippet stops type-checking, pointing at its README line", async () => {
    const readme = await readFile(path.join(root, "README.md"), "utf8");
    const target = extractSnippets(readme).find((s) => s.code.includes("createServer({"));
    expect(target).toBeDefined();
    // A renamed option, as an API change would leave an old snippet.
    const broken = readme.replace("createServer({ port: 0", "createServer({ portNumber: 0");
    expect(broken).not.toBe(readme);
    const result = await checkReadmeSnippets(broken, { root, workDir: workDir("broken") });
    const brokenLine = broken.split("\n").findIndex((l) => l.includes("portNumber")) + 1;
    expect(result.problems).toEqual([{ line: brokenLine, message: expect.stringMatching(/portNumber/) }]);
  });

  it("checks exactOptionalPropertyTypes and reports a block missing from its example", async () => {
    const md = [
      "```ts",
      'import { createServer } from "@vidrtc/server";',
      "createServer({ host: undefined });",
      "```",
      "<!-- snippet-from: examples/node-basic/src/main.ts -->",
      "```ts",
      "this line is not in the example();",
      "```",
    ].join("\n");
    const result = await checkReadmeSnippets(md, { root, workDir: workDir("eopt") });
    expect(result.problems.map((p) => p.line)).toEqual([3, 7]);
    expect(result.problems[0]!.message).toMatch(/exactOptionalPropertyTypes/);
    expect(result.problems[1]!.message).toMatch(/not verbatim in examples\/node-basic\/src\/main.ts/);
  });

  it("compares verbatim blocks line by line", () => {
    expect(isVerbatimIn("b();\nc();\n", "a();\nb();  \nc();\nd();")).toBe(true);
    expect(isVerbatimIn("b();\nd();", "a();\nb();\nc();\nd();")).toBe(false);
    expect(isVerbatimIn("", "a();")).toBe(false);
  });
});
