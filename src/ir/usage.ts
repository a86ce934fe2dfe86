/**
 * Token usage, normalised to OpenAI's semantics whoever reported it:
 * - `promptTokens` includes cached reads and cache writes;
 * - `completionTokens` includes reasoning tokens.
 * @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
 */
export interface IRUsage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from the provider's cache (a subset of promptTokens). */
  cachedTokens: number;
  /** Prompt tokens written to the provider's cache (a subset of promptTokens; Anthropic). */
  cacheWriteTokens: number;
  /**
   * Cache writes with a 1-hour lifetime (a subset of cacheWriteTokens; Anthropic's
   * `cache_creation.ephemeral_1h_input_tokens`, priced above 5-minute writes). 0 elsewhere.
   */
  cacheWrite1hTokens: number;
  /** Reasoning/thinking tokens (a subset of completionTokens). */
  reasoningTokens: number;
}

export function emptyUsage(): IRUsage {
  return { promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 };
}

/** Non-negative integer or 0: upstream numbers are untrusted. */
export function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}
