/**
 * A dedicated redis-server (free port, no persistence) that the test kills, freezes and restarts:
 * the limiter fails open or closed as configured, fast, and recovers without being recreated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimitedError, RateLimiter, RateStoreUnavailableError, type AdmitRequest } from '../../src/limits/limiter.js';
import { RedisRateStore, type RateStoreStatus } from '../../src/limits/store.js';
import { HAVE_REDIS_SERVER, redisServer, sleep, type RedisServer } from './helpers.js';

if (!HAVE_REDIS_SERVER) console.warn('[maxrouter tests] redis-server is not on the PATH: Redis failure tests are SKIPPED.');

const COMMAND_TIMEOUT_MS = 200;

function request(keyId: string): AdmitRequest {
  return {
    keyId,
    accountId: 'acct_1',
    providerId: 'openai',
    estimatedTokens: 10,
    limits: { key: { rpm: 2, concurrency: 5 }, account: {}, provider: {} },
  };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await sleep(25);
  }
}

async function failure(p: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const t0 = performance.now();
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, ms: performance.now() - t0 };
}

describe.skipIf(!HAVE_REDIS_SERVER)('rate limiter when Redis fails', () => {
  let server: RedisServer;
  const stores: RedisRateStore[] = [];
  const newStore = () => {
    const s = new RedisRateStore({ url: server.url, prefix: 'mr-fail:', commandTimeoutMs: COMMAND_TIMEOUT_MS });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await redisServer();
    await server.start();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await server?.dispose();
  });

  it('fails open with a counter and one warning, fails closed fast with 503, and recovers', async () => {
    const openStore = newStore();
    const closedStore = newStore();
    expect(await openStore.ready()).toBe(true);
    expect(await closedStore.ready()).toBe(true);
    const statuses: RateStoreStatus[] = [];
    openStore.onStatusChange((status) => statuses.push(status));
    const warnings: string[] = [];
    const open = new RateLimiter({ store: openStore, onStoreFailure: 'open', onWarning: (m) => warnings.push(m) });
    const closed = new RateLimiter({ store: closedStore, onStoreFailure: 'closed' });

    // Limits apply while Redis is up.
    await open.admit(request('key_a'));
    const heldBeforeCrash = await open.admit(request('key_a'));
    await expect(open.admit(request('key_a'))).rejects.toBeInstanceOf(RateLimitedError);
    expect(openStore.status).toBe('up');

    await server.stop();
    await until(() => openStore.status === 'down' && closedStore.status === 'down', 2_000);
    expect(statuses).toEqual(['down']);

    // 'open': admitted without limits (the key is over its rpm), counted, one warning per 10 s.
    for (let i = 0; i < 5; i++) {
      const t = await open.admit(request('key_a'));
      expect(t.failOpen).toBe(true);
      expect(t.headers()).toEqual({});
      await t.finish(100);
    }
    expect(open.stats).toMatchObject({ failOpen: 5, storeErrors: 5, limited: 1, admitted: 2 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/WITHOUT rate limits/);
    // Finishing a ticket from before the outage does not throw either.
    await expect(heldBeforeCrash.finish(50)).resolves.toBeUndefined();
    expect(open.stats.backgroundErrors).toBeGreaterThan(0);

    // 'closed': RateStoreUnavailableError (503), well within the command timeout.
    const down = await failure(closed.admit(request('key_b')));
    expect(down.error).toBeInstanceOf(RateStoreUnavailableError);
    expect(down.error).toMatchObject({ status: 503, retryAfter: 1 });
    expect(down.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 150);
    expect(closed.stats.storeErrors).toBe(1);

    // A store created while Redis is down fails just as fast.
    const late = new RateLimiter({ store: newStore(), onStoreFailure: 'closed' });
    const lateDown = await failure(late.admit(request('key_c')));
    expect(lateDown.error).toBeInstanceOf(RateStoreUnavailableError);
    expect(lateDown.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 150);

    // Redis comes back on the same port (empty: no persistence); nothing is recreated.
    await server.start();
    await until(() => openStore.status === 'up' && closedStore.status === 'up', 5_000);
    expect(statuses).toEqual(['down', 'up']);
    await open.admit(request('key_a'));
    await open.admit(request('key_a'));
    await expect(open.admit(request('key_a'))).rejects.toBeInstanceOf(RateLimitedError);
    expect(open.stats.failOpen).toBe(5);
    await closed.admit(request('key_b'));
    await closed.admit(request('key_b'));
    await expect(closed.admit(request('key_b'))).rejects.toBeInstanceOf(RateLimitedError);
    await until(() => stores[2]!.status === 'up', 5_000);
    await late.admit(request('key_c'));
  });

  it('times a frozen Redis out after the command timeout, and resumes when it thaws', async () => {
    const store = newStore();
    expect(await store.ready()).toBe(true);
    const closed = new RateLimiter({ store, onStoreFailure: 'closed' });
    const open = new RateLimiter({ store, onStoreFailure: 'open' });
    await closed.admit(request('key_f'));

    server.pause();
    try {
      const frozen = await failure(closed.admit(request('key_f')));
      expect(frozen.error).toBeInstanceOf(RateStoreUnavailableError);
      expect(frozen.ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 20);
      expect(frozen.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 300);
      expect(store.status).toBe('down');
      const t0 = performance.now();
      const t = await open.admit(request('key_f'));
      expect(t.failOpen).toBe(true);
      expect(performance.now() - t0).toBeLessThan(COMMAND_TIMEOUT_MS + 300);
    } finally {
      server.resume();
    }

    await closed.admit(request('key_g'));
    expect(store.status).toBe('up');
    // The frozen call was never charged… or was, late: either way key_f is at most at its limit.
    const after = await failure(closed.admit(request('key_f')));
    expect(after.error === undefined || after.error instanceof RateLimitedError).toBe(true);
  });
});
