/**
 * End to end with the official `openai` SDK through the gateway to providers of another
 * dialect (Anthropic, Gemini), whose mock upstreams speak each provider's real wire format.
 * One table of cases per provider; the same assertions for each: text and tools, streamed and
 * not, usage, errors, and responses valid against OpenAI's published schemas.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startMockUpstream, type MockReply, type MockUpstream, type RecordedRequest } from '../helpers/mock-upstream.js';
import { assertSchema } from '../helpers/openai-schema.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import * as gemini from '../fixtures/gemini.js';
import * as anthropic from '../fixtures/anthropic.js';

interface ExpectedCall {
  name: string;
  args: unknown;
}

interface ProviderCase {
  type: 'gemini' | 'anthropic';
  upstreamModel: string;
  /** Path the gateway must call, for non-stream and stream requests. */
  path(stream: boolean): string;
  text: { reply: MockReply; text: string; promptTokens: number; completionTokens: number };
  textStream: { reply: MockReply; text: string; promptTokens: number; completionTokens: number };
  tools: { reply: MockReply; calls: ExpectedCall[] };
  toolStream: { reply: MockReply; calls: ExpectedCall[] };
  badRequest: MockReply;
  rateLimited: MockReply;
  midStreamError: MockReply;
  /** Checks that a system message, a user turn and the tools arrived in the provider's shape. */
  checkTranslated(req: RecordedRequest): void;
  /** A parameter with no equivalent that is dropped with a warning (never silently). */
  warnedParam: Record<string, unknown>;
  /** A reply with reasoning, and what `reasoning_effort: 'high'` must become upstream. */
  thinking: { reply: MockReply; stream: MockReply; reasoning: string; reasoningTokens: number; check(req: RecordedRequest): void };
  /** A reply with cached prompt tokens. */
  cached: { reply: MockReply; promptTokens: number; cachedTokens: number };
  /** Images (a data URL and an https URL) and a JSON schema response format, as the provider takes them. */
  checkImages(req: RecordedRequest): void;
  checkJsonSchema(req: RecordedRequest): void;
}

const CASES: ProviderCase[] = [
  {
    type: 'gemini',
    upstreamModel: 'gemini-2.5-flash',
    path: (stream) => `/v1beta/models/gemini-2.5-flash:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`,
    text: { reply: gemini.geminiTextReply({ text: 'Bonjour!' }), text: 'Bonjour!', promptTokens: 12, completionTokens: 9 },
    textStream: {
      reply: gemini.geminiTextStream({ chunks: ['Hel', 'lo', '!'] }),
      text: 'Hello!',
      promptTokens: 12,
      completionTokens: 9,
    },
    tools: {
      reply: gemini.geminiFunctionCallsReply(),
      calls: [
        { name: 'get_weather', args: { city: 'Paris', unit: 'celsius' } },
        { name: 'get_weather', args: { city: 'London', unit: 'celsius' } },
      ],
    },
    toolStream: {
      reply: gemini.geminiFunctionCallsStream(),
      calls: [
        { name: 'get_weather', args: { city: 'Paris', unit: 'celsius' } },
        { name: 'get_time', args: { timezone: 'Europe/London' } },
      ],
    },
    badRequest: gemini.geminiErrorReply('invalid-argument', { message: 'Invalid value at generation_config' }),
    rateLimited: gemini.geminiErrorReply('resource-exhausted', { headers: { 'retry-after': '5' } }),
    midStreamError: gemini.geminiMidStreamErrorStream(),
    checkTranslated(req) {
      expect(req.headers['x-goog-api-key']).toBe('upstream-key');
      expect(req.url).not.toContain('upstream-key');
      expect(req.json.systemInstruction.parts[0].text).toBe('Be brief.');
      expect(req.json.contents[0]).toEqual({ role: 'user', parts: [{ text: 'Weather in Paris?' }] });
      expect(req.json.tools[0].functionDeclarations[0].name).toBe('get_weather');
    },
    warnedParam: { user: 'user-123' },
    thinking: {
      reply: gemini.geminiThinkingReply(),
      stream: gemini.geminiThinkingStream({ thoughts: ['**Weighing the question**', ' then answering.'] }),
      reasoning: '**Weighing the question**',
      reasoningTokens: 214,
      check(req) {
        expect(req.json.generationConfig.thinkingConfig).toEqual({ thinkingBudget: 24576, includeThoughts: true });
      },
    },
    cached: { reply: gemini.geminiCachedReply(), promptTokens: 4120, cachedTokens: 4096 },
    checkImages(req) {
      const parts = req.json.contents[0].parts;
      expect(parts).toContainEqual({ inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } });
      expect(parts).toContainEqual({ fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/cat.jpg' } });
    },
    checkJsonSchema(req) {
      expect(req.json.generationConfig.responseMimeType).toBe('application/json');
      expect(req.json.generationConfig.responseJsonSchema).toEqual(SCHEMA);
    },
  },
  {
    type: 'anthropic',
    upstreamModel: 'claude-test-1',
    path: () => '/v1/messages',
    text: { reply: anthropic.anthropicTextReply({ text: 'Bonjour!' }), text: 'Bonjour!', ...anthropicUsage(anthropic.anthropicTextReply()) },
    textStream: {
      reply: anthropic.anthropicTextStream({ chunks: ['Hel', 'lo', '!'] }),
      text: 'Hello!',
      ...anthropicStreamUsage(anthropic.anthropicTextStream({ chunks: ['Hel', 'lo', '!'] })),
    },
    tools: { reply: anthropic.anthropicToolCallReply(), calls: anthropicCalls(anthropic.anthropicToolCallReply()) },
    toolStream: { reply: anthropic.anthropicToolCallStream(), calls: anthropicCalls(anthropic.anthropicToolCallReply()) },
    badRequest: anthropic.anthropicInvalidRequestError('temperature: must be at most 1'),
    rateLimited: anthropic.anthropicRateLimitError(),
    midStreamError: anthropic.anthropicStreamWithError(),
    checkTranslated(req) {
      expect(req.headers['x-api-key']).toBe('upstream-key');
      expect(req.headers['anthropic-version']).toBe('2023-06-01');
      expect(req.json.system).toEqual([{ type: 'text', text: 'Be brief.' }]);
      expect(req.json.messages[0].role).toBe('user');
      expect(JSON.stringify(req.json.messages[0].content)).toContain('Weather in Paris?');
      expect(req.json.tools[0]).toMatchObject({ name: 'get_weather', input_schema: { type: 'object' } });
      expect(req.json.max_tokens).toBe(64000);
    },
    warnedParam: { seed: 7 },
    thinking: {
      reply: anthropic.anthropicThinkingReply(),
      stream: anthropic.anthropicThinkingStream(),
      reasoning: 'The user asks for 27 * 453.',
      reasoningTokens: 0,
      check(req) {
        expect(req.json.thinking).toEqual({ type: 'enabled', budget_tokens: 24576 });
        expect(req.json.max_tokens).toBeGreaterThan(24576);
      },
    },
    cached: { reply: anthropic.anthropicCachedUsageReply(), promptTokens: 21 + 1800 + 248, cachedTokens: 1800 },
    checkImages(req) {
      const content = req.json.messages[0].content;
      expect(content).toContainEqual({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } });
      expect(content).toContainEqual({ type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } });
    },
    checkJsonSchema(req) {
      expect(req.json.output_config).toEqual({ format: { type: 'json_schema', schema: SCHEMA } });
    },
  },
];

const SCHEMA = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };

function anthropicUsage(reply: MockReply): { promptTokens: number; completionTokens: number } {
  const u = (reply.json as any).usage;
  return {
    promptTokens: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
    completionTokens: u.output_tokens,
  };
}

function anthropicStreamUsage(reply: MockReply): { promptTokens: number; completionTokens: number } {
  const events = reply.sse!.map((e) => (typeof e === 'string' ? undefined : JSON.parse(e.data)));
  const start = events.find((e) => e?.type === 'message_start').message.usage;
  const delta = events.find((e) => e?.type === 'message_delta').usage;
  return {
    promptTokens: start.input_tokens + (start.cache_read_input_tokens ?? 0) + (start.cache_creation_input_tokens ?? 0),
    completionTokens: delta.output_tokens,
  };
}

function anthropicCalls(reply: MockReply): ExpectedCall[] {
  return (reply.json as any).content.filter((b: any) => b.type === 'tool_use').map((b: any) => ({ name: b.name, args: b.input }));
}

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
    },
  },
  {
    type: 'function',
    function: { name: 'get_time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } } },
  },
];

const MESSAGES: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Weather in Paris?' },
];

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  const calls: Record<number, { id?: string; name?: string; args: string; firstHadIdAndName: boolean }> = {};
  let text = '';
  let finish: string | null = null;
  for (const c of chunks) {
    const choice = c.choices[0];
    if (!choice) continue;
    text += choice.delta.content ?? '';
    for (const tc of choice.delta.tool_calls ?? []) {
      const e = (calls[tc.index] ??= { args: '', firstHadIdAndName: Boolean(tc.id && tc.function?.name) });
      if (tc.id) e.id = tc.id;
      if (tc.function?.name) e.name = tc.function.name;
      e.args += tc.function?.arguments ?? '';
    }
    finish = choice.finish_reason ?? finish;
  }
  return { chunks, text, calls, finish };
}

for (const pc of CASES) {
  describe(`provider type ${pc.type} through the openai SDK`, () => {
    let mock: MockUpstream;
    let t: TestGateway;

    beforeAll(async () => {
      mock = await startMockUpstream();
      const cfg: Pick<ConfigInput, 'providers' | 'models'> = {
        providers: [{ id: 'up', type: pc.type, baseUrl: mock.url, apiKey: 'upstream-key' }],
        models: [{ id: 'test/chat', maxOutputTokens: 64000, endpoints: [{ provider: 'up', model: pc.upstreamModel }] }],
      };
      t = await startTestGateway(cfg);
    });
    afterAll(async () => {
      await t.close();
      await mock.close();
    });
    beforeEach(() => mock.reset());

    it('answers a text request in OpenAI shape, with usage, valid against the schema', async () => {
      mock.enqueue(pc.text.reply);
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, tools: TOOLS });
      assertSchema('CreateChatCompletionResponse', res);
      expect(res.object).toBe('chat.completion');
      // The response id is the generation id (the usage row's id), and the provider is named.
      expect(res.id).toMatch(/^gen-[0-9a-f]{32}$/);
      expect((res as unknown as { provider: string }).provider).toBe('up');
      expect(res.choices[0]!.message).toMatchObject({ role: 'assistant', content: pc.text.text, refusal: null });
      expect(res.choices[0]!.finish_reason).toBe('stop');
      expect(res.usage).toMatchObject({
        prompt_tokens: pc.text.promptTokens,
        completion_tokens: pc.text.completionTokens,
        total_tokens: pc.text.promptTokens + pc.text.completionTokens,
      });
      expect(mock.requests[0]!.url).toBe(pc.path(false));
      pc.checkTranslated(mock.requests[0]!);
      const row = (await t.usage()).at(-1)!;
      expect(row).toMatchObject({ id: res.id, promptTokens: pc.text.promptTokens, completionTokens: pc.text.completionTokens, status: 200, streamed: false });
    });

    it('streams text as chat.completion.chunk events with the final usage chunk', async () => {
      mock.enqueue(pc.textStream.reply);
      const stream = await t.client.chat.completions.create({
        model: 'test/chat',
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      });
      const { chunks, text, finish } = await collect(stream);
      for (const c of chunks) assertSchema('CreateChatCompletionStreamResponse', c);
      expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
      expect(text).toBe(pc.textStream.text);
      expect(finish).toBe('stop');
      const last = chunks.at(-1)!;
      expect(last.choices).toEqual([]);
      expect(last.usage).toMatchObject({ prompt_tokens: pc.textStream.promptTokens, completion_tokens: pc.textStream.completionTokens });
      expect(mock.requests[0]!.url).toBe(pc.path(true));
      const row = (await t.usage()).at(-1)!;
      expect(row).toMatchObject({ promptTokens: pc.textStream.promptTokens, completionTokens: pc.textStream.completionTokens, streamed: true, status: 200 });
    });

    it('omits the usage chunk when the client did not ask, but still meters the stream', async () => {
      mock.enqueue(pc.textStream.reply);
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, stream: true });
      const { chunks } = await collect(stream);
      expect(chunks.every((c) => c.choices.length === 1 && !c.usage)).toBe(true);
      expect((await t.usage()).at(-1)).toMatchObject({ promptTokens: pc.textStream.promptTokens, streamed: true });
    });

    it('returns parallel tool calls with OpenAI ids and JSON arguments', async () => {
      mock.enqueue(pc.tools.reply);
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, tools: TOOLS, tool_choice: 'auto' });
      assertSchema('CreateChatCompletionResponse', res);
      expect(res.choices[0]!.finish_reason).toBe('tool_calls');
      const calls = res.choices[0]!.message.tool_calls!.map((c) => c as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall);
      expect(calls.map((c) => ({ name: c.function.name, args: JSON.parse(c.function.arguments) }))).toEqual(pc.tools.calls);
      expect(new Set(calls.map((c) => c.id)).size).toBe(calls.length);
      for (const c of calls) expect(c.id).toBeTruthy();
    });

    it('streams tool calls with index, id and name on the first delta of each call', async () => {
      mock.enqueue(pc.toolStream.reply);
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, tools: TOOLS, stream: true });
      const { chunks, calls, finish } = await collect(stream);
      for (const c of chunks) assertSchema('CreateChatCompletionStreamResponse', c);
      expect(finish).toBe('tool_calls');
      const indexes = Object.keys(calls).map(Number);
      expect(indexes).toEqual(pc.toolStream.calls.map((_, i) => i));
      for (const i of indexes) {
        expect(calls[i]!.firstHadIdAndName).toBe(true);
        expect({ name: calls[i]!.name, args: JSON.parse(calls[i]!.args) }).toEqual(pc.toolStream.calls[i]);
      }
    });

    it('sends a multi-turn conversation with tool results back in the provider shape', async () => {
      mock.enqueue(pc.text.reply);
      await t.client.chat.completions.create({
        model: 'test/chat',
        tools: TOOLS,
        messages: [
          ...MESSAGES,
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
        ],
      });
      const body = JSON.stringify(mock.requests[0]!.json);
      expect(body).toMatch(/temp(\\)?":21/);
      expect(body).toContain('get_weather');
    });

    it('maps upstream 400 and 429 to the SDK error classes', async () => {
      mock.enqueue(pc.badRequest);
      await expect(t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      mock.enqueue(pc.rateLimited);
      await expect(t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    });

    it('ends a stream that fails upstream with an OpenAI-shaped error event and no [DONE]', async () => {
      mock.enqueue(pc.midStreamError);
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/chat', stream: true, messages: MESSAGES }),
      });
      const text = await res.text();
      expect(text).not.toContain('[DONE]');
      const last = text.trim().split('\n\n').at(-1)!;
      expect(JSON.parse(last.slice('data: '.length))).toMatchObject({ error: { message: expect.any(String), type: expect.any(String) } });
    });

    it('refuses a parameter whose loss would change the answer, before calling the upstream', async () => {
      const err = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, logprobs: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('logprobs');
      expect(mock.requests).toHaveLength(0);
    });

    it('names the field of a malformed message', async () => {
      const err = await t.client.chat.completions
        .create({ model: 'test/chat', messages: [{ role: 'user', content: [{ type: 'bogus' } as never] }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages[0].content[0].type');
    });

    it('maps reasoning_effort to the thinking setting and returns reasoning with its token count', async () => {
      mock.enqueue(pc.thinking.reply);
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, reasoning_effort: 'high' });
      assertSchema('CreateChatCompletionResponse', res);
      pc.thinking.check(mock.requests[0]!);
      expect((res.choices[0]!.message as unknown as { reasoning: string }).reasoning).toContain(pc.thinking.reasoning);
      expect(res.usage!.completion_tokens_details!.reasoning_tokens).toBe(pc.thinking.reasoningTokens);

      mock.enqueue(pc.thinking.stream);
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES, reasoning_effort: 'high', stream: true });
      const { chunks, text } = await collect(stream);
      for (const c of chunks) assertSchema('CreateChatCompletionStreamResponse', c);
      const reasoning = chunks.map((c) => (c.choices[0]?.delta as { reasoning?: string } | undefined)?.reasoning ?? '').join('');
      expect(reasoning).toContain(pc.thinking.reasoning);
      expect(text.length).toBeGreaterThan(0);
    });

    it('reports cached prompt tokens as OpenAI does', async () => {
      mock.enqueue(pc.cached.reply);
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: MESSAGES });
      expect(res.usage!.prompt_tokens).toBe(pc.cached.promptTokens);
      expect(res.usage!.prompt_tokens_details!.cached_tokens).toBe(pc.cached.cachedTokens);
      expect((await t.usage()).at(-1)).toMatchObject({ promptTokens: pc.cached.promptTokens, cachedTokens: pc.cached.cachedTokens });
    });

    it('sends images given as data URLs and https URLs', async () => {
      mock.enqueue(pc.text.reply);
      await t.client.chat.completions.create({
        model: 'test/chat',
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in these?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
            ],
          },
        ],
      });
      pc.checkImages(mock.requests[0]!);
    });

    it('sends response_format json_schema as the provider structured-output setting', async () => {
      mock.enqueue(pc.text.reply);
      await t.client.chat.completions.create({
        model: 'test/chat',
        messages: MESSAGES,
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: SCHEMA, strict: true } },
      });
      pc.checkJsonSchema(mock.requests[0]!);
    });

    it('says which parameter it could not honour in x-maxrouter-warnings', async () => {
      mock.enqueue(pc.text.reply);
      const { response } = await t.client.chat.completions
        .create({ model: 'test/chat', messages: MESSAGES, ...pc.warnedParam } as never)
        .withResponse();
      expect(response.headers.get('x-maxrouter-warnings')).toContain(Object.keys(pc.warnedParam)[0]);
    });
  });
}
