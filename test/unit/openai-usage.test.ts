import { describe, expect, it } from 'vitest';
import { usageFromOpenAI } from '../../src/providers/openai/usage.js';

describe('usageFromOpenAI', () => {
  it('keeps OpenAI semantics: cached tokens inside prompt_tokens, reasoning inside completion_tokens', () => {
    // @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
    const usage = usageFromOpenAI({
      prompt_tokens: 1000,
      completion_tokens: 500,
      total_tokens: 1500,
      prompt_tokens_details: { cached_tokens: 400, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 200, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    });
    expect(usage).toEqual({
      promptTokens: 1000,
      completionTokens: 500,
      cachedTokens: 400,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      reasoningTokens: 200,
    });
  });

  it('reads cache writes where the provider reports them', () => {
    const usage = usageFromOpenAI({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 2, cache_write_tokens: 5 } });
    expect(usage).toMatchObject({ cachedTokens: 2, cacheWriteTokens: 5, cacheWrite1hTokens: 0 });
  });

  it('treats missing details and untrusted numbers as zero, and no usage object as undefined', () => {
    expect(usageFromOpenAI({ prompt_tokens: 3.7, completion_tokens: -1, prompt_tokens_details: null })).toEqual({
      promptTokens: 3,
      completionTokens: 0,
      cachedTokens: 0,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      reasoningTokens: 0,
    });
    expect(usageFromOpenAI(undefined)).toBeUndefined();
    expect(usageFromOpenAI(null)).toBeUndefined();
  });
});
