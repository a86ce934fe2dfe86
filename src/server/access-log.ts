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

/** Where access-log lines go: the logger's own destination (pino's `SonicBoom`, or a test stream). */
export interface LineSink {
  write(line: string): unknown;
}

/**
 * Writes one JSON line per request, in the logger's format (`level`, `time`, `service`, the
 * fields, `msg`), straight to the logger's destination: the fields are known, so the line is
 * built directly instead of serialising an object per request.
 */
export interface AccessLogOptions {
  /**
   * Collect lines and hand them to the sink together, at most this many ms after the first
   * (or at `batchBytes`): one sink call per batch instead of one per request. 0 (default):
   * every line at once.
   */
  batchMs?: number;
  /** A batch is handed over once it holds this many characters (default 16 000). */
  batchBytes?: number;
}

/**
 * A JSON string literal of `s`: the usual values (ids, model and provider names) need no escape
 * and are quoted directly; anything with a quote, backslash, control character or surrogate
 * goes through JSON.stringify.
 */
export function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

export class AccessLog {
  private readonly enabled: boolean;
  readonly #batchMs: number;
  readonly #batchBytes: number;
  #pending = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(
    logger: Logger,
    private readonly sink: LineSink,
    opts: AccessLogOptions = {},
  ) {
    this.enabled = logger.isLevelEnabled('info');
    this.#batchMs = Math.max(0, opts.batchMs ?? 0);
    this.#batchBytes = Math.max(1, opts.batchBytes ?? 16_000);
  }

  /** Logs one request; copies only allowlisted fields, whatever the caller passes. */
  write(entry: AccessLogEntry): void {
    if (!this.enabled) return;
    let line = `{"level":30,"time":${Date.now()},"service":"maxrouter"`;
    for (const f of ACCESS_LOG_FIELDS) {
      const v = entry[f];
      if (v === undefined) continue;
      line += typeof v === 'string' ? `,"${f}":${quote(v)}` : `,"${f}":${v}`;
    }
    line += ',"msg":"request"}\n';
    if (this.#batchMs === 0) {
      this.sink.write(line);
      return;
    }
    this.#pending += line;
    if (this.#pending.length >= this.#batchBytes) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#batchMs).unref();
  }

  /** Hands collected lines to the sink now (at shutdown, before the logger is flushed). */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending === '') return;
    const text = this.#pending;
    this.#pending = '';
    this.sink.write(text);
  }
}
