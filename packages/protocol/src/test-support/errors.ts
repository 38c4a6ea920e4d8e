/**
 * Assertions for tests that expect a `VidrtcError` (not part of the published build).
 */
import { expect } from "vitest";
import { VidrtcError } from "../errors.js";

/** Runs `fn`, asserts it throws a `VidrtcError`, returns it. */
export function thrown(fn: () => unknown): VidrtcError {
  try {
    fn();
  } catch (error) {
    expect(VidrtcError.isInstance(error)).toBe(true);
    return error as VidrtcError;
  }
  throw new Error("expected a throw");
}

/** Awaits `promise`, asserts it rejects with a `VidrtcError`, returns it. */
export async function rejection(promise: Promise<unknown>): Promise<VidrtcError> {
  try {
    await promise;
  } catch (error) {
    expect(VidrtcError.isInstance(error)).toBe(true);
    return error as VidrtcError;
  }
  throw new Error("expected a rejection");
}

function checkCode(e: VidrtcError, code: string, pattern?: RegExp): VidrtcError {
  expect(e.code).toBe(code);
  if (pattern) expect(e.message).toMatch(pattern);
  return e;
}

/** `thrown(fn)` with the expected `code` (and message `pattern`). */
export function expectCode(fn: () => unknown, code: string, pattern?: RegExp): VidrtcError {
  return checkCode(thrown(fn), code, pattern);
}

/** `rejection(promise)` with the expected `code` (and message `pattern`). */
export async function expectCodeAsync(
  promise: Promise<unknown>,
  code: string,
  pattern?: RegExp,
): Promise<VidrtcError> {
  return checkCode(await rejection(promise), code, pattern);
}
