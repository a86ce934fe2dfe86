/**
 * The shared machinery of a proxied request: client-abort wiring, reading bounded upstream
 * bodies, writing an SSE response with backpressure, and the response headers every endpoint
 * sets. Endpoint files (chat-completions, embeddings) read top to bottom on top of this.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { GatewayError } from '../ir/errors.js';
import type { IRWarning } from '../ir/request.js';
import type { ProviderRuntime } from '../routing/catalog.js';
import type { UpstreamResponse } from '../routing/upstream-client.js';
import { transportError } from '../routing/upstream-client.js';

/** Upper bound of a non-streamed upstream body (JSON). */
export const MAX_UPSTREAM_BODY_BYTES = 64 * 1024 * 1024;
/** Upper bound of an upstream error body kept for the client. */
export const MAX_UPSTREAM_ERROR_BYTES = 256 * 1024;

export function newGenerationId(): string {
  return `gen-${randomUUID().replaceAll('-', '')}`;
}

/**
 * An AbortController that fires when the client goes away before the response is complete,
 * so the upstream request is cancelled at once.
 */
export function abortOnClientClose(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller;
}

export function clientGone(reply: FastifyReply): boolean {
  return reply.raw.destroyed || reply.raw.writableEnded;
}

/** Reads an upstream body up to `limit` bytes; past that the upstream is treated as broken. */
export async function readBody(res: UpstreamResponse, provider: ProviderRuntime, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${provider.id}' sent an oversized response.`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw transportError(err, provider.id);
  }
  return chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
}

/** Reads and parses a 2xx upstream JSON body. */
export async function readJson(res: UpstreamResponse, provider: ProviderRuntime): Promise<{ text: string; json: unknown }> {
  const text = await readBody(res, provider, MAX_UPSTREAM_BODY_BYTES);
  try {
    return { text, json: JSON.parse(text) };
  } catch {
    throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${provider.id}' sent a response that is not valid JSON.`);
  }
}

/** A non-2xx upstream answer → the provider's error, mapped to the catalogue. */
export async function upstreamFailure(res: UpstreamResponse, provider: ProviderRuntime): Promise<GatewayError> {
  let text = '';
  try {
    text = await readBody(res, provider, MAX_UPSTREAM_ERROR_BYTES);
  } catch {
    /* an unreadable error body still yields the status */
  }
  return provider.adapter.parseError(res.statusCode, text, res.headers);
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
 * once; when the socket buffer is full the relay waits for `drain` before reading on.
 */
export class SSEWriter {
  private pending = '';
  private started = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly headers: Record<string, string>,
  ) {}

  get headersSent(): boolean {
    return this.started;
  }

  /** Sends the status and headers (once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...this.headers,
    });
  }

  push(text: string): void {
    this.pending += text;
  }

  /** Writes what was pushed; resolves when the client can take more. */
  async flush(): Promise<void> {
    if (!this.pending) return;
    this.start();
    const res = this.reply.raw;
    const text = this.pending;
    this.pending = '';
    if (res.destroyed) return;
    if (!res.write(text)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }

  async end(text = ''): Promise<void> {
    this.push(text);
    await this.flush();
    this.start();
    if (!this.reply.raw.destroyed) this.reply.raw.end();
  }
}
