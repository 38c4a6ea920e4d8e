// What a web page that uploads a file pulls in (bundled by scripts/consumer/check.mjs).
import { InferenceClient } from "@vidrtc/browser";

export async function upload(file: File, apiUrl: string): Promise<number> {
  const client = new InferenceClient({ apiUrl });
  const session = await client.webrtc.stream({ source: file, workflow: "motion", dataOutput: ["*"] });
  let frames = 0;
  for await (const result of session) frames = Math.max(frames, result.frameId);
  await session.done;
  return frames;
}
