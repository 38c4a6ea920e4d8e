/**
 * Which WebRTC stack the server runs on: `transport` / `--transport`, the werift default, and
 * `"auto"`: node-datachannel, or werift after one warning line naming the reason when
 * node-datachannel cannot load or cannot work on this machine.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { VidrtcError } from "@vidrtc/protocol";
import { loadTransport, type Transport, type TransportName } from "@vidrtc/transport";
import { describe, expect, it } from "vitest";
import { chooseServerTransport, createServer } from "./server.js";

const cli = path.join(import.meta.dirname, "..", "dist", "cli.js");

/** A loader whose node-datachannel fails as an install without the package does. */
const missingNdc = async (name: TransportName): Promise<Transport> => {
  if (name === "node-datachannel") {
    throw new VidrtcError(
      "TRANSPORT_UNAVAILABLE",
      "The node-datachannel transport cannot be loaded (Cannot find package 'node-datachannel').\nInstall it.",
    );
  }
  return loadTransport(name);
};

describe("chooseServerTransport", () => {
  it("defaults to werift, without consulting node-datachannel or the machine", async () => {
    const load = async (name: TransportName) => {
      if (name !== "werift") throw new Error(`loaded ${name}`);
      return loadTransport(name);
    };
    const choice = await chooseServerTransport(
      undefined,
      {},
      {
        load,
        hasNonLoopbackIpv4: () => {
          throw new Error("consulted the interfaces");
        },
      },
    );
    expect(choice.transport.name).toBe("werift");
    expect(choice.fallbackReason).toBeNull();
  });

  it("auto picks node-datachannel when it loads and the machine has a non-loopback interface", async () => {
    const choice = await chooseServerTransport("auto", {}, { hasNonLoopbackIpv4: () => true });
    expect(choice.transport.name).toBe("node-datachannel");
    expect(choice.fallbackReason).toBeNull();
  });

  it("auto falls back to werift with a one-line reason when node-datachannel cannot load", async () => {
    const choice = await chooseServerTransport(
      "auto",
      {},
      { load: missingNdc, hasNonLoopbackIpv4: () => true },
    );
    expect(choice.transport.name).toBe("werift");
    expect(choice.fallbackReason).toMatch(/cannot be loaded \(Cannot find package 'node-datachannel'\)/);
    expect(choice.fallbackReason).not.toMatch(/\n/);
  });

  it("auto falls back to werift on a loopback-only machine unless a non-loopback ICE host is given", async () => {
    const loopbackOnly = await chooseServerTransport("auto", {}, { hasNonLoopbackIpv4: () => false });
    expect(loopbackOnly.transport.name).toBe("werift");
    expect(loopbackOnly.fallbackReason).toMatch(/non-loopback network interface/);
    const withHost = await chooseServerTransport(
      "auto",
      { iceHostAddresses: ["192.0.2.10"] },
      { hasNonLoopbackIpv4: () => false },
    );
    expect(withHost.transport.name).toBe("node-datachannel");
  });

  it("an explicit transport never falls back", async () => {
    await expect(chooseServerTransport("node-datachannel", {}, { load: missingNdc })).rejects.toMatchObject({
      code: "TRANSPORT_UNAVAILABLE",
    });
    const werift = await chooseServerTransport("werift", {}, { load: missingNdc });
    expect(werift).toMatchObject({ fallbackReason: null });
    expect(werift.transport.name).toBe("werift");
  });

  it("createServer refuses an unknown transport name with INVALID_OPTIONS", () => {
    expect(() => createServer({ transport: "libwebrtc" as never })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
  });

  it("reports the chosen transport in server.transport and /healthz, and logs it", async () => {
    for (const name of ["werift", "node-datachannel"] as const) {
      const lines: string[] = [];
      const server = createServer({
        port: 0,
        transport: name,
        logger: { info: (l) => lines.push(l), error: (l) => lines.push(l), debug() {} },
      });
      expect(server.transport).toBeNull();
      try {
        const { url } = await server.listen();
        expect(server.transport).toBe(name);
        const health = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
        expect(health.transport).toBe(name);
        expect(lines.some((l) => l.includes(`transport ${name}`))).toBe(true);
        expect(lines.some((l) => l.includes("warning"))).toBe(false);
      } finally {
        await server.close();
      }
    }
  });
});

/** A `--import` module whose resolve hook makes `node-datachannel` missing, as in an install without it. */
function withoutNodeDataChannel(): string {
  const hook = `data:text/javascript,${encodeURIComponent(
    'export async function resolve(s, c, next) { if (s === "node-datachannel") { const e = new Error("Cannot find package \'node-datachannel\'"); e.code = "ERR_MODULE_NOT_FOUND"; throw e; } return next(s, c); }',
  )}`;
  return `data:text/javascript,${encodeURIComponent(
    `import { register } from "node:module"; register(${JSON.stringify(hook)});`,
  )}`;
}

interface CliRun {
  child: ChildProcess;
  /** Resolves with the URL of the ready line, or rejects with what the process printed when it exits first. */
  ready: Promise<string>;
  stderr(): string;
  exit: Promise<number | null>;
}

function runCli(args: string[], nodeArgs: string[] = []): CliRun {
  const child = spawn(process.execPath, [...nodeArgs, cli, "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 20 s: ${out} ${err}`)), 20_000);
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /ready: (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`vidrtc-server exited with ${code}: ${out} ${err}`));
    });
  });
  ready.catch(() => {});
  return { child, ready, stderr: () => err, exit };
}

async function stop(run: CliRun): Promise<void> {
  if (run.child.exitCode === null) run.child.kill("SIGTERM");
  await run.exit;
}

describe("vidrtc-server --transport", () => {
  it("--transport auto without node-datachannel installed: serves on werift after exactly one warning line naming the reason", async () => {
    // --ice-host with a non-loopback address: the fallback below is the missing package's, not the machine's.
    const run = runCli(
      ["--transport", "auto", "--ice-host", "192.0.2.10"],
      ["--import", withoutNodeDataChannel()],
    );
    try {
      const url = await run.ready;
      const health = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
      expect(health.transport).toBe("werift");
      const warnings = run
        .stderr()
        .split("\n")
        .filter((l) => /warning/.test(l));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/using the werift transport: .*node-datachannel.*Cannot find package/);
    } finally {
      await stop(run);
    }
  });

  it("--transport node-datachannel without the package exits 1 with TRANSPORT_UNAVAILABLE's install hint", async () => {
    const run = runCli(["--transport", "node-datachannel"], ["--import", withoutNodeDataChannel()]);
    await expect(run.ready).rejects.toThrow(/exited with 1/);
    expect(run.stderr()).toMatch(/npm install node-datachannel/);
  });

  it("the default (werift), --transport node-datachannel and --transport auto (node-datachannel here) are what /healthz reports", async () => {
    for (const [args, expected] of [
      [[], "werift"],
      [["--transport", "node-datachannel"], "node-datachannel"],
      [["--transport", "auto", "--ice-host", "192.0.2.10"], "node-datachannel"],
    ] as const) {
      const run = runCli([...args]);
      try {
        const url = await run.ready;
        const health = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
        expect(health.transport).toBe(expected);
        expect(run.stderr()).not.toMatch(/warning/);
      } finally {
        await stop(run);
      }
    }
  });

  it("refuses an unknown --transport", async () => {
    const run = runCli(["--transport", "libwebrtc"]);
    await expect(run.ready).rejects.toThrow(/exited with 1/);
    expect(run.stderr()).toMatch(/--transport.*libwebrtc|Allowed choices/);
  });
});
