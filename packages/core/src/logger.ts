import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

/**
 * Paths that may carry credentials where log calls put them: request and
 * response headers as pino-http logs them, and `token`/`key`/`password`/
 * `secret` fields at the top level or one object down. pino redaction works
 * on fixed paths, so deeper objects are not covered: never log an object
 * that holds a secret; log its id or display prefix instead.
 */
export const REDACTED_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  "headers.authorization",
  "headers.cookie",
  "authorization",
  "token",
  "*.token",
  "key",
  "*.key",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "adminToken",
  "*.adminToken",
] as const;

export interface CreateLoggerOptions {
  name: string;
  level?: LoggerOptions["level"];
  /** Where log lines go; defaults to stdout. Tests pass a stream to read them. */
  destination?: pino.DestinationStream;
}

/** Bytes of log lines stdout holds before writing them; they never wait longer than `STDOUT_FLUSH_MS`. */
const STDOUT_BUFFER_BYTES = 4096;
const STDOUT_FLUSH_MS = 100;

/**
 * Standard output, written in batches: the gateway writes a decision line
 * per request, and one write system call per line was a tenth of its CPU
 * under load (docs/benchmarks.md). Lines wait until 4 KiB are buffered or
 * 100 ms have passed, and are written at exit, on a crash included (pino
 * flushes the destination on `exit`); only a SIGKILL can lose the last
 * 100 ms of lines. The audit records do not depend on them.
 */
function bufferedStdout(): pino.DestinationStream {
  return pino.destination({
    dest: 1,
    sync: false,
    minLength: STDOUT_BUFFER_BYTES,
    periodicFlush: STDOUT_FLUSH_MS,
  });
}

/** Structured JSON logger with the project's redaction list applied. */
export function createLogger({ name, level = "info", destination }: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    name,
    level,
    redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(options, destination ?? bufferedStdout());
}

/**
 * A child logger without the redaction pass, for lines whose every field the
 * caller chose and none holds a secret (the gateway's decision line, built
 * from the audit record). pino's wildcard paths cost about 35 µs on a line
 * of that size, on every request.
 */
export function withoutRedaction(logger: Logger): Logger {
  return logger.child({}, { redact: [] });
}
