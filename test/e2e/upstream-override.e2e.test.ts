/**
 * A request can never choose where the gateway connects or with which credential: fields like
 * `api_base`, `base_url`, `api_key` — top level or nested — are refused with 400 before any
 * upstream connection, through the official `openai` SDK.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openaiEmbeddings, openaiText } from '../fixtures/openai.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

describe('upstream overrides in requests', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      providers: [
        { id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-up' },
        { id: 'an', type: 'anthropic', baseUrl: mock.url, apiKey: 'sk-an' },
      ],
      models: [
        { id: 'test/chat', endpoints: [{ provider: 'oa', model: 'gpt-4o-mini' }] },
        { id: 'test/claude', endpoints: [{ provider: 'an', model: 'claude-x' }] },
        { id: 'test/embed', kind: 'embedding', endpoints: [{ provider: 'oa', model: 'text-embedding-3-small' }] },
      ],
    });
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });
  beforeEach(() => mock.reset());

  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['api_base at the top level', { api_base: 'http://169.254.169.254/latest' }, 'api_base'],
    ['base_url at the top level', { base_url: 'http://127.0.0.1:6379' }, 'base_url'],
    ['api_key at the top level', { api_key: 'sk-someone-else' }, 'api_key'],
    ['base_url in extra_body', { extra_body: { base_url: 'http://10.0.0.1' } }, 'extra_body.base_url'],
    ['API_BASE in any case, nested in metadata', { metadata: { API_BASE: 'http://x' } }, 'metadata.API_BASE'],
    ['api_key deep in an array', { extra_body: { fallbacks: [{ model: 'x', api_key: 'k' }] } }, 'extra_body.fallbacks[0].api_key'],
  ];

  for (const model of ['test/chat', 'test/claude']) {
    for (const [name, extra, param] of cases) {
      it(`${model}: ${name} → 400 naming '${param}', no upstream request`, async () => {
        const err = await t.client.chat.completions
          .create({ model, messages: [{ role: 'user', content: 'hi' }], ...extra } as never)
          .then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(OpenAI.BadRequestError);
        expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param);
        expect((err as Error).message).toMatch(/set by the gateway's operator/);
        expect(mock.requests).toHaveLength(0);
      });
    }
  }

  it('an override hidden behind a duplicated key never reaches the upstream', async () => {
    // JSON.parse keeps the last `x` (clean), an upstream reading the first would see api_base:
    // the upstream gets what the gateway checked, not the client's bytes.
    for (const text of [
      '{"model":"test/chat","messages":[{"role":"user","content":"hi"}],"extra_body":{"x":{"api_base":"http://169.254.169.254"},"x":{}}}',
      '{"model":"test/chat","messages":[{"role":"user","content":"hi"}],"extra_body":{"api_base":"http://169.254.169.254"},"extra_body":{}}',
    ]) {
      mock.enqueue(openaiText());
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        body: text,
      });
      expect(res.status).toBe(200);
    }
    expect(mock.requests).toHaveLength(2);
    for (const r of mock.requests) expect(r.body).not.toContain('api_base');
  });

  it('embeddings refuse them too', async () => {
    const err = await t.client.embeddings.create({ model: 'test/embed', input: 'x', api_base: 'http://x' } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(mock.requests).toHaveLength(0);
    mock.enqueue(openaiEmbeddings());
    await t.client.embeddings.create({ model: 'test/embed', input: 'x' });
  });

  it('the same names as data (a tool parameter, message text) are fine', async () => {
    mock.enqueue(openaiText());
    const res = await t.client.chat.completions.create({
      model: 'test/chat',
      messages: [{ role: 'user', content: 'set api_base and base_url please' }],
      tools: [
        {
          type: 'function',
          function: { name: 'connect', parameters: { type: 'object', properties: { api_key: { type: 'string' }, base_url: { type: 'string' } } } },
        },
      ],
    });
    expect(res.choices[0]!.message.content).toBe('Hello from OpenAI.');
    expect(mock.requests).toHaveLength(1);
  });
});
