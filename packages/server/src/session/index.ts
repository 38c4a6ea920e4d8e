export { Lifecycle, type SessionState } from "./lifecycle.js";
export { type SessionEvent, type SessionOptions, Session, starWithNamesWarning } from "./session.js";
