import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createParser } from 'eventsource-parser';
import { request } from 'undici';
import { geminiAdapter } from '../../src/providers/gemini/index.js';
import { geminiUrl, geminiHeaders } from '../../src/providers/gemini/gemini-api.js';
import {
  convertRequest,
  guessImageMimeType,
  needsThoughtSignature,
  SKIP_THOUGHT_SIGNATURE,
  THINKING_BUDGETS,
} from '../../src/providers/gemini/convert-request.js';
import { mapGeminiFinishReason } from '../../src/providers/gemini/map-finish-reason.js';
import { normalizeUsage } from '../../src/providers/gemini/convert-response.js';
import { GatewayError } from '../../src/ir/errors.js';
import type { IRChatRequest, IRMessage, IRReasoningEffort } from '../../src/ir/request.js';
import type { IREmbeddingsRequest } from '../../src/ir/embeddings.js';
import type { IRStreamPart } from '../../src/ir/stream-part.js';
import type { MockReply, MockUpstream } from '../helpers/mock-upstream.js';
import { sseFrame, startMockUpstream } from '../helpers/mock-upstream.js';
import {
  GEMINI_MODEL_VERSION,
  GEMINI_RESPONSE_ID,
  geminiBlockedPromptReply,
  geminiBlockedPromptStream,
  geminiCachedReply,
  geminiEmbeddingsReply,
  geminiErrorReply,
  geminiFunctionCallsReply,
  geminiFunctionCallsStream,
  geminiMaxTokensStream,
  geminiMidStreamErrorStream,
  geminiTextReply,
  geminiTextStream,
  geminiThinkingReply,
  geminiThinkingStream,
  geminiTruncatedStream,
} from '../fixtures/gemini.js';

const TARGET = { baseUrl: 'https://generativelanguage.googleapis.com/', apiKey: 'AIza-test-key', headers: { 'X-Team': 'core' } };

function chat(overrides: Partial<IRChatRequest> = {}): IRChatRequest {
  return {
    model: 'gemini-2.5-flash',
    stream: false,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    ...overrides,
  };
}

function body(req: IRChatRequest): any {
  return JSON.parse(geminiAdapter.buildChatRequest(TARGET, req, {}).body);
}

function thrown(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError, nothing was thrown');
}

/** Serialises a fixture stream to SSE text and runs it through the shared parser into the decoder. */
function decode(reply: MockReply): IRStreamPart[] {
  const decoder = geminiAdapter.createStreamDecoder();
  const parts: IRStreamPart[] = [];
  const parser = createParser({ onEvent: (e) => parts.push(...decoder.push({ event: e.event, data: e.data })) });
  for (const item of reply.sse ?? []) parser.feed(sseFrame(item));
  parts.push(...decoder.end());
  return parts;
}

function json(reply: MockReply): unknown {
  return JSON.parse(JSON.stringify(reply.json));
}

const user = (text: string): IRMessage => ({ role: 'user', content: [{ type: 'text', text }] });

// ---------------------------------------------------------------------------------------------

describe('gemini-api: addressing', () => {
  it('builds the v1beta method URLs from the base URL, stripping trailing slashes', () => {
    expect(geminiUrl('https://generativelanguage.googleapis.com//', 'gemini-2.5-flash', 'generateContent')).toBe(
      'https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent',
    );
    expect(geminiUrl('https://generativelanguage.googleapis.com', 'gemini-2.5-flash', 'streamGenerateContent')).toBe(
      'https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    );
    expect(geminiUrl('https://proxy.example/gemini/', 'text-embedding-004', 'batchEmbedContents')).toBe(
      'https://proxy.example/gemini/v1beta/models/text-embedding-004:batchEmbedContents',
    );
  });

  it('keeps a model id that already names its collection', () => {
    expect(geminiUrl('https://g.example', 'models/gemini-2.5-pro', 'generateContent')).toBe(
      'https://g.example/v1beta/models/gemini-2.5-pro:generateContent',
    );
    expect(geminiUrl('https://g.example', 'tunedModels/my-model', 'generateContent')).toBe(
      'https://g.example/v1beta/tunedModels/my-model:generateContent',
    );
  });

  it('sends the key in x-goog-api-key, never in the URL, with JSON content type and config headers', () => {
    const req = geminiAdapter.buildChatRequest(TARGET, chat(), {});
    expect(req.headers['x-goog-api-key']).toBe('AIza-test-key');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-team']).toBe('core');
    expect(req.url).not.toContain('AIza');
    expect(req.url).not.toContain('key=');
  });

  it('picks the stream method from req.stream', () => {
    expect(geminiAdapter.buildChatRequest(TARGET, chat({ stream: true }), {}).url).toMatch(/:streamGenerateContent\?alt=sse$/);
    expect(geminiAdapter.buildChatRequest(TARGET, chat({ stream: false }), {}).url).toMatch(/:generateContent$/);
  });

  it('omits the key header when no key is configured', () => {
    expect(geminiHeaders({ baseUrl: 'https://g.example' })).toEqual({ 'content-type': 'application/json' });
  });

  it('declares its type and capabilities', () => {
    expect(geminiAdapter.type).toBe('gemini');
    expect(geminiAdapter.buildEmbeddingsRequest).toBeTypeOf('function');
    expect(geminiAdapter.buildPassthroughChatRequest).toBeUndefined();
  });
});

describe('convert-request: messages', () => {
  it('moves system and developer messages, in order, to systemInstruction', () => {
    const b = body(
      chat({
        messages: [
          { role: 'system', origin: 'system', text: 'Be brief.' },
          { role: 'system', origin: 'developer', text: 'Answer in French.' },
          user('Hi'),
        ],
      }),
    );
    expect(b.systemInstruction).toEqual({ parts: [{ text: 'Be brief.' }, { text: 'Answer in French.' }] });
    expect(b.contents).toEqual([{ role: 'user', parts: [{ text: 'Hi' }] }]);
  });

  it('has no systemInstruction without system messages', () => {
    expect(body(chat())).not.toHaveProperty('systemInstruction');
  });

  it('maps roles to user/model and merges consecutive same-role turns', () => {
    const b = body(
      chat({
        messages: [
          user('one'),
          user('two'),
          { role: 'assistant', content: [{ type: 'text', text: 'three' }], toolCalls: [] },
          { role: 'assistant', content: [{ type: 'text', text: 'four' }], toolCalls: [] },
          user('five'),
        ],
      }),
    );
    expect(b.contents).toEqual([
      { role: 'user', parts: [{ text: 'one' }, { text: 'two' }] },
      { role: 'model', parts: [{ text: 'three' }, { text: 'four' }] },
      { role: 'user', parts: [{ text: 'five' }] },
    ]);
  });

  const toolConversation: IRMessage[] = [
    user('Weather in Paris and London?'),
    {
      role: 'assistant',
      content: [{ type: 'text', text: 'Checking.' }],
      toolCalls: [
        { id: 'call_a', name: 'get_weather', arguments: '{"city":"Paris"}' },
        { id: 'call_b', name: 'get_time', arguments: '{"tz":"Europe/London"}' },
      ],
    },
    { role: 'tool', toolCallId: 'call_a', content: '{"temp":21,"sky":"clear"}' },
    { role: 'tool', toolCallId: 'call_b', content: '14:05' },
    user('Thanks'),
  ];

  it('turns assistant tool calls into functionCall parts with parsed args and no ids', () => {
    const b = body(chat({ messages: toolConversation }));
    expect(b.contents[1]).toEqual({
      role: 'model',
      parts: [
        { text: 'Checking.' },
        { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
        { functionCall: { name: 'get_time', args: { tz: 'Europe/London' } } },
      ],
    });
  });

  it('puts consecutive tool results in one user turn with names looked up by tool call id', () => {
    const b = body(chat({ messages: toolConversation }));
    expect(b.contents).toHaveLength(3);
    expect(b.contents[2]).toEqual({
      role: 'user',
      parts: [
        { functionResponse: { name: 'get_weather', response: { temp: 21, sky: 'clear' } } },
        { functionResponse: { name: 'get_time', response: { content: '14:05' } } },
        { text: 'Thanks' },
      ],
    });
  });

  it('wraps tool results that are JSON but not an object', () => {
    const b = body(
      chat({
        messages: [
          user('x'),
          { role: 'assistant', content: [], toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'c1', content: '[1,2]' },
        ],
      }),
    );
    expect(b.contents[2].parts[0].functionResponse.response).toEqual({ content: '[1,2]' });
  });

  it('rejects tool call arguments that are not JSON, naming the field', () => {
    const err = thrown(() =>
      convertRequest(
        chat({
          messages: [
            user('x'),
            {
              role: 'assistant',
              content: [],
              toolCalls: [
                { id: 'c1', name: 'f', arguments: '{}' },
                { id: 'c2', name: 'g', arguments: '{"city": Paris}' },
              ],
            },
          ],
        }),
      ),
    );
    expect(err.code).toBe('MR_ERR_INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[1].tool_calls[1].function.arguments');
  });

  it('rejects a tool result whose id matches no earlier tool call, naming the field', () => {
    const err = thrown(() =>
      convertRequest(
        chat({
          messages: [
            user('x'),
            { role: 'assistant', content: [], toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
            { role: 'tool', toolCallId: 'c1', content: 'ok' },
            { role: 'tool', toolCallId: 'c9', content: 'ok' },
          ],
        }),
      ),
    );
    expect(err.code).toBe('MR_ERR_INVALID_REQUEST');
    expect(err.param).toBe('messages[3].tool_call_id');
  });

  it('sends a system-only conversation with its system instruction as the user turn, with a warning', () => {
    const sys = (text: string): IRMessage => ({ role: 'system', origin: 'system', text });
    const { body: converted, warnings } = convertRequest(chat({ messages: [sys('Name a colour.'), sys('One word.')] }));
    expect(converted.contents).toEqual([{ role: 'user', parts: [{ text: 'Name a colour.' }, { text: 'One word.' }] }]);
    expect(converted.systemInstruction).toBeUndefined();
    expect(warnings).toContainEqual({ param: 'messages', message: expect.stringContaining('system instruction was sent as the user turn') });
  });

  it('rejects a request whose every message is empty, naming messages', () => {
    const err = thrown(() => convertRequest(chat({ messages: [{ role: 'system', origin: 'system', text: '' }, user('')] })));
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages');
  });

  it('does not look up tool call ids from later assistant turns', () => {
    const err = thrown(() =>
      convertRequest(
        chat({
          messages: [
            user('x'),
            { role: 'tool', toolCallId: 'c1', content: 'ok' },
            { role: 'assistant', content: [], toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
          ],
        }),
      ),
    );
    expect(err.param).toBe('messages[1].tool_call_id');
  });

  it('signs the first replayed function call of each step for Gemini 3 models only', () => {
    const gemini3 = body(chat({ model: 'gemini-3-pro-preview', messages: toolConversation }));
    expect(gemini3.contents[1].parts[1].thoughtSignature).toBe(SKIP_THOUGHT_SIGNATURE);
    expect(gemini3.contents[1].parts[2]).not.toHaveProperty('thoughtSignature');
    const gemini25 = body(chat({ model: 'gemini-2.5-pro', messages: toolConversation }));
    expect(JSON.stringify(gemini25)).not.toContain('thoughtSignature');
    expect(needsThoughtSignature('models/gemini-3.1-flash')).toBe(true);
    expect(needsThoughtSignature('gemini-flash-latest')).toBe(true);
    expect(needsThoughtSignature('gemini-2.0-flash')).toBe(false);
    expect(needsThoughtSignature('gemma-3-27b-it')).toBe(false);
  });

  it('leaves out empty text parts and empty turns', () => {
    const b = body(
      chat({
        messages: [
          { role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'Hi' }] },
          { role: 'assistant', content: [{ type: 'text', text: '' }], toolCalls: [] },
          user('Again'),
        ],
      }),
    );
    expect(b.contents).toEqual([{ role: 'user', parts: [{ text: 'Hi' }, { text: 'Again' }] }]);
  });
});

describe('convert-request: images', () => {
  it('sends base64 images as inlineData', () => {
    const b = body(
      chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0KGgo=' }, detail: 'high' },
            ],
          },
        ],
      }),
    );
    expect(b.contents[0].parts).toEqual([{ text: 'What is this?' }, { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } }]);
  });

  it('sends https images as fileData with a MIME type guessed from the extension', () => {
    const b = body(
      chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image', source: { kind: 'url', url: 'https://example.com/cat.webp?size=large' } },
              { type: 'image', source: { kind: 'url', url: 'https://example.com/photo' } },
            ],
          },
        ],
      }),
    );
    expect(b.contents[0].parts).toEqual([
      { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/cat.webp?size=large' } },
      { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/photo' } },
    ]);
  });

  it('guesses image MIME types', () => {
    expect(guessImageMimeType('https://x.example/a.PNG')).toBe('image/png');
    expect(guessImageMimeType('https://x.example/a.jpeg#frag')).toBe('image/jpeg');
    expect(guessImageMimeType('https://x.example/a.gif')).toBe('image/gif');
    expect(guessImageMimeType('https://x.example/a.heic')).toBe('image/heic');
    expect(guessImageMimeType('https://x.example/a.unknown')).toBe('image/jpeg');
  });

  it('decodes a data: URL to inlineData', () => {
    const b = body(chat({ messages: [{ role: 'user', content: [{ type: 'image', source: { kind: 'url', url: 'data:image/gif;base64,R0lGOD==' } }] }] }));
    expect(b.contents[0].parts[0]).toEqual({ inlineData: { mimeType: 'image/gif', data: 'R0lGOD==' } });
  });
});

describe('convert-request: tools', () => {
  const weather = {
    name: 'get_weather',
    description: 'Current weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: ['string', 'null'], enum: ['c', 'f', null] } },
      required: ['city'],
      additionalProperties: false,
    },
  };

  it('declares functions with the JSON Schema passed as is in parametersJsonSchema', () => {
    const b = body(chat({ tools: [weather, { name: 'ping', parameters: {} }] }));
    expect(b.tools).toEqual([
      {
        functionDeclarations: [
          { name: 'get_weather', description: 'Current weather', parametersJsonSchema: weather.parameters },
          { name: 'ping' },
        ],
      },
    ]);
  });

  it.each([
    [{ type: 'auto' } as const, { mode: 'AUTO' }],
    [{ type: 'none' } as const, { mode: 'NONE' }],
    [{ type: 'required' } as const, { mode: 'ANY' }],
    [{ type: 'tool', name: 'get_weather' } as const, { mode: 'ANY', allowedFunctionNames: ['get_weather'] }],
  ])('maps tool_choice %j', (toolChoice, expected) => {
    expect(body(chat({ tools: [weather], toolChoice })).toolConfig).toEqual({ functionCallingConfig: expected });
  });

  it('rejects a named tool_choice that is not among the tools', () => {
    expect(thrown(() => convertRequest(chat({ tools: [weather], toolChoice: { type: 'tool', name: 'nope' } }))).param).toBe('tool_choice');
  });

  it('omits tools and toolConfig when there are no tools and the choice is auto', () => {
    const b = body(chat({ toolChoice: { type: 'auto' } }));
    expect(b).not.toHaveProperty('tools');
    expect(b).not.toHaveProperty('toolConfig');
  });

  it('warns that parallel tool calls cannot be disabled', () => {
    const { warnings } = geminiAdapter.buildChatRequest(TARGET, chat({ tools: [weather], parallelToolCalls: false }), {});
    expect(warnings.map((w) => w.param)).toEqual(['parallel_tool_calls']);
  });
});

describe('convert-request: generation config', () => {
  it('maps sampling parameters', () => {
    const b = body(
      chat({ temperature: 0.3, topP: 0.9, stop: ['END', '###'], maxTokens: 256, seed: 42, presencePenalty: 0.5, frequencyPenalty: -0.2 }),
    );
    expect(b.generationConfig).toEqual({
      temperature: 0.3,
      topP: 0.9,
      stopSequences: ['END', '###'],
      maxOutputTokens: 256,
      seed: 42,
      presencePenalty: 0.5,
      frequencyPenalty: -0.2,
    });
  });

  it('sends no generationConfig when nothing is set', () => {
    expect(body(chat())).not.toHaveProperty('generationConfig');
  });

  it('keeps a zero temperature', () => {
    expect(body(chat({ temperature: 0 })).generationConfig).toEqual({ temperature: 0 });
  });

  it('accepts five stop sequences and rejects six', () => {
    expect(body(chat({ stop: ['a', 'b', 'c', 'd', 'e'] })).generationConfig.stopSequences).toHaveLength(5);
    const err = thrown(() => convertRequest(chat({ stop: ['a', 'b', 'c', 'd', 'e', 'f'] })));
    expect(err.code).toBe('MR_ERR_UNSUPPORTED_PARAMETER');
    expect(err.param).toBe('stop');
  });

  it('maps response_format json_object to JSON mode', () => {
    expect(body(chat({ responseFormat: { type: 'json_object' } })).generationConfig).toEqual({ responseMimeType: 'application/json' });
  });

  it('maps response_format json_schema to responseJsonSchema, passed as is', () => {
    const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'], additionalProperties: false };
    expect(body(chat({ responseFormat: { type: 'json_schema', name: 'result', schema, strict: true } })).generationConfig).toEqual({
      responseMimeType: 'application/json',
      responseJsonSchema: schema,
    });
  });

  it('sends nothing for response_format text', () => {
    expect(body(chat({ responseFormat: { type: 'text' } }))).not.toHaveProperty('generationConfig');
  });

  it.each(Object.entries({ none: 0, minimal: 512, low: 1024, medium: 8192, high: 24576, xhigh: 32768 }))(
    'maps reasoning_effort %s to thinkingBudget %d',
    (effort, budget) => {
      expect(THINKING_BUDGETS[effort as IRReasoningEffort]).toBe(budget);
      expect(body(chat({ reasoningEffort: effort as IRReasoningEffort })).generationConfig.thinkingConfig).toEqual({
        thinkingBudget: budget,
        includeThoughts: budget > 0,
      });
    },
  );

  it.each([
    ['gemini-3.8-flash', 'minimal', 'minimal'],
    ['gemini-3.8-flash', 'low', 'low'],
    ['gemini-3.1-pro-preview', 'minimal', 'low'],
    ['gemini-3.1-pro-preview', 'medium', 'medium'],
    ['gemini-3.1-pro-preview', 'high', 'high'],
  ] as const)('Gemini 3 and later: %s, reasoning_effort %s → thinkingLevel %s', (model, effort, level) => {
    const { body: converted, warnings } = convertRequest(chat({ model, reasoningEffort: effort }));
    expect(converted.generationConfig?.thinkingConfig).toEqual({ thinkingLevel: level, includeThoughts: true });
    expect(warnings).toEqual([]);
  });

  it('Gemini 3 and later cannot turn thinking off: none is the lowest level, and xhigh is high, each warned', () => {
    const flash = convertRequest(chat({ model: 'gemini-3.8-flash', reasoningEffort: 'none' }));
    expect(flash.body.generationConfig?.thinkingConfig).toEqual({ thinkingLevel: 'minimal', includeThoughts: false });
    expect(flash.warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
    const pro = convertRequest(chat({ model: 'gemini-3.1-pro-preview', reasoningEffort: 'none' }));
    expect(pro.body.generationConfig?.thinkingConfig).toEqual({ thinkingLevel: 'low', includeThoughts: false });
    const xhigh = convertRequest(chat({ model: 'gemini-3.8-flash', reasoningEffort: 'xhigh' }));
    expect(xhigh.body.generationConfig?.thinkingConfig).toEqual({ thinkingLevel: 'high', includeThoughts: true });
    expect(xhigh.warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
  });

  it('Gemini 2.5 Pro cannot turn thinking off: none is its smallest budget (128), warned', () => {
    const { body: converted, warnings } = convertRequest(chat({ model: 'gemini-2.5-pro', reasoningEffort: 'none' }));
    expect(converted.generationConfig?.thinkingConfig).toEqual({ thinkingBudget: 128, includeThoughts: false });
    expect(warnings.map((w) => w.param)).toEqual(['reasoning_effort']);
  });

  it('a -latest alias (it may be either generation) takes a budget, which both accept', () => {
    expect(body(chat({ model: 'gemini-flash-latest', reasoningEffort: 'low' })).generationConfig.thinkingConfig).toEqual({
      thinkingBudget: 1024,
      includeThoughts: true,
    });
  });

  it.each([
    ['n', { n: 2 }],
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { topLogprobs: 3 }],
    ['logit_bias', { logitBias: { '50256': -100 } }],
  ])('rejects %s as an unsupported parameter', (param, overrides) => {
    const err = thrown(() => convertRequest(chat(overrides as Partial<IRChatRequest>)));
    expect(err.code).toBe('MR_ERR_UNSUPPORTED_PARAMETER');
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
  });

  it('accepts n=1, logprobs=false and an empty logit_bias', () => {
    expect(() => convertRequest(chat({ n: 1, logprobs: false, logitBias: {} }))).not.toThrow();
  });

  it('warns about user instead of forwarding it', () => {
    const { warnings, body: text } = geminiAdapter.buildChatRequest(TARGET, chat({ user: 'user-123' }), {});
    expect(warnings).toEqual([{ param: 'user', message: expect.any(String) }]);
    expect(text).not.toContain('user-123');
  });

  it('does not mutate its input', () => {
    const req = chat({
      messages: [
        { role: 'system', origin: 'system', text: 'sys' },
        user('a'),
        user('b'),
        { role: 'assistant', content: [{ type: 'text', text: 'c' }], toolCalls: [{ id: 'c1', name: 'f', arguments: '{"x":1}' }] },
        { role: 'tool', toolCallId: 'c1', content: '{"ok":true}' },
        { role: 'user', content: [{ type: 'image', source: { kind: 'url', url: 'https://e.example/a.png' } }] },
      ],
      tools: [{ name: 'f', parameters: { type: 'object', properties: { x: { type: 'number' } } } }],
      toolChoice: { type: 'tool', name: 'f' },
      stop: ['x'],
      responseFormat: { type: 'json_schema', name: 's', schema: { type: 'object' } },
      reasoningEffort: 'low',
      user: 'u',
    });
    const before = structuredClone(req);
    const first = geminiAdapter.buildChatRequest(TARGET, req, {});
    expect(req).toEqual(before);
    // A second conversion of the same input gives the same body (no state kept in the input).
    expect(geminiAdapter.buildChatRequest(TARGET, req, {}).body).toBe(first.body);
  });
});

describe('map-finish-reason', () => {
  it.each([
    ['STOP', 'stop'],
    ['MAX_TOKENS', 'length'],
    ['SAFETY', 'content_filter'],
    ['RECITATION', 'content_filter'],
    ['BLOCKLIST', 'content_filter'],
    ['PROHIBITED_CONTENT', 'content_filter'],
    ['SPII', 'content_filter'],
    ['IMAGE_SAFETY', 'content_filter'],
    ['IMAGE_PROHIBITED_CONTENT', 'content_filter'],
    ['IMAGE_RECITATION', 'content_filter'],
    ['MALFORMED_FUNCTION_CALL', 'stop'],
    ['LANGUAGE', 'stop'],
    ['OTHER', 'stop'],
    ['FINISH_REASON_UNSPECIFIED', 'stop'],
    [undefined, 'stop'],
  ])('%s → %s', (reason, expected) => {
    expect(mapGeminiFinishReason(reason)).toBe(expected);
  });
});

describe('convert-response: non-stream', () => {
  it('parses a text answer with id, model and usage', () => {
    const r = geminiAdapter.parseChatResponse(json(geminiTextReply({ text: 'Bonjour', usage: { promptTokenCount: 5, candidatesTokenCount: 2 } })));
    expect(r).toEqual({
      upstreamId: GEMINI_RESPONSE_ID,
      model: GEMINI_MODEL_VERSION,
      text: 'Bonjour',
      refusal: null,
      toolCalls: [],
      finishReason: 'stop',
      usage: { promptTokens: 5, completionTokens: 2, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 },
    });
  });

  it('concatenates text parts', () => {
    const r = geminiAdapter.parseChatResponse({ candidates: [{ content: { role: 'model', parts: [{ text: 'a' }, { text: 'b' }] }, finishReason: 'STOP' }] });
    expect(r.text).toBe('ab');
  });

  it('parses parallel function calls with generated unique ids and finish reason tool_calls', () => {
    const r = geminiAdapter.parseChatResponse(json(geminiFunctionCallsReply({ text: 'Checking both.' })));
    expect(r.finishReason).toBe('tool_calls');
    expect(r.text).toBe('Checking both.');
    expect(r.toolCalls.map((c) => [c.name, JSON.parse(c.arguments)])).toEqual([
      ['get_weather', { city: 'Paris', unit: 'celsius' }],
      ['get_weather', { city: 'London', unit: 'celsius' }],
    ]);
    for (const c of r.toolCalls) expect(c.id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(new Set(r.toolCalls.map((c) => c.id)).size).toBe(2);
  });

  it('uses the function call ids Gemini gives', () => {
    const r = geminiAdapter.parseChatResponse(
      json(geminiFunctionCallsReply({ calls: [{ id: 'fc_01', name: 'f', args: {} }, { id: 'fc_02', name: 'g', args: { a: [1] } }] })),
    );
    expect(r.toolCalls).toEqual([
      { id: 'fc_01', name: 'f', arguments: '{}' },
      { id: 'fc_02', name: 'g', arguments: '{"a":[1]}' },
    ]);
  });

  it('separates thought parts into reasoning and counts thought tokens as completion', () => {
    const r = geminiAdapter.parseChatResponse(
      json(geminiThinkingReply({ thought: 'Thinking…', text: '391', usage: { promptTokenCount: 10, candidatesTokenCount: 4, thoughtsTokenCount: 200 } })),
    );
    expect(r.text).toBe('391');
    expect(r.reasoning).toBe('Thinking…');
    expect(r.usage).toEqual({ promptTokens: 10, completionTokens: 204, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 200 });
  });

  it('reports cached prompt tokens as a subset of prompt tokens', () => {
    const r = geminiAdapter.parseChatResponse(json(geminiCachedReply()));
    expect(r.usage).toEqual({ promptTokens: 4120, completionTokens: 15, cachedTokens: 4096, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 });
  });

  it('normalises usage with cached content, thoughts and tool-use prompt tokens together', () => {
    // promptTokenCount (1000) already includes cachedContentTokenCount (600); tool-use prompt
    // tokens (20) come on top. candidatesTokenCount (30) excludes thoughtsTokenCount (70).
    expect(
      normalizeUsage({
        promptTokenCount: 1000,
        cachedContentTokenCount: 600,
        toolUsePromptTokenCount: 20,
        candidatesTokenCount: 30,
        thoughtsTokenCount: 70,
        totalTokenCount: 1120,
      }),
    ).toEqual({ promptTokens: 1020, completionTokens: 100, cachedTokens: 600, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 70 });
  });

  it('turns a blocked prompt into content_filter with no text', () => {
    const r = geminiAdapter.parseChatResponse(json(geminiBlockedPromptReply({ blockReason: 'SAFETY' })));
    expect(r.finishReason).toBe('content_filter');
    expect(r.text).toBeNull();
    expect(r.toolCalls).toEqual([]);
    expect(r.usage.promptTokens).toBe(7);
  });

  it('maps a safety-stopped candidate without content to content_filter', () => {
    const r = geminiAdapter.parseChatResponse({ candidates: [{ finishReason: 'SAFETY', index: 0 }] });
    expect(r).toMatchObject({ text: null, finishReason: 'content_filter' });
  });

  it('keeps length when generation hit MAX_TOKENS', () => {
    expect(geminiAdapter.parseChatResponse(json(geminiTextReply({ finishReason: 'MAX_TOKENS' }))).finishReason).toBe('length');
  });

  it.each([
    ['not an object', 'oops'],
    ['an array', [1]],
    ['no candidates nor block reason', { usageMetadata: {} }],
    ['candidates not an array', { candidates: {} }],
    ['a part not an object', { candidates: [{ content: { parts: ['x'] } }] }],
    ['a nameless function call', { candidates: [{ content: { parts: [{ functionCall: { args: {} } }] } }] }],
  ])('throws MR_ERR_UPSTREAM_BAD_RESPONSE for %s', (_what, body) => {
    const err = thrown(() => geminiAdapter.parseChatResponse(body));
    expect(err.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(err.status).toBe(502);
  });

  it('normalises usage from untrusted numbers', () => {
    expect(normalizeUsage({ promptTokenCount: -3, candidatesTokenCount: '7', thoughtsTokenCount: 2.9 })).toEqual({
      promptTokens: 0,
      completionTokens: 2,
      cachedTokens: 0,
      cacheWriteTokens: 0,
      cacheWrite1hTokens: 0,
      reasoningTokens: 2,
    });
    expect(normalizeUsage(undefined)).toEqual({ promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 });
  });
});

describe('stream-to-parts', () => {
  it('decodes a text stream', () => {
    expect(decode(geminiTextStream({ chunks: ['Hel', 'lo'], usage: { promptTokenCount: 4, candidatesTokenCount: 2 } }))).toEqual([
      { type: 'start', upstreamId: GEMINI_RESPONSE_ID, model: GEMINI_MODEL_VERSION },
      { type: 'text-delta', text: 'Hel' },
      { type: 'text-delta', text: 'lo' },
      { type: 'finish', finishReason: 'stop' },
      { type: 'usage', usage: { promptTokens: 4, completionTokens: 2, cachedTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 0 } },
    ]);
  });

  it('emits one start part and one usage part, with the final usage', () => {
    const parts = decode(geminiTextStream({ chunks: ['a', 'b', 'c', 'd'], usage: { candidatesTokenCount: 40 } }));
    expect(parts.filter((p) => p.type === 'start')).toHaveLength(1);
    const usage = parts.filter((p) => p.type === 'usage');
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({ usage: { completionTokens: 40 } });
  });

  it('decodes function calls: start + full arguments per call, counted from 0, finish tool_calls', () => {
    const parts = decode(geminiFunctionCallsStream({ calls: [{ name: 'get_weather', args: { city: 'Paris' } }, { id: 'fc_9', name: 'get_time', args: {} }] }));
    const calls = parts.filter((p) => p.type === 'tool-call-start' || p.type === 'tool-call-delta');
    expect(calls).toEqual([
      { type: 'tool-call-start', index: 0, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), name: 'get_weather' },
      { type: 'tool-call-delta', index: 0, argumentsDelta: '{"city":"Paris"}' },
      { type: 'tool-call-start', index: 1, id: 'fc_9', name: 'get_time' },
      { type: 'tool-call-delta', index: 1, argumentsDelta: '{}' },
    ]);
    expect(parts.find((p) => p.type === 'text-delta')).toEqual({ type: 'text-delta', text: 'Let me check.' });
    expect(parts.find((p) => p.type === 'finish')).toEqual({ type: 'finish', finishReason: 'tool_calls' });
  });

  it('decodes thought parts as reasoning deltas and counts thought tokens', () => {
    const parts = decode(geminiThinkingStream({ thoughts: ['Hmm.'], chunks: ['391'], usage: { candidatesTokenCount: 3, thoughtsTokenCount: 50 } }));
    expect(parts.filter((p) => p.type === 'reasoning-delta' || p.type === 'text-delta')).toEqual([
      { type: 'reasoning-delta', text: 'Hmm.' },
      { type: 'text-delta', text: '391' },
    ]);
    expect(parts.find((p) => p.type === 'usage')).toMatchObject({ usage: { completionTokens: 53, reasoningTokens: 50 } });
  });

  it('finishes with length on MAX_TOKENS', () => {
    expect(decode(geminiMaxTokensStream()).find((p) => p.type === 'finish')).toEqual({ type: 'finish', finishReason: 'length' });
  });

  it('finishes with content_filter when the prompt is blocked', () => {
    const parts = decode(geminiBlockedPromptStream());
    expect(parts.map((p) => p.type)).toEqual(['start', 'finish', 'usage']);
    expect(parts[1]).toEqual({ type: 'finish', finishReason: 'content_filter' });
  });

  it('ends with an error part when the stream stops without a finish reason', () => {
    const parts = decode(geminiTruncatedStream());
    const last = parts[parts.length - 1]!;
    expect(last.type).toBe('error');
    expect(last.type === 'error' && last.error.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(parts.some((p) => p.type === 'finish')).toBe(false);
  });

  it('turns an error object in the stream into a terminal error part', () => {
    const parts = decode(geminiMidStreamErrorStream());
    expect(parts.map((p) => p.type)).toEqual(['start', 'text-delta', 'error']);
    const err = parts[2]!.type === 'error' ? parts[2]!.error : undefined;
    expect(err?.code).toBe('MR_ERR_UPSTREAM_UNAVAILABLE');
    expect(err?.upstreamStatus).toBe(503);
  });

  it('turns unparseable data into an error part without throwing, and ignores what follows', () => {
    const decoder = geminiAdapter.createStreamDecoder();
    const parts = decoder.push({ data: '{"candidates": [' });
    expect(parts).toHaveLength(1);
    expect(parts[0]!.type === 'error' && parts[0]!.error.code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
    expect(decoder.push({ data: JSON.stringify({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: 'STOP' }] }) })).toEqual([]);
    expect(decoder.end()).toEqual([]);
  });

  it('turns a malformed chunk shape into an error part without throwing', () => {
    const decoder = geminiAdapter.createStreamDecoder();
    const parts = decoder.push({ data: JSON.stringify({ candidates: [{ content: { parts: 'x' } }] }) });
    expect(parts.map((p) => p.type)).toEqual(['error']);
    expect(decoder.push({ data: '42' })).toEqual([]);
  });
});

describe('gemini-error', () => {
  const parse = (reply: MockReply, headers: Record<string, string> = {}) =>
    geminiAdapter.parseError(reply.status ?? 500, JSON.stringify(reply.json), headers);

  it.each([
    ['invalid-argument', 'MR_ERR_UPSTREAM_BAD_REQUEST', 400],
    ['api-key-invalid', 'MR_ERR_UPSTREAM_AUTH', 502],
    ['permission-denied', 'MR_ERR_UPSTREAM_AUTH', 502],
    ['not-found', 'MR_ERR_UPSTREAM_BAD_REQUEST', 404],
    ['resource-exhausted', 'MR_ERR_UPSTREAM_RATE_LIMITED', 429],
    ['internal', 'MR_ERR_UPSTREAM_ERROR', 502],
    ['unavailable', 'MR_ERR_UPSTREAM_UNAVAILABLE', 503],
  ] as const)('maps %s to %s', (kind, code, status) => {
    const reply = geminiErrorReply(kind);
    const err = parse(reply);
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
    expect(err.upstreamStatus).toBe(reply.status);
    expect(err.message).toContain((reply.json as any).error.message);
  });

  it('takes the retry delay from RetryInfo, and prefers a retry-after header', () => {
    expect(parse(geminiErrorReply('resource-exhausted', { retryDelay: '12.4s' })).retryAfter).toBe(13);
    expect(parse(geminiErrorReply('resource-exhausted'), { 'retry-after': '5' }).retryAfter).toBe(5);
    expect(parse(geminiErrorReply('internal')).retryAfter).toBeUndefined();
  });

  it('gives a generic message for a body that is not a Google error, without echoing it', () => {
    const err = geminiAdapter.parseError(502, '<html>Bad gateway secret-page</html>', {});
    expect(err.code).toBe('MR_ERR_UPSTREAM_ERROR');
    expect(err.message).toBe('Gemini returned HTTP 502.');
    expect(geminiAdapter.parseError(500, '', {}).message).toBe('Gemini returned HTTP 500.');
  });

  it('reads an error body wrapped in an array', () => {
    const err = geminiAdapter.parseError(400, JSON.stringify([{ error: { code: 400, message: 'bad thing', status: 'INVALID_ARGUMENT' } }]), {});
    expect(err.code).toBe('MR_ERR_UPSTREAM_BAD_REQUEST');
    expect(err.message).toBe('bad thing');
  });
});

describe('embeddings', () => {
  const embedReq: IREmbeddingsRequest = { model: 'gemini-embedding-001', input: ['hello', 'world'], dimensions: 768, encodingFormat: 'base64' };

  it('builds a batchEmbedContents request, one request per input', () => {
    const before = structuredClone(embedReq);
    const up = geminiAdapter.buildEmbeddingsRequest!(TARGET, embedReq);
    expect(up.url).toBe('https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents');
    expect(up.headers['x-goog-api-key']).toBe('AIza-test-key');
    expect(JSON.parse(up.body)).toEqual({
      requests: [
        { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'hello' }] }, outputDimensionality: 768 },
        { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'world' }] }, outputDimensionality: 768 },
      ],
    });
    expect(up.warnings).toEqual([]);
    expect(embedReq).toEqual(before);
  });

  it('omits outputDimensionality without dimensions and warns about user', () => {
    const up = geminiAdapter.buildEmbeddingsRequest!(TARGET, { model: 'text-embedding-004', input: ['x'], user: 'u1' });
    expect(JSON.parse(up.body).requests[0]).not.toHaveProperty('outputDimensionality');
    expect(up.warnings.map((w) => w.param)).toEqual(['user']);
  });

  it('parses the vectors in order, with promptTokens 0 (Gemini reports none)', () => {
    const r = geminiAdapter.parseEmbeddingsResponse!(json(geminiEmbeddingsReply({ vectors: [[1, 2], [3, 4]] })));
    expect(r).toEqual({ embeddings: [[1, 2], [3, 4]], promptTokens: 0 });
  });

  it.each([[{}], [{ embeddings: [{ values: ['x'] }] }], [{ embeddings: [{}] }], [null]])('rejects a malformed answer %j', (b) => {
    expect(thrown(() => geminiAdapter.parseEmbeddingsResponse!(b)).code).toBe('MR_ERR_UPSTREAM_BAD_RESPONSE');
  });
});

describe('round trip through a mock Gemini upstream', () => {
  let upstream: MockUpstream;
  beforeAll(async () => {
    upstream = await startMockUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });

  const send = async (up: { url: string; headers: Record<string, string>; body: string }) => {
    const res = await request(up.url, { method: 'POST', headers: up.headers, body: up.body });
    return { status: res.statusCode, text: await res.body.text() };
  };

  it('sends generateContent and parses the answer', async () => {
    upstream.reset();
    upstream.enqueue(geminiTextReply({ text: 'pong' }));
    const up = geminiAdapter.buildChatRequest({ ...TARGET, baseUrl: upstream.url + '/' }, chat(), {});
    const res = await send(up);
    const rec = upstream.requests[0]!;
    expect(rec.url).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(rec.headers['x-goog-api-key']).toBe('AIza-test-key');
    expect(rec.json).toEqual({ contents: [{ role: 'user', parts: [{ text: 'Hi' }] }] });
    expect(geminiAdapter.parseChatResponse(JSON.parse(res.text)).text).toBe('pong');
  });

  it('streams with alt=sse and decodes the body through the shared parser', async () => {
    upstream.reset();
    upstream.enqueue(geminiTextStream({ chunks: ['po', 'ng'] }));
    const up = geminiAdapter.buildChatRequest({ ...TARGET, baseUrl: upstream.url }, chat({ stream: true }), {});
    const res = await send(up);
    expect(upstream.requests[0]!.url).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    const decoder = geminiAdapter.createStreamDecoder();
    const parts: IRStreamPart[] = [];
    const parser = createParser({ onEvent: (e) => parts.push(...decoder.push({ data: e.data })) });
    parser.feed(res.text);
    parts.push(...decoder.end());
    expect(parts.flatMap((p) => (p.type === 'text-delta' ? [p.text] : [])).join('')).toBe('pong');
    expect(parts.some((p) => p.type === 'error')).toBe(false);
  });

  it('maps an upstream 429 answer', async () => {
    upstream.reset();
    upstream.enqueue(geminiErrorReply('resource-exhausted'));
    const res = await send(geminiAdapter.buildChatRequest({ ...TARGET, baseUrl: upstream.url }, chat(), {}));
    const err = geminiAdapter.parseError(res.status, res.text, {});
    expect(err.code).toBe('MR_ERR_UPSTREAM_RATE_LIMITED');
    expect(err.retryAfter).toBe(37);
  });
});
