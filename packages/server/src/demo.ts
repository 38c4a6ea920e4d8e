/**
 * The demo page shipped in this package (`demo/`, copied from `@vidrtc/browser`'s demo build
 * when the package is built) and served at `/` by `vidrtc-server --demo`.
 */
import { fileURLToPath } from "node:url";

/** Absolute path of the demo page's directory inside the installed `@vidrtc/server` package. */
export function demoDirectory(): string {
  return fileURLToPath(new URL("../demo/", import.meta.url));
}
