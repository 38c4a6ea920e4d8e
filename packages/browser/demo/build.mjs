// Builds the demo page into demo-dist/: demo.js (the page), vidrtc.js (the library as a
// `window.vidrtc` global, for test.html and quick experiments) and the static files.
// Run through `pnpm --filter @vidrtc/browser build:demo` (needs @vidrtc/protocol built).
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = here("../demo-dist/");
await mkdir(out, { recursive: true });

const common = {
  bundle: true,
  minify: true,
  sourcemap: true,
  target: "es2022",
  platform: "browser",
  logLevel: "warning",
};
await Promise.all([
  build({ ...common, entryPoints: [here("./demo.ts")], format: "esm", outfile: `${out}demo.js` }),
  build({
    ...common,
    entryPoints: [here("../src/index.ts")],
    format: "iife",
    globalName: "vidrtc",
    outfile: `${out}vidrtc.js`,
  }),
  ...["index.html", "style.css", "test.html"].map((f) => copyFile(here(`./${f}`), `${out}${f}`)),
]);
console.log("demo built into packages/browser/demo-dist/");
