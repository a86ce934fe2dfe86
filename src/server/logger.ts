/**
 * The process logger. Nothing on the request path passes objects to it except the access log,
 * which copies allowlisted fields; no serializers for requests, responses or errors exist.
 *
 * Lines are buffered (4 KiB, asynchronous writes): one write per line would cost a system call
 * per request. `flushLogger` at shutdown writes what is buffered; a crash can lose the last
 * few kilobytes of log, never usage (that is in the database).
 */
import { pino, type Logger } from 'pino';

export interface Logging {
  logger: Logger;
  /** The logger's destination, for the access log's pre-formatted lines. */
  destination: { write(line: string): unknown };
}

export function createLogging(level: string, destination?: NodeJS.WritableStream): Logging {
  const opts = { level, base: { service: 'maxrouter' }, serializers: {} };
  const dest = destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return { logger: pino(opts, dest as never), destination: dest as Logging['destination'] };
}

/** Writes buffered log lines out (at shutdown). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
