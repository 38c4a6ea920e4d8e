// Removes the package's dist/ before tsc writes it, so that files of deleted or moved sources
// (and turbo cache leftovers) never end up in a published tarball. Run from a package directory.
import { rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
