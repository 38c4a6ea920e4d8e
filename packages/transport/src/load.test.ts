import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadTransport } from "./load.js";

const dist = new URL("../dist/index.js", import.meta.url);

describe("loadTransport", () => {
  it("returns werift, loads node-datachannel lazily, and refuses unknown names with INVALID_OPTIONS", async () => {
    expect((await loadTransport("werift")).name).toBe("werift");
    expect((await loadTransport()).name).toBe("werift");
    expect((await loadTransport("node-datachannel")).name).toBe("node-datachannel");
    await expect(loadTransport("libwebrtc" as never)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
  });

  it("fails with TRANSPORT_UNAVAILABLE naming the package when node-datachannel cannot load", () => {
    // A resolve hook that makes `node-datachannel` missing, as in an install without it.
    const hook = `data:text/javascript,${encodeURIComponent(
      'export async function resolve(s, c, next) { if (s === "node-datachannel") { const e = new Error("Cannot find package \'node-datachannel\'"); e.code = "ERR_MODULE_NOT_FOUND"; throw e; } return next(s, c); }',
    )}`;
    const register = `data:text/javascript,${encodeURIComponent(
      `import { register } from "node:module"; register(${JSON.stringify(hook)});`,
    )}`;
    const program = `
      const { loadTransport } = await import(${JSON.stringify(dist.href)});
      const w = await loadTransport("werift");
      try { await loadTransport("node-datachannel"); console.log("loaded"); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, werift: w.name })); }`;
    const run = spawnSync(process.execPath, ["--import", register, "--input-type=module", "-e", program], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      timeout: 30_000,
    });
    expect(run.stderr).not.toMatch(/Error:/);
    const out = JSON.parse(run.stdout.trim()) as { code: string; message: string; werift: string };
    expect(out.code).toBe("TRANSPORT_UNAVAILABLE");
    expect(out.message).toMatch(/npm install node-datachannel/);
    expect(out.werift).toBe("werift");
  });
});
