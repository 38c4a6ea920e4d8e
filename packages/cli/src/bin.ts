#!/usr/bin/env node
/**
 * The `vidrtc` executable: runs the CLI (see cli.ts) and lets the process end by itself.
 */
import { main } from "./cli.js";

// No process.exit: main() sets process.exitCode and the process ends once the event loop
// drains (every session releases its sockets, timers and child processes when it ends), so
// stdout and stderr are always flushed.
main().catch((error: unknown) => {
  process.stderr.write(
    `vidrtc: error ${error instanceof Error ? error.message.split("\n")[0] : String(error)}\n`,
  );
  process.exitCode = 1;
});
