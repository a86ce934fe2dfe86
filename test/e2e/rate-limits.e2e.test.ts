/**
 * Rate limits through the gateway, with the official `openai` SDK, on the in-memory store and on
 * Redis: requests, tokens and concurrency per key and account, per-key overrides, provider caps
 * that fail over to another endpoint, OpenAI's `x-ratelimit-*` headers on every answer, and the
 * 429 in OpenAI's error shape with `retry-after`. Plus Redis going away under both failure modes.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openaiText } from '../fixtures/openai.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream } from '../helpers/mock-upstream.js';
import { HAVE_REDIS_SERVER, TEST_REDIS_URL, redisServer, type RedisServer } from '../limits/helpers.js';

type ConfigExtra = Parameters<typeof startTestGateway>[0];

const TARGETS = [
  { name: 'memory', skip: false, redis: undefined as string | undefined },
  { name: 'redis', skip: TEST_REDIS_URL === undefined, redis: TEST_REDIS_URL },
];

async function failure(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}

const slow = (ms: number): MockReply => ({ ...openaiText(), delayMs: ms });

for (const target of TARGETS) {
  describe.skipIf(target.skip)(`rate limits (${target.name} store)`, () => {
    let mock: MockUpstream;
    let other: MockUpstream;
    let t: TestGateway | undefined;
    beforeAll(async () => {
      mock = await startMockUpstream();
      other = await startMockUpstream();
      mock.setDefault(openaiText());
      other.setDefault(openaiText({ text: 'from the other provider' }));
    });
    afterAll(async () => {
      await mock.close();
      await other.close();
    });
    afterEach(async () => {
      await t?.close();
      t = undefined;
      mock.reset();
      other.reset();
      mock.setDefault(openaiText());
      other.setDefault(openaiText({ text: 'from the other provider' }));
    });

    // Provider ids are part of Redis keys, which outlive a test run by a minute: unique per run.
    const OA = `oa-${Math.random().toString(36).slice(2, 8)}`;
    async function gateway(extra: Partial<ConfigExtra>): Promise<TestGateway> {
      t = await startTestGateway({
        ...(target.redis ? { redis: target.redis } : {}),
        providers: [
          { id: OA, type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'k1', ...(extra.providers?.[0] ?? {}) },
          { id: 'other', type: 'openai', baseUrl: `${other.url}/v1`, apiKey: 'k2' },
        ],
        models: [
          { id: 'test/chat', endpoints: [{ provider: OA, model: 'gpt-4o-mini' }] },
          { id: 'test/two', endpoints: [{ provider: OA, model: 'gpt-4o-mini' }, { provider: 'other', model: 'gpt-4o-mini' }] },
        ],
        ...(extra.limits ? { limits: extra.limits } : {}),
      });
      return t;
    }
    const ask = (g: TestGateway, model = 'test/chat', extra: Record<string, unknown> = {}) =>
      g.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }).withResponse();

    it('requests per minute per key: the headers count down, the next request gets 429 with retry-after', async () => {
      const g = await gateway({ limits: { key: { rpm: 3 } } });
      const remaining: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { response } = await ask(g);
        expect(response.headers.get('x-ratelimit-limit-requests')).toBe('3');
        remaining.push(response.headers.get('x-ratelimit-remaining-requests')!);
        expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?(ms|s)$|^\d+m\d+(\.\d+)?s$/);
      }
      expect(remaining).toEqual(['2', '1', '0']);
      const e = await failure(ask(g));
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.message).toMatch(/Rate limit reached: this API key's limit of 3 requests per minute/);
      const retryAfter = Number(e.headers?.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(e.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(mock.requests).toHaveLength(3);
      // The refusal is metered (an access-log line with the code), never sent upstream.
      expect(g.logs.join('')).toContain('MR_ERR_RATE_LIMITED');
    });

    it("a key's own limit overrides the default; other keys keep theirs", async () => {
      const g = await gateway({ limits: { key: { rpm: 100 } } });
      await g.gw.repos.keys.updateKey(g.accountId, g.keyId, { rateLimits: { rpm: 1 } });
      g.gw.authenticator.invalidate(g.keyId);
      const { response } = await ask(g);
      expect(response.headers.get('x-ratelimit-limit-requests')).toBe('1');
      expect((await failure(ask(g))).status).toBe(429);
    });

    it('tokens per minute: the prompt estimate plus max_tokens is admitted against the limit', async () => {
      const g = await gateway({ limits: { key: { tpm: 1000 } } });
      // 'hi' is a few tokens with OpenAI's tokenizer; with max_tokens 980 the estimate fits in 1 000.
      const { response } = await ask(g, 'test/chat', { max_tokens: 980 });
      expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('1000');
      expect(Number(response.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(20);
      // When it ended its actual usage (17 tokens) replaced the estimate: 983 are left, not enough for another.
      await eventually(async () => {
        const e = await failure(ask(g, 'test/chat', { max_tokens: 980 }));
        expect(e.status).toBe(429);
        expect(e.message).toMatch(/Rate limit reached: this API key's limit of 1000 tokens per minute/);
      });
      const { response: small } = await ask(g, 'test/chat', { max_tokens: 100 });
      expect(small.status).toBe(200);
      // A request that can never fit is told so.
      const big = await failure(ask(g, 'test/chat', { max_tokens: 5000 }));
      expect(big.status).toBe(429);
      expect(big.message).toMatch(/Request too large/);
    });

    it('concurrent requests per account: one over the limit is refused while the others run, and the slots come back', async () => {
      const g = await gateway({ limits: { account: { concurrency: 2 } } });
      mock.setDefault(slow(300));
      const results = await Promise.allSettled([ask(g), ask(g), ask(g)]);
      const refused = results.filter((r) => r.status === 'rejected');
      expect(refused).toHaveLength(1);
      expect(((refused[0] as PromiseRejectedResult).reason as { status: number }).status).toBe(429);
      expect(((refused[0] as PromiseRejectedResult).reason as Error).message).toMatch(/this account's limit of 2 concurrent requests/);
      mock.setDefault(openaiText());
      await eventually(async () => {
        await Promise.all([ask(g), ask(g)]);
      });
    });

    it('a provider cap sends the overflow to the model’s next endpoint', async () => {
      const g = await gateway({ providers: [{ limits: { rpm: 1 } }] as never });
      const first = await ask(g, 'test/two', { provider: { order: [OA, 'other'] } });
      expect(first.response.headers.get('x-maxrouter-provider')).toBe(OA);
      const second = await ask(g, 'test/two', { provider: { order: [OA, 'other'] } });
      expect(second.response.headers.get('x-maxrouter-provider')).toBe('other');
      expect(second.data.choices[0]!.message.content).toBe('from the other provider');
      // With no other endpoint the cap answers 429.
      expect((await failure(ask(g, 'test/chat'))).status).toBe(429);
    });
  });
}

describe.skipIf(!HAVE_REDIS_SERVER)('Redis going away (a dedicated redis-server)', () => {
  let server: RedisServer;
  let mock: MockUpstream;
  beforeAll(async () => {
    server = await redisServer();
    await server.start();
    mock = await startMockUpstream();
    mock.setDefault(openaiText());
  });
  afterAll(async () => {
    await mock.close();
    await server.dispose();
  });

  for (const mode of ['open', 'closed'] as const) {
    it(`fail ${mode}: ${mode === 'open' ? 'served without limits, with a warning' : '503'} while Redis is down; limits again once it is back, without a restart`, async () => {
      const g = await startTestGateway({
        redis: server.url,
        limits: { key: { rpm: 2 }, redisFailure: mode },
        providers: [{ id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'k' }],
        models: [{ id: 'test/chat', endpoints: [{ provider: 'oa', model: 'gpt-4o-mini' }] }],
      });
      const ask = () => g.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      try {
        await eventually(async () => {
          const { response } = await ask();
          expect(response.headers.get('x-ratelimit-limit-requests')).toBe('2');
        }, 5000);
        await server.stop();
        if (mode === 'open') {
          for (let i = 0; i < 4; i++) {
            const { response } = await ask();
            expect(response.status).toBe(200);
          }
          expect(g.gw.limiter.stats.failOpen).toBeGreaterThanOrEqual(4);
          expect(g.logs.join('')).toMatch(/rate-limit store unavailable/);
          // …and a metric.
          const metrics = await (await fetch(`${g.url}/metrics`)).text();
          expect(metrics).toMatch(/^# TYPE maxrouter_ratelimit_fail_open_total counter$/m);
          expect(Number(/^maxrouter_ratelimit_fail_open_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(4);
        } else {
          const e = await failure(ask());
          expect(e.status).toBe(503);
        }
        await server.start();
        // Back: limits apply again (a fresh bucket: the server kept nothing).
        await eventually(async () => {
          const { response } = await ask();
          expect(response.headers.get('x-ratelimit-limit-requests')).toBe('2');
        }, 5000);
        await eventually(async () => expect((await failure(ask())).status).toBe(429), 5000);
      } finally {
        await g.close();
      }
    }, 30_000);
  }
});
