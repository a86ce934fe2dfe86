/**
 * IR → OpenAI Chat Completions body. (OpenAI-dialect clients are passed through without this;
 * it serves clients of other dialects.) Always asks for usage on streams so metering never
 * misses one.
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import type { IRChatRequest, IRMessage } from '../../ir/request.js';

function message(m: IRMessage): Record<string, unknown> {
  switch (m.role) {
    case 'system':
      return { role: m.origin, content: m.text };
    case 'user':
      return {
        role: 'user',
        content: m.content.map((p) =>
          p.type === 'text'
            ? { type: 'text', text: p.text }
            : {
                type: 'image_url',
                image_url: {
                  url: p.source.kind === 'url' ? p.source.url : `data:${p.source.mediaType};base64,${p.source.data}`,
                  ...(p.detail ? { detail: p.detail } : {}),
                },
              },
        ),
        ...(m.name ? { name: m.name } : {}),
      };
    case 'assistant': {
      const out: Record<string, unknown> = {
        role: 'assistant',
        content: m.content.length ? m.content.map((t) => t.text).join('') : null,
      };
      if (m.toolCalls.length) {
        out.tool_calls = m.toolCalls.map((tc) => ({
          id: tc.id,
          type: 'function',
          function: { name: tc.name, arguments: tc.arguments },
        }));
      }
      if (m.refusal) out.refusal = m.refusal;
      return out;
    }
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
  }
}

export function convertRequest(req: IRChatRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { model: req.model, messages: req.messages.map(message) };
  if (req.stream) body.stream = true, (body.stream_options = { include_usage: true });
  if (req.maxTokens !== undefined) body.max_completion_tokens = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop) body.stop = req.stop;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.user !== undefined) body.user = req.user;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.n !== undefined) body.n = req.n;
  if (req.logprobs !== undefined) body.logprobs = req.logprobs;
  if (req.topLogprobs !== undefined) body.top_logprobs = req.topLogprobs;
  if (req.logitBias) body.logit_bias = req.logitBias;
  if (req.metadata) body.metadata = req.metadata;
  if (req.serviceTier) body.service_tier = req.serviceTier;
  if (req.reasoningEffort) body.reasoning_effort = req.reasoningEffort;
  if (req.parallelToolCalls !== undefined) body.parallel_tool_calls = req.parallelToolCalls;
  if (req.tools) {
    body.tools = req.tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        parameters: t.parameters,
        ...(t.strict !== undefined ? { strict: t.strict } : {}),
      },
    }));
  }
  if (req.toolChoice) {
    body.tool_choice =
      req.toolChoice.type === 'tool' ? { type: 'function', function: { name: req.toolChoice.name } } : req.toolChoice.type;
  }
  if (req.responseFormat) {
    const rf = req.responseFormat;
    body.response_format =
      rf.type === 'json_schema'
        ? {
            type: 'json_schema',
            json_schema: {
              name: rf.name,
              schema: rf.schema,
              ...(rf.description !== undefined ? { description: rf.description } : {}),
              ...(rf.strict !== undefined ? { strict: rf.strict } : {}),
            },
          }
        : { type: rf.type };
  }
  return body;
}
