import { createParser } from 'eventsource-parser';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/ir/errors.js';
import type { IRChatRequest, IRMessage, IRRequestContext } from '../../src/ir/request.js';
import type { IRStreamPart, SSEEvent } from '../../src/ir/stream-part.js';
import { anthropicHeaders, anthropicMessagesUrl } from '../../src/providers/anthropic/anthropic-api.js';
import { parseAnthropicError } from '../../src/providers/anthropic/anthropic-error.js';
import { convertRequest, JSON_OBJECT_INSTRUCTION, THINKING_BUDGETS, type AnthropicThinking } from '../../src/providers/anthropic/convert-request.js';
import { claudeVersion, thinkingStyle } from '../../src/providers/anthropic/thinking-style.js';
import { convertResponse, normaliseUsage } from '../../src/providers/anthropic/convert-response.js';
import { anthropicAdapter } from '../../src/providers/anthropic/index.js';
import { mapStopReason } from '../../src/providers/anthropic/map-stop-reason.js';
import { AnthropicStreamDecoder } from '../../src/providers/anthropic/stream-to-parts.js';
import {
  ANTHROPIC_MODEL,
  DEFAULT_TOOL_CALLS,
  anthropicAuthError,
  anthropicCachedUsageReply,
  anthropicCachedUsageStream,
  anthropicInvalidRequestError,
  anthropicOverloadedError,
  anthropicRateLimitError,
  anthropicServerError,
  anthropicStreamWithError,
  anthropicTextReply,
  anthropicTextStream,
  anthropicThinkingReply,
  anthropicThinkingStream,
  anthropicToolCallReply,
  anthropicToolCallStream,
} from '../fixtures/anthropic.js';
import { sseFrame, type MockReply } from '../helpers/mock-upstream.js';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const CTX: IRRequestContext = { maxOutputTokens: 8192 };
const user = (text: string): IRMessage => ({ role: 'user', content: [{ type: 'text', text }] });
const system = (text: string, origin: 'system' | 'developer' = 'system'): IRMessage => ({ role: 'system', origin, text });

function request(over: Partial<IRChatRequest> = {}): IRChatRequest {
  return { model: 'claude-sonnet-4-5', messages: [user('Hi')], stream: false, ...over };
}

/** The manual thinking budget sent, if any. */
const budgetOf = (body: { thinking?: AnthropicThinking }) => (body.thinking?.type === 'enabled' ? body.thinking.budget_tokens : undefined);

function convert(over: Partial<IRChatRequest> = {}, ctx: IRRequestContext = CTX) {
  return convertRequest(request(over), ctx);
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    Object.values(v).forEach(deepFreeze);
    Object.freeze(v);
  }
  return v;
}

function catchError(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a GatewayError');
}

function sseEvents(reply: MockReply): SSEEvent[] {
  return (reply.sse ?? []).map((item) => {
    if (typeof item === 'string') throw new Error('fixtures use structured events');
    return item.event === undefined ? { data: item.data } : { event: item.event, data: item.data };
  });
}

function decode(events: SSEEvent[]): IRStreamPart[] {
  const decoder = anthropicAdapter.createStreamDecoder();
  return [...events.flatMap((e) => decoder.push(e)), ...decoder.end()];
}

const ofType = <T extends IRStreamPart['type']>(parts: IRStreamPart[], type: T) =>
  parts.filter((p): p is Extract<IRStreamPart, { type: T }> => p.type === type);

function errorArgs(reply: MockReply): [number, string, Record<string, string>] {
  return [reply.status ?? 200, JSON.stringify(reply.json), reply.headers ?? {}];
}

// ---------------------------------------------------------------------------------------------
// anthropic-api
// ---------------------------------------------------------------------------------------------

describe('anthropic-api', () => {
  it('appends /v1/messages to the SDK-style base URL, stripping trailing slashes', () => {
    expect(anthropicMessagesUrl('https://api.anthropic.com')).toBe('https://api.anthropic.com/v1/messages');
    expect(anthropicMessagesUrl('https://api.anthropic.com/')).toBe('https://api.anthropic.com/v1/messages');
    expect(anthropicMessagesUrl('http://proxy.local/anthropic//')).toBe('http://proxy.local/anthropic/v1/messages');
    expect(anthropicMessagesUrl('')).toBe('https://api.anthropic.com/v1/messages');
  });

  it('sends x-api-key, anthropic-version and content-type, plus config headers', () => {
    const h = anthropicHeaders({ baseUrl: 'https://api.anthropic.com', apiKey: 'sk-ant-1', headers: { 'anthropic-beta': 'x' } });
    expect(h).toEqual({
      'x-api-key': 'sk-ant-1',
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
      'anthropic-beta': 'x',
    });
  });

  it('lets config headers override defaults case-insensitively and omits a missing key', () => {
    const h = anthropicHeaders({ baseUrl: '', headers: { 'Anthropic-Version': '2099-01-01' } });
    expect(h['anthropic-version']).toBeUndefined();
    expect(h['Anthropic-Version']).toBe('2099-01-01');
    expect(h['x-api-key']).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// adapter
// ---------------------------------------------------------------------------------------------

describe('anthropicAdapter', () => {
  it('declares its type and capabilities', () => {
    expect(anthropicAdapter.type).toBe('anthropic');
    expect(anthropicAdapter.buildEmbeddingsRequest).toBeUndefined();
    expect(anthropicAdapter.buildPassthroughChatRequest).toBeUndefined();
  });

  it('builds an upstream request with URL, headers, JSON body and warnings', () => {
    const up = anthropicAdapter.buildChatRequest(
      { baseUrl: 'https://api.anthropic.com/', apiKey: 'k' },
      request({ seed: 1, stream: true }),
      CTX,
    );
    expect(up.url).toBe('https://api.anthropic.com/v1/messages');
    expect(up.headers['x-api-key']).toBe('k');
    expect(JSON.parse(up.body)).toEqual({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
      max_tokens: 8192,
      stream: true,
    });
    expect(up.warnings.map((w) => w.param)).toEqual(['seed']);
  });
});

// ---------------------------------------------------------------------------------------------
// convert-request
// ---------------------------------------------------------------------------------------------

describe('convertRequest: system prompt', () => {
  it('moves system and developer messages to a top-level system array, in order', () => {
    const { body, warnings } = convert({
      messages: [system('Be brief.'), system('Answer in French.', 'developer'), user('Hi')],
    });
    expect(body.system).toEqual([
      { type: 'text', text: 'Be brief.' },
      { type: 'text', text: 'Answer in French.' },
    ]);
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
    expect(warnings).toEqual([]);
  });

  it('moves a mid-conversation system message to the system prompt with a warning', () => {
    const { body, warnings } = convert({
      messages: [system('First.'), user('Hi'), { role: 'assistant', content: [{ type: 'text', text: 'Hello' }], toolCalls: [] }, system('Later.'), user('Again')],
    });
    expect(body.system).toEqual([
      { type: 'text', text: 'First.' },
      { type: 'text', text: 'Later.' },
    ]);
    expect(body.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(warnings).toEqual([{ param: 'messages[3]', message: expect.stringContaining('moved to the system prompt') }]);
  });

  it('omits system when there is none', () => {
    expect(convert().body.system).toBeUndefined();
  });

  it('sends a system-only conversation with its system prompt as the user message, with a warning', () => {
    // OpenAI answers a request made of system and developer messages; Anthropic needs a turn.
    const { body, warnings } = convert({ messages: [system('Name a colour.'), system('One word.', 'developer')] });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Name a colour.' }, { type: 'text', text: 'One word.' }] },
    ]);
    expect(body.system).toBeUndefined();
    expect(warnings).toEqual([{ param: 'messages', message: expect.stringContaining('system prompt was sent as the user message') }]);
  });

  it('keeps the JSON-mode instruction in the system prompt when the client system prompt becomes the user message', () => {
    const { body } = convert({ messages: [system('List three colours.')], responseFormat: { type: 'json_object' } });
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'List three colours.' }] }]);
    expect(body.system).toEqual([{ type: 'text', text: JSON_OBJECT_INSTRUCTION }]);
  });

  it('rejects a request whose every message is empty, naming messages', () => {
    const err = catchError(() => convert({ messages: [system(''), user('')] }));
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages');
  });
});

describe('convertRequest: messages', () => {
  it('merges consecutive user messages into one turn', () => {
    const { body } = convert({ messages: [user('a'), user('b')] });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
    ]);
  });

  it('converts assistant tool calls to tool_use and puts all tool results in ONE user turn', () => {
    const { body } = convert({
      messages: [
        user('Weather and time in Paris?'),
        {
          role: 'assistant',
          content: [{ type: 'text', text: 'Checking.' }],
          toolCalls: [
            { id: 'toolu_1', name: 'get_weather', arguments: '{"location":"Paris"}' },
            { id: 'toolu_2', name: 'get_time', arguments: '' },
          ],
        },
        { role: 'tool', toolCallId: 'toolu_1', content: '18°C' },
        { role: 'tool', toolCallId: 'toolu_2', content: '14:00' },
        user('Thanks, and tomorrow?'),
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather and time in Paris?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { location: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C' },
          { type: 'tool_result', tool_use_id: 'toolu_2', content: '14:00' },
          { type: 'text', text: 'Thanks, and tomorrow?' },
        ],
      },
    ]);
  });

  it('puts tool_result blocks before text when a user message precedes the tool results', () => {
    const { body } = convert({
      messages: [
        user('q'),
        { role: 'assistant', content: [], toolCalls: [{ id: 't1', name: 'f', arguments: '{}' }] },
        user('note'),
        { role: 'tool', toolCallId: 't1', content: 'r' },
      ],
    });
    expect(body.messages[2]?.content.map((b) => b.type)).toEqual(['tool_result', 'text']);
  });

  it('leaves out an empty message, so that Anthropic gets no empty turn and its neighbours merge', () => {
    const { body } = convert({
      messages: [user('a'), { role: 'assistant', content: [{ type: 'text', text: 'b' }], toolCalls: [] }, user(''), { role: 'assistant', content: [{ type: 'text', text: 'c' }], toolCalls: [] }, user('d')],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'a' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'b' }, { type: 'text', text: 'c' }] },
      { role: 'user', content: [{ type: 'text', text: 'd' }] },
    ]);
  });

  it('rejects a tool result whose id matches no call of the preceding assistant turn, naming the field', () => {
    const call = { role: 'assistant' as const, content: [], toolCalls: [{ id: 't1', name: 'f', arguments: '{}' }] };
    const unknown = catchError(() => convert({ messages: [user('q'), call, { role: 'tool', toolCallId: 't9', content: 'r' }] }));
    expect(unknown.status).toBe(400);
    expect(unknown.param).toBe('messages[2].tool_call_id');
    // A call of an earlier assistant turn does not count: Anthropic pairs a result with the turn just before it.
    const older = catchError(() =>
      convert({
        messages: [
          user('q'),
          call,
          { role: 'tool', toolCallId: 't1', content: 'r' },
          { role: 'assistant', content: [{ type: 'text', text: 'done' }], toolCalls: [] },
          { role: 'tool', toolCallId: 't1', content: 'again' },
        ],
      }),
    );
    expect(older.param).toBe('messages[4].tool_call_id');
  });

  it('rejects invalid tool call arguments JSON, naming the field', () => {
    const err = catchError(() =>
      convert({
        messages: [
          user('q'),
          {
            role: 'assistant',
            content: [],
            toolCalls: [
              { id: 't1', name: 'f', arguments: '{}' },
              { id: 't2', name: 'g', arguments: '{"a":' },
            ],
          },
        ],
      }),
    );
    expect(err.code).toBe('MR_ERR_INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[1].tool_calls[1].function.arguments');
  });

  it('rejects tool call arguments that are JSON but not an object', () => {
    const err = catchError(() =>
      convert({ messages: [user('q'), { role: 'assistant', content: [], toolCalls: [{ id: 't', name: 'f', arguments: '[1]' }] }] }),
    );
    expect(err.param).toBe('messages[1].tool_calls[0].function.arguments');
  });

  it('converts base64 and URL images', () => {
    const { body } = convert({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare' },
            { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0KGgo=' }, detail: 'high' },
            { type: 'image', source: { kind: 'url', url: 'https://example.com/cat.jpg' } },
          ],
        },
      ],
    });
    expect(body.messages[0]?.content).toEqual([
      { type: 'text', text: 'Compare' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ]);
  });
});

describe('convertRequest: tools', () => {
  const tools = [
    { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } },
    { name: 'now', parameters: {}, strict: true },
  ];

  it('maps tools to name/description/input_schema, adding type object where missing', () => {
    expect(convert({ tools }).body.tools).toEqual([
      { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { location: { type: 'string' } } } },
      { name: 'now', input_schema: { type: 'object' }, strict: true },
    ]);
  });

  it('maps tool_choice auto / none / required / named tool', () => {
    expect(convert({ tools }).body.tool_choice).toBeUndefined();
    expect(convert({ tools, toolChoice: { type: 'auto' } }).body.tool_choice).toEqual({ type: 'auto' });
    expect(convert({ tools, toolChoice: { type: 'none' } }).body.tool_choice).toEqual({ type: 'none' });
    expect(convert({ tools, toolChoice: { type: 'required' } }).body.tool_choice).toEqual({ type: 'any' });
    expect(convert({ tools, toolChoice: { type: 'tool', name: 'now' } }).body.tool_choice).toEqual({ type: 'tool', name: 'now' });
  });

  it('maps parallel_tool_calls=false to disable_parallel_tool_use', () => {
    expect(convert({ tools, parallelToolCalls: false }).body.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(convert({ tools, parallelToolCalls: false, toolChoice: { type: 'required' } }).body.tool_choice).toEqual({
      type: 'any',
      disable_parallel_tool_use: true,
    });
    expect(convert({ tools, parallelToolCalls: true }).body.tool_choice).toBeUndefined();
  });

  it('rejects a forced tool choice without tools', () => {
    expect(catchError(() => convert({ toolChoice: { type: 'required' } })).param).toBe('tool_choice');
    expect(convert({ toolChoice: { type: 'auto' } }).body.tool_choice).toBeUndefined();
  });
});

describe('convertRequest: response_format', () => {
  const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false };

  it('maps json_schema to output_config.format (GA structured outputs, no beta header)', () => {
    const up = anthropicAdapter.buildChatRequest(
      { baseUrl: 'https://api.anthropic.com', apiKey: 'k' },
      request({ responseFormat: { type: 'json_schema', name: 'x', schema } }),
      CTX,
    );
    expect(JSON.parse(up.body).output_config).toEqual({ format: { type: 'json_schema', schema } });
    expect(up.headers['anthropic-beta']).toBeUndefined();
    expect(up.warnings).toEqual([]);
  });

  it('maps json_object to a system instruction, with a warning', () => {
    const { body, warnings } = convert({ messages: [system('Be brief.'), user('Hi')], responseFormat: { type: 'json_object' } });
    expect(body.system).toEqual([
      { type: 'text', text: 'Be brief.' },
      { type: 'text', text: JSON_OBJECT_INSTRUCTION },
    ]);
    expect(JSON_OBJECT_INSTRUCTION).toBe('Respond with a single JSON object.');
    expect(body.output_config).toBeUndefined();
    expect(warnings.map((w) => w.param)).toEqual(['response_format']);
  });

  it('sends nothing for response_format text', () => {
    const { body, warnings } = convert({ responseFormat: { type: 'text' } });
    expect(body.output_config).toBeUndefined();
    expect(body.system).toBeUndefined();
    expect(warnings).toEqual([]);
  });
});

describe('convertRequest: sampling and limits', () => {
  it('passes temperature, top_p, stop sequences, user and stream', () => {
    const { body, warnings } = convert({ temperature: 0.3, topP: 0.9, stop: ['END', '###'], user: 'u-42', stream: true });
    expect(body).toMatchObject({
      temperature: 0.3,
      top_p: 0.9,
      stop_sequences: ['END', '###'],
      metadata: { user_id: 'u-42' },
      stream: true,
    });
    expect(warnings).toEqual([]);
  });

  it('caps a temperature above 1 (OpenAI goes to 2, Anthropic to 1) at 1, with a warning', () => {
    const { body, warnings } = convert({ temperature: 1.7 });
    expect(body.temperature).toBe(1);
    expect(warnings).toEqual([{ param: 'temperature', message: expect.stringContaining('1.7 was capped at 1') }]);
    expect(convert({ temperature: 1 }).warnings).toEqual([]);
  });

  it('refuses a stop sequence made only of whitespace, naming stop', () => {
    const err = catchError(() => convert({ stop: ['END', '\n'] }));
    expect(err.status).toBe(400);
    expect(err.param).toBe('stop');
    expect(err.message).toMatch(/whitespace/);
  });

  it('omits stream when not streaming', () => {
    expect('stream' in convert({ stream: false }).body).toBe(false);
  });

  it('takes max_tokens from the request, else the catalog, else 4096 with a warning', () => {
    expect(convert({ maxTokens: 300 }).body.max_tokens).toBe(300);
    expect(convert({}, { maxOutputTokens: 64000 }).body.max_tokens).toBe(64000);
    const { body, warnings } = convert({}, {});
    expect(body.max_tokens).toBe(4096);
    expect(warnings.map((w) => w.param)).toEqual(['max_tokens']);
  });

  it('drops seed, frequency_penalty, presence_penalty, metadata, service_tier with warnings', () => {
    const { body, warnings } = convert({
      seed: 7,
      frequencyPenalty: 0.5,
      presencePenalty: 0.2,
      metadata: { k: 'v' },
      serviceTier: 'flex',
    });
    expect(warnings.map((w) => w.param)).toEqual(['seed', 'frequency_penalty', 'presence_penalty', 'metadata', 'service_tier']);
    expect(Object.keys(body).sort()).toEqual(['max_tokens', 'messages', 'model']);
  });

  it('does not warn for zero penalties (nothing is lost)', () => {
    expect(convert({ frequencyPenalty: 0, presencePenalty: 0 }).warnings).toEqual([]);
  });

  it.each([
    [{ n: 2 }, 'n'],
    [{ logprobs: true }, 'logprobs'],
    [{ topLogprobs: 3 }, 'top_logprobs'],
    [{ logitBias: { '50256': -100 } }, 'logit_bias'],
  ] as const)('rejects %o with a 400 unsupported parameter', (over, param) => {
    const err = catchError(() => convert(over as Partial<IRChatRequest>));
    expect(err.code).toBe('MR_ERR_UNSUPPORTED_PARAMETER');
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
  });

  it('accepts the harmless values n=1, logprobs=false and an empty logit_bias', () => {
    expect(convert({ n: 1, logprobs: false, logitBias: {} }).warnings).toEqual([]);
  });
});

describe('convertRequest: reasoning effort → thinking', () => {
  it.each(Object.entries(THINKING_BUDGETS))('maps %s to its budget', (effort, budget) => {
    const { body } = convert({ reasoningEffort: effort as IRChatRequest['reasoningEffort'], maxTokens: 40000 });
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: budget });
    expect(body.max_tokens).toBe(40000);
  });

  it('uses the documented budgets', () => {
    expect(THINKING_BUDGETS).toEqual({ minimal: 1024, low: 2048, medium: 8192, high: 24576, xhigh: 32000 });
  });

  it("sends no thinking for 'none'", () => {
    expect(convert({ reasoningEffort: 'none' }).body.thinking).toBeUndefined();
  });

  it('raises max_tokens to budget + requested output, with a warning', () => {
    const { body, warnings } = convert({ reasoningEffort: 'medium', maxTokens: 1000 }, {});
    expect(body.max_tokens).toBe(8192 + 1000);
    expect(budgetOf(body)).toBe(8192);
    expect(warnings).toEqual([{ param: 'max_tokens', message: expect.stringContaining('raised to 9192') }]);
  });

  it('does not warn when max_tokens already exceeds the budget', () => {
    const { body, warnings } = convert({ reasoningEffort: 'low', maxTokens: 5000 });
    expect(body.max_tokens).toBe(5000);
    expect(warnings).toEqual([]);
  });

  it("caps at the model's maximum and shrinks the budget to leave room for the answer", () => {
    const { body, warnings } = convert({ reasoningEffort: 'high', maxTokens: 1000 }, { maxOutputTokens: 8192 });
    expect(body.max_tokens).toBe(8192);
    expect(budgetOf(body)).toBe(7192);
    expect(budgetOf(body)!).toBeLessThan(body.max_tokens);
    expect(warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
  });

  it('drops temperature (and top_p below 0.95) with thinking, with warnings', () => {
    const { body, warnings } = convert({ reasoningEffort: 'low', maxTokens: 4000, temperature: 0.2, topP: 0.5 });
    expect(body.temperature).toBeUndefined();
    expect(body.top_p).toBeUndefined();
    expect(warnings.map((w) => w.param)).toEqual(['temperature', 'top_p']);
    expect(convert({ reasoningEffort: 'low', maxTokens: 4000, topP: 0.97 }).body.top_p).toBe(0.97);
  });

  it('rejects forced tool use together with thinking', () => {
    const err = catchError(() =>
      convert({ reasoningEffort: 'low', tools: [{ name: 'f', parameters: {} }], toolChoice: { type: 'required' } }),
    );
    expect(err.code).toBe('MR_ERR_UNSUPPORTED_PARAMETER');
    expect(err.param).toBe('tool_choice');
  });

  it('leaves thinking off, with a warning, when continuing a tool-use loop', () => {
    const { body, warnings } = convert({
      reasoningEffort: 'high',
      messages: [
        user('q'),
        { role: 'assistant', content: [], toolCalls: [{ id: 't1', name: 'f', arguments: '{}' }] },
        { role: 'tool', toolCallId: 't1', content: 'r' },
      ],
    });
    expect(body.thinking).toBeUndefined();
    expect(warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
  });

  it('leaves thinking off when a user message follows the tool results of the last assistant turn', () => {
    // Anthropic still requires that turn's thinking blocks: its tool results are in the last user turn.
    const call = { role: 'assistant' as const, content: [], toolCalls: [{ id: 't1', name: 'f', arguments: '{}' }] };
    const { body, warnings } = convert({
      reasoningEffort: 'high',
      messages: [user('q'), call, { role: 'tool', toolCallId: 't1', content: 'r' }, user('and tomorrow?')],
    });
    expect(body.thinking).toBeUndefined();
    expect(warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
    // Once an assistant turn without tool calls closed the loop, thinking is on again.
    const closed = convert({
      reasoningEffort: 'high',
      messages: [user('q'), call, { role: 'tool', toolCallId: 't1', content: 'r' }, { role: 'assistant', content: [{ type: 'text', text: 'Sunny.' }], toolCalls: [] }, user('and tomorrow?')],
    });
    expect(closed.body.thinking).toMatchObject({ type: 'enabled' });
  });
});

describe('thinking by model generation', () => {
  it.each([
    ['claude-3-7-sonnet-20250219', { major: 3, minor: 7 }, 'budget'],
    ['claude-sonnet-4-20250514', { major: 4, minor: 0 }, 'budget'],
    ['claude-haiku-4-5-20251001', { major: 4, minor: 5 }, 'budget'],
    ['claude-opus-4-6', { major: 4, minor: 6 }, 'adaptive'],
    ['claude-sonnet-5', { major: 5, minor: 0 }, 'adaptive'],
    ['claude-opus-5-5', { major: 5, minor: 5 }, 'always'],
    ['claude-haiku-5-5', { major: 5, minor: 5 }, 'always'],
    ['claude-fable-5-1', { major: 5, minor: 1 }, 'always'],
    ['claude-mythos-preview', undefined, 'always'],
    ['claude-x', undefined, 'budget'],
  ] as const)('%s → %o, %s', (model, version, style) => {
    expect(claudeVersion(model)).toEqual(version);
    expect(thinkingStyle(model)).toBe(style);
  });

  it('Claude 4.6 to 5.x: reasoning_effort is adaptive thinking with an effort, and no budget or max_tokens change', () => {
    const { body, warnings } = convert({ model: 'claude-opus-4-6', reasoningEffort: 'high', maxTokens: 1000 });
    expect(body.thinking).toEqual({ type: 'adaptive' });
    expect(body.output_config).toEqual({ effort: 'high' });
    expect(body.max_tokens).toBe(1000);
    expect(warnings).toEqual([]);
    expect(convert({ model: 'claude-sonnet-5', reasoningEffort: 'minimal' }).body.output_config).toEqual({ effort: 'low' });
    // 'none' turns thinking off explicitly: newer models think by default.
    expect(convert({ model: 'claude-opus-4-6', reasoningEffort: 'none' }).body.thinking).toEqual({ type: 'disabled' });
    // Without reasoning_effort, the model's own default.
    expect(convert({ model: 'claude-opus-4-6' }).body).not.toHaveProperty('thinking');
  });

  it('xhigh goes to the models that have it, and is high (warned) on the others', () => {
    expect(convert({ model: 'claude-opus-4-7', reasoningEffort: 'xhigh' }).body.output_config).toEqual({ effort: 'xhigh' });
    const older = convert({ model: 'claude-opus-4-6', reasoningEffort: 'xhigh' });
    expect(older.body.output_config).toEqual({ effort: 'high' });
    expect(older.warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
  });

  it('keeps the structured-output format beside the effort', () => {
    const { body } = convert({
      model: 'claude-opus-4-6',
      reasoningEffort: 'low',
      responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object' } },
    });
    expect(body.output_config).toEqual({ format: { type: 'json_schema', schema: { type: 'object' } }, effort: 'low' });
  });

  it('drops temperature with adaptive thinking on, with a warning', () => {
    const { body, warnings } = convert({ model: 'claude-opus-4-6', reasoningEffort: 'low', temperature: 0.2 });
    expect(body.temperature).toBeUndefined();
    expect(warnings.map((w) => w.param)).toEqual(['temperature']);
  });

  it('Claude 5.5: thinking cannot be turned off (none is effort low, warned), and sampling parameters are dropped (warned)', () => {
    const none = convert({ model: 'claude-sonnet-5-5', reasoningEffort: 'none' });
    expect(none.body.thinking).toEqual({ type: 'adaptive' });
    expect(none.body.output_config).toEqual({ effort: 'low' });
    expect(none.warnings.map((w) => w.param)).toEqual(['reasoning_effort']);

    const sampled = convert({ model: 'claude-opus-5-5', temperature: 0.3, topP: 0.9 });
    expect(sampled.body).not.toHaveProperty('temperature');
    expect(sampled.body).not.toHaveProperty('top_p');
    expect(sampled.body).not.toHaveProperty('thinking');
    expect(sampled.warnings.map((w) => w.param)).toEqual(['temperature', 'top_p']);
    expect(convert({ model: 'claude-opus-5-5', temperature: 1 }).warnings).toEqual([]);
  });

  it('drops sampling parameters from Claude 4.7 on, and keeps them on 4.6 without thinking', () => {
    expect(convert({ model: 'claude-opus-4-7', temperature: 0.3 }).body).not.toHaveProperty('temperature');
    expect(convert({ model: 'claude-sonnet-5', topP: 0.8 }).warnings.map((w) => w.param)).toEqual(['top_p']);
    expect(convert({ model: 'claude-opus-4-6', temperature: 0.3 }).body.temperature).toBe(0.3);
  });

  it('forces a tool with adaptive thinking (refused only with a manual budget)', () => {
    const { body } = convert({ model: 'claude-opus-4-6', reasoningEffort: 'low', tools: [{ name: 'f', parameters: {} }], toolChoice: { type: 'required' } });
    expect(body.tool_choice).toEqual({ type: 'any' });
    expect(body.thinking).toEqual({ type: 'adaptive' });
  });

  it('keeps adaptive thinking as asked when continuing a tool-use loop', () => {
    const { body, warnings } = convert({
      model: 'claude-opus-4-6',
      reasoningEffort: 'high',
      messages: [
        user('q'),
        { role: 'assistant', content: [], toolCalls: [{ id: 't1', name: 'f', arguments: '{}' }] },
        { role: 'tool', toolCallId: 't1', content: 'r' },
      ],
    });
    expect(body.thinking).toEqual({ type: 'adaptive' });
    expect(warnings).toEqual([]);
  });
});

describe('convertRequest: purity', () => {
  it('does not mutate its input (deep-frozen input, identical after conversion)', () => {
    const req: IRChatRequest = request({
      messages: [
        system('s'),
        user('a'),
        user('b'),
        { role: 'assistant', content: [{ type: 'text', text: 'x' }], toolCalls: [{ id: 't1', name: 'f', arguments: '{"k":1}' }] },
        { role: 'tool', toolCallId: 't1', content: 'r1' },
        system('late'),
        user('c'),
      ],
      tools: [{ name: 'f', parameters: {} }],
      toolChoice: { type: 'auto' },
      parallelToolCalls: false,
      stop: ['x'],
      responseFormat: { type: 'json_schema', name: 'n', schema: { type: 'object' } },
      reasoningEffort: 'medium',
      maxTokens: 100,
      temperature: 1,
    });
    const before = structuredClone(req);
    const ctx = deepFreeze({ maxOutputTokens: 64000 });
    const { body } = convertRequest(deepFreeze(req), ctx);
    expect(req).toEqual(before);
    // The output does not alias input arrays that a later mutation could leak through.
    expect(body.stop_sequences).not.toBe(req.stop);
  });
});

// ---------------------------------------------------------------------------------------------
// map-stop-reason
// ---------------------------------------------------------------------------------------------

describe('mapStopReason', () => {
  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['something_new', 'stop'],
    [null, 'stop'],
  ] as const)('%s → %s', (reason, expected) => {
    expect(mapStopReason(reason)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// convert-response
// ---------------------------------------------------------------------------------------------

describe('convertResponse', () => {
  it('parses a text reply', () => {
    const reply = anthropicTextReply({ text: 'Hi there', id: 'msg_1' });
    expect(anthropicAdapter.parseChatResponse(reply.json)).toEqual({
      upstreamId: 'msg_1',
      model: ANTHROPIC_MODEL,
      text: 'Hi there',
      refusal: null,
      toolCalls: [],
      finishReason: 'stop',
      usage: { promptTokens: 25, completionTokens: 12, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 },
    });
  });

  it('parses a text block followed by two parallel tool calls', () => {
    const result = convertResponse(anthropicToolCallReply({ text: 'Let me check.' }).json);
    expect(result.text).toBe('Let me check.');
    expect(result.finishReason).toBe('tool_calls');
    expect(result.toolCalls).toEqual(
      DEFAULT_TOOL_CALLS.map((c) => ({ id: c.id, name: c.name, arguments: JSON.stringify(c.input) })),
    );
  });

  it('parses thinking blocks into reasoning', () => {
    const result = convertResponse(anthropicThinkingReply({ thinking: 'Let me think.', text: '42' }).json);
    expect(result.reasoning).toBe('Let me think.');
    expect(result.text).toBe('42');
  });

  it('concatenates several text blocks and returns null text when there is none', () => {
    const base = anthropicTextReply().json as Record<string, unknown>;
    expect(convertResponse({ ...base, content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }).text).toBe('ab');
    expect(convertResponse({ ...base, content: [] }).text).toBeNull();
    expect(convertResponse({ ...base, stop_reason: 'max_tokens' }).finishReason).toBe('length');
  });

  it('normalises cached usage: prompt = input + cache reads + cache writes', () => {
    const result = convertResponse(anthropicCachedUsageReply().json);
    expect(result.usage).toEqual({
      promptTokens: 21 + 1800 + 248,
      completionTokens: 42,
      cachedTokens: 1800,
      cacheWriteTokens: 248,
      cacheWrite1hTokens: 0,
      reasoningTokens: 0,
    });
  });

  it('treats null or missing cache fields as zero', () => {
    expect(normaliseUsage({ input_tokens: 10, output_tokens: 2, cache_read_input_tokens: null })).toEqual({
      promptTokens: 10,
      completionTokens: 2,
      cachedTokens: 0,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      reasoningTokens: 0,
    });
  });

  it('reads 1-hour cache writes from usage.cache_creation', () => {
    // input 100 + cache reads 300 + cache writes 200 (150 for 5 minutes, 50 for 1 hour) = 600.
    const reply = anthropicCachedUsageReply({
      usage: { inputTokens: 100, cacheReadTokens: 300, cacheWriteTokens: 200, cacheWrite1hTokens: 50, outputTokens: 7 },
    });
    expect((reply.json as { usage: unknown }).usage).toMatchObject({
      cache_creation_input_tokens: 200,
      cache_creation: { ephemeral_5m_input_tokens: 150, ephemeral_1h_input_tokens: 50 },
    });
    expect(convertResponse(reply.json).usage).toEqual({
      promptTokens: 600,
      completionTokens: 7,
      cachedTokens: 300,
      cacheWriteTokens: 200,
      cacheWrite1hTokens: 50,
      reasoningTokens: 0,
    });
  });

  it('falls back on the cache_creation split when cache_creation_input_tokens is absent or smaller', () => {
    const split = { ephemeral_5m_input_tokens: 3, ephemeral_1h_input_tokens: 4 };
    expect(normaliseUsage({ input_tokens: 1, output_tokens: 2, cache_creation: split })).toEqual({
      promptTokens: 1 + 7,
      completionTokens: 2,
      cachedTokens: 0,
      cacheWriteTokens: 7,
      cacheWrite1hTokens: 4,
      reasoningTokens: 0,
    });
    expect(normaliseUsage({ input_tokens: 1, cache_creation_input_tokens: 2, cache_creation: split }).cacheWriteTokens).toBe(7);
    expect(normaliseUsage({ input_tokens: 1, cache_creation_input_tokens: 9, cache_creation: null })).toMatchObject({
      promptTokens: 10,
      cacheWriteTokens: 9,
      cacheWrite1hTokens: 0,
    });
  });

  it.each([
    ['a string', 'nope'],
    ['null', null],
    ['no content', { id: 'msg', usage: {} }],
    ['a non-object block', { content: ['x'] }],
    ['a tool_use without id', { content: [{ type: 'tool_use', name: 'f', input: {} }] }],
    ['non-object usage', { content: [], usage: 3 }],
  ])('rejects a malformed body (%s) as MR_ERR_UPSTREAM_BAD_RESPONSE', (_, body) => {
    const err = catchError(() => convertResponse(body));
    expect(err.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(err.status).toBe(502);
  });
});

// ---------------------------------------------------------------------------------------------
// stream-to-parts
// ---------------------------------------------------------------------------------------------

describe('AnthropicStreamDecoder', () => {
  it('decodes a text stream (ping included) into start, text, finish and usage', () => {
    const parts = decode(sseEvents(anthropicTextStream({ id: 'msg_s', chunks: ['Hel', 'lo'] })));
    expect(parts).toEqual([
      { type: 'start', upstreamId: 'msg_s', model: ANTHROPIC_MODEL },
      { type: 'text-delta', text: 'Hel' },
      { type: 'text-delta', text: 'lo' },
      { type: 'finish', finishReason: 'stop' },
      {
        type: 'usage',
        usage: { promptTokens: 25, completionTokens: 12, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 },
      },
    ]);
  });

  it('numbers tool calls from 0, independent of the content block index', () => {
    const parts = decode(sseEvents(anthropicToolCallStream({ text: 'Checking.' })));
    expect(ofType(parts, 'text-delta').map((p) => p.text).join('')).toBe('Checking.');
    expect(ofType(parts, 'tool-call-start')).toEqual([
      { type: 'tool-call-start', index: 0, id: DEFAULT_TOOL_CALLS[0]!.id, name: 'get_weather' },
      { type: 'tool-call-start', index: 1, id: DEFAULT_TOOL_CALLS[1]!.id, name: 'get_time' },
    ]);
    const deltas = ofType(parts, 'tool-call-delta');
    expect(deltas.every((d) => d.argumentsDelta !== '')).toBe(true);
    for (const [i, call] of DEFAULT_TOOL_CALLS.entries()) {
      const args = deltas.filter((d) => d.index === i).map((d) => d.argumentsDelta).join('');
      expect(JSON.parse(args)).toEqual(call.input);
    }
    expect(ofType(parts, 'finish')).toEqual([{ type: 'finish', finishReason: 'tool_calls' }]);
    expect(ofType(parts, 'error')).toEqual([]);
  });

  it("gives a tool call without input the arguments '{}'", () => {
    const parts = decode(sseEvents(anthropicToolCallStream({ calls: [{ id: 'toolu_x', name: 'now', input: {} }] })));
    const args = ofType(parts, 'tool-call-delta').map((d) => d.argumentsDelta).join('');
    expect(JSON.parse(args)).toEqual({});
  });

  it("gives a tool call whose input deltas are all empty the arguments '{}'", () => {
    const ev = (type: string, payload: Record<string, unknown>): SSEEvent => ({ event: type, data: JSON.stringify({ type, ...payload }) });
    const events = sseEvents(anthropicToolCallStream({ calls: [] })).filter((e) => e.event !== 'message_delta' && e.event !== 'message_stop');
    events.push(
      ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_n', name: 'now', input: {} } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
      ev('content_block_stop', { index: 1 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 3 } }),
      ev('message_stop', {}),
    );
    const parts = decode(events);
    expect(ofType(parts, 'tool-call-delta')).toEqual([{ type: 'tool-call-delta', index: 0, argumentsDelta: '{}' }]);
  });

  it('decodes thinking deltas as reasoning and ignores signature deltas', () => {
    const parts = decode(sseEvents(anthropicThinkingStream({ thinking: ['Hmm', ', 42.'], chunks: ['It is 42'] })));
    expect(ofType(parts, 'reasoning-delta').map((p) => p.text)).toEqual(['Hmm', ', 42.']);
    expect(ofType(parts, 'text-delta').map((p) => p.text)).toEqual(['It is 42']);
    expect(parts.filter((p) => !['start', 'reasoning-delta', 'text-delta', 'finish', 'usage'].includes(p.type))).toEqual([]);
  });

  it.each([false, true])('combines message_start prompt usage with message_delta output (cumulative=%s)', (cumulativeUsage) => {
    const parts = decode(sseEvents(anthropicCachedUsageStream({ cumulativeUsage })));
    expect(ofType(parts, 'usage')).toEqual([
      {
        type: 'usage',
        usage: { promptTokens: 21 + 1800 + 248, completionTokens: 42, cachedTokens: 1800, cacheWriteTokens: 248, cacheWrite1hTokens: 0, reasoningTokens: 0 },
      },
    ]);
  });

  it.each([false, true])('reads 1-hour cache writes from message_start usage (cumulative=%s)', (cumulativeUsage) => {
    const parts = decode(sseEvents(anthropicCachedUsageStream({ cumulativeUsage, usage: { cacheWrite1hTokens: 48 } })));
    expect(ofType(parts, 'usage')).toEqual([
      {
        type: 'usage',
        usage: { promptTokens: 21 + 1800 + 248, completionTokens: 42, cachedTokens: 1800, cacheWriteTokens: 248, cacheWrite1hTokens: 48, reasoningTokens: 0 },
      },
    ]);
  });

  it('takes a cache_creation split repeated in message_delta usage over the one of message_start', () => {
    const ev = (type: string, payload: Record<string, unknown>): SSEEvent => ({ event: type, data: JSON.stringify({ type, ...payload }) });
    const start = sseEvents(anthropicCachedUsageStream({ usage: { cacheWrite1hTokens: 0 } })).filter(
      (e) => e.event !== 'message_delta' && e.event !== 'message_stop',
    );
    const usage = {
      output_tokens: 42,
      cache_creation_input_tokens: 248,
      cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 48 },
    };
    const parts = decode([
      ...start,
      ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage }),
      ev('message_stop', {}),
    ]);
    expect(ofType(parts, 'usage').map((p) => p.usage)).toEqual([
      { promptTokens: 21 + 1800 + 248, completionTokens: 42, cachedTokens: 1800, cacheWriteTokens: 248, cacheWrite1hTokens: 48, reasoningTokens: 0 },
    ]);
  });

  it('turns an error event mid-stream into a terminal error part', () => {
    const events = sseEvents(anthropicStreamWithError({ chunks: ['Hi'] }));
    const decoder = new AnthropicStreamDecoder();
    const parts = events.flatMap((e) => decoder.push(e));
    expect(ofType(parts, 'text-delta').map((p) => p.text)).toEqual(['Hi']);
    const errors = ofType(parts, 'error');
    expect(errors).toHaveLength(1);
    expect(parts[parts.length - 1]).toBe(errors[0]);
    expect(errors[0]!.error.code).toBe('MR_ERR_UPSTREAM_UNAVAILABLE');
    expect(errors[0]!.error.retryable).toBe(true);
    expect(errors[0]!.error.message).toBe('Overloaded');
    // Terminal: nothing more, not even an "ended early" error.
    expect(decoder.push({ event: 'message_stop', data: '{"type":"message_stop"}' })).toEqual([]);
    expect(decoder.end()).toEqual([]);
  });

  it.each([
    ['rate_limit_error', 'MR_ERR_UPSTREAM_RATE_LIMITED'],
    ['api_error', 'MR_ERR_UPSTREAM_ERROR'],
    ['invalid_request_error', 'MR_ERR_UPSTREAM_BAD_REQUEST'],
    ['some_future_error', 'MR_ERR_UPSTREAM_ERROR'],
  ])('maps a stream %s event to %s', (errorType, code) => {
    const parts = decode(sseEvents(anthropicStreamWithError({ errorType, message: 'boom' })));
    expect(ofType(parts, 'error').map((p) => p.error.code)).toEqual([code]);
  });

  it('reports a stream that ends before message_stop', () => {
    const events = sseEvents(anthropicTextStream()).filter((e) => e.event !== 'message_stop');
    const parts = decode(events);
    expect(ofType(parts, 'finish')).toHaveLength(1);
    const last = parts[parts.length - 1];
    expect(last?.type).toBe('error');
    if (last?.type !== 'error') return;
    expect(last.error.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(last.error.message).toContain('upstream stream ended early');
  });

  it('turns unparseable data into an error part without throwing', () => {
    const decoder = new AnthropicStreamDecoder();
    expect(() => decoder.push({ event: 'content_block_delta', data: '{not json' })).not.toThrow();
    const decoder2 = new AnthropicStreamDecoder();
    const parts = decoder2.push({ event: 'content_block_delta', data: '{not json' });
    expect(parts).toHaveLength(1);
    expect(parts[0]?.type === 'error' && parts[0].error.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(decoder2.end()).toEqual([]);
  });

  it('reports input_json_delta for a block that is not a tool_use', () => {
    const decoder = new AnthropicStreamDecoder();
    const parts = decoder.push({
      event: 'content_block_delta',
      data: JSON.stringify({ type: 'content_block_delta', index: 5, delta: { type: 'input_json_delta', partial_json: '{' } }),
    });
    expect(parts.map((p) => p.type)).toEqual(['error']);
  });

  it('decodes the fixture byte stream through a real SSE parser the same way', () => {
    const reply = anthropicToolCallStream();
    const raw = (reply.sse ?? []).map(sseFrame).join('');
    const events: SSEEvent[] = [];
    const parser = createParser({ onEvent: (m) => events.push({ event: m.event, data: m.data }) });
    // Split at odd offsets, as a network would.
    for (let i = 0; i < raw.length; i += 37) parser.feed(raw.slice(i, i + 37));
    expect(events.map((e) => e.event)).toContain('ping');
    expect(decode(events)).toEqual(decode(sseEvents(reply)));
  });
});

// ---------------------------------------------------------------------------------------------
// anthropic-error
// ---------------------------------------------------------------------------------------------

describe('parseAnthropicError', () => {
  it('maps 400 invalid_request_error, keeping the upstream message', () => {
    const err = anthropicAdapter.parseError(...errorArgs(anthropicInvalidRequestError('max_tokens: Field required')));
    expect(err.code).toBe('MR_ERR_UPSTREAM_BAD_REQUEST');
    expect(err.status).toBe(400);
    expect(err.upstreamStatus).toBe(400);
    expect(err.message).toBe('max_tokens: Field required');
  });

  it('maps 401 to an upstream auth error', () => {
    const err = parseAnthropicError(...errorArgs(anthropicAuthError()));
    expect(err.code).toBe('MR_ERR_UPSTREAM_AUTH');
    expect(err.message).toContain('invalid x-api-key');
  });

  it('maps 429 with retry-after', () => {
    const err = parseAnthropicError(...errorArgs(anthropicRateLimitError({ retryAfter: 17 })));
    expect(err.code).toBe('MR_ERR_UPSTREAM_RATE_LIMITED');
    expect(err.status).toBe(429);
    expect(err.retryAfter).toBe(17);
  });

  it('reads retry-after case-insensitively', () => {
    const err = parseAnthropicError(429, '', { 'Retry-After': '5' });
    expect(err.retryAfter).toBe(5);
  });

  it('maps 529 overloaded_error to upstream unavailable (retryable)', () => {
    const err = parseAnthropicError(...errorArgs(anthropicOverloadedError()));
    expect(err.code).toBe('MR_ERR_UPSTREAM_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.upstreamStatus).toBe(529);
  });

  it('maps 500 api_error to an upstream error', () => {
    const err = parseAnthropicError(...errorArgs(anthropicServerError('Internal server error')));
    expect(err.code).toBe('MR_ERR_UPSTREAM_ERROR');
    expect(err.message).toBe('Internal server error');
  });

  it('gives a generic message naming the status for a non-JSON body', () => {
    const err = parseAnthropicError(502, '<html>Bad gateway</html>', {});
    expect(err.code).toBe('MR_ERR_UPSTREAM_ERROR');
    expect(err.message).toContain('502');
    expect(err.message).not.toContain('html');
    expect(parseAnthropicError(503, '', {}).message).toContain('503');
  });
});
