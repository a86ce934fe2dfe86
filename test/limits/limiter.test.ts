import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RateLimitedError, RateLimiter, RateStoreUnavailableError, limitKey, type AdmitRequest, type RateTicket } from '../../src/limits/limiter.js';
import { MemoryRateStore, type RateStore } from '../../src/limits/store.js';
import { estimatePromptTokens } from '../../src/limits/tokens.js';
import { STORES, scanKeys, sleep, type OpenedStore } from './helpers.js';

const MINUTE = 60_000;

function request(limits: Partial<AdmitRequest['limits']>, over: Partial<Omit<AdmitRequest, 'limits'>> = {}): AdmitRequest {
  return {
    keyId: 'key_1',
    accountId: 'acct_1',
    providerId: 'openai-main',
    estimatedTokens: 100,
    limits: { key: {}, account: {}, provider: {}, ...limits },
    ...over,
  };
}

async function refusal(p: Promise<unknown>): Promise<RateLimitedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RateLimitedError);
  return err as RateLimitedError;
}

for (const target of STORES) {
  describe.skipIf(target.skip)(`rate limiter: ${target.name}`, () => {
    let s: OpenedStore;
    let store: RateStore;
    let limiter: RateLimiter;
    const tickets: RateTicket[] = [];
    beforeEach(async () => {
      s = await target.open();
      store = s.store;
      limiter = new RateLimiter({ store, onStoreFailure: 'closed' });
    });
    afterEach(async () => {
      await Promise.all(tickets.splice(0).map((t) => t.finish(undefined)));
      await s.cleanup();
    });
    const admit = async (l: RateLimiter, req: AdmitRequest) => {
      const t = await l.admit(req);
      tickets.push(t);
      return t;
    };
    /** The bucket's state without charging it. */
    const peek = async (key: string, limit: number) =>
      (await store.consume([{ key, limit, periodMs: MINUTE, cost: 0 }])).results[0]!;

    it('admits without touching the store when no limit applies', async () => {
      const t = await admit(limiter, request({}));
      expect(t.failOpen).toBe(false);
      expect(t.headers()).toEqual({});
      await t.finish(500);
      if (s.admin) expect(await scanKeys(s.admin.client, s.admin.prefix)).toEqual([]);
      expect(limiter.stats).toMatchObject({ admitted: 1, limited: 0 });
    });

    it('refuses the request after the key rpm with a 429, retry-after and headers', async () => {
      const req = request({ key: { rpm: 3 } });
      const first = await admit(limiter, req);
      expect(first.headers()).toEqual({
        'x-ratelimit-limit-requests': '3',
        'x-ratelimit-remaining-requests': '2',
        'x-ratelimit-reset-requests': target.exactTime ? '20s' : expect.stringMatching(/^(20s|19\.\d+s)$/),
      });
      await admit(limiter, req);
      await admit(limiter, req);
      const err = await refusal(limiter.admit(req));
      expect(err.limitName).toBe('key requests per minute');
      expect(err).toMatchObject({ status: 429, code: 'MR_ERR_RATE_LIMITED', retryAfter: 20, retryAfterSeconds: 20, exceedsLimit: false });
      expect(Number.isInteger(err.retryAfterSeconds)).toBe(true);
      expect(err.headers['x-ratelimit-remaining-requests']).toBe('0');
      expect(err.headers['x-ratelimit-limit-requests']).toBe('3');
      expect(err.headers['x-ratelimit-reset-requests']).toMatch(/^(1m0s|59\.\d+s)$/);
      expect(err.headers).not.toHaveProperty('x-ratelimit-limit-tokens');
      expect(limiter.stats).toMatchObject({ admitted: 3, limited: 1 });
    });

    it('names account tpm, and a refused tpm does not consume the key rpm', async () => {
      const req = request({ key: { rpm: 10 }, account: { tpm: 1_000 } }, { estimatedTokens: 600 });
      await admit(limiter, req);
      const err = await refusal(limiter.admit(req));
      expect(err.limitName).toBe('account tokens per minute');
      expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(12);
      expect(err.retryAfterSeconds).toBeLessThanOrEqual(13);
      expect(err.headers).toMatchObject({ 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '400' });
      expect((await peek(limitKey('key', 'key_1', 'rpm'), 10)).remaining).toBe(9);
      const t = await admit(limiter, { ...req, estimatedTokens: 300 });
      expect(t.headers()['x-ratelimit-remaining-requests']).toBe('8');
      expect(t.headers()['x-ratelimit-remaining-tokens']).toBe('100');
    });

    it('refuses a request larger than the tpm limit as never fitting', async () => {
      const err = await refusal(limiter.admit(request({ key: { rpm: 10, tpm: 1_000 } }, { estimatedTokens: 5_000 })));
      expect(err).toMatchObject({ limitName: 'key tokens per minute', exceedsLimit: true, retryAfterSeconds: 60 });
      expect(err.message).toMatch(/Request too large.*5000 tokens.*1000 tokens per minute/);
      expect((await peek(limitKey('key', 'key_1', 'rpm'), 10)).remaining).toBe(10);
    });

    it('refuses every request under a limit of 0', async () => {
      const rpm = await refusal(limiter.admit(request({ account: { rpm: 0 } })));
      expect(rpm).toMatchObject({ limitName: 'account requests per minute', exceedsLimit: true });
      expect(rpm.message).toMatch(/allows no requests/);
      const conc = await refusal(limiter.admit(request({ key: { concurrency: 0 } })));
      expect(conc).toMatchObject({ limitName: 'key concurrent requests', exceedsLimit: true });
    });

    it('names provider limits', async () => {
      const rpm = request({ provider: { rpm: 1 } });
      await admit(limiter, rpm);
      expect((await refusal(limiter.admit(rpm))).limitName).toBe('provider requests per minute');
      const conc = request({ provider: { concurrency: 1 } }, { providerId: 'other' });
      await admit(limiter, conc);
      expect((await refusal(limiter.admit(conc))).limitName).toBe('provider concurrent requests');
    });

    it('refuses beyond the key concurrency, releasing the slots taken and refunding rpm and tpm', async () => {
      const limits = { key: { concurrency: 1, rpm: 10, tpm: 1_000 }, account: { concurrency: 2 } };
      const a1 = await admit(limiter, request(limits, { keyId: 'key_a' }));
      const err = await refusal(limiter.admit(request(limits, { keyId: 'key_a' })));
      expect(err).toMatchObject({ limitName: 'key concurrent requests', retryAfterSeconds: 1, exceedsLimit: false });
      // The refused request's account slot was given back: another key of the account still fits.
      await admit(limiter, request({ ...limits }, { keyId: 'key_b' }));
      // … and its requests and tokens were refunded.
      expect((await peek(limitKey('key', 'key_a', 'rpm'), 10)).remaining).toBe(9);
      expect((await peek(limitKey('key', 'key_a', 'tpm'), 1_000)).remaining).toBe(900);
      expect(err.headers['x-ratelimit-remaining-requests']).toBe('9');
      expect(err.headers['x-ratelimit-remaining-tokens']).toBe('900');
      // The account is now full (key_a's first request + key_b).
      const full = await refusal(limiter.admit(request(limits, { keyId: 'key_c' })));
      expect(full.limitName).toBe('account concurrent requests');
      await a1.finish(100);
      await admit(limiter, request(limits, { keyId: 'key_a' }));
    });

    it('finish reconciles the token estimate with actual usage, once', async () => {
      const limits = { key: { tpm: 1_000 } };
      const key = limitKey('key', 'key_1', 'tpm');
      const t1 = await admit(limiter, request(limits, { estimatedTokens: 100 }));
      expect(t1.headers()['x-ratelimit-remaining-tokens']).toBe('900');
      await t1.finish(300);
      expect((await peek(key, 1_000)).remaining).toBe(700);
      await t1.finish(300); // idempotent
      await t1.finish(900);
      expect((await peek(key, 1_000)).remaining).toBe(700);

      const t2 = await admit(limiter, request(limits, { estimatedTokens: 100 }));
      await t2.finish(20); // refund 80
      expect((await peek(key, 1_000)).remaining).toBe(680);

      const t3 = await admit(limiter, request(limits, { estimatedTokens: 100 }));
      await t3.finish(undefined); // no usage reported: the estimate stands
      expect((await peek(key, 1_000)).remaining).toBe(580);
      expect(limiter.stats.backgroundErrors).toBe(0);
    });

    it('reports the tightest request and token limits in the headers', async () => {
      const t = await admit(
        limiter,
        request({ key: { rpm: 100, tpm: 10_000 }, account: { rpm: 5, tpm: 500 }, provider: { rpm: 1_000 } }),
      );
      const h = t.headers();
      expect(h['x-ratelimit-limit-requests']).toBe('5');
      expect(h['x-ratelimit-remaining-requests']).toBe('4');
      expect(h['x-ratelimit-limit-tokens']).toBe('500');
      expect(h['x-ratelimit-remaining-tokens']).toBe('400');
      if (target.exactTime) expect(h['x-ratelimit-reset-tokens']).toBe('12s');
      expect(Object.keys(h)).toHaveLength(6);
    });

    it('admits exactly 100 of 200 concurrent requests against rpm 100 through two instances', async () => {
      const other = new RateLimiter({ store: await s.second(), onStoreFailure: 'closed' });
      const req = request({ key: { rpm: 100 } });
      const settled = await Promise.allSettled(
        Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? limiter : other).admit(req)),
      );
      const admitted = settled.filter((r) => r.status === 'fulfilled');
      const refused = settled.filter((r) => r.status === 'rejected');
      expect(admitted).toHaveLength(100);
      expect(refused).toHaveLength(100);
      for (const r of refused) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RateLimitedError);
      expect(limiter.stats.admitted + other.stats.admitted).toBe(100);
    });

    it('shares concurrency slots between two instances', async () => {
      const other = new RateLimiter({ store: await s.second(), onStoreFailure: 'closed' });
      const req = request({ account: { concurrency: 3 } });
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? limiter : other).admit(req)),
      );
      const held = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(held).toHaveLength(3);
      await Promise.all(held.map((t) => t.finish(0)));
      const again = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? limiter : other).admit(req)),
      );
      const heldAgain = again.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(heldAgain).toHaveLength(3);
      await Promise.all(heldAgain.map((t) => t.finish(0)));
    });

    it('renews the slots of an open ticket; an abandoned ticket’s slots expire', async () => {
      // Real time here, also in memory (the renewal timer runs on real time).
      const realStore = target.exactTime ? new MemoryRateStore() : store;
      const renewing = new RateLimiter({ store: realStore, onStoreFailure: 'closed', leaseMs: 300, renewEveryMs: 80 });
      const req = request({ key: { concurrency: 1 } }, { keyId: 'key_lease' });
      const t = await renewing.admit(req);
      await sleep(700);
      expect((await refusal(renewing.admit(req))).limitName).toBe('key concurrent requests');
      await t.finish(undefined);
      expect(renewing.stats.leasesLost).toBe(0);

      // A "crashed" instance: it never renews nor releases.
      const crashing = new RateLimiter({ store: realStore, onStoreFailure: 'closed', leaseMs: 300, renewEveryMs: 1e9 });
      await crashing.admit(req);
      await refusal(renewing.admit(req));
      await sleep(450);
      const after = await renewing.admit(req);
      await after.finish(undefined);
      if (realStore !== store) await realStore.close();
    });

    if (target.name === 'redis') {
      it('writes only ids and numbers to Redis, every key with a TTL', async () => {
        const secret = 'CONFIDENTIAL-PROMPT-TEXT-7f3a';
        const body = { model: 'gpt-4o', messages: [{ role: 'user', content: `Summarise ${secret}` }] };
        const estimatedTokens = await estimatePromptTokens(body, { tokenizer: 'approx' });
        const limits = {
          key: { rpm: 10, tpm: 10_000, concurrency: 2 },
          account: { rpm: 20, tpm: 20_000, concurrency: 4 },
          provider: { rpm: 100, concurrency: 10 },
        };
        const t = await admit(limiter, request(limits, { keyId: 'key_Ab3', accountId: 'acct_9', providerId: 'openai', estimatedTokens }));
        await t.finish(estimatedTokens + 7);
        const held = await admit(limiter, request(limits, { keyId: 'key_Ab3', accountId: 'acct_9', providerId: 'openai', estimatedTokens }));
        expect(held.failOpen).toBe(false);

        const { client, prefix } = s.admin!;
        const keys = (await scanKeys(client, prefix)).map((k) => k.slice(prefix.length)).sort();
        expect(keys).toEqual([
          'acct:acct_9:conc',
          'acct:acct_9:rpm',
          'acct:acct_9:tpm',
          'key:key_Ab3:conc',
          'key:key_Ab3:rpm',
          'key:key_Ab3:tpm',
          'prov:openai:conc',
          'prov:openai:rpm',
        ]);
        for (const key of keys) {
          const full = prefix + key;
          expect(await client.pttl(full), key).toBeGreaterThan(0);
          const type = await client.type(full);
          if (key.endsWith(':conc')) {
            expect(type).toBe('zset');
            const members = await client.zrange(full, '0', '-1', 'WITHSCORES');
            for (let i = 0; i < members.length; i += 2) {
              expect(members[i]).toMatch(/^[0-9a-f]{32}$/);
              expect(Number(members[i + 1])).toBeGreaterThan(Date.now() - 120_000);
            }
          } else {
            expect(type).toBe('string');
            expect(await client.get(full)).toMatch(/^[0-9.e+-]+ [0-9.e+-]+$/);
          }
        }
        const dump = JSON.stringify(await Promise.all(keys.map((k) => client.dump(prefix + k))));
        expect(dump).not.toContain(secret);
        expect(keys.join(' ')).not.toContain(secret);
      });
    }
  });
}

describe('rate limiter: store failures (a failing store)', () => {
  const failing = (error: unknown): RateStore => ({
    status: 'down',
    onStatusChange: () => () => {},
    consume: async () => {
      throw error;
    },
    adjust: async () => {
      throw error;
    },
    acquire: async () => {
      throw error;
    },
    renew: async () => {
      throw error;
    },
    release: async () => {
      throw error;
    },
    close: async () => {},
  });

  it("'open' admits, counts, and warns at most once per interval", async () => {
    let now = 0;
    const warnings: string[] = [];
    const limiter = new RateLimiter({
      store: failing(new RateStoreUnavailableError(new Error('connection refused'))),
      onStoreFailure: 'open',
      onWarning: (m, e) => {
        expect(e).toBeInstanceOf(RateStoreUnavailableError);
        warnings.push(m);
      },
      now: () => now,
    });
    const req = request({ key: { rpm: 1, concurrency: 1 } });
    for (let i = 0; i < 3; i++) expect((await limiter.admit(req)).failOpen).toBe(true);
    now += 9_999;
    await limiter.admit(req);
    expect(warnings).toHaveLength(1);
    now += 1;
    await limiter.admit(req);
    expect(warnings).toHaveLength(2);
    expect(limiter.stats).toMatchObject({ failOpen: 5, storeErrors: 5, admitted: 0 });
  });

  it('turns any store error into RateStoreUnavailableError and survives a throwing warning callback', async () => {
    const limiter = new RateLimiter({
      store: failing(new TypeError('unexpected')),
      onStoreFailure: 'closed',
      onWarning: () => {
        throw new Error('logger broke');
      },
    });
    const err = await limiter.admit(request({ account: { concurrency: 2 } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateStoreUnavailableError);
    expect((err as RateStoreUnavailableError).cause).toBeInstanceOf(TypeError);
  });

  it('fails per policy when only the concurrency step fails, after undoing the rate charge', async () => {
    const memory = new MemoryRateStore();
    const store: RateStore = Object.assign(Object.create(memory) as RateStore, {
      acquire: async () => {
        throw new RateStoreUnavailableError();
      },
    });
    const limiter = new RateLimiter({ store, onStoreFailure: 'closed' });
    await expect(limiter.admit(request({ key: { rpm: 5, concurrency: 1 } }))).rejects.toBeInstanceOf(RateStoreUnavailableError);
    const peek = await memory.consume([{ key: limitKey('key', 'key_1', 'rpm'), limit: 5, periodMs: MINUTE, cost: 0 }]);
    expect(peek.results[0]!.remaining).toBe(5);
  });
});
