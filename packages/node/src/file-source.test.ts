import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, open, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UPLOAD_CHUNK_SIZE, VidrtcError } from "@vidrtc/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_FILE_READ_SIZE, VideoFileSource } from "./file-source.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vidrtc-file-source-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (VidrtcError.isInstance(error)) return error.code;
    throw error;
  }
  throw new Error("expected a rejection");
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream as unknown as AsyncIterable<Uint8Array>) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

describe("VideoFileSource.prepare", () => {
  it("returns size, name and a stream with the file's exact bytes", async () => {
    const path = join(dir, "clip.mp4");
    const bytes = new Uint8Array(3 * DEFAULT_FILE_READ_SIZE + 12_345).map((_, i) => (i * 31 + 7) & 0xff);
    await writeFile(path, bytes);
    const source = new VideoFileSource(path);
    expect(source.path).toBe(path);
    const prepared = await source.prepare();
    expect(prepared.size).toBe(bytes.byteLength);
    expect(prepared.name).toBe("clip.mp4");
    expect(prepared.path).toBe(path);
    const read = await readAll(prepared.stream());
    expect(read.byteLength).toBe(bytes.byteLength);
    expect(Buffer.compare(read, bytes)).toBe(0);
    // Each call gives a fresh stream from the start.
    expect(Buffer.compare(await readAll(prepared.stream()), bytes)).toBe(0);
  });

  it("reads in pieces of readSize, each a fresh buffer", async () => {
    const path = join(dir, "pieces.bin");
    await writeFile(path, new Uint8Array(10_000).fill(1));
    const prepared = await new VideoFileSource(path, { readSize: 4096 }).prepare();
    const pieces: Uint8Array[] = [];
    for await (const p of prepared.stream() as unknown as AsyncIterable<Uint8Array>) pieces.push(p);
    expect(pieces.map((p) => p.byteLength)).toEqual([4096, 4096, 1808]);
    expect(new Set(pieces.map((p) => p.buffer)).size).toBe(3);
  });

  it("uses a read size that is a whole number of upload chunks", () => {
    expect(DEFAULT_FILE_READ_SIZE % UPLOAD_CHUNK_SIZE).toBe(0);
  });

  it("FILE_NOT_FOUND for a missing file or a path through a file", async () => {
    expect(await codeOf(new VideoFileSource(join(dir, "nope.mp4")).prepare())).toBe("FILE_NOT_FOUND");
    const file = join(dir, "plain.txt");
    await writeFile(file, "x");
    expect(await codeOf(new VideoFileSource(join(file, "child.mp4")).prepare())).toBe("FILE_NOT_FOUND");
    const dangling = join(dir, "dangling.mp4");
    await symlink(join(dir, "missing-target"), dangling);
    expect(await codeOf(new VideoFileSource(dangling).prepare())).toBe("FILE_NOT_FOUND");
  });

  it("FILE_UNREADABLE for a directory and for a FIFO", async () => {
    expect(await codeOf(new VideoFileSource(dir).prepare())).toBe("FILE_UNREADABLE");
    const fifo = join(dir, "pipe");
    execFileSync("mkfifo", [fifo]);
    expect(await codeOf(new VideoFileSource(fifo).prepare())).toBe("FILE_UNREADABLE");
  });

  it("FILE_UNREADABLE when permission is denied", async (context) => {
    const path = join(dir, "secret.mp4");
    await writeFile(path, "data");
    await chmod(path, 0o000);
    // Root (and CAP_DAC_OVERRIDE) reads anything, so this case only exists for other users.
    const readable = await open(path, "r").then(
      async (h) => {
        await h.close();
        return true;
      },
      () => false,
    );
    if (readable) {
      context.skip("running with permission to read mode-000 files (root): EACCES cannot be produced");
      return;
    }
    expect(await codeOf(new VideoFileSource(path).prepare())).toBe("FILE_UNREADABLE");
  });

  it("EMPTY_FILE for 0 bytes", async () => {
    const path = join(dir, "empty.mp4");
    await writeFile(path, "");
    expect(await codeOf(new VideoFileSource(path).prepare())).toBe("EMPTY_FILE");
  });

  it("FILE_TOO_LARGE over the cap (constructor or prepare option), with the path in the message", async () => {
    const path = join(dir, "big.mp4");
    await writeFile(path, new Uint8Array(1001));
    expect(await codeOf(new VideoFileSource(path, { maxBytes: 1000 }).prepare())).toBe("FILE_TOO_LARGE");
    expect(await codeOf(new VideoFileSource(path).prepare({ maxBytes: 1000 }))).toBe("FILE_TOO_LARGE");
    await expect(new VideoFileSource(path).prepare({ maxBytes: 1000 })).rejects.toThrow(path);
    // prepare's option wins over the constructor's.
    await expect(
      new VideoFileSource(path, { maxBytes: 10 }).prepare({ maxBytes: 1001 }),
    ).resolves.toMatchObject({
      size: 1001,
    });
  });

  it("ABORTED for an aborted signal; INVALID_OPTIONS for bad arguments", async () => {
    const path = join(dir, "a.mp4");
    await writeFile(path, "abc");
    const controller = new AbortController();
    controller.abort();
    expect(await codeOf(new VideoFileSource(path).prepare({ signal: controller.signal }))).toBe("ABORTED");
    expect(() => new VideoFileSource("")).toThrow(VidrtcError);
    expect(() => new VideoFileSource(path, { readSize: 0 })).toThrow(VidrtcError);
  });
});

describe("VideoFileSource streaming", () => {
  it("reads nothing until pulled and can be cancelled", async () => {
    const path = join(dir, "lazy.bin");
    await writeFile(path, new Uint8Array(DEFAULT_FILE_READ_SIZE * 4));
    const prepared = await new VideoFileSource(path).prepare();
    const stream = prepared.stream();
    const reader = stream.getReader();
    const first = await reader.read();
    expect(first.value?.byteLength).toBe(DEFAULT_FILE_READ_SIZE);
    await reader.cancel();
    await expect(reader.read()).resolves.toEqual({ done: true, value: undefined });
  });

  it("streams a 512 MiB sparse file with bounded memory", async () => {
    const path = join(dir, "sparse.bin");
    const size = 512 * 1024 * 1024;
    await writeFile(path, "");
    await truncate(path, size);
    const prepared = await new VideoFileSource(path).prepare({ maxBytes: size });
    expect(prepared.size).toBe(size);
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let total = 0;
    let pieces = 0;
    for await (const piece of prepared.stream() as unknown as AsyncIterable<Uint8Array>) {
      total += piece.byteLength;
      if (++pieces % 256 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(total).toBe(size);
    // A whole-file read would add 512 MiB; a lazy one adds a few pieces (garbage collection may lag).
    expect(peak - baseline).toBeLessThan(128 * 1024 * 1024);
  }, 60_000);

  it("reports a file that disappears mid-read as an error, not a short stream", async () => {
    const path = join(dir, "vanishing.bin");
    await writeFile(path, new Uint8Array(DEFAULT_FILE_READ_SIZE * 2));
    const prepared = await new VideoFileSource(path).prepare();
    await rm(path);
    expect(await codeOf(readAll(prepared.stream()))).toBe("FILE_NOT_FOUND");
  });
});
