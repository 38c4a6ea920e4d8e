import { VidrtcError } from "@vidrtc/protocol";
import { describe, expect, it } from "vitest";
import { VideoFileSource } from "./file-source.js";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream as unknown as AsyncIterable<Uint8Array>) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** A Blob that counts `stream()` calls and can fail its reads. */
class SpyBlob extends Blob {
  streams = 0;
  failAfter: number | null = null;
  override stream(): ReadableStream<Uint8Array<ArrayBuffer>> {
    this.streams++;
    const inner = super.stream().getReader();
    let reads = 0;
    const failAfter = this.failAfter;
    return new ReadableStream({
      async pull(controller) {
        if (failAfter !== null && reads++ >= failAfter) {
          controller.error(new DOMException("The requested file could not be read", "NotReadableError"));
          return;
        }
        const { done, value } = await inner.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
    });
  }
}

describe("VideoFileSource", () => {
  it("streams exactly the file's bytes, lazily", async () => {
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
    const blob = new SpyBlob([bytes]);
    const source = await new VideoFileSource(blob).prepare();
    expect(source.size).toBe(bytes.byteLength);
    expect(source.name).toBe("video");
    const stream = source.stream();
    expect(blob.streams).toBe(0); // nothing read until pulled
    expect(await readAll(stream)).toEqual(bytes);
    expect(blob.streams).toBe(1);
  });

  it("keeps a File's name, or takes one from the options", async () => {
    const file = new File([new Uint8Array(10)], "clip.mp4", { type: "video/mp4" });
    expect((await new VideoFileSource(file).prepare()).name).toBe("clip.mp4");
    expect(new VideoFileSource(file, { name: "other.mp4" }).name).toBe("other.mp4");
  });

  it("refuses an empty file with EMPTY_FILE before reading anything", async () => {
    const blob = new SpyBlob([]);
    const error = await new VideoFileSource(blob, { name: "empty.mp4" }).prepare().catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "EMPTY_FILE")).toBe(true);
    expect((error as Error).message).toMatch(/^empty\.mp4: /);
    expect(blob.streams).toBe(0);
  });

  it("refuses a file over the cap with FILE_TOO_LARGE (constructor or prepare option)", async () => {
    const blob = new SpyBlob([new Uint8Array(100_001)]);
    const viaConstructor = await new VideoFileSource(blob, { maxBytes: 100_000 })
      .prepare()
      .catch((e: unknown) => e);
    expect(VidrtcError.hasCode(viaConstructor, "FILE_TOO_LARGE")).toBe(true);
    const viaPrepare = await new VideoFileSource(blob).prepare({ maxBytes: 50_000 }).catch((e: unknown) => e);
    expect(VidrtcError.hasCode(viaPrepare, "FILE_TOO_LARGE")).toBe(true);
    expect((viaPrepare as VidrtcError).details).toMatchObject({ size: 100_001, maxBytes: 50_000 });
    await expect(new VideoFileSource(blob).prepare({ maxBytes: 100_001 })).resolves.toMatchObject({
      size: 100_001,
    });
    expect(blob.streams).toBe(0);
  });

  it("reports a read failure as FILE_UNREADABLE", async () => {
    const blob = new SpyBlob([new Uint8Array(200_000)]);
    blob.failAfter = 1;
    const source = await new VideoFileSource(blob, { name: "gone.mp4" }).prepare();
    const error = await readAll(source.stream()).catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "FILE_UNREADABLE")).toBe(true);
    expect((error as Error).message).toContain("gone.mp4");
  });

  it("honours an aborted signal and rejects non-Blob input", async () => {
    const signal = AbortSignal.abort();
    const error = await new VideoFileSource(new Blob(["x"])).prepare({ signal }).catch((e: unknown) => e);
    expect(VidrtcError.hasCode(error, "ABORTED")).toBe(true);
    expect(() => new VideoFileSource("clip.mp4" as unknown as Blob)).toThrow(/File or Blob/);
  });
});
