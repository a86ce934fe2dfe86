/**
 * A provider's total timeout (`providers[].timeouts.total`): 504 before the first byte, a
 * terminal error event (never `[DONE]`) after it — through the official `openai` SDK.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiTextStream } from '../fixtures/openai.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

describe('providers[].timeouts.total', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      providers: [{ id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'k', timeouts: { connect: 1000, headers: 5000, body: 5000, total: 400 } }],
      models: [{ id: 'test/chat', endpoints: [{ provider: 'oa', model: 'gpt-4o-mini' }] }],
    });
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it('504 when the upstream has not answered within the total time', async () => {
    mock.enqueue({ hang: true });
    const started = Date.now();
    const err = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((err as Error).message).toMatch(/did not finish within 400 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a stream still running at the total time ends with an error event, no [DONE], and is metered', async () => {
    mock.enqueue({ ...openaiTextStream(Array.from({ length: 20 }, (_, i) => `w${i} `)), sseDelayMs: 100 });
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test/chat', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('w0 ');
    expect(text).not.toContain('[DONE]');
    expect(text).toMatch(/"code":"MR_ERR_UPSTREAM_TIMEOUT"/);
    await eventually(async () => expect((await t.usage()).at(-1)).toMatchObject({ status: 504, streamed: true, costEstimated: true }));
  });
});
