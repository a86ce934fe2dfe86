/**
 * Upstream answers are untrusted: a body that is not JSON, stream events that are not JSON, an
 * oversized stream event — each ends in a clean OpenAI-shaped error for the client (502 before
 * the first byte, an error event and no `[DONE]` after it), no crash, and nothing of the upstream's
 * text in any log line.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openaiText, openaiTextStream } from '../fixtures/openai.js';
import { anthropicTextReply, anthropicTextStream } from '../fixtures/anthropic.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

const SECRET_TEXT = 'UPSTREAM-GARBAGE-7f3a';

for (const type of ['openai', 'anthropic'] as const) {
  describe(`untrusted ${type} upstream`, () => {
    let mock: MockUpstream;
    let t: TestGateway;
    beforeAll(async () => {
      mock = await startMockUpstream();
      t = await startTestGateway({
        providers: [
          { id: 'up', type, baseUrl: type === 'openai' ? `${mock.url}/v1` : mock.url, apiKey: 'k' },
          { id: 'up2', type, baseUrl: type === 'openai' ? `${mock.url}/v1` : mock.url, apiKey: 'k' },
        ],
        models: [
          { id: 'test/m', maxOutputTokens: 100, endpoints: [{ provider: 'up', model: 'm' }] },
          { id: 'test/fallback', maxOutputTokens: 100, endpoints: [{ provider: 'up', model: 'm' }, { provider: 'up2', model: 'm' }] },
        ],
      });
    });
    afterAll(async () => {
      await t.close();
      await mock.close();
    });
    beforeEach(() => mock.reset());

    const streamRaw = async (model = 'test/m') => {
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'x' }] }),
      });
      return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
    };

    it('a streamed request answered with a JSON body or an HTML page → 502 before the stream starts', async () => {
      // A provider that ignored `stream` (a whole completion), and a base URL that serves a web page.
      const whole = type === 'openai' ? openaiText({ text: SECRET_TEXT }) : anthropicTextReply({ text: SECRET_TEXT });
      for (const reply of [whole, { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, text: `<html>${SECRET_TEXT}</html>` }]) {
        mock.enqueue(reply);
        const { status, contentType, text } = await streamRaw();
        expect(status).toBe(502);
        expect(contentType).toMatch(/^application\/json/);
        expect(JSON.parse(text).error).toMatchObject({ code: 'MR_ERR_UPSTREAM_BAD_RESPONSE', message: expect.stringMatching(/not an event stream/) });
        expect(text).not.toContain(SECRET_TEXT);
      }
      await eventually(async () => expect((await t.usage()).at(-1)).toMatchObject({ status: 502, streamed: true }));
      expect(t.logs.join('')).not.toContain(SECRET_TEXT);
    });

    it('a streamed request answered with a JSON body falls over to the next endpoint', async () => {
      mock.enqueue(type === 'openai' ? openaiText() : anthropicTextReply(), type === 'openai' ? openaiTextStream(['Hel', 'lo']) : anthropicTextStream({ chunks: ['Hel', 'lo'] }));
      const stream = await t.client.chat.completions.create({ model: 'test/fallback', stream: true, messages: [{ role: 'user', content: 'x' }] });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(text).toBe('Hello');
      expect(mock.requests).toHaveLength(2);
    });

    it('a 200 whose body is not JSON → 502 in OpenAI shape', async () => {
      mock.enqueue({ status: 200, headers: { 'content-type': 'application/json' }, text: `<html>${SECRET_TEXT}</html>` });
      const err = await t.client.chat.completions.create({ model: 'test/m', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
      expect((err as Error).message).toMatch(/not valid JSON/);
      expect(t.logs.join('')).not.toContain(SECRET_TEXT);
    });

    it('stream events that are not JSON → an error event, no [DONE]', async () => {
      const first =
        type === 'openai'
          ? { data: JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: null }] }) }
          : { event: 'message_start', data: JSON.stringify({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 1 } } }) };
      mock.enqueue({ sse: [first, type === 'openai' ? { data: `${SECRET_TEXT} not json` } : { event: 'content_block_delta', data: `${SECRET_TEXT} not json` }, { data: '[DONE]' }] });
      const { status, text } = await streamRaw();
      expect(status).toBe(200);
      expect(text).not.toContain('[DONE]');
      expect(text).toMatch(/"code":"MR_ERR_UPSTREAM_BAD_RESPONSE"/);
      expect(text).not.toContain(SECRET_TEXT);
      await eventually(async () => expect((await t.usage()).at(-1)).toMatchObject({ status: 502, streamed: true }));
      expect(t.logs.join('')).not.toContain(SECRET_TEXT);
    });

    it('an oversized stream event (over 16 MiB) → an error event, the gateway keeps serving', async () => {
      mock.enqueue({ sse: [{ data: `{"x":"${'a'.repeat(17 * 1024 * 1024)}"}` }] });
      const { status, text } = await streamRaw();
      expect(status).toBe(200);
      expect(text).toMatch(/oversized stream event/);
      expect(text).not.toContain('[DONE]');
      // Still healthy afterwards.
      mock.enqueue(type === 'openai' ? openaiText() : (await import('../fixtures/anthropic.js')).anthropicTextReply());
      const res = await t.client.chat.completions.create({ model: 'test/m', messages: [{ role: 'user', content: 'x' }] });
      expect(res.choices[0]!.message.role).toBe('assistant');
    });
  });
}
