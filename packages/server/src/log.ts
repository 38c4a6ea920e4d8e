/**
 * Logging for the local server: one line per session event (and per HTTP error), more detail
 * with `verbose`. A logger is a tiny interface so callers can route lines anywhere.
 */

/** Where the server writes its log lines. */
export interface ServerLogger {
  /** One line per session event (start, upload complete, processing complete, end, errors). */
  info(message: string): void;
  /** Problems: failed sessions, internal errors. */
  error(message: string): void;
  /** Detail, written only when verbose logging is on. */
  debug(message: string): void;
}

/** Options of {@link createConsoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Also write `debug` lines. */
  verbose?: boolean;
  /** Line sink (default: `process.stderr`). A newline is appended to every line. */
  write?: (line: string) => void;
  /** Prefix every line with an ISO timestamp (default true). */
  timestamps?: boolean;
}

/** A logger that writes `<time> <level> <message>` lines to stderr (or `write`). */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): ServerLogger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const stamp = options.timestamps ?? true;
  const line = (level: string, message: string) => {
    write(`${stamp ? `${new Date().toISOString()} ` : ""}${level} ${message}\n`);
  };
  return {
    info: (message) => line("info ", message),
    error: (message) => line("error", message),
    debug: options.verbose ? (message) => line("debug", message) : () => {},
  };
}

/** A logger that drops everything. */
export const silentLogger: ServerLogger = { info() {}, error() {}, debug() {} };

/** Returns a logger whose lines start with `[prefix]`. */
export function prefixLogger(logger: ServerLogger, prefix: string): ServerLogger {
  return {
    info: (message) => logger.info(`[${prefix}] ${message}`),
    error: (message) => logger.error(`[${prefix}] ${message}`),
    debug: (message) => logger.debug(`[${prefix}] ${message}`),
  };
}
