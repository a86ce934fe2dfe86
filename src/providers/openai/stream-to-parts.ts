/**
 * OpenAI `chat.completion.chunk` events → IR stream parts.
 * @see https://platform.openai.com/docs/api-reference/chat-streaming/streaming
 */
import { GatewayError } from '../../ir/errors.js';
import type { IRStreamPart, SSEEvent, StreamDecoder } from '../../ir/stream-part.js';
import { mapFinishReason } from './convert-response.js';
import { errorFromBody } from './openai-error.js';
import { usageFromOpenAI } from './usage.js';

export function createOpenAIStreamDecoder(): StreamDecoder {
  let started = false;
  let done = false;
  let finished = false;
  return {
    push(ev: SSEEvent): IRStreamPart[] {
      if (done) return [];
      if (ev.data === '[DONE]') {
        done = true;
        return [];
      }
      let chunk: any;
      try {
        chunk = JSON.parse(ev.data);
      } catch {
        done = true;
        return [{ type: 'error', error: new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'Upstream sent an invalid stream event.') }];
      }
      if (chunk && typeof chunk === 'object' && chunk.error) {
        done = true;
        return [{ type: 'error', error: errorFromBody(500, chunk) }];
      }
      const parts: IRStreamPart[] = [];
      if (!started) {
        started = true;
        const start: IRStreamPart = { type: 'start' };
        if (typeof chunk?.id === 'string') start.upstreamId = chunk.id;
        if (typeof chunk?.model === 'string') start.model = chunk.model;
        parts.push(start);
      }
      const choice = chunk?.choices?.[0];
      const delta = choice?.delta;
      if (delta && typeof delta === 'object') {
        const reasoning = delta.reasoning ?? delta.reasoning_content;
        if (typeof reasoning === 'string' && reasoning) parts.push({ type: 'reasoning-delta', text: reasoning });
        if (typeof delta.content === 'string' && delta.content) parts.push({ type: 'text-delta', text: delta.content });
        if (typeof delta.refusal === 'string' && delta.refusal) parts.push({ type: 'refusal-delta', text: delta.refusal });
        if (Array.isArray(delta.tool_calls)) {
          for (const tc of delta.tool_calls) {
            const index = typeof tc?.index === 'number' ? tc.index : 0;
            if (typeof tc?.id === 'string' && tc.id) {
              parts.push({ type: 'tool-call-start', index, id: tc.id, name: String(tc.function?.name ?? '') });
            }
            const args = tc?.function?.arguments;
            if (typeof args === 'string' && args) parts.push({ type: 'tool-call-delta', index, argumentsDelta: args });
          }
        }
      }
      if (choice?.finish_reason) {
        finished = true;
        parts.push({ type: 'finish', finishReason: mapFinishReason(choice.finish_reason) });
      }
      const usage = usageFromOpenAI(chunk?.usage);
      if (usage) parts.push({ type: 'usage', usage });
      return parts;
    },
    end(): IRStreamPart[] {
      if (done || finished) return [];
      done = true;
      return [{ type: 'error', error: new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'Upstream stream ended early.') }];
    },
  };
}
