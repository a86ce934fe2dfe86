import type { ProviderAdapter, ProviderType } from '../provider.js';
import { convertRequest } from './convert-request.js';
import { convertResponse } from './convert-response.js';
import { buildEmbeddingsRequest, parseEmbeddingsResponse } from './embeddings.js';
import { openaiHeaders, openaiUrl } from './openai-api.js';
import { parseOpenAIError } from './openai-error.js';
import { createOpenAIStreamDecoder } from './stream-to-parts.js';

function make(type: ProviderType): ProviderAdapter {
  return {
    type,
    buildChatRequest(target, req) {
      return {
        url: openaiUrl(target, '/chat/completions'),
        headers: openaiHeaders(target),
        body: JSON.stringify(convertRequest(req)),
        warnings: [],
      };
    },
    buildPassthroughChatRequest(target, body, bytes) {
      return {
        url: openaiUrl(target, '/chat/completions'),
        headers: openaiHeaders(target),
        body: bytes ?? JSON.stringify(body),
        warnings: [],
      };
    },
    buildPassthroughEmbeddingsRequest(target, body) {
      return { url: openaiUrl(target, '/embeddings'), headers: openaiHeaders(target), body: JSON.stringify(body), warnings: [] };
    },
    parseChatResponse: convertResponse,
    createStreamDecoder: createOpenAIStreamDecoder,
    parseError: parseOpenAIError,
    buildEmbeddingsRequest,
    parseEmbeddingsResponse,
  };
}

/** OpenAI itself. */
export const openaiAdapter = make('openai');
/** Any server speaking OpenAI's Chat Completions API (vLLM, Ollama, Groq, Together, …). */
export const openaiCompatibleAdapter = make('openai-compatible');
