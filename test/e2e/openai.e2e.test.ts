/**
 * End to end through the running gateway with the official `openai` SDK, against mock
 * upstreams of type `openai` and `openai-compatible` (same-dialect passthrough).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertSchema } from '../helpers/openai-schema.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import {
  openaiEmbeddings,
  openaiError,
  openaiText,
  openaiTextStream,
  openaiToolCalls,
  openaiToolStream,
} from '../fixtures/openai.js';

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  },
];

for (const type of ['openai', 'openai-compatible'] as const) {
  describe(`provider type ${type}`, () => {
    let mock: MockUpstream;
    let t: TestGateway;

    beforeAll(async () => {
      mock = await startMockUpstream();
      t = await startTestGateway({
        providers: [{ id: 'up', type, baseUrl: `${mock.url}/v1`, apiKey: 'sk-upstream-secret' }],
        models: [
          { id: 'test/chat', contextLength: 128000, endpoints: [{ provider: 'up', model: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6 } }] },
          { id: 'test/embed', kind: 'embedding', endpoints: [{ provider: 'up', model: 'text-embedding-3-small' }] },
        ],
      });
    });
    afterAll(async () => {
      await t.close();
      await mock.close();
    });
    beforeEach(() => mock.reset());

    it("forwards the client's own bytes with only the model replaced (stream_options appended to a stream)", async () => {
      const send = (text: string) =>
        fetch(`${t.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
          body: text,
        });
      // A seed no double can hold, and a "model" inside a message: forwarded as written.
      const text = '{\n  "model": "test/chat",\n  "seed": 12345678901234567890,\n  "messages": [{"role": "user", "content": "say \\"model\\": 1"}]\n}';
      mock.enqueue(openaiText({ text: 'ok' }));
      expect((await send(text)).status).toBe(200);
      expect(mock.requests[0]!.body).toBe(text.replace('"test/chat"', '"gpt-4o-mini"'));

      mock.enqueue(openaiTextStream(['ok']));
      const streamed = await send('{"stream":true,"model":"test/chat","messages":[{"role":"user","content":"hi"}]}');
      expect(streamed.status).toBe(200);
      await streamed.text();
      expect(mock.requests[1]!.body).toBe(
        '{"stream":true,"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}',
      );

      // A stream that already asks for usage goes as written; one that declines it is rewritten.
      const asks = '{"stream":true, "stream_options": {"include_usage": true}, "model":"test/chat","messages":[]}';
      mock.enqueue(openaiTextStream(['ok']));
      await (await send(asks)).text();
      expect(mock.requests[2]!.body).toBe(asks.replace('"test/chat"', '"gpt-4o-mini"'));
      mock.enqueue(openaiTextStream(['ok']));
      await (await send('{"stream":true,"stream_options":{"include_usage":false},"model":"test/chat","messages":[]}')).text();
      expect(JSON.parse(mock.requests[3]!.body).stream_options).toEqual({ include_usage: true });
    });

    it('serialises the parsed body when the bytes could be read two ways (a duplicated key)', async () => {
      mock.enqueue(openaiText({ text: 'ok' }));
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: '{"model":"test/chat","messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"second"}]}',
      });
      expect(res.status).toBe(200);
      // What the gateway read (the last value, as JSON.parse does) is exactly what went upstream.
      expect(JSON.parse(mock.requests[0]!.body)).toEqual({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'second' }] });
      expect(mock.requests[0]!.body.match(/"messages"/g)).toHaveLength(1);
    });

    it('answers a non-streamed text request with the upstream response, model id rewritten upstream', async () => {
      mock.enqueue(openaiText({ text: 'Hi there' }));
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'Hello' }] });
      expect(res.choices[0]!.message.content).toBe('Hi there');
      expect(res.usage?.prompt_tokens).toBe(12);
      assertSchema('CreateChatCompletionResponse', res);
      const req = mock.requests[0]!;
      expect(req.url).toBe('/v1/chat/completions');
      expect(req.json.model).toBe('gpt-4o-mini');
      expect(req.json.messages).toEqual([{ role: 'user', content: 'Hello' }]);
      expect(req.headers.authorization).toBe('Bearer sk-upstream-secret');
      const rows = await t.usage();
      const row = rows.at(-1)!;
      expect(row).toMatchObject({ model: 'test/chat', provider: 'up', upstreamModel: 'gpt-4o-mini', promptTokens: 12, completionTokens: 5, status: 200, streamed: false });
    });

    it('returns the generation id and provider in headers', async () => {
      mock.enqueue(openaiText());
      const { response } = await t.client.chat.completions
        .create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] })
        .withResponse();
      expect(response.headers.get('x-generation-id')).toMatch(/^gen-[0-9a-f]{32}$/);
      expect(response.headers.get('x-maxrouter-provider')).toBe('up');
    });

    it('streams text, asks the upstream for usage, and hides the usage chunk the client did not ask for', async () => {
      mock.enqueue(openaiTextStream(['Hel', 'lo', ' world']));
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'Hi' }], stream: true });
      let text = '';
      const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
      for await (const c of stream) {
        chunks.push(c);
        text += c.choices[0]?.delta.content ?? '';
      }
      expect(text).toBe('Hello world');
      expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
      // The upstream's `"usage":null` in each chunk is not relayed either: OpenAI sends no usage
      // field at all to a client that did not ask for it.
      expect(chunks.filter((c) => 'usage' in c)).toEqual([]);
      for (const c of chunks) assertSchema('CreateChatCompletionStreamResponse', c);
      expect(mock.requests[0]!.json.stream_options).toEqual({ include_usage: true });
      const row = (await t.usage()).at(-1)!;
      expect(row).toMatchObject({ promptTokens: 9, completionTokens: 3, streamed: true, status: 200 });
    });

    it('streams the usage chunk when the client asks for it', async () => {
      mock.enqueue(openaiTextStream(['a', 'b']));
      const stream = await t.client.chat.completions.create({
        model: 'test/chat',
        messages: [{ role: 'user', content: 'Hi' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
      for await (const c of stream) chunks.push(c);
      const last = chunks.at(-1)!;
      expect(last.choices).toEqual([]);
      expect(last.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 2 });
      // …and, as from OpenAI, `usage: null` in every chunk before it.
      expect(chunks.slice(0, -1).map((c) => c.usage)).toEqual(chunks.slice(0, -1).map(() => null));
    });

    it('relays tool calls, non-streamed and streamed with index, id and name', async () => {
      mock.enqueue(openaiToolCalls());
      const res = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS });
      expect(res.choices[0]!.finish_reason).toBe('tool_calls');
      expect(res.choices[0]!.message.tool_calls!.map((c) => (c as any).function.arguments)).toEqual(['{"city":"Paris"}', '{"city":"Tokyo"}']);
      assertSchema('CreateChatCompletionResponse', res);

      mock.enqueue(openaiToolStream());
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS, stream: true });
      const calls: Record<number, { id?: string; name?: string; args: string }> = {};
      let finish: string | null = null;
      for await (const c of stream) {
        for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
          const e = (calls[tc.index] ??= { args: '' });
          if (tc.id) e.id = tc.id;
          if (tc.function?.name) e.name = tc.function.name;
          e.args += tc.function?.arguments ?? '';
        }
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      expect(calls).toEqual({
        0: { id: 'call_a', name: 'get_weather', args: '{"city":"Paris"}' },
        1: { id: 'call_b', name: 'get_weather', args: '{"city":"Tokyo"}' },
      });
      expect(finish).toBe('tool_calls');
    });

    it('maps upstream errors to the status the SDK expects, passing the upstream message to the client only', async () => {
      mock.enqueue(openaiError(400, "Invalid value for 'temperature'.", 'invalid_request_error'));
      await expect(
        t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] }),
      ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("Invalid value for 'temperature'") });

      mock.enqueue(openaiError(429, 'Slow down', 'rate_limit_error', 'rate_limit_exceeded', { 'retry-after': '7' }));
      const err = await t.client.chat.completions
        .create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('7');

      mock.enqueue(openaiError(500, 'boom', 'server_error'));
      await expect(
        t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] }),
      ).rejects.toBeInstanceOf(OpenAI.InternalServerError);

      mock.enqueue(openaiError(401, 'Incorrect API key provided', 'invalid_request_error', 'invalid_api_key'));
      await expect(
        t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] }),
      ).rejects.toMatchObject({ status: 502 });
      expect(t.logs.join('')).not.toContain('Incorrect API key provided');
      expect(t.logs.join('')).not.toContain("Invalid value for 'temperature'");
    });

    it('answers 503 when the upstream cannot be reached, and 404 for an unknown model', async () => {
      // Port 9 (discard): nothing listens there. (A mock's port, once closed, could be taken by
      // a server another test file starts meanwhile.)
      const dead = await startTestGateway({
        providers: [{ id: 'dead', type, baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'k' }],
        models: [{ id: 'dead/chat', endpoints: [{ provider: 'dead', model: 'm' }] }],
      });
      try {
        await expect(dead.client.chat.completions.create({ model: 'dead/chat', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 503 });
        const err = await dead.client.chat.completions.create({ model: 'nope/nope', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(OpenAI.NotFoundError);
        expect((err as InstanceType<typeof OpenAI.NotFoundError>).param).toBe('model');
      } finally {
        await dead.close();
      }
    });

    it('ends a stream that breaks mid-way with an error event, never [DONE]', async () => {
      const reply = openaiTextStream(['one', 'two', 'three']);
      mock.enqueue({ ...reply, resetAfterEvents: 2 });
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/chat', stream: true, messages: [{ role: 'user', content: 'x' }] }),
      });
      const text = await res.text();
      expect(text).toContain('"content":"one"');
      expect(text).not.toContain('[DONE]');
      expect(text).toMatch(/data: \{"error":\{"message":"[^"]+","type":"upstream_error"/);

      mock.enqueue({ ...reply, resetAfterEvents: 2 });
      const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }], stream: true });
      await expect(
        (async () => {
          for await (const _ of stream) void _;
        })(),
      ).rejects.toThrow();
    });

    it('ends a stream whose upstream closes without [DONE] with an error event', async () => {
      const reply = openaiTextStream(['one']);
      mock.enqueue({ sse: reply.sse!.slice(0, 2) });
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/chat', stream: true, messages: [{ role: 'user', content: 'x' }] }),
      });
      const text = await res.text();
      expect(text).not.toContain('[DONE]');
      expect(text).toContain('ended the stream early');
    });

    it('aborts the upstream request within a second when the client disconnects mid-stream', async () => {
      mock.enqueue({ ...openaiTextStream(Array.from({ length: 200 }, (_, i) => `t${i} `)), sseDelayMs: 50 });
      const controller = new AbortController();
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/chat', stream: true, messages: [{ role: 'user', content: 'x' }] }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      const before = mock.closedRequests;
      controller.abort();
      await eventually(() => expect(mock.closedRequests).toBe(before + 1), 1000);
      await eventually(async () => expect((await t.usage()).at(-1)).toMatchObject({ status: 499, streamed: true }));
      // Billed on an estimate (the upstream never reported usage): 1 prompt character → 1 token,
      // plus whatever text was relayed before the abort (4 characters a token).
      const row = (await t.usage()).at(-1)!;
      expect(row.costEstimated).toBe(true);
      expect(row.promptTokens).toBe(1);
      expect(row.completionTokens).toBeLessThan(200);
      expect(row.costNano).toBe(row.promptTokens * 150 + row.completionTokens * 600);
    });

    it('aborts the upstream request when the client disconnects while waiting for the first byte', async () => {
      mock.enqueue({ hang: true });
      const controller = new AbortController();
      const pending = fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] }),
        signal: controller.signal,
      }).catch(() => undefined);
      await eventually(() => expect(mock.requests.length).toBe(1));
      const before = mock.closedRequests;
      controller.abort();
      await pending;
      await eventually(() => expect(mock.closedRequests).toBe(before + 1), 1000);
    });

    it('answers 504 when the upstream sends no headers in time, and ends an idle stream with an error event', async () => {
      const slow = await startTestGateway({
        providers: [{ id: 'slow', type, baseUrl: `${mock.url}/v1`, apiKey: 'k', timeouts: { connect: 1000, headers: 300, body: 300 } }],
        models: [{ id: 'slow/chat', endpoints: [{ provider: 'slow', model: 'm' }] }],
      });
      try {
        mock.enqueue({ hang: true });
        const err = await slow.client.chat.completions.create({ model: 'slow/chat', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(OpenAI.APIError);
        expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);

        mock.enqueue({ ...openaiTextStream(['a', 'b']), hangAfterEvents: 2 });
        const res = await fetch(`${slow.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${slow.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'slow/chat', stream: true, messages: [{ role: 'user', content: 'x' }] }),
        });
        const text = await res.text();
        expect(text).toContain('"content":"a"');
        expect(text).not.toContain('[DONE]');
        expect(text).toContain('"code":"MR_ERR_UPSTREAM_TIMEOUT"');
        expect((await slow.usage()).map((r) => r.status)).toEqual([504, 504]);
      } finally {
        await slow.close();
      }
    });

    it('passes embeddings through and meters their tokens', async () => {
      mock.enqueue(openaiEmbeddings([[0.5, 0.25]]));
      const res = await t.client.embeddings.create({ model: 'test/embed', input: 'hello', encoding_format: 'float' });
      expect(res.data[0]!.embedding).toEqual([0.5, 0.25]);
      assertSchema('CreateEmbeddingResponse', res);
      expect(mock.requests[0]!.url).toBe('/v1/embeddings');
      expect(mock.requests[0]!.json.model).toBe('text-embedding-3-small');
      expect((await t.usage()).at(-1)).toMatchObject({ model: 'test/embed', promptTokens: 8 });
    });

    it('lists models with pricing and context length', async () => {
      const list = await t.client.models.list();
      const ids = list.data.map((m) => m.id);
      expect(ids).toEqual(['test/chat', 'test/embed']);
      const chat = list.data[0] as any;
      expect(chat.context_length).toBe(128000);
      expect(chat.pricing).toMatchObject({ input: 0.15, output: 0.6 });
      assertSchema('ListModelsResponse', { object: 'list', data: list.data });
    });

    it('refuses a missing or wrong key with 401 and never contacts the upstream', async () => {
      const bad = new OpenAI({ apiKey: 'mr_wrong', baseURL: `${t.url}/v1`, maxRetries: 0 });
      await expect(bad.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      expect(mock.requests).toHaveLength(0);
    });
  });
}
