/**
 * IR → OpenAI chat completion object, matching OpenAI's published schema
 * (`message.refusal` and `choices[].logprobs` always present).
 * @see https://platform.openai.com/docs/api-reference/chat/object
 */
import type { IRChatResult } from '../../ir/response.js';
import type { IRUsage } from '../../ir/usage.js';
import { nanoToUsd } from '../../billing/money.js';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; cache_write_tokens?: number };
  completion_tokens_details: { reasoning_tokens: number };
  /** The request's cost in USD (as OpenRouter reports it); exact to the nano-dollar. */
  cost?: number;
}

export function encodeUsage(u: IRUsage, costNano?: number): OpenAIUsage {
  const details: OpenAIUsage['prompt_tokens_details'] = { cached_tokens: u.cachedTokens };
  if (u.cacheWriteTokens) details.cache_write_tokens = u.cacheWriteTokens;
  const out: OpenAIUsage = {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: details,
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
  if (costNano !== undefined) out.cost = nanoToUsd(costNano);
  return out;
}

/**
 * `id` is the generation id; `provider` the provider id that served the request (a top-level
 * field, as OpenRouter sends it); `costNano` goes to `usage.cost`.
 */
export function encodeChatResponse(
  result: IRChatResult,
  id: string,
  model: string,
  created: number,
  provider?: string,
  costNano?: number,
): unknown {
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
    ...(provider !== undefined ? { provider } : {}),
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: result.finishReason }],
    usage: encodeUsage(result.usage, costNano),
  };
}
