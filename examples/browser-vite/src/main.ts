/**
 * The whole app: a file input, upload progress, one list item per result and the processed
 * video, on @vidrtc/browser. The page is served by (or proxied to) the inference server, so
 * `location.origin` is its URL; `?api=http://host:port` points it elsewhere.
 */
import { InferenceClient, type ResultMessage, type UploadProgress, VidrtcError } from "@vidrtc/browser";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

const ui = {
  file: byId<HTMLInputElement>("file"),
  progress: byId<HTMLProgressElement>("progress"),
  percent: byId<HTMLSpanElement>("percent"),
  status: byId<HTMLParagraphElement>("status"),
  video: byId<HTMLVideoElement>("video"),
  framesShown: byId<HTMLSpanElement>("frames-shown"),
  count: byId<HTMLSpanElement>("count"),
  results: byId<HTMLOListElement>("results"),
};

type State = "idle" | "connecting" | "uploading" | "processing" | "done" | "error";
function setState(state: State, status: string): void {
  document.body.dataset.state = state; // for styling, and for the test that drives this page
  ui.status.textContent = status;
}

function showProgress(p: UploadProgress): void {
  const percent = p.totalBytes > 0 ? Math.floor((p.bytesDelivered / p.totalBytes) * 100) : 0;
  ui.progress.value = percent;
  ui.percent.textContent = `${percent} %`;
}

function addResult(result: ResultMessage): void {
  const li = document.createElement("li");
  li.dataset.frameId = String(result.frameId);
  const score = result.outputs.motion_score;
  li.textContent = `frame ${result.frameId}: ${
    typeof score === "number"
      ? `motion ${(score * 100).toFixed(2)} %`
      : Object.keys(result.outputs).join(", ")
  }${result.errors.length > 0 ? ` (errors: ${result.errors.join("; ")})` : ""}`;
  ui.results.append(li);
  ui.count.textContent = String(ui.results.childElementCount);
}

/** Counts the frames the <video> actually presents. */
function countShownFrames(): void {
  let shown = 0;
  const onFrame = (_now: number, frame: VideoFrameCallbackMetadata) => {
    shown++;
    ui.framesShown.textContent = String(shown);
    ui.framesShown.dataset.size = `${frame.width}x${frame.height}`;
    ui.video.requestVideoFrameCallback(onFrame);
  };
  ui.video.requestVideoFrameCallback(onFrame);
}

const apiUrl = new URLSearchParams(location.search).get("api") ?? location.origin;
const client = new InferenceClient({ apiUrl });

async function run(file: File): Promise<void> {
  ui.file.disabled = true;
  ui.results.replaceChildren();
  ui.count.textContent = "0";
  setState("connecting", `Connecting to ${apiUrl}…`);
  try {
    const session = await client.webrtc.stream({
      source: file,
      workflow: "motion",
      dataOutput: ["*"],
      streamOutput: ["annotated"],
      onUploadProgress: showProgress,
      signal: AbortSignal.timeout(300_000),
    });
    setState("uploading", "Uploading…");
    session.remoteStream().then(
      (stream) => {
        ui.video.srcObject = stream;
        void ui.video.play().catch(() => {});
      },
      () => {}, // the session's own error is shown below
    );
    session.uploaded.then(
      () => setState("processing", "Uploaded; processing frames…"),
      () => {},
    );
    const summary = await session.run({ onData: addResult });
    setState(
      "done",
      `Done: ${summary.framesProcessed} frames processed, ${summary.resultsReceived} results.`,
    );
  } catch (error) {
    const code = VidrtcError.isInstance(error) ? `${error.code}: ` : "";
    setState("error", `Failed: ${code}${error instanceof Error ? error.message : String(error)}`);
  } finally {
    ui.file.disabled = false;
  }
}

countShownFrames();
ui.file.addEventListener("change", () => {
  const file = ui.file.files?.[0];
  if (file) void run(file);
});
