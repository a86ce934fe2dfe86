import type { IRUsage } from '../../ir/usage.js';
import { tokenCount } from '../../ir/usage.js';

/**
 * OpenAI usage → IR. OpenAI's `prompt_tokens` already includes cached tokens and
 * `completion_tokens` includes reasoning tokens, which is the IR's convention.
 * @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
 */
export function usageFromOpenAI(u: unknown): IRUsage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const o = u as Record<string, any>;
  return {
    promptTokens: tokenCount(o.prompt_tokens),
    completionTokens: tokenCount(o.completion_tokens),
    cachedTokens: tokenCount(o.prompt_tokens_details?.cached_tokens),
    cacheWriteTokens: tokenCount(o.prompt_tokens_details?.cache_write_tokens),
    cacheWrite1hTokens: 0,
    reasoningTokens: tokenCount(o.completion_tokens_details?.reasoning_tokens),
  };
}
