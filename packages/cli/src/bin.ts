#!/usr/bin/env node
import { main } from "./cli.js";

// werift leaves sockets and timers behind after a peer connection closes, which would keep
// the process alive: the CLI exits explicitly once stdout and stderr have flushed.
main().finally(() => {
  const code = process.exitCode ?? 0;
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
});
