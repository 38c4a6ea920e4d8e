// Type-checked in the consumer project (see scripts/consumer-test.sh) against the installed
// tarballs (the runtime-independent packages), with moduleResolution nodenext and bundler and
// skipLibCheck false.
import { InferenceClient, type SessionSummary, VidrtcError } from "@vidrtc/browser";
import { createUploadStream, type DataChannelLike, type PeerConnectionLike } from "@vidrtc/protocol";
import { startSession } from "@vidrtc/protocol/session";

export async function run(file: File): Promise<SessionSummary> {
  const client = new InferenceClient({ apiUrl: "http://127.0.0.1:9001" });
  const session = await client.webrtc.stream({ source: file, workflow: "motion", dataOutput: ["*"] });
  for await (const result of session) {
    const id: number = result.frameId;
    void id;
  }
  return session.done;
}

export function isVidrtcError(e: unknown): string | undefined {
  return e instanceof VidrtcError ? e.code : undefined;
}

export const upload = createUploadStream;
export const session = startSession;
export type Seams = [DataChannelLike, PeerConnectionLike];
