/**
 * Bad input at the HTTP level gets a clear error in OpenAI's shape with the status the SDKs
 * expect, and never reaches an upstream; plus Gemini embeddings and health.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { geminiEmbeddingsReply } from '../fixtures/gemini.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { assertSchema } from '../helpers/openai-schema.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('HTTP-level errors and other endpoints', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${t.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json', ...headers },
      body,
    });

  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      limits: { bodyBytes: 64 * 1024 },
      providers: [{ id: 'g', type: 'gemini', baseUrl: mock.url, apiKey: 'gk' }],
      models: [
        { id: 'google/chat', endpoints: [{ provider: 'g', model: 'gemini-2.5-flash' }] },
        { id: 'google/embed', kind: 'embedding', endpoints: [{ provider: 'g', model: 'gemini-embedding-001' }] },
      ],
    });
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });
  beforeEach(() => mock.reset());

  async function expectError(res: Response, status: number, code: string) {
    expect(res.status).toBe(status);
    const body = (await res.json()) as any;
    assertSchema('ErrorResponse', body);
    expect(body.error.code).toBe(code);
    return body.error as { message: string; param: string | null };
  }

  it('413 for a body over the limit', async () => {
    const big = JSON.stringify({ model: 'google/chat', messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] });
    await expectError(await post('/v1/chat/completions', big), 413, 'MR_ERR_PAYLOAD_TOO_LARGE');
    expect(mock.requests).toHaveLength(0);
  });

  it('400 for invalid JSON, an empty body, and a body that is not an object', async () => {
    const e = await expectError(await post('/v1/chat/completions', '{"model": "google/chat", "messages": [ secret'), 400, 'MR_ERR_INVALID_JSON');
    expect(e.message).not.toContain('secret');
    await expectError(await post('/v1/chat/completions', ''), 400, 'MR_ERR_INVALID_JSON');
    await expectError(await post('/v1/chat/completions', '[1,2]'), 400, 'MR_ERR_INVALID_REQUEST');
    await expectError(await post('/v1/chat/completions', 'model=x', { 'content-type': 'application/x-www-form-urlencoded' }), 400, 'MR_ERR_INVALID_REQUEST');
    // A JSON text sent as text/plain (or with no type) is told what is wrong: the content type.
    const body = JSON.stringify({ model: 'google/chat', messages: [{ role: 'user', content: 'hi' }] });
    for (const type of ['text/plain', 'text/plain; charset=utf-8', '']) {
      const e2 = await expectError(await post('/v1/chat/completions', body, { 'content-type': type }), 400, 'MR_ERR_INVALID_REQUEST');
      expect(e2.message).toBe("The request body must be JSON with 'Content-Type: application/json'.");
    }
    expect(mock.requests).toHaveLength(0);
  });

  it('400 naming model when it is missing, 404 for an unknown route', async () => {
    const e = await expectError(await post('/v1/chat/completions', '{"messages":[]}'), 400, 'MR_ERR_INVALID_REQUEST');
    expect(e.param).toBe('model');
    await expectError(await post('/v1/completions', '{}'), 404, 'MR_ERR_NOT_FOUND');
  });

  it('400 when a chat model is asked for embeddings and vice versa', async () => {
    const e = await expectError(await post('/v1/embeddings', JSON.stringify({ model: 'google/chat', input: 'x' })), 400, 'MR_ERR_INVALID_REQUEST');
    expect(e.param).toBe('model');
    await expectError(await post('/v1/chat/completions', JSON.stringify({ model: 'google/embed', messages: [{ role: 'user', content: 'x' }] })), 400, 'MR_ERR_INVALID_REQUEST');
  });

  it('translates embeddings to Gemini, in float and base64, and estimates tokens Gemini does not report', async () => {
    mock.enqueue(geminiEmbeddingsReply({ vectors: [[0.5, -0.25], [1, 0]] }));
    const res = await t.client.embeddings.create({ model: 'google/embed', input: ['hello world', 'bye'], encoding_format: 'float' });
    assertSchema('CreateEmbeddingResponse', res);
    expect(res.data.map((d) => d.embedding)).toEqual([[0.5, -0.25], [1, 0]]);
    expect(mock.requests[0]!.url).toBe('/v1beta/models/gemini-embedding-001:batchEmbedContents');
    expect(mock.requests[0]!.json.requests.map((r: any) => r.content.parts[0].text)).toEqual(['hello world', 'bye']);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);

    mock.enqueue(geminiEmbeddingsReply({ vectors: [[0.5, -0.25]] }));
    const raw: any = await (await post('/v1/embeddings', JSON.stringify({ model: 'google/embed', input: 'x', encoding_format: 'base64' }))).json();
    const buf = Buffer.from(raw.data[0].embedding, 'base64');
    expect([buf.readFloatLE(0), buf.readFloatLE(4)]).toEqual([0.5, -0.25]);

    const err = await t.client.embeddings.create({ model: 'google/embed', input: [[1, 2, 3]] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('input');
  });

  it('answers /healthz without a key', async () => {
    const res = await fetch(`${t.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('gives wrong-length, wrong-checksum and unknown keys the same 401 body', async () => {
    const bodies = new Set<string>();
    const good = t.apiKey;
    const typo = good.slice(0, 10) + (good[10] === 'a' ? 'b' : 'a') + good.slice(11);
    for (const key of ['short', typo, `${good}x`, 'mr_' + 'A'.repeat(49)]) {
      const res = await post('/v1/chat/completions', '{}', { authorization: `Bearer ${key}` });
      expect(res.status).toBe(401);
      bodies.add(await res.text());
    }
    expect(bodies.size).toBe(1);
    const logged = t.logs.join('');
    expect(logged).toContain('"status":401,"errorCode":"MR_ERR_UNAUTHORIZED"');
    expect(logged).not.toContain(typo);
    expect(logged).not.toContain(good);
  });
});
