import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const cli = path.join(import.meta.dirname, "..", "dist", "cli.js");

/** Runs the built `vidrtc-server` with `args`; it must exit by itself within `boundMs`. */
function runServer(
  args: string[],
  boundMs = 20_000,
  bin = cli,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
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

/** Starts the built `vidrtc-server` with `args` and resolves with its URL once it prints `ready`. */
function startServer(
  args: string[],
  boundMs = 20_000,
): Promise<{ child: ChildProcess; url: string; stdout: () => string }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`vidrtc-server was not ready within ${boundMs} ms: ${stdout}${stderr}`));
    }, boundMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      const url = /ready: (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url && stdout.includes("demo page:")) {
        clearTimeout(timer);
        resolve({ child, url, stdout: () => stdout });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`vidrtc-server exited (${code}) before it was ready: ${stdout}${stderr}`));
    });
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

const DEMO_FILES = ["demo/index.html", "demo/style.css", "demo/demo.js", "demo/demo.js.map"];

describe("vidrtc-server --demo", () => {
  it("serves the shipped demo page at / and its bundle, with their content types", async () => {
    const server = await startServer(["--port", "0", "--demo"]);
    try {
      expect(server.stdout()).toContain(`demo page: ${server.url}/`);
      const index = await fetch(`${server.url}/`);
      expect(index.status).toBe(200);
      expect(index.headers.get("content-type")).toMatch(/^text\/html/);
      const html = await index.text();
      expect(html).toContain('<script type="module" src="demo.js"></script>');
      expect(html).toContain('id="start"');
      const js = await fetch(`${server.url}/demo.js`);
      expect(js.status).toBe(200);
      expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
      const bundle = await js.text();
      // The page's bundle, the same bytes as the browser package's demo build.
      expect(bundle).toBe(
        await readFile(new URL("../../browser/demo-dist/demo.js", import.meta.url), "utf8"),
      );
      expect(bundle).toContain("initialise_webrtc_worker");
      const css = await fetch(`${server.url}/style.css`);
      expect(css.status).toBe(200);
      expect(css.headers.get("content-type")).toMatch(/^text\/css/);
      // Only the page ships: the e2e harness's test page stays in the browser package.
      expect((await fetch(`${server.url}/test.html`)).status).toBe(404);
      // The API still answers next to the page.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await stopServer(server.child);
    }
  });

  it("refuses --demo together with --static-dir: one line, exit 2, never listening", async () => {
    const r = await runServer(["--port", "0", "--demo", "--static-dir", tmpdir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "vidrtc-server: --demo and --static-dir cannot be used together: both serve /; give one of them\n",
    );
    expect(r.stdout).not.toContain("ready");
  });

  it("an installation without the demo page fails at startup with one line, exit 2", async () => {
    // The built package without its demo/ directory: dist/ copied beside the same node_modules.
    const dir = await mkdtemp(path.join(tmpdir(), "vidrtc-no-demo-"));
    try {
      const pkg = path.join(import.meta.dirname, "..");
      await cp(path.join(pkg, "dist"), path.join(dir, "dist"), { recursive: true });
      await symlink(path.join(pkg, "node_modules"), path.join(dir, "node_modules"));
      const r = await runServer(["--port", "0", "--demo"], 20_000, path.join(dir, "dist", "cli.js"));
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `vidrtc-server: --demo: the demo page is missing from this installation (${path.join(dir, "demo", "index.html")}: ENOENT); reinstall @vidrtc/server, or run \`pnpm build\` in a checkout\n`,
      );
      expect(r.stdout).not.toContain("ready");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("--help documents --demo", async () => {
    const r = await runServer(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, " ")).toContain(
      "--demo serve the demo page shipped with this package at /",
    );
  });

  it("the package's tarball contains the demo page", async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "npm",
        ["pack", "--dry-run", "--json", "--ignore-scripts"],
        { cwd: path.join(import.meta.dirname, ".."), timeout: 60_000 },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    const [pack] = JSON.parse(out) as [{ files: { path: string; size: number }[] }];
    const files = new Map(pack.files.map((f) => [f.path, f.size]));
    for (const f of DEMO_FILES) {
      expect(files.has(f), `${f} in the tarball`).toBe(true);
      expect(files.get(f)).toBeGreaterThan(0);
    }
    expect([...files.keys()].filter((f) => f.startsWith("demo/")).sort()).toEqual([...DEMO_FILES].sort());
  }, 60_000);
});

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
