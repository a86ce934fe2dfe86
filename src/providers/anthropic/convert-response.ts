/**
 * Anthropic Messages API response (non-stream) → IR chat result.
 * @see https://docs.anthropic.com/en/api/messages#response
 */
import { GatewayError } from '../../ir/errors.js';
import type { IRToolCall } from '../../ir/request.js';
import type { IRChatResult } from '../../ir/response.js';
import { tokenCount, type IRUsage } from '../../ir/usage.js';
import { mapStopReason } from './map-stop-reason.js';

/**
 * Anthropic's usage object. `cache_*` fields are absent or null on older models; in streams,
 * `message_delta.usage` may repeat them cumulatively. `cache_creation` splits
 * `cache_creation_input_tokens` by cache lifetime (5-minute and 1-hour writes are priced apart).
 * @see https://docs.anthropic.com/en/api/messages#response-usage
 */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: AnthropicCacheCreation | null;
}

/**
 * `usage.cache_creation`: cache-write tokens by lifetime.
 * @see https://docs.anthropic.com/en/api/messages#response-usage-cache-creation
 */
export interface AnthropicCacheCreation {
  ephemeral_5m_input_tokens?: number | null;
  ephemeral_1h_input_tokens?: number | null;
}

/**
 * Anthropic usage → IR usage (OpenAI semantics). Anthropic's `input_tokens` counts only the
 * uncached part of the prompt, so the prompt total adds cache reads and cache writes back.
 * Cache writes are `cache_creation_input_tokens` (= 5-minute + 1-hour writes); of those,
 * `cache_creation.ephemeral_1h_input_tokens` are 1-hour writes. When the total is missing (or
 * smaller than the split), the split's sum stands in, so 1-hour writes never exceed the total.
 * Anthropic does not report thinking tokens separately: `reasoningTokens` stays 0 (thinking is
 * billed, and counted, as output).
 * @see https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance
 */
export function normaliseUsage(usage: AnthropicUsage | undefined): IRUsage {
  const input = tokenCount(usage?.input_tokens);
  const cacheRead = tokenCount(usage?.cache_read_input_tokens);
  const creation = usage?.cache_creation;
  const split = isRecord(creation) ? creation : undefined;
  const write5m = tokenCount(split?.ephemeral_5m_input_tokens);
  const write1h = tokenCount(split?.ephemeral_1h_input_tokens);
  const cacheWrite = Math.max(tokenCount(usage?.cache_creation_input_tokens), write5m + write1h);
  return {
    promptTokens: input + cacheRead + cacheWrite,
    completionTokens: tokenCount(usage?.output_tokens),
    cachedTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    cacheWrite1hTokens: write1h,
    reasoningTokens: 0,
  };
}

function badResponse(what: string): GatewayError {
  return new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Anthropic returned a malformed response: ${what}.`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const optionalString = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function toToolCall(block: Record<string, unknown>, i: number): IRToolCall {
  const { id, name, input } = block;
  if (typeof id !== 'string' || typeof name !== 'string') throw badResponse(`content[${i}] is a tool_use without id or name`);
  return { id, name, arguments: JSON.stringify(input ?? {}) };
}

/**
 * Parses a 2xx Messages response. Text blocks are concatenated, thinking blocks become
 * `reasoning`, `tool_use` blocks become tool calls with their input as JSON text. Block types
 * this gateway does not translate (redacted thinking, server tool results) are skipped.
 * Throws `MR_ERR_UPSTREAM_BAD_RESPONSE` when the body is not a message.
 * @see https://docs.anthropic.com/en/api/messages#response-content
 */
export function convertResponse(json: unknown): IRChatResult {
  if (!isRecord(json)) throw badResponse('the body is not a JSON object');
  const { content, usage } = json;
  if (!Array.isArray(content)) throw badResponse('content is not an array');
  if (usage !== undefined && !isRecord(usage)) throw badResponse('usage is not an object');

  const texts: string[] = [];
  const thoughts: string[] = [];
  const toolCalls: IRToolCall[] = [];
  content.forEach((block: unknown, i) => {
    if (!isRecord(block)) throw badResponse(`content[${i}] is not an object`);
    if (block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
    else if (block.type === 'thinking' && typeof block.thinking === 'string') thoughts.push(block.thinking);
    else if (block.type === 'tool_use') toolCalls.push(toToolCall(block, i));
  });

  const result: IRChatResult = {
    text: texts.length > 0 ? texts.join('') : null,
    refusal: null,
    toolCalls,
    finishReason: mapStopReason(optionalString(json.stop_reason)),
    usage: normaliseUsage(usage as AnthropicUsage | undefined),
  };
  const upstreamId = optionalString(json.id);
  const model = optionalString(json.model);
  if (upstreamId !== undefined) result.upstreamId = upstreamId;
  if (model !== undefined) result.model = model;
  if (thoughts.length > 0) result.reasoning = thoughts.join('');
  return result;
}
