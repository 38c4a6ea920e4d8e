/**
 * Child processes of this test process, read from /proc (Linux): e.g. the ffmpeg children an
 * in-process server spawns, to check that none outlives its session.
 */
import type { ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";

/** Pids of live (not zombie) processes named `name` whose parent is this process. */
export async function childProcesses(name: string): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      if (comm === name && Number(fields[1]) === process.pid && fields[0] !== "Z") out.push(Number(entry));
    } catch {
      // ended while we looked
    }
  }
  return out;
}

/** Collects a child's stdout as non-empty lines (as they arrive) and its stderr as text. */
export function collectOutput(proc: ChildProcess): { lines: string[]; stderr: () => string } {
  const lines: string[] = [];
  let rest = "";
  let stderr = "";
  proc.stdout?.setEncoding("utf8");
  proc.stdout?.on("data", (d: string) => {
    const parts = (rest + d).split("\n");
    rest = parts.pop() ?? "";
    lines.push(...parts.filter((l) => l.trim() !== ""));
  });
  proc.stderr?.on("data", (d) => {
    stderr += d;
  });
  return { lines, stderr: () => stderr };
}
