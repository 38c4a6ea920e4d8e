/**
 * One server session, split by job: the lifecycle, and the session that ties the peer, the upload
 * to disk, processing and the result sender together.
 */
export { Lifecycle, type SessionState } from "./lifecycle.js";
export { Session, type SessionEvent, type SessionOptions, starWithNamesWarning } from "./session.js";
