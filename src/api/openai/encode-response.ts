/**
 * IR → OpenAI chat completion object, matching OpenAI's published schema
 * (`message.refusal` and `choices[].logprobs` always present).
 * @see https://platform.openai.com/docs/api-reference/chat/object
 */
import type { IRChatResult } from '../../ir/response.js';
import type { IRUsage } from '../../ir/usage.js';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; cache_write_tokens?: number };
  completion_tokens_details: { reasoning_tokens: number };
}

export function encodeUsage(u: IRUsage): OpenAIUsage {
  const details: OpenAIUsage['prompt_tokens_details'] = { cached_tokens: u.cachedTokens };
  if (u.cacheWriteTokens) details.cache_write_tokens = u.cacheWriteTokens;
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: details,
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}

export function encodeChatResponse(result: IRChatResult, id: string, model: string, created: number): unknown {
  const message: Record<string, unknown> = {
    role: 'assistant',
    content: result.text,
    refusal: result.refusal,
  };
  if (result.toolCalls.length) {
    message.tool_calls = result.toolCalls.map((tc) => ({
      id: tc.id,
      type: 'function',
      function: { name: tc.name, arguments: tc.arguments },
    }));
  }
  if (result.reasoning) message.reasoning = result.reasoning;
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: result.finishReason }],
    usage: encodeUsage(result.usage),
  };
}
