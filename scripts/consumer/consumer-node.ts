// Type-checked in the consumer project (see scripts/consumer-test.sh) against the installed
// tarballs (the Node packages), with moduleResolution nodenext and bundler and skipLibCheck false.
import { InferenceClient, type SessionSummary, VideoFileSource, VidrtcError } from "@vidrtc/node";
import { createServer, type ServerOptions } from "@vidrtc/server";

export async function run(path: string): Promise<SessionSummary> {
  const client = new InferenceClient({ apiUrl: "http://127.0.0.1:9001" });
  const session = await client.webrtc.stream({
    source: new VideoFileSource(path),
    workflow: "motion",
    workspace: "local",
    dataOutput: ["*"],
  });
  for await (const result of session) {
    const id: number = result.frameId;
    void id;
  }
  return session.done;
}

export function isVidrtcError(e: unknown): string | undefined {
  return e instanceof VidrtcError ? e.code : undefined;
}

export const options: ServerOptions = { port: 0 };
export const server = createServer;
export { weriftTransport } from "@vidrtc/transport";
