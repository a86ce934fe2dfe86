import type { IRFinishReason } from '../../ir/finish-reason.js';

/**
 * Maps a Gemini candidate `finishReason` to OpenAI's finish reason. `STOP` on a candidate that
 * called functions becomes `tool_calls`; that needs the parts, so the converters handle it.
 * @see https://ai.google.dev/api/generate-content#FinishReason
 */
export function mapGeminiFinishReason(reason: unknown): IRFinishReason {
  switch (reason) {
    case 'STOP':
      return 'stop';
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
    case 'IMAGE_PROHIBITED_CONTENT':
    case 'IMAGE_RECITATION':
      return 'content_filter';
    // The model produced an invalid function call; no call reaches the client.
    case 'MALFORMED_FUNCTION_CALL':
      return 'stop';
    // LANGUAGE, OTHER, FINISH_REASON_UNSPECIFIED and reasons added later.
    default:
      return 'stop';
  }
}
