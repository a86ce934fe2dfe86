/**
 * The access log: one line per request built from an allowlist of metadata fields. Nothing
 * else is ever passed to the logger on the request path — no bodies, no headers, no upstream
 * error text, no error messages of unknown origin.
 */
import type { Logger } from 'pino';

/** Every field the gateway may log about a request. Adding one here is a privacy decision (docs/privacy.md). */
export const ACCESS_LOG_FIELDS = [
  'reqId',
  'generationId',
  'keyId',
  'accountId',
  'model',
  'provider',
  'status',
  'errorCode',
  'streamed',
  'promptTokens',
  'completionTokens',
  'latencyMs',
] as const;

export type AccessLogEntry = Partial<Record<(typeof ACCESS_LOG_FIELDS)[number], string | number | boolean>>;

export class AccessLog {
  constructor(private readonly logger: Logger) {}

  /** Logs one request; copies only allowlisted fields, whatever the caller passes. */
  write(entry: AccessLogEntry): void {
    if (!this.logger.isLevelEnabled('info')) return;
    const line: Record<string, unknown> = {};
    for (const f of ACCESS_LOG_FIELDS) {
      const v = entry[f];
      if (v !== undefined) line[f] = v;
    }
    this.logger.info(line, 'request');
  }
}
