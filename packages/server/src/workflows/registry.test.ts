/**
 * The registry is the only place a workflow is wired in: a workflow defined in one file (test-support/
 * invert.ts) and registered in a registry instance is accepted by request validation (with its own
 * parameter schema), run in the worker thread, and served by the HTTP server given that registry.
 */
import { threadId } from "node:worker_threads";
import { VidrtcError } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../log.js";
import { createServer, type VidrtcServer } from "../server.js";
import { WorkflowEngine } from "./engine.js";
import { BUILTIN_WORKFLOWS, resolveWorkflow, WorkflowRegistry, WorkflowRunner } from "./index.js";
import invert from "./test-support/invert.js";
import { ParameterError } from "./workflow.js";

const INVERT_MODULE = new URL("./test-support/invert.ts", import.meta.url);

function registry(): WorkflowRegistry {
  return WorkflowRegistry.withBuiltins().register(invert, { module: INVERT_MODULE });
}

function thrown(fn: () => unknown): VidrtcError {
  try {
    fn();
  } catch (error) {
    expect(VidrtcError.isInstance(error)).toBe(true);
    return error as VidrtcError;
  }
  throw new Error("expected an error");
}

describe("WorkflowRegistry", () => {
  it("holds the built-ins in order, as BUILTIN_WORKFLOWS lists them", () => {
    expect(WorkflowRegistry.withBuiltins().ids()).toEqual(["frame-stats", "delay", "motion"]);
    expect(WorkflowRegistry.withBuiltins().definitions()).toEqual(BUILTIN_WORKFLOWS);
  });

  it("resolves a registered workflow by id and by specification, validating its own schema", () => {
    const r = registry();
    expect(r.ids()).toEqual(["frame-stats", "delay", "motion", "invert"]);
    const def = resolveWorkflow({ workflow_id: "invert" }, r);
    expect(def.outputs).toEqual([
      { name: "inverted_mean", kind: "data" },
      { name: "inverted", kind: "image" },
    ]);
    const spec = r.resolve({ workflow_specification: { steps: [{ type: "vidrtc/invert@v1", gain: "2" }] } });
    expect(spec).toMatchObject({ id: "invert", parameters: { gain: "2" } });
    expect(r.normalizeParameters("invert", { gain: "2", threshold: 999 })).toEqual({ gain: 2 });
    const e = thrown(() =>
      r.resolve({ workflow_specification: { builtin: "invert", parameters: { gain: 9 } } }),
    );
    expect(e.code).toBe("BAD_REQUEST");
    expect(e.message).toContain('"gain" must be a number from 1 to 4');
    const cause = (e as { cause?: unknown }).cause;
    expect(cause).toBeInstanceOf(ParameterError);
    expect((cause as ParameterError).issue).toEqual({
      type: "less_than_equal",
      parameter: "gain",
      msg: e.message,
      input: 9,
      ctx: { le: 4 },
    });
    expect(() => r.normalizeParameters("invert", { gain: 1.5 })).toThrow(/integer/);
    // Only that registry knows it.
    expect(thrown(() => resolveWorkflow({ workflow_id: "invert" })).code).toBe("NOT_FOUND");
  });

  it("refuses duplicate ids, bad ids, and a non-built-in without a module URL", () => {
    expect(thrown(() => registry().register(invert, { module: INVERT_MODULE })).code).toBe("BAD_REQUEST");
    expect(thrown(() => new WorkflowRegistry().register(invert)).message).toMatch(/module/);
    expect(
      thrown(() => new WorkflowRegistry().register({ ...invert, id: "Bad Id" }, { module: "x" })).code,
    ).toBe("BAD_REQUEST");
  });

  it("runs the registered workflow in the engine, with its schema's defaults", () => {
    const engine = new WorkflowEngine("invert", {}, registry());
    const rgb = new Uint8Array(2 * 2 * 3).fill(55);
    const out = engine.process({ index: 1, ptsSeconds: 0, width: 2, height: 2, rgb }, { rgb: ["inverted"] });
    expect(out.data.inverted_mean).toEqual({ mean: 200, frames: 1 });
    expect(Array.from(out.images.inverted!.rgb!)).toEqual(new Array(12).fill(200));
    expect(() => new WorkflowEngine("invert", {})).toThrow(/Unknown built-in workflow "invert"/);
  });

  it("runs the registered workflow end to end in the worker thread, loaded from its module", async () => {
    const r = registry();
    const def = r.resolve({ workflow_specification: { builtin: "invert", parameters: { gain: 2 } } });
    expect(thrown(() => new WorkflowRunner(def)).code).toBe("NOT_FOUND");
    const runner = new WorkflowRunner(def, { registry: r });
    try {
      const rgb = new Uint8Array(4 * 2 * 3).fill(200);
      const first = await runner.process(
        { index: 1, ptsSeconds: 0, width: 4, height: 2, rgb },
        { jpeg: ["inverted"], rgb: ["inverted"] },
      );
      const second = await runner.process({ index: 2, ptsSeconds: 0.04, width: 4, height: 2, rgb });
      expect(first.data.inverted_mean).toEqual({ mean: 110, frames: 1 });
      expect(second.data.inverted_mean).toEqual({ mean: 110, frames: 2 });
      expect(Array.from(first.images.inverted!.rgb!)).toEqual(new Array(24).fill(110));
      expect([first.images.inverted!.jpeg![0], first.images.inverted!.jpeg![1]]).toEqual([0xff, 0xd8]);
      expect(second.images).toEqual({});
      expect(runner.threadId).toBeGreaterThan(0);
      expect(runner.threadId).not.toBe(threadId);
    } finally {
      await runner.close();
    }
  });
});

describe("a server given the registry", () => {
  let custom: VidrtcServer;
  let builtin: VidrtcServer;
  let customUrl: string;
  let builtinUrl: string;
  beforeAll(async () => {
    custom = createServer({ port: 0, logger: silentLogger, workflows: registry() });
    builtin = createServer({ port: 0, logger: silentLogger });
    customUrl = (await custom.listen()).url;
    builtinUrl = (await builtin.listen()).url;
  });
  afterAll(async () => {
    await custom?.close();
    await builtin?.close();
  });

  async function post(
    base: string,
    configuration: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ) {
    const res = await fetch(`${base}/initialise_webrtc_worker`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        workflow_configuration: { type: "WorkflowConfiguration", workspace_name: "w", ...configuration },
        // Not a usable offer: a request that passes workflow validation stops at the SDP check.
        webrtc_offer: { type: "offer", sdp: "v=0\r\n" },
        ...extra,
      }),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it("accepts the workflow's id and output names, which the built-in server does not know", async () => {
    const ok = await post(
      customUrl,
      { workflow_id: "invert" },
      { data_output: ["inverted_mean"], stream_output: ["inverted"] },
    );
    expect(ok.status).toBe(400);
    expect(ok.json.message).toMatch(/Invalid WebRTC offer/);
    const unknown = await post(builtinUrl, { workflow_id: "invert" });
    expect(unknown.status).toBe(404);
    const badOutput = await post(customUrl, { workflow_id: "invert" }, { stream_output: ["inverted_mean"] });
    expect(badOutput.json.message).toMatch(/'inverted_mean' is not an image output/);
  });

  it("answers an invalid parameter with a 400 naming it, with a FastAPI-style issue", async () => {
    const res = await post(customUrl, { workflow_id: "invert", workflows_parameters: { gain: 0 } });
    expect(res.status).toBe(400);
    expect(res.json.error_type).toBe("WorkflowSyntaxError");
    expect(res.json.message).toMatch(/"gain" must be a number from 1 to 4/);
    expect(res.json.detail).toEqual([
      {
        type: "greater_than_equal",
        loc: ["body", "workflow_configuration", "workflows_parameters", "gain"],
        msg: res.json.message,
        input: 0,
        ctx: { ge: 1 },
      },
    ]);
    const spec = await post(customUrl, {
      workflow_specification: { builtin: "invert", parameters: { gain: "lots" } },
    });
    expect(spec.status).toBe(400);
    expect(spec.json.detail).toEqual([
      expect.objectContaining({
        type: "float_parsing",
        loc: ["body", "workflow_configuration", "workflow_specification", "gain"],
        input: "lots",
      }),
    ]);
  });
});
