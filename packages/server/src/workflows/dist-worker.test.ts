/**
 * The built (.js) path of WorkflowRunner: compile the workflow modules to JavaScript the way the package's
 * dist has them (one .js per .ts, same layout) and run them in a plain Node process, where the runner must
 * start `./worker.js` without tsx.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { transform } from "esbuild";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = join(here, "..", "..");

describe("WorkflowRunner from compiled JavaScript", () => {
  it("starts worker.js and processes frames off the main thread", async () => {
    // Inside the package's node_modules/.cache so bare imports (@vidrtc/protocol, jpeg-js) resolve as in dist.
    const out = join(packageRoot, "node_modules", ".cache", `vidrtc-dist-test-${process.pid}-${Date.now()}`);
    try {
      // Every module of the folder (the built-ins live in builtin/), as the build emits them.
      const entries = await readdir(here, { recursive: true });
      const modules = entries.filter(
        (name) => name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.includes("test-support"),
      );
      expect(modules).toEqual(expect.arrayContaining(["index.ts", "worker.ts", "registry.ts"]));
      for (const name of modules) {
        const source = await readFile(join(here, name), "utf8");
        const { code } = await transform(source, { loader: "ts", format: "esm", target: "node20" });
        const target = join(out, "workflows", name.replace(/\.ts$/, ".js"));
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, code);
      }
      const script = `
        import { WorkflowRunner, resolveWorkflow } from ${JSON.stringify(join(out, "workflows", "index.js"))};
        import { threadId } from "node:worker_threads";
        const runner = new WorkflowRunner(resolveWorkflow({ workflow_id: "frame-stats" }));
        const rgb = new Uint8Array(4 * 4 * 3).fill(100);
        const r = await runner.process({ index: 1, ptsSeconds: 0, width: 4, height: 4, rgb });
        console.log(JSON.stringify({ stats: r.data.stats, worker: runner.threadId, main: threadId }));
        await runner.close();
      `;
      const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
        timeout: 30_000,
        cwd: out,
      });
      const result = JSON.parse(stdout.trim()) as {
        stats: { brightness: number };
        worker: number;
        main: number;
      };
      expect(result.stats.brightness).toBe(100);
      expect(result.main).toBe(0);
      expect(result.worker).toBeGreaterThan(0);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
