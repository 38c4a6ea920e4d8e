/**
 * The vidrtc demo page: pick or drop a video, choose a workflow, watch the upload, then the
 * processed video with the motion boxes drawn live from the results. Served by `vidrtc-server
 * --demo` (which ships this page's build), so the API URL is the page's own origin (override
 * with `?api=http://host:port`, or signal through a backend's proxy with `?proxy=/api/vidrtc`).
 */
import {
  InferenceClient,
  type ResultMessage,
  type UploadProgress,
  type VideoSession,
  VidrtcError,
} from "../src/index.js";

/** A motion box as the `motion` workflow reports it: `x`, `y` are the box centre, in source pixels. */
interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  confidence?: number;
  class?: string;
}

type State = "idle" | "connecting" | "uploading" | "processing" | "done" | "error" | "cancelled";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const ui = {
  file: $<HTMLInputElement>("file"),
  drop: $<HTMLLabelElement>("drop"),
  fileInfo: $<HTMLParagraphElement>("file-info"),
  workflow: $<HTMLSelectElement>("workflow"),
  wantVideo: $<HTMLInputElement>("want-video"),
  start: $<HTMLButtonElement>("start"),
  cancel: $<HTMLButtonElement>("cancel"),
  progress: $<HTMLDivElement>("progress"),
  bar: $<HTMLDivElement>("progress-bar"),
  pct: $<HTMLSpanElement>("progress-pct"),
  detail: $<HTMLSpanElement>("progress-detail"),
  status: $<HTMLParagraphElement>("status"),
  error: $<HTMLDivElement>("error"),
  stage: $<HTMLDivElement>("stage"),
  video: $<HTMLVideoElement>("video"),
  freeze: $<HTMLCanvasElement>("freeze"),
  overlay: $<HTMLCanvasElement>("overlay"),
  badge: $<HTMLSpanElement>("frame-badge"),
  results: $<HTMLOListElement>("results"),
  count: $<HTMLSpanElement>("results-count"),
  server: $<HTMLDivElement>("server-status"),
  stageEmpty: $<HTMLDivElement>("stage-empty"),
};

const params = new URLSearchParams(location.search);
const apiUrl = params.get("api") ?? location.origin;
/** `?proxy=/api/vidrtc`: signal through your backend's `@vidrtc/server/proxy` (no key in the page). */
const proxyUrl = params.get("proxy");
const client = new InferenceClient(proxyUrl ? { proxyUrl } : { apiUrl });

/** At most this many result rows stay in the list (older ones are dropped from the DOM). */
const MAX_ROWS = 2000;

let file: File | null = null;
let controller: AbortController | null = null;
let running = false;
/** Source frame size, from the results' metadata. */
let frameSize: { width: number; height: number } | null = null;
let lastBoxes: Box[] = [];
/** Boxes of recent frames by frame id, to match the video frame on screen. */
const boxesByFrame = new Map<number, Box[]>();
/** Frame rate from the results' metadata (RTP video runs on a 90 kHz clock). */
let fps: number | null = null;
/** RTP timestamp of the first video frame shown (frame 1), and the frame id on screen. */
let rtpFirst: number | null = null;
let videoFrame: number | null = null;
/** frame-stats history for the chart. */
const history: Array<{ brightness: number; contrast: number }> = [];
let resultCount = 0;
let showsVideo = false;

function setState(state: State): void {
  document.body.dataset.state = state;
  const busy = state === "connecting" || state === "uploading" || state === "processing";
  ui.start.disabled = busy || file === null;
  ui.cancel.disabled = !busy;
  ui.file.disabled = busy;
  ui.workflow.disabled = busy;
  ui.wantVideo.disabled = busy || ui.workflow.value !== "motion";
}

function setStatus(text: string): void {
  ui.status.textContent = text;
}

function showError(error: unknown): void {
  const code = VidrtcError.isInstance(error) ? error.code : "ERROR";
  const message = error instanceof Error ? error.message : String(error);
  ui.error.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = code;
  ui.error.append(strong, document.createTextNode(message));
  ui.error.hidden = false;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "ETA …";
  if (seconds < 1) return "ETA <1 s";
  if (seconds < 90) return `ETA ${Math.ceil(seconds)} s`;
  return `ETA ${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function setProgress(p: UploadProgress): void {
  const pct = p.totalBytes > 0 ? Math.min(100, (p.bytesDelivered / p.totalBytes) * 100) : 0;
  const shown = p.bytesDelivered >= p.totalBytes ? 100 : Math.floor(pct);
  ui.bar.style.width = `${pct}%`;
  ui.progress.setAttribute("aria-valuenow", String(shown));
  ui.pct.textContent = `${shown} %`;
  const rate = p.bytesPerSecond > 0 ? `${formatBytes(p.bytesPerSecond)}/s` : "…";
  ui.detail.textContent =
    shown === 100
      ? `${formatBytes(p.totalBytes)} in ${(p.elapsedMs / 1000).toFixed(1)} s · ${rate}`
      : `${formatBytes(p.bytesDelivered)} of ${formatBytes(p.totalBytes)} · ${rate} · ${formatEta(p.etaSeconds)}`;
}

function resetOutput(): void {
  ui.results.replaceChildren();
  ui.error.hidden = true;
  ui.video.srcObject = null;
  ui.video.hidden = true;
  ui.freeze.hidden = true;
  delete ui.freeze.dataset.filled;
  ui.stageEmpty.hidden = true;
  frameSize = null;
  lastBoxes = [];
  boxesByFrame.clear();
  fps = null;
  rtpFirst = null;
  videoFrame = null;
  history.length = 0;
  resultCount = 0;
  ui.count.textContent = "0 frames";
  ui.badge.textContent = "no frames yet";
  ui.bar.style.width = "0%";
  ui.progress.setAttribute("aria-valuenow", "0");
  ui.pct.textContent = "0 %";
  ui.detail.textContent = "Connecting…";
  draw();
}

function chooseFile(f: File | undefined): void {
  if (!f || running) return;
  file = f;
  ui.fileInfo.replaceChildren();
  const name = document.createElement("strong");
  name.textContent = f.name;
  const size = document.createElement("span");
  size.className = "muted";
  size.textContent = formatBytes(f.size);
  ui.fileInfo.append(name, size);
  ui.fileInfo.hidden = false;
  ui.error.hidden = true;
  setStatus("Ready: press Start.");
  setState(document.body.dataset.state === "idle" ? "idle" : (document.body.dataset.state as State));
  ui.start.disabled = false;
}

/** One line summary of a result for the list. */
function summarize(result: ResultMessage): string {
  const out = result.outputs;
  const parts: string[] = [];
  const preds = out.predictions as { predictions?: Box[] } | undefined;
  if (preds && Array.isArray(preds.predictions)) {
    const n = preds.predictions.length;
    parts.push(`${n} ${n === 1 ? "box" : "boxes"}`);
  }
  if (typeof out.motion_score === "number") parts.push(`motion ${(out.motion_score * 100).toFixed(2)} %`);
  const stats = out.stats as { brightness?: number; contrast?: number } | undefined;
  if (stats && typeof stats.brightness === "number") {
    parts.push(`brightness ${stats.brightness.toFixed(1)}`, `contrast ${(stats.contrast ?? 0).toFixed(1)}`);
  }
  if (parts.length === 0) parts.push(Object.keys(out).join(", ") || "no data");
  return parts.join(" · ");
}

function addRow(result: ResultMessage): void {
  const li = document.createElement("li");
  const id = document.createElement("span");
  id.className = "fid";
  id.textContent = `#${result.frameId}`;
  const text = document.createElement("span");
  text.textContent = summarize(result);
  if (result.errors.length > 0) {
    const warn = document.createElement("span");
    warn.className = "warn";
    warn.textContent = ` · ${result.errors.join("; ")}`;
    text.append(warn);
  }
  li.append(id, text);
  ui.results.append(li);
  while (ui.results.childElementCount > MAX_ROWS) ui.results.firstElementChild?.remove();
  ui.results.scrollTop = ui.results.scrollHeight;
}

function onResult(result: ResultMessage): void {
  resultCount += 1;
  const meta = result.metadata;
  if (meta && typeof meta.width === "number" && typeof meta.height === "number" && meta.width > 0) {
    if (!frameSize) ui.stage.style.aspectRatio = `${meta.width} / ${meta.height}`;
    frameSize = { width: meta.width, height: meta.height };
  }
  const preds = result.outputs.predictions as
    | { image?: { width: number; height: number }; predictions?: Box[] }
    | undefined;
  if (typeof meta?.declared_fps === "number" && meta.declared_fps > 0) fps = meta.declared_fps;
  if (preds && Array.isArray(preds.predictions)) {
    lastBoxes = preds.predictions;
    boxesByFrame.set(result.frameId, preds.predictions);
    boxesByFrame.delete(result.frameId - 600);
    if (!frameSize && preds.image) frameSize = { width: preds.image.width, height: preds.image.height };
  }
  const stats = result.outputs.stats as { brightness?: number; contrast?: number } | undefined;
  if (stats && typeof stats.brightness === "number") {
    history.push({ brightness: stats.brightness, contrast: stats.contrast ?? 0 });
  }
  addRow(result);
  ui.count.textContent = `${resultCount} ${resultCount === 1 ? "frame" : "frames"}`;
  if (videoFrame === null) {
    ui.badge.textContent = `frame ${result.frameId}`;
    draw();
  }
}

/**
 * Follows the frames the <video> presents: the server's RTP timestamps advance by 90000 / fps per
 * frame from frame 1, so each presented frame maps to a frame id and its boxes are drawn over it
 * (results usually arrive a little before their video frame). Each frame is also copied to the
 * freeze canvas, which keeps the last picture once the stream ends.
 */
function followVideo(): void {
  const video = ui.video as HTMLVideoElement & {
    requestVideoFrameCallback?: (cb: (now: number, meta: { rtpTimestamp?: number }) => void) => number;
  };
  if (typeof video.requestVideoFrameCallback !== "function") return;
  const onFrame = (_now: number, meta: { rtpTimestamp?: number }) => {
    if (!running) return;
    if (typeof meta.rtpTimestamp === "number" && fps) {
      rtpFirst ??= meta.rtpTimestamp;
      const ticks = (meta.rtpTimestamp - rtpFirst) >>> 0;
      videoFrame = 1 + Math.round((ticks * fps) / 90_000);
      ui.badge.textContent = `frame ${videoFrame}`;
    }
    const freeze = ui.freeze;
    if (video.videoWidth > 0) {
      if (freeze.width !== video.videoWidth) freeze.width = video.videoWidth;
      if (freeze.height !== video.videoHeight) freeze.height = video.videoHeight;
      freeze.getContext("2d")?.drawImage(video, 0, 0);
      freeze.dataset.filled = "1";
    }
    draw();
    video.requestVideoFrameCallback?.(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

/** Boxes for what is on screen: the presented video frame's when known, else the latest result's. */
function currentBoxes(): Box[] {
  if (videoFrame !== null) return boxesByFrame.get(videoFrame) ?? [];
  return lastBoxes;
}

/** The rectangle the video's picture occupies inside the stage (object-fit: contain). */
function contentRect(width: number, height: number, srcW: number, srcH: number) {
  const scale = Math.min(width / srcW, height / srcH);
  const w = srcW * scale;
  const h = srcH * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, scale };
}

function draw(): void {
  const canvas = ui.overlay;
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth;
  const cssH = canvas.clientHeight;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  if (history.length > 0) drawChart(ctx, cssW, cssH);
  if (!frameSize) return;
  const src = frameSize;
  const r = contentRect(cssW, cssH, src.width, src.height);
  if (!showsVideo && ui.workflow.value === "motion") {
    // No video comes back: show the frame's outline so the boxes have a reference.
    ctx.strokeStyle = "#2a3443";
    ctx.lineWidth = 1;
    ctx.strokeRect(r.x + 0.5, r.y + 0.5, src.width * r.scale - 1, src.height * r.scale - 1);
  }
  ctx.lineWidth = 2;
  ctx.font = "600 12px ui-sans-serif, system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  for (const box of currentBoxes()) {
    // Predictions give the box centre; convert to the top-left corner, then to display pixels.
    const x = r.x + (box.x - box.width / 2) * r.scale;
    const y = r.y + (box.y - box.height / 2) * r.scale;
    const w = box.width * r.scale;
    const h = box.height * r.scale;
    ctx.strokeStyle = "#4cc2ff";
    ctx.fillStyle = "rgba(76, 194, 255, 0.14)";
    ctx.fillRect(x, y, w, h);
    ctx.strokeRect(x, y, w, h);
    const label = `${box.class ?? "object"} ${box.confidence !== undefined ? Math.round(box.confidence * 100) : ""}%`;
    const tw = ctx.measureText(label).width + 8;
    const ty = y > 18 ? y : y + h + 18;
    ctx.fillStyle = "#4cc2ff";
    ctx.fillRect(x - 1, ty - 17, tw, 17);
    ctx.fillStyle = "#04121d";
    ctx.fillText(label, x + 3, ty - 2);
  }
}

/** frame-stats: brightness and contrast over the frames, as two lines. */
function drawChart(ctx: CanvasRenderingContext2D, w: number, h: number): void {
  const pad = 28;
  const n = Math.max(2, history.length);
  ctx.strokeStyle = "#1f2936";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad + ((h - 2 * pad) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad, y);
    ctx.lineTo(w - pad, y);
    ctx.stroke();
  }
  const line = (key: "brightness" | "contrast", color: string) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    history.forEach((s, i) => {
      const x = pad + ((w - 2 * pad) * i) / (n - 1);
      const y = h - pad - ((h - 2 * pad) * Math.min(255, s[key])) / 255;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line("brightness", "#4cc2ff");
  line("contrast", "#7c5cff");
  const last = history[history.length - 1]!;
  ctx.font = "600 12px ui-sans-serif, system-ui, sans-serif";
  ctx.textBaseline = "alphabetic";
  const b = `brightness ${last.brightness.toFixed(1)}`;
  ctx.fillStyle = "#4cc2ff";
  ctx.fillText(b, pad, 18);
  ctx.fillStyle = "#7c5cff";
  ctx.fillText(`contrast ${last.contrast.toFixed(1)}`, pad + ctx.measureText(b).width + 16, 18);
  ctx.fillStyle = "#8b98a9";
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  ctx.fillText("255", 2, pad + 4);
  ctx.fillText("0", 10, h - pad + 4);
  ctx.fillText(`frame ${history.length}`, w - pad - 50, h - 8);
}

async function start(): Promise<void> {
  if (!file || running) return;
  running = true;
  controller = new AbortController();
  const workflow = ui.workflow.value;
  showsVideo = workflow === "motion" && ui.wantVideo.checked;
  resetOutput();
  setState("connecting");
  setStatus("Connecting to the server…");
  let session: VideoSession | null = null;
  const startedAt = performance.now();
  try {
    session = await client.webrtc.stream({
      source: file,
      workflow,
      dataOutput: ["*"],
      streamOutput: showsVideo ? ["annotated"] : [],
      signal: controller.signal,
      onUploadProgress: setProgress,
    });
    setState("uploading");
    setStatus("Uploading…");
    if (showsVideo) {
      session.remoteStream().then(
        (stream) => {
          ui.video.hidden = false;
          ui.video.srcObject = stream;
          void ui.video.play().catch(() => {});
          followVideo();
        },
        () => {},
      );
    }
    session.uploaded.then(
      () => {
        if (running) {
          setState("processing");
          setStatus("Upload complete. Processing frames…");
        }
      },
      () => {},
    );
    const summary = await session.run({ onData: onResult });
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    setState("done");
    setStatus(`Done: ${summary.framesProcessed} frames processed in ${seconds} s.`);
  } catch (error) {
    if (VidrtcError.hasCode(error, "ABORTED")) {
      setState("cancelled");
      setStatus("Cancelled.");
    } else {
      setState("error");
      setStatus("The session failed.");
      showError(error);
    }
  } finally {
    if (showsVideo) {
      // The stream ends with the session: keep its last picture on screen, if any came.
      ui.freeze.hidden = ui.freeze.dataset.filled !== "1";
      ui.video.hidden = true;
    }
    if (resultCount === 0 && ui.freeze.hidden) {
      ui.stageEmpty.textContent =
        document.body.dataset.state === "cancelled"
          ? "Cancelled before any frame was processed."
          : "No output.";
      ui.stageEmpty.hidden = false;
    }
    running = false;
    controller = null;
    session?.close();
    setState((document.body.dataset.state as State) ?? "idle");
  }
}

async function checkServer(): Promise<void> {
  try {
    // Through a proxy, its GET (the ICE servers) tells whether the backend is up.
    const url = proxyUrl ? new URL(proxyUrl, location.href) : new URL("/healthz", apiUrl);
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as { status?: string; version?: string };
    ui.server.dataset.ok = res.ok ? "yes" : "no";
    ui.server.textContent = res.ok
      ? proxyUrl
        ? "Proxy ready"
        : `Server ready${body.version ? ` · v${body.version}` : ""}`
      : `Server: HTTP ${res.status}`;
  } catch {
    ui.server.dataset.ok = "no";
    ui.server.textContent = "Server unreachable";
  }
}

ui.file.addEventListener("change", () => chooseFile(ui.file.files?.[0]));
ui.drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  ui.drop.classList.add("over");
});
ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
ui.drop.addEventListener("drop", (e) => {
  e.preventDefault();
  ui.drop.classList.remove("over");
  chooseFile(e.dataTransfer?.files[0]);
});
ui.workflow.addEventListener("change", () => {
  ui.wantVideo.disabled = ui.workflow.value !== "motion";
});
ui.start.addEventListener("click", () => void start());
ui.cancel.addEventListener("click", () => controller?.abort());
window.addEventListener("resize", draw);
ui.video.addEventListener("loadedmetadata", draw);
ui.video.hidden = true;
setState("idle");
void checkServer();
