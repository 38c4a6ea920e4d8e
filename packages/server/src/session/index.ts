export { Lifecycle, type SessionState } from "./lifecycle.js";
export { Session, type SessionEvent, type SessionOptions, starWithNamesWarning } from "./session.js";
