/**
 * Spending control semantics, run against both implementations: `Accounting` (in memory) and,
 * when TEST_REDIS_URL is set, `RedisAccounting` (one instance; the multi-instance cases are in
 * test/billing/redis-accounting.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Accounting,
  spendApplies,
  windowEnd,
  windowStart,
  type AccountingOptions,
  type AccountingSource,
  type SpendControl,
  type SpendSubject,
} from '../../src/billing/accounting.js';
import { RedisAccounting } from '../../src/billing/redis-accounting.js';
import { GatewayError } from '../../src/ir/errors.js';
import type { UsageRecord } from '../../src/storage/usage-repo.js';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;
if (!TEST_REDIS_URL) {
  console.warn('[maxrouter tests] TEST_REDIS_URL is not set: the Accounting tests run on the in-memory implementation only (Redis SKIPPED).');
}

interface Implementation {
  name: string;
  skip: boolean;
  make(source: AccountingSource, opts?: AccountingOptions): SpendControl;
  /** Waits for work started in the background (Redis: re-reads, settles). */
  quiet(acc: SpendControl): Promise<void>;
  cleanup(): Promise<void>;
}

const memory: Implementation = {
  name: 'in memory',
  skip: false,
  make: (source, opts) => new Accounting(source, opts),
  quiet: async () => {},
  cleanup: async () => {},
};

function redisImplementation(): Implementation {
  const opened: Array<{ client: Redis; acc: RedisAccounting; prefix: string }> = [];
  return {
    name: 'Redis',
    skip: TEST_REDIS_URL === undefined,
    make(source, opts = {}) {
      const client = new Redis(TEST_REDIS_URL!, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      const prefix = `mr-test:${randomBytes(6).toString('hex')}:`;
      const acc = new RedisAccounting(source, { redis: client, prefix, onStoreFailure: 'closed', ...opts });
      opened.push({ client, acc, prefix });
      return acc;
    },
    quiet: (acc) => (acc as RedisAccounting).idle(),
    async cleanup() {
      for (const { client, acc, prefix } of opened.splice(0)) {
        await acc.close();
        const keys = await client.keys(`${prefix}*`);
        if (keys.length > 0) await client.del(...keys);
        client.disconnect();
      }
    },
  };
}

const subject = (over: Partial<SpendSubject> = {}): SpendSubject => ({
  keyId: 'key_1',
  accountId: 'acc_1',
  billingMode: 'credits',
  spendLimitNano: null,
  limitReset: null,
  ...over,
});

function source(balance: number, keySpend = 0) {
  const calls = { balance: 0, keySpend: 0 };
  return {
    calls,
    state: { balance, keySpend },
    async balance() {
      calls.balance++;
      return this.state.balance;
    },
    async keySpend() {
      calls.keySpend++;
      return this.state.keySpend;
    },
  };
}

async function refused(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

const row = (id: string): UsageRecord => ({ id }) as UsageRecord;

describe('spend windows (UTC)', () => {
  const t = Date.UTC(2026, 10, 30, 15, 30); // Monday 30 November 2026
  it('daily, weekly (from Monday) and monthly starts and ends', () => {
    expect(new Date(windowStart('daily', t)).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(new Date(windowEnd('daily', t)!).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(new Date(windowStart('weekly', t)).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(new Date(windowStart('weekly', Date.UTC(2026, 11, 6, 23))).toISOString()).toBe('2026-11-30T00:00:00.000Z'); // Sunday
    expect(new Date(windowEnd('weekly', t)!).toISOString()).toBe('2026-12-07T00:00:00.000Z');
    expect(new Date(windowStart('monthly', t)).toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(new Date(windowEnd('monthly', Date.UTC(2026, 11, 31))!).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(windowStart(null, t)).toBe(0);
    expect(windowEnd(null, t)).toBeNull();
  });
});

for (const impl of [memory, redisImplementation()]) describe.skipIf(impl.skip)(`spending control (${impl.name})`, () => {
  afterEach(() => impl.cleanup());
  const make = impl.make;

  it('reserves worst cases synchronously, so concurrent admissions cannot overdraw', async () => {
    const src = source(1000);
    const acc = make(src);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => acc.admit(subject(), 100, () => '')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect(src.calls.balance).toBe(1); // one shared first read
  });

  it('a settled request holds its cost as pending until committed, then the database view includes it', async () => {
    const src = source(1000);
    const acc = make(src, { refreshMs: 1 });
    const write = acc.writeUsage(async () => {
      src.state.balance -= 300; // the insert charged the ledger
    });
    const a = await acc.admit(subject(), 500, () => '');
    acc.settle(a, 'gen-1', 300);
    // 1000 − 300 pending: 700 available
    await expect(acc.admit(subject(), 701, () => '')).rejects.toThrow(/more than the \$0\.0000007/);
    // In memory a re-read never overlaps a write. In Redis one may (another instance's write
    // cannot be excluded), and counts the charge twice until the next re-read: a transient
    // under-estimate (docs/billing.md, "Several instances"). Let the re-read started above end.
    await impl.quiet(acc);
    await write([row('gen-1')]);
    // A refresh now reads 700 from the database and nothing is counted twice.
    const b = await acc.admit(subject(), 700, () => '');
    acc.settle(b, 'gen-2', 0);
    await new Promise((r) => setTimeout(r, 5));
    const c = await acc.admit(subject(), 700, () => '');
    acc.settle(c, 'gen-3', 0);
    await expect(acc.admit(subject(), 701, () => '')).rejects.toThrow(GatewayError);
  });

  it('refuses a non-positive balance and names credits in metadata', async () => {
    const acc = make(source(0));
    const e = await refused(acc.admit(subject(), 1, () => ''));
    expect(e.status).toBe(402);
    expect(e.reason).toBe('MR_ERR_INSUFFICIENT_CREDITS');
  });

  it('track mode without a key limit needs no admission; a key limit applies in either mode', async () => {
    expect(Accounting.applies(subject({ billingMode: 'track' }))).toBe(false);
    expect(Accounting.applies(subject({ billingMode: 'track', spendLimitNano: 5 }))).toBe(true);
    expect(RedisAccounting.applies(subject({ billingMode: 'track', spendLimitNano: 5 }))).toBe(true);
    expect(spendApplies(subject({ billingMode: 'track' }))).toBe(false);
    const acc = make(source(0, 4));
    const e = await refused(acc.admit(subject({ billingMode: 'track', spendLimitNano: 5 }), 2, () => 'x'));
    expect(e.reason).toBe('MR_ERR_KEY_LIMIT');
    await acc.admit(subject({ billingMode: 'track', spendLimitNano: 5 }), 1, () => 'x');
  });

  it('a key window rolls over at the reset and reads the new window from the database', async () => {
    let now = Date.UTC(2026, 10, 30, 23, 59, 59);
    const src = source(0, 900);
    const acc = make(src, { now: () => now, refreshMs: 60_000 });
    const s = subject({ billingMode: 'track', spendLimitNano: 1000, limitReset: 'daily' });
    await expect(acc.admit(s, 200, () => '')).rejects.toThrow(/resets at 2026-12-01T00:00:00\.000Z/);
    now += 2000;
    src.state.keySpend = 0;
    const a = await acc.admit(s, 1000, () => '');
    expect(a.reserved).toBe(1000);
    expect(src.calls.keySpend).toBe(2);
  });

  it('a failed first read fails the request as an internal error, and is retried next time', async () => {
    const src = source(100);
    let fail = true;
    const acc = make({
      balance: async () => {
        if (fail) throw new Error('db down');
        return src.state.balance;
      },
      keySpend: async () => 0,
    });
    const e = await refused(acc.admit(subject(), 1, () => ''));
    expect(e.code).toBe('MR_ERR_INTERNAL');
    fail = false;
    await acc.admit(subject(), 1, () => '');
  });
});
