// Copies the demo page built by @vidrtc/browser (packages/browser/demo-dist) into demo/, which
// ships in this package's tarball and is served at / by `vidrtc-server --demo`. A build-time
// copy only: @vidrtc/server has no dependency on @vidrtc/browser. turbo builds @vidrtc/browser
// first (packages/server/turbo.json). Run from packages/server.
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const from = here("../../browser/demo-dist/");
const to = here("../demo/");
// The page and its bundle only: not test.html or the window.vidrtc build used by the e2e tests.
const FILES = ["index.html", "style.css", "demo.js", "demo.js.map"];

const missing = FILES.filter((f) => !existsSync(`${from}${f}`));
if (missing.length > 0) {
  console.error(
    `@vidrtc/server: the demo page is not built (packages/browser/demo-dist lacks ${missing.join(", ")}); run \`pnpm build\` at the repository root.`,
  );
  process.exit(1);
}
rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
for (const f of FILES) copyFileSync(`${from}${f}`, `${to}${f}`);
console.log("demo page copied into packages/server/demo/");
