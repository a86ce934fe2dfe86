/**
 * The Anthropic provider adapter: IR ⇄ Anthropic Messages API.
 * @see https://docs.anthropic.com/en/api/messages
 */
import type { ProviderAdapter } from '../provider.js';
import { anthropicHeaders, anthropicMessagesUrl } from './anthropic-api.js';
import { parseAnthropicError } from './anthropic-error.js';
import { convertRequest } from './convert-request.js';
import { convertResponse } from './convert-response.js';
import { createAnthropicStreamDecoder } from './stream-to-parts.js';

/**
 * Adapter for `type: anthropic` providers. No embeddings (Anthropic has no embeddings API) and no
 * OpenAI passthrough (different wire format).
 * @see https://docs.anthropic.com/en/api/messages
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */
export const anthropicAdapter: ProviderAdapter = {
  type: 'anthropic',

  buildChatRequest(target, req, ctx) {
    const { body, warnings } = convertRequest(req, ctx);
    return {
      url: anthropicMessagesUrl(target.baseUrl),
      headers: anthropicHeaders(target),
      body: JSON.stringify(body),
      warnings,
    };
  },

  parseChatResponse: convertResponse,
  createStreamDecoder: createAnthropicStreamDecoder,
  parseError: parseAnthropicError,
};
