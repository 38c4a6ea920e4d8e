/**
 * The session's lifecycle: a small explicit state machine. Every path ends in `closed`, reached
 * only through the session's single `close()`.
 *
 *     connecting -> uploading -> processing -> done
 *          \            \            \          \
 *           +------------+------------+----------+--> failing --> closed
 *                                                  (any state) --> closed
 */
export type SessionState = "connecting" | "uploading" | "processing" | "done" | "failing" | "closed";

const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  connecting: ["uploading", "failing", "closed"],
  uploading: ["processing", "failing", "closed"],
  processing: ["done", "failing", "closed"],
  done: ["failing", "closed"],
  failing: ["closed"],
  closed: [],
};

/** Holds the current state; refuses transitions the diagram above does not have. */
export class Lifecycle {
  #state: SessionState = "connecting";

  constructor(private readonly onChange: (from: SessionState, to: SessionState) => void = () => {}) {}

  get state(): SessionState {
    return this.#state;
  }

  /** True once the session is failing or closed: no new work may start. */
  get ending(): boolean {
    return this.#state === "failing" || this.#state === "closed";
  }

  /** Moves to `next` when allowed; returns whether it moved. */
  to(next: SessionState): boolean {
    const from = this.#state;
    if (!TRANSITIONS[from].includes(next)) return false;
    this.#state = next;
    this.onChange(from, next);
    return true;
  }
}
