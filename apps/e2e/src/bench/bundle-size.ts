/**
 * What a web page pulls in from @vidrtc/browser (with @vidrtc/protocol): bundles
 * `packages/browser/dist/index.js` with esbuild (ESM, minified, browser platform, every export
 * kept), gzips it (level 9) and prints the sizes and the largest inputs.
 *
 *   pnpm --filter @vidrtc/browser build
 *   pnpm --filter @vidrtc/e2e exec tsx src/bench/bundle-size.ts [--json]
 *
 * Exits 1 when the gzipped size exceeds the 15 kB target (15,000 bytes).
 */
import { access } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const TARGET_GZIP_BYTES = 15_000;
const ENTRY = fileURLToPath(new URL("../../../../packages/browser/dist/index.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/** Sizes of the page bundle, in bytes. */
export interface BundleSize {
  minified: number;
  gzip: number;
  /** Bytes each input file contributes to the minified output, largest first. */
  inputs: Array<{ file: string; bytes: number }>;
}

/** Bundles, minifies and gzips the browser entry point. */
export async function measureBundleSize(): Promise<BundleSize> {
  try {
    await access(ENTRY);
  } catch {
    throw new Error(
      "packages/browser/dist/index.js is missing: run `pnpm --filter @vidrtc/browser build` first.",
    );
  }
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  const output = Object.values(result.metafile.outputs)[0]!;
  const inputs = Object.entries(output.inputs)
    .map(([file, info]) => ({
      file: file.replace(ROOT, "").replace(/^.*?packages\//, "packages/"),
      bytes: info.bytesInOutput,
    }))
    .sort((a, b) => b.bytes - a.bytes);
  return { minified: code.byteLength, gzip: gzipSync(code, { level: 9 }).byteLength, inputs };
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const size = await measureBundleSize();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(size, null, 2));
  } else {
    console.log("@vidrtc/browser + @vidrtc/protocol, as a page bundles it (esbuild, minified, ESM)");
    console.log(`  minified:       ${size.minified.toLocaleString("en")} bytes`);
    console.log(
      `  minified+gzip:  ${size.gzip.toLocaleString("en")} bytes (${(size.gzip / 1000).toFixed(1)} kB; target < ${TARGET_GZIP_BYTES / 1000} kB)`,
    );
    console.log("  largest inputs (minified bytes):");
    for (const { file, bytes } of size.inputs.slice(0, 12))
      console.log(`    ${String(bytes).padStart(7)}  ${file}`);
  }
  if (size.gzip > TARGET_GZIP_BYTES) {
    console.error(`bundle-size: ${size.gzip} bytes gzipped is over the ${TARGET_GZIP_BYTES}-byte target`);
    process.exitCode = 1;
  }
}
