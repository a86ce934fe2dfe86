/**
 * OpenAI embeddings.
 * @see https://platform.openai.com/docs/api-reference/embeddings/create
 */
import { GatewayError } from '../../ir/errors.js';
import type { IREmbeddingsRequest, IREmbeddingsResult } from '../../ir/embeddings.js';
import { tokenCount } from '../../ir/usage.js';
import type { ProviderTarget, UpstreamRequest } from '../provider.js';
import { openaiHeaders, openaiUrl } from './openai-api.js';

export function buildEmbeddingsRequest(target: ProviderTarget, req: IREmbeddingsRequest): UpstreamRequest {
  const body: Record<string, unknown> = { model: req.model, input: req.input, encoding_format: 'float' };
  if (req.dimensions !== undefined) body.dimensions = req.dimensions;
  if (req.user !== undefined) body.user = req.user;
  return { url: openaiUrl(target, '/embeddings'), headers: openaiHeaders(target), body: JSON.stringify(body), warnings: [] };
}

export function parseEmbeddingsResponse(json: unknown): IREmbeddingsResult {
  const o = json as any;
  if (!o || !Array.isArray(o.data)) {
    throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'Upstream returned a malformed embeddings response.');
  }
  const rows = [...o.data].sort((a: any, b: any) => (a?.index ?? 0) - (b?.index ?? 0));
  const embeddings = rows.map((r: any) => {
    if (!Array.isArray(r?.embedding)) {
      throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'Upstream returned a malformed embedding.');
    }
    return r.embedding as number[];
  });
  const out: IREmbeddingsResult = { embeddings, promptTokens: tokenCount(o.usage?.prompt_tokens) };
  if (typeof o.model === 'string') out.model = o.model;
  return out;
}
