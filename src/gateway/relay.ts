/**
 * The shared machinery of a proxied request: client-abort wiring, reading bounded upstream
 * bodies, writing an SSE response with backpressure, and the response headers every endpoint
 * sets. Endpoint files (chat-completions, embeddings) read top to bottom on top of this.
 */
import { randomFillSync } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { GatewayError } from '../ir/errors.js';
import type { IRWarning } from '../ir/request.js';
import type { ProviderRuntime } from '../routing/catalog.js';
import type { UpstreamCall } from '../routing/upstream-client.js';

/** Upper bound of a non-streamed upstream body (JSON). */
export const MAX_UPSTREAM_BODY_BYTES = 64 * 1024 * 1024;
/** Upper bound of an upstream error body kept for the client. */
export const MAX_UPSTREAM_ERROR_BYTES = 256 * 1024;

/**
 * `gen-` + 12 hex digits of the time in ms + 20 random hex digits. Time-ordered, so usage rows
 * are appended at the end of the primary-key index instead of at random places in it (half the
 * insert cost in SQLite), and still unguessable.
 */
export function newGenerationId(now = Date.now()): string {
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const rand = pool.toString('hex', poolAt, poolAt + 10);
  poolAt += 10;
  if (now !== prefixAt) {
    prefixAt = now;
    prefix = `gen-${now.toString(16).padStart(12, '0')}`;
  }
  return prefix + rand;
}

/** The id prefix of the last millisecond an id was made in. */
let prefixAt = -1;
let prefix = '';

/** Random bytes drawn 4 KiB at a time: one system call per ~400 ids instead of one each. */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** Cancels the upstream call at once when the client goes away before the response is complete. */
export function abortOnClientClose(reply: FastifyReply, call: UpstreamCall): void {
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) call.abort();
  });
}

export function clientGone(reply: FastifyReply): boolean {
  return reply.raw.destroyed || reply.raw.writableEnded;
}

/** Waits for the upstream's status; a non-2xx answer becomes the provider's error, mapped to the catalogue. */
export async function upstreamStarted(call: UpstreamCall, provider: ProviderRuntime): Promise<void> {
  await call.started;
  if (call.statusCode >= 200 && call.statusCode < 300) return;
  let text = '';
  try {
    text = await call.text(MAX_UPSTREAM_ERROR_BYTES);
  } catch {
    /* an unreadable error body still yields the status */
  }
  throw provider.adapter.parseError(call.statusCode, text, call.headers);
}

/**
 * A streamed request's 2xx answer must be an event stream. A JSON body (a provider that ignored
 * `stream`, or a 200 carrying an error) or an HTML page (a base URL that points at a website)
 * fails here, before anything reached the client, so that another endpoint may still serve; it
 * used to start the client's stream and end it at once with "ended the stream early".
 * An answer without a content type, or with another one, is read as a stream.
 */
export function requireEventStream(call: UpstreamCall, provider: ProviderRuntime): void {
  const type = call.mediaType;
  if (type !== 'application/json' && type !== 'text/html') return;
  call.abort();
  throw new GatewayError(
    'MR_ERR_UPSTREAM_BAD_RESPONSE',
    `Provider '${provider.id}' answered a streamed request with ${type}, not an event stream.`,
  );
}

/** Reads and parses a 2xx upstream JSON body. */
export async function readJson(call: UpstreamCall, provider: ProviderRuntime): Promise<{ text: string; json: unknown }> {
  const text = await call.text(MAX_UPSTREAM_BODY_BYTES);
  try {
    return { text, json: JSON.parse(text) };
  } catch {
    throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${provider.id}' sent a response that is not valid JSON.`);
  }
}

/** `param: message; …` in printable ASCII, for the `x-maxrouter-warnings` header. */
export function warningsHeader(warnings: IRWarning[]): string | undefined {
  if (!warnings.length) return undefined;
  return warnings
    .map((w) => `${w.param}: ${w.message}`)
    .join('; ')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 4000);
}

export function commonHeaders(generationId: string, provider: ProviderRuntime, warnings: IRWarning[]): Record<string, string> {
  const h: Record<string, string> = {
    'x-generation-id': generationId,
    'x-maxrouter-provider': provider.id,
  };
  const w = warningsHeader(warnings);
  if (w) h['x-maxrouter-warnings'] = w;
  return h;
}

/**
 * Writes an SSE response with backpressure: text is collected per upstream chunk and written
 * once; when the socket buffer is full the upstream is paused until `drain`.
 */
export class SSEWriter {
  private pending = '';
  private started = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly headers: Record<string, string>,
    private readonly call: UpstreamCall,
  ) {}

  /** Sends the status and headers (once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // (No `connection` header: HTTP/1.1 keeps the connection anyway, and HTTP/2 forbids it.)
      'x-accel-buffering': 'no',
      ...this.headers,
    });
  }

  push(text: string): void {
    this.pending += text;
  }

  /** Writes what was pushed; pauses the upstream while the client cannot take more. */
  flush(): void {
    if (!this.pending) return;
    this.start();
    const res = this.reply.raw;
    const text = this.pending;
    this.pending = '';
    if (res.destroyed) return;
    if (!res.write(text)) {
      this.call.pause();
      res.once('drain', () => this.call.resume());
    }
  }

  end(text = ''): void {
    this.push(text);
    this.flush();
    this.start();
    if (!this.reply.raw.destroyed) this.reply.raw.end();
  }
}
