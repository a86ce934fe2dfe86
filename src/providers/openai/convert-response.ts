/**
 * OpenAI chat completion object → IR.
 * @see https://platform.openai.com/docs/api-reference/chat/object
 */
import { GatewayError } from '../../ir/errors.js';
import type { IRFinishReason } from '../../ir/finish-reason.js';
import type { IRChatResult } from '../../ir/response.js';
import { emptyUsage } from '../../ir/usage.js';
import { usageFromOpenAI } from './usage.js';

export function mapFinishReason(r: unknown): IRFinishReason {
  switch (r) {
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'stop';
  }
}

export function convertResponse(json: unknown): IRChatResult {
  const o = json as Record<string, any> | null;
  const choice = o?.choices?.[0];
  if (!choice || typeof choice !== 'object' || !choice.message || typeof choice.message !== 'object') {
    throw new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'Upstream returned a malformed chat completion.');
  }
  const msg = choice.message;
  const result: IRChatResult = {
    text: typeof msg.content === 'string' ? msg.content : null,
    refusal: typeof msg.refusal === 'string' ? msg.refusal : null,
    toolCalls: Array.isArray(msg.tool_calls)
      ? msg.tool_calls.map((tc: any) => ({
          id: String(tc?.id ?? ''),
          name: String(tc?.function?.name ?? ''),
          arguments: String(tc?.function?.arguments ?? ''),
        }))
      : [],
    finishReason: mapFinishReason(choice.finish_reason),
    usage: usageFromOpenAI(o?.usage) ?? emptyUsage(),
  };
  if (typeof o?.id === 'string') result.upstreamId = o.id;
  if (typeof o?.model === 'string') result.model = o.model;
  const reasoning = msg.reasoning ?? msg.reasoning_content;
  if (typeof reasoning === 'string' && reasoning) result.reasoning = reasoning;
  return result;
}
