/**
 * Keeps a README's TypeScript snippets honest. Every ```ts block is either
 *
 * - type-checked (the default) against the built workspace packages, under `strict`,
 *   `noUncheckedIndexedAccess` and `exactOptionalPropertyTypes`, each block as its own ES module; an HTML
 *   comment right before the block, `<!-- snippet-prelude ... -->`, holds declarations for the names the
 *   block uses but does not define (`declare const file: File;`), invisible on GitHub; or
 * - taken verbatim from an example file, marked `<!-- snippet-from: examples/x/src/y.ts -->` right
 *   before the block, and then its lines must appear in that file, in order and contiguous.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import type * as TS from "typescript";

/** One ```ts block of a markdown file. */
export interface Snippet {
  /** 1-based line of the block's first code line. */
  line: number;
  code: string;
  /** Declarations from a `snippet-prelude` comment, or "". */
  prelude: string;
  /** Repository-relative path from a `snippet-from` comment. */
  from?: string;
}

const FENCE = /^```(\w*)\s*$/;

/** The ```ts / ```typescript blocks of a markdown text, with their markers. */
export function extractSnippets(markdown: string): Snippet[] {
  const lines = markdown.split("\n");
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    const lang = open[1]!;
    if (lang === "ts" || lang === "typescript") {
      const snippet: Snippet = { line: i + 2, code: lines.slice(i + 1, end).join("\n"), prelude: "" };
      // The marker comment ends on the line just before the fence.
      const before = lines.slice(0, i).join("\n").trimEnd();
      const comment = before.endsWith("-->") ? before.slice(before.lastIndexOf("<!--")) : "";
      const marker = /^<!--\s*snippet-(prelude|from):?([\s\S]*)-->$/.exec(comment);
      if (marker) {
        if (marker[1] === "from") snippet.from = marker[2]!.trim();
        else snippet.prelude = marker[2]!.trim();
      }
      out.push(snippet);
    }
    i = end;
  }
  return out;
}

/** A problem with one snippet: `line` is the markdown line it points at. */
export interface SnippetProblem {
  line: number;
  message: string;
}

function normalise(text: string): string[] {
  return text.split("\n").map((l) => l.trimEnd());
}

/** Whether `code`'s lines occur in `source`, contiguous and in order (trailing spaces ignored). */
export function isVerbatimIn(code: string, source: string): boolean {
  const want = normalise(code);
  while (want.length > 0 && want.at(-1) === "") want.pop();
  const have = normalise(source);
  if (want.length === 0) return false;
  for (let i = 0; i + want.length <= have.length; i++) {
    if (want.every((l, k) => have[i + k] === l)) return true;
  }
  return false;
}

/**
 * Checks every snippet of `markdown`. `root` is the repository root (for `snippet-from` paths);
 * `workDir` a scratch directory inside a workspace package, so that `@vidrtc/*` imports resolve to
 * that package's dependencies (their built `dist` declarations). Returns the problems, none when all pass.
 */
export async function checkReadmeSnippets(
  markdown: string,
  options: { root: string; workDir: string },
): Promise<{ checked: number; verbatim: number; problems: SnippetProblem[] }> {
  const snippets = extractSnippets(markdown);
  const problems: SnippetProblem[] = [];
  let verbatim = 0;
  const files = new Map<string, { snippet: Snippet; offset: number }>();
  await rm(options.workDir, { recursive: true, force: true });
  await mkdir(options.workDir, { recursive: true });
  try {
    await writeFile(path.join(options.workDir, "package.json"), '{ "type": "module" }\n');
    for (const snippet of snippets) {
      if (snippet.from !== undefined) {
        verbatim++;
        let source: string;
        try {
          source = await readFile(path.join(options.root, snippet.from), "utf8");
        } catch {
          problems.push({ line: snippet.line, message: `snippet-from names a missing file ${snippet.from}` });
          continue;
        }
        if (!isVerbatimIn(snippet.code, source)) {
          problems.push({ line: snippet.line, message: `the block is not verbatim in ${snippet.from}` });
        }
        continue;
      }
      const file = path.join(options.workDir, `readme-line-${snippet.line}.ts`);
      const head = snippet.prelude === "" ? "" : `${snippet.prelude}\n`;
      // Every block is a module of its own (its names do not clash with other blocks').
      await writeFile(file, `${head}${snippet.code}\nexport {};\n`);
      files.set(path.resolve(file), { snippet, offset: head === "" ? 0 : head.split("\n").length - 1 });
    }
    if (files.size > 0) problems.push(...typeCheck(files));
  } finally {
    await rm(options.workDir, { recursive: true, force: true });
  }
  problems.sort((a, b) => a.line - b.line);
  return { checked: files.size, verbatim, problems };
}

function typeCheck(files: Map<string, { snippet: Snippet; offset: number }>): SnippetProblem[] {
  const ts = createRequire(import.meta.url)("typescript") as typeof TS;
  const program = ts.createProgram([...files.keys()], {
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    verbatimModuleSyntax: true,
    isolatedModules: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    types: ["node"],
  });
  const problems: SnippetProblem[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const entry = d.file ? files.get(path.resolve(d.file.fileName)) : undefined;
    if (!d.file || !entry || d.start === undefined) {
      problems.push({ line: 0, message: `TS${d.code}: ${message}` });
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const inPrelude = line < entry.offset;
    problems.push({
      line: inPrelude ? entry.snippet.line - 1 : entry.snippet.line + line - entry.offset,
      message: `${inPrelude ? "(in the snippet-prelude) " : ""}TS${d.code}: ${message}`,
    });
  }
  return problems;
}
