/**
 * The Google Gemini provider adapter (Gemini API, `generativelanguage.googleapis.com`).
 * @see https://ai.google.dev/api
 */
import type { ProviderAdapter } from '../provider.js';
import { geminiHeaders, geminiUrl } from './gemini-api.js';
import { convertEmbeddingsRequest, convertRequest } from './convert-request.js';
import { parseChatResponse, parseEmbeddingsResponse } from './convert-response.js';
import { parseGeminiError } from './gemini-error.js';
import { createGeminiStreamDecoder } from './stream-to-parts.js';

/**
 * Gemini adapter: `generateContent`, `streamGenerateContent?alt=sse` and `batchEmbedContents`.
 * Clients speak OpenAI's dialect, never Gemini's, so there is no passthrough.
 * @see https://ai.google.dev/api/generate-content
 */
export const geminiAdapter: ProviderAdapter = {
  type: 'gemini',

  buildChatRequest(target, req) {
    const { body, warnings } = convertRequest(req);
    return {
      url: geminiUrl(target.baseUrl, req.model, req.stream ? 'streamGenerateContent' : 'generateContent'),
      headers: geminiHeaders(target),
      body: JSON.stringify(body),
      warnings,
    };
  },

  parseChatResponse,

  createStreamDecoder: createGeminiStreamDecoder,

  parseError: parseGeminiError,

  buildEmbeddingsRequest(target, req) {
    const { body, warnings } = convertEmbeddingsRequest(req);
    return {
      url: geminiUrl(target.baseUrl, req.model, 'batchEmbedContents'),
      headers: geminiHeaders(target),
      body: JSON.stringify(body),
      warnings,
    };
  },

  parseEmbeddingsResponse,
};
