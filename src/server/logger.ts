/**
 * The process logger. Nothing on the request path passes objects to it except the access log,
 * which copies allowlisted fields; no serializers for requests, responses or errors exist.
 */
import { pino, type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = { level, base: { service: 'maxrouter' }, serializers: {} };
  return destination ? pino(opts, destination as never) : pino(opts);
}
