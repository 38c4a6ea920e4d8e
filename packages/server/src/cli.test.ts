import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const cli = path.join(import.meta.dirname, "..", "dist", "cli.js");

/** Runs the built `vidrtc-server` with `args`; it must exit by itself within `boundMs`. */
function runServer(
  args: string[],
  boundMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`vidrtc-server did not exit within ${boundMs} ms: ${stdout}${stderr}`));
    }, boundMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("vidrtc-server --static-dir", () => {
  it("a missing directory fails at startup: one line, exit 2, never listening", async () => {
    const missing = path.join(tmpdir(), `vidrtc-no-such-dir-${process.pid}`);
    const r = await runServer(["--port", "0", "--static-dir", missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`vidrtc-server: --static-dir ${missing}: no such directory\n`);
    expect(r.stdout).not.toContain("ready");
  });

  it("a file instead of a directory fails the same way", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "vidrtc-static-"));
    try {
      const file = path.join(dir, "index.html");
      await writeFile(file, "<p>hi</p>");
      const r = await runServer(["--port", "0", "--static-dir", file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`vidrtc-server: --static-dir ${file}: not a directory\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("vidrtc-server --liveness-timeout", () => {
  it("--help documents it with its 15 s default", async () => {
    const r = await runServer(["--help"]);
    expect(r.code).toBe(0);
    const help = r.stdout.replace(/\s+/g, " ");
    expect(help).toMatch(
      /--liveness-timeout <seconds> end a session, in any state, when nothing .* \(default: 15\)/,
    );
  });

  it("a value that is not a positive number is refused at startup", async () => {
    for (const bad of ["0", "-3", "soon"]) {
      const r = await runServer(["--port", "0", "--liveness-timeout", bad]);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain("--liveness-timeout must be a positive number");
      expect(r.stdout).not.toContain("ready");
    }
  });
});
