/**
 * The process logger. Nothing on the request path passes objects to it except the access log,
 * which copies allowlisted fields; no serializers for requests, responses or errors exist.
 *
 * Lines are buffered (4 KiB, asynchronous writes): one write per line would cost a system call
 * per request. The buffer is also written out every second, or a quiet server's lines would
 * wait for kilobytes more (a handful of requests could sit unseen for hours); `flushLogger` at
 * shutdown writes the rest. A crash can lose the last second of log, never usage (that is in
 * the database).
 */
import { pino, type Logger } from 'pino';

export interface Logging {
  logger: Logger;
  /** The logger's destination, for the access log's pre-formatted lines. */
  destination: { write(line: string): unknown };
}

export interface LoggingOptions {
  /** File descriptor of the default destination (1, stdout). */
  fd?: number;
  /** How often buffered lines are written out at the latest, in ms (default 1 000). */
  flushMs?: number;
}

export function createLogging(level: string, destination?: NodeJS.WritableStream, opts: LoggingOptions = {}): Logging {
  const loggerOpts = { level, base: { service: 'maxrouter' }, serializers: {} };
  const dest =
    destination ?? pino.destination({ dest: opts.fd ?? 1, sync: false, minLength: 4096, periodicFlush: opts.flushMs ?? 1000 });
  return { logger: pino(loggerOpts, dest as never), destination: dest as Logging['destination'] };
}

/** Writes buffered log lines out (at shutdown). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
