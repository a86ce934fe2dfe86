import type { IREmbeddingsRequest, IREmbeddingsResult } from '../ir/embeddings.js';
import type { GatewayError } from '../ir/errors.js';
import type { IRChatRequest, IRRequestContext, IRWarning } from '../ir/request.js';
import type { IRChatResult } from '../ir/response.js';
import type { StreamDecoder } from '../ir/stream-part.js';

export type ProviderType = 'openai' | 'anthropic' | 'gemini' | 'openai-compatible';

/** What a provider needs to know to address its upstream. */
export interface ProviderTarget {
  /** Base URL as configured (official SDK convention of the provider type). */
  baseUrl: string;
  apiKey?: string;
  /** Extra static headers from config. */
  headers?: Record<string, string>;
}

/** An HTTP request for the upstream, built by an adapter; the gateway sends it. */
/** `B`: the body's type; adapters build JSON text, a passthrough may forward the client's bytes. */
export interface UpstreamRequest<B extends string | Buffer = string> {
  /** Absolute URL. */
  url: string;
  headers: Record<string, string>;
  /** JSON text (or its UTF-8 bytes). */
  body: B;
  /** Parameters that could not be honoured exactly (surfaced to the client). */
  warnings: IRWarning[];
}

/**
 * A provider adapter: pure conversion between the IR and one provider's wire format. No I/O;
 * what it can do is what it implements (optional methods are the capability flags);
 * the gateway owns the connection pool, timeouts and streaming. Adapters never import each
 * other and never mutate their input. Throw a `GatewayError` (400) for input the provider
 * cannot honour where dropping it would change meaning.
 */
export interface ProviderAdapter {
  readonly type: ProviderType;
  buildChatRequest(target: ProviderTarget, req: IRChatRequest, ctx: IRRequestContext): UpstreamRequest;
  /** Parse a 2xx non-stream JSON body (already parsed from JSON). Throws GatewayError on a malformed body. */
  parseChatResponse(json: unknown): IRChatResult;
  /** A decoder for one 2xx SSE stream. */
  createStreamDecoder(): StreamDecoder;
  /** Map a non-2xx upstream answer to a gateway error. `bodyText` may be empty or not JSON. */
  parseError(status: number, bodyText: string, headers: Record<string, string | string[] | undefined>): GatewayError;
  /**
   * Same-dialect passthrough: the client's OpenAI-shaped body (model already rewritten) is
   * forwarded as is. Present only on adapters whose upstream speaks OpenAI's dialect.
   * `bytes`, when given, is that body already serialised (the client's own bytes with the
   * model rewritten) and is sent instead of serialising `body`.
   */
  buildPassthroughChatRequest?(target: ProviderTarget, body: Record<string, unknown>, bytes?: Buffer): UpstreamRequest<string | Buffer>;
  /** Same-dialect passthrough of an OpenAI embeddings body (model already rewritten). */
  buildPassthroughEmbeddingsRequest?(target: ProviderTarget, body: Record<string, unknown>): UpstreamRequest;
  buildEmbeddingsRequest?(target: ProviderTarget, req: IREmbeddingsRequest): UpstreamRequest;
  parseEmbeddingsResponse?(json: unknown): IREmbeddingsResult;
}
