/**
 * Credits and key spend limits shared by two gateway instances through Redis: two
 * `RedisAccounting`s, each on its own connection, over one real database (SQLite, and
 * PostgreSQL when TEST_POSTGRES_URL is set) written through the repositories. Skipped (with a
 * warning) when TEST_REDIS_URL is not set, except the unreachable-Redis cases, which need none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccountingSource, Admission, SpendSubject } from '../../src/billing/accounting.js';
import { RedisAccounting, SpendStoreUnavailableError, type RedisAccountingOptions } from '../../src/billing/redis-accounting.js';
import { GatewayError } from '../../src/ir/errors.js';
import type { Database } from '../../src/storage/database.js';
import { migrateToLatest } from '../../src/storage/migrations.js';
import { createRepositories, type Repositories, type UsageRecord } from '../../src/storage/repositories.js';
import { DATABASES } from '../helpers/databases.js';
import { freePort, scanKeys, sleep, TEST_REDIS_URL } from '../limits/helpers.js';

if (!TEST_REDIS_URL) {
  console.warn(
    '[maxrouter tests] TEST_REDIS_URL is not set: the multi-instance RedisAccounting tests are SKIPPED. ' +
      'Set it (e.g. TEST_REDIS_URL=redis://127.0.0.1:6379) to run them.',
  );
}

const M = 1_000_000; // nano-USD: the unit of these tests

async function refused(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

let seq = 0;

for (const target of DATABASES) {
  describe.skipIf(TEST_REDIS_URL === undefined || target.skip)(`RedisAccounting, two instances (${target.name})`, () => {
    let database: Database | undefined;
    let repos: Repositories;
    let accountId: string;
    let prefix: string;
    let clock: number;
    let admin: Redis;
    const opened: Array<{ client: Redis; acc: RedisAccounting }> = [];

    beforeEach(async () => {
      clock = Date.UTC(2026, 10, 30, 12);
      prefix = `mr-test:${randomBytes(6).toString('hex')}:`;
      admin = new Redis(TEST_REDIS_URL!);
      admin.on('error', () => {});
      const db = await target.open();
      database = db;
      await migrateToLatest(db);
      repos = createRepositories(db.db, () => clock, db.sqlite);
      accountId = (await repos.accounts.createAccount(`ra-${randomBytes(4).toString('hex')}@example.com`)).id;
    });

    afterEach(async () => {
      for (const { client, acc } of opened.splice(0)) {
        await acc.close();
        client.disconnect();
      }
      const keys = await scanKeys(admin, prefix);
      if (keys.length > 0) await admin.del(...keys);
      admin.disconnect();
      await database?.close();
      database = undefined;
    });

    const source = (): AccountingSource => ({
      balance: (id) => repos.ledger.balance(id),
      keySpend: (keyId, since) => repos.usage.sumCost({ keyId, since }),
    });

    /** A gateway instance: its own connection, the shared prefix and database. */
    function instance(opts: Partial<RedisAccountingOptions> = {}, src: AccountingSource = source()): RedisAccounting {
      const client = new Redis(TEST_REDIS_URL!, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      const acc = new RedisAccounting(src, { redis: client, prefix, now: () => clock, refreshMs: 60_000, onStoreFailure: 'closed', ...opts });
      opened.push({ client, acc });
      return acc;
    }

    const credits = (over: Partial<SpendSubject> = {}): SpendSubject => ({
      keyId: 'key_ra',
      accountId,
      billingMode: 'credits',
      spendLimitNano: null,
      limitReset: null,
      ...over,
    });

    const topUp = (amountNano: number) => repos.ledger.append({ accountId, kind: 'topup', amountNano, reason: 'test' });

    /** Settles a request on `acc` as the meter does and returns its usage row. */
    function finish(acc: RedisAccounting, adm: Admission, s: SpendSubject, costNano: number): UsageRecord {
      const id = `gen-ra-${++seq}`;
      acc.settle(adm, id, costNano);
      return {
        id,
        keyId: s.keyId,
        accountId: s.accountId,
        model: 'test/chat',
        provider: 'oa',
        upstreamModel: 'm',
        promptTokens: 1,
        completionTokens: 1,
        cachedTokens: 0,
        cacheWriteTokens: 0,
        reasoningTokens: 0,
        status: 200,
        latencyMs: 1,
        streamed: false,
        createdAt: clock,
        costNano,
        costEstimated: false,
        charge: costNano > 0 && s.billingMode === 'credits',
      };
    }

    const writer = (acc: RedisAccounting) => acc.writeUsage((rows) => repos.usage.insertUsage(rows));
    const redisBalance = async () => Number(await admin.get(`${prefix}a:${accountId}:bal`));
    const heldSums = async (scope: string) => {
      const [r, p] = await admin.hmget(`${prefix}${scope}:holds`, '#r', '#p');
      return { reserved: Number(r ?? 0), pending: Number(p ?? 0) };
    };

    it('50 concurrent admissions split between two instances on an account that can afford 10: exactly 10 admitted; after the charges are written, Redis, the balance and the ledger agree', async () => {
      await topUp(10 * M);
      const a = instance();
      const b = instance();
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).admit(credits(), M, () => 'x')));
      const admitted = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ adm: r.value, acc: i % 2 === 0 ? a : b }] : []));
      expect(admitted).toHaveLength(10);
      for (const r of results) {
        if (r.status === 'rejected') {
          expect(r.reason).toBeInstanceOf(GatewayError);
          expect(r.reason).toMatchObject({ status: 402, reason: 'MR_ERR_INSUFFICIENT_CREDITS' });
        }
      }
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 10 * M, pending: 0 });

      // Settled on the instance that admitted each; some cost less than their worst case.
      const rows = new Map<RedisAccounting, UsageRecord[]>([
        [a, []],
        [b, []],
      ]);
      admitted.forEach(({ adm, acc }, i) => rows.get(acc)!.push(finish(acc, adm, credits(), i % 3 === 0 ? 600_000 : M)));
      const charged = admitted.reduce((sum, _, i) => sum + (i % 3 === 0 ? 600_000 : M), 0);
      await Promise.all([a.idle(), b.idle()]);
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 0, pending: charged });
      expect(a.pendingFor(accountId) + b.pendingFor(accountId)).toBe(charged);

      await Promise.all([writer(a)(rows.get(a)!), writer(b)(rows.get(b)!)]);
      const balance = await repos.ledger.balance(accountId);
      expect(balance).toBe(10 * M - charged);
      expect(await repos.ledger.sumLedger(accountId)).toBe(balance);
      expect(await redisBalance()).toBe(balance);
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 0, pending: 0 });
      expect(a.pendingFor(accountId) + b.pendingFor(accountId)).toBe(0);

      // A re-read from the database changes nothing, and exactly what is left can be spent.
      await a.refresh(credits());
      expect(await redisBalance()).toBe(balance);
      const last = await b.admit(credits(), balance, () => 'x');
      const e = await refused(a.admit(credits(), 1, () => 'x'));
      expect(e.message).toMatch(/more than the \$0 of credits available/);
      b.settle(last, 'gen-unused', 0);
      await b.idle();
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 0, pending: 0 });
    });

    it('a batch committed while another instance re-reads the database is counted exactly once: never to the account\'s favour', async () => {
      await topUp(10 * M);
      // Instance A's database reads wait for the test to let them finish.
      let gate: (() => void) | undefined;
      let reading: ((value: number) => void) | undefined;
      const read = new Promise<number>((resolve) => (reading = resolve));
      const gated: AccountingSource = {
        balance: async (id) => {
          const v = await repos.ledger.balance(id);
          if (reading) {
            reading(v);
            reading = undefined;
            await new Promise<void>((resolve) => (gate = resolve));
          }
          return v;
        },
        keySpend: (keyId, since) => repos.usage.sumCost({ keyId, since }),
      };
      const b = instance();
      const adm = await b.admit(credits(), 2 * M, () => 'x');
      const row = finish(b, adm, credits(), 2 * M);

      const a = instance({}, gated);
      const resync = a.refresh(credits());
      expect(await read).toBe(10 * M); // A has read the balance before the charge…
      await writer(b)([row]); // …B writes the charge (8 M) and moves the shared balance…
      expect(await repos.ledger.balance(accountId)).toBe(8 * M);
      gate!(); // …and A writes what it read, minus what was committed meanwhile.
      await resync;
      expect(await redisBalance()).toBe(8 * M);
      await refused(a.admit(credits(), 8 * M + 1, () => 'x'));
      await a.admit(credits(), 8 * M, () => 'x');
    });

    it('a top-up committed while another instance re-reads the database is not counted twice', async () => {
      await topUp(1 * M);
      let gate: (() => void) | undefined;
      let reading: ((value: number) => void) | undefined;
      const read = new Promise<number>((resolve) => (reading = resolve));
      const gated: AccountingSource = {
        balance: async (id) => {
          const v = await repos.ledger.balance(id);
          if (reading) {
            reading(v);
            reading = undefined;
            await new Promise<void>((resolve) => (gate = resolve));
          }
          return v;
        },
        keySpend: async () => 0,
      };
      const a = instance({}, gated);
      const b = instance();
      await b.refresh(credits());
      const resync = a.refresh(credits());
      expect(await read).toBe(1 * M);
      await topUp(5 * M);
      await b.credited(accountId, 5 * M);
      gate!();
      await resync; // A's stale read is discarded and read again: 6 M, not 1 M + 5 M + 5 M
      expect(await redisBalance()).toBe(6 * M);
      await refused(b.admit(credits(), 6 * M + 1, () => 'x'));
      await b.admit(credits(), 6 * M, () => 'x');
    });

    it('a top-up through one instance is seen by the other at once', async () => {
      await topUp(1 * M);
      const a = instance();
      const b = instance();
      const e = await refused(b.admit(credits(), 2 * M, () => 'x'));
      expect(e.reason).toBe('MR_ERR_INSUFFICIENT_CREDITS');
      a.settle(await a.admit(credits(), 1, () => 'x'), 'gen-none', 0);
      const { balanceNano } = await topUp(5 * M);
      expect(balanceNano).toBe(6 * M);
      await a.credited(accountId, 5 * M);
      const adm = await b.admit(credits(), 2 * M, () => 'x');
      expect(adm.reserved).toBe(2 * M);
      expect(await redisBalance()).toBe(6 * M);
    });

    it('a top-up made elsewhere (the CLI) is seen after invalidateAccount at once, and otherwise within refreshMs', async () => {
      await topUp(1 * M);
      const a = instance({ refreshMs: 200 });
      const b = instance({ refreshMs: 200 });
      await refused(b.admit(credits(), 2 * M, () => 'x'));
      await topUp(2 * M); // another process: no instance is told
      await sleep(250);
      // The first request after refreshMs starts the re-read; the ones after it see the top-up.
      await b.admit(credits(), 1, () => 'x').then((adm) => b.settle(adm, 'gen-none', 0));
      await b.idle();
      await a.admit(credits(), 2 * M, () => 'x').then((adm) => a.settle(adm, 'gen-none', 0));
      await topUp(4 * M);
      await a.invalidateAccount(accountId);
      await b.admit(credits(), 7 * M, () => 'x');
    });

    it('the holds of a crashed instance expire after their lease; a live instance keeps renewing its own', async () => {
      await topUp(3 * M);
      const crashed = instance({ leaseMs: 300, renewEveryMs: 60_000 });
      const live = instance({ leaseMs: 1_000, renewEveryMs: 100 });
      const other = instance();
      await crashed.admit(credits(), 2 * M, () => 'x'); // never settled: the instance is gone
      const kept = await live.admit(credits(), 1 * M, () => 'x');
      await refused(other.admit(credits(), 1, () => 'x'));
      await sleep(1_500); // past both leases
      // The crashed instance's 2 M are back; the live instance's 1 M is still held.
      await refused(other.admit(credits(), 2 * M + 1, () => 'x'));
      const adm = await other.admit(credits(), 2 * M, () => 'x');
      other.settle(adm, 'gen-none', 0);
      live.settle(kept, 'gen-none', 0);
      await Promise.all([live.idle(), other.idle()]);
      await other.admit(credits(), 3 * M, () => 'x');
    });

    it('a key spend limit holds across two instances and rolls over at the end of its window (injected clock)', async () => {
      clock = Date.UTC(2026, 10, 30, 23, 59);
      const key = (over: Partial<SpendSubject> = {}) =>
        credits({ keyId: 'key_limited', billingMode: 'track', spendLimitNano: M, limitReset: 'daily', ...over });
      const a = instance();
      const b = instance();
      const first = await a.admit(key(), 600_000, () => 'x');
      const e = await refused(b.admit(key(), 600_000, () => 'x'));
      expect(e.reason).toBe('MR_ERR_KEY_LIMIT');
      expect(e.message).toMatch(/more than the \$0\.0004 left of this API key's spend limit \(daily; it resets at 2026-12-01T00:00:00\.000Z\)/);
      const second = await b.admit(key(), 400_000, () => 'x');
      expect((await refused(a.admit(key(), 1, () => 'x'))).message).toMatch(/has reached its spend limit of \$0\.001/);
      const rowA = finish(a, first, key(), 600_000);
      const rowB = finish(b, second, key(), 300_000);
      await Promise.all([writer(a)([rowA]), writer(b)([rowB])]);
      const window = Date.UTC(2026, 10, 30);
      expect(await repos.usage.sumCost({ keyId: 'key_limited', since: window })).toBe(900_000);
      expect(Number(await admin.get(`${prefix}k:key_limited:spent:${window}`))).toBe(900_000);
      expect(await a.keySpent(key(), window)).toBe(900_000);
      await refused(a.admit(key(), 100_001, () => 'x'));
      const last = await b.admit(key(), 100_000, () => 'x');

      clock = Date.UTC(2026, 11, 1, 0, 0, 1); // past UTC midnight: a new window, read from the database
      // The request admitted before midnight still holds its 100 000 in the new window.
      await refused(a.admit(key(), 900_001, () => 'x'));
      const next = await a.admit(key(), 900_000, () => 'x');
      await refused(b.admit(key(), 1, () => 'x'));
      b.settle(last, 'gen-none', 0);
      a.settle(next, 'gen-none', 0);
      await Promise.all([a.idle(), b.idle()]);
      await b.admit(key(), M, () => 'x');
    });

    it('credits and a key limit are checked together, the key first, and a refusal holds nothing', async () => {
      await topUp(5 * M);
      const a = instance();
      const b = instance();
      const both = credits({ spendLimitNano: 2 * M, limitReset: 'monthly' });
      const adm = await a.admit(both, 2 * M, () => 'x');
      expect((await refused(b.admit(both, 1, () => 'x'))).reason).toBe('MR_ERR_KEY_LIMIT');
      // Another key of the account still has the rest of the credits.
      const other = credits({ keyId: 'key_other' });
      expect((await refused(b.admit(other, 3 * M + 1, () => 'x'))).reason).toBe('MR_ERR_INSUFFICIENT_CREDITS');
      await b.admit(other, 3 * M, () => 'x');
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 5 * M, pending: 0 });
      a.settle(adm, 'gen-none', 0);
      await a.idle();
      expect(await heldSums(`k:key_ra`)).toEqual({ reserved: 0, pending: 0 });
    });

    it('under concurrent admissions, commits and re-reads on both instances the account is never overdrawn and ends exact', async () => {
      await topUp(20 * M);
      // refreshMs 1: nearly every admission also re-reads the database, racing the commits.
      const a = instance({ refreshMs: 1 });
      const b = instance({ refreshMs: 1 });
      const writes: Promise<void>[] = [];
      let admitted = 0;
      for (let round = 0; round < 8; round++) {
        const results = await Promise.allSettled(
          Array.from({ length: 12 }, (_, i) => {
            const acc = i % 2 === 0 ? a : b;
            return acc.admit(credits(), M, () => 'x').then(async (adm) => {
              await sleep(i % 4);
              const row = finish(acc, adm, credits(), M);
              writes.push(writer(acc)([row]));
            });
          }),
        );
        admitted += results.filter((r) => r.status === 'fulfilled').length;
        expect(await repos.ledger.balance(accountId)).toBeGreaterThanOrEqual(0);
      }
      await Promise.all(writes);
      await Promise.all([a.idle(), b.idle()]);
      expect(admitted).toBeLessThanOrEqual(20);
      const balance = await repos.ledger.balance(accountId);
      expect(balance).toBe(20 * M - admitted * M);
      expect(await repos.ledger.sumLedger(accountId)).toBe(balance);
      // Redis never thinks the account richer than it is; one re-read makes it exact.
      expect(await redisBalance()).toBeLessThanOrEqual(balance);
      await a.refresh(credits());
      expect(await redisBalance()).toBe(balance);
      expect(await heldSums(`a:${accountId}`)).toEqual({ reserved: 0, pending: 0 });
    });

    it('every key written has a TTL, and keys and values hold only ids, window starts and integers', async () => {
      await topUp(10 * M);
      const a = instance();
      const b = instance();
      const limited = credits({ spendLimitNano: 5 * M, limitReset: 'weekly' });
      const inFlight = await a.admit(limited, M, () => 'x');
      const done = await b.admit(limited, M, () => 'x');
      const pending = await b.admit(credits({ keyId: 'key_two', spendLimitNano: 3 * M }), M, () => 'x');
      await writer(b)([finish(b, done, limited, 700_000)]);
      finish(b, pending, credits({ keyId: 'key_two', spendLimitNano: 3 * M }), 500_000); // settled, not written
      await a.credited(accountId, 1);
      await a.invalidateKey('key_ra');
      await a.admit(limited, 1, () => 'x');
      await Promise.all([a.idle(), b.idle()]);
      void inFlight;

      const keys = await scanKeys(admin, prefix);
      expect(keys.length).toBeGreaterThan(8);
      const id = '[A-Za-z0-9_%.-]+';
      const shape = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(a|k):${id}:(bal|applied|gen|holds|exp|sync|spent:\\d+|sync:\\d+)$`);
      const integer = /^-?\d+$/;
      const field = /^([rp]:[0-9a-f]{16}|#[rp])$/;
      for (const key of keys) {
        expect(key).toMatch(shape);
        const ttl = await admin.pttl(key);
        expect(ttl, key).toBeGreaterThan(0);
        const type = await admin.type(key);
        if (type === 'string') expect(await admin.get(key)).toMatch(integer);
        else if (type === 'hash') {
          for (const [f, v] of Object.entries(await admin.hgetall(key))) {
            expect(f).toMatch(field);
            expect(v).toMatch(integer);
          }
        } else {
          expect(type).toBe('zset');
          const members = await admin.zrange(key, '0', '-1', 'WITHSCORES');
          for (let i = 0; i < members.length; i += 2) {
            expect(members[i]).toMatch(/^[rp]:[0-9a-f]{16}$/);
            expect(members[i + 1]).toMatch(integer);
          }
        }
      }
    });
  });
}

describe('RedisAccounting when Redis cannot be reached', () => {
  const subject: SpendSubject = { keyId: 'key_x', accountId: 'acc_x', billingMode: 'credits', spendLimitNano: null, limitReset: null };
  let client: Redis;
  let reads = 0;
  const source: AccountingSource = {
    balance: async () => {
      reads++;
      return 10 * M;
    },
    keySpend: async () => 0,
  };
  beforeEach(async () => {
    reads = 0;
    const port = await freePort(); // nothing listens there
    client = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    client.on('error', () => {});
    await client.connect().catch(() => undefined);
  });
  afterEach(() => client.disconnect());

  it("'closed' answers 503 (MR_ERR_INTERNAL, retry-after 1) and warns", async () => {
    const warnings: string[] = [];
    const acc = new RedisAccounting(source, { redis: client, onStoreFailure: 'closed', onWarning: (m) => warnings.push(m) });
    const e = await refused(acc.admit(subject, 1, () => 'x'));
    expect(e).toBeInstanceOf(SpendStoreUnavailableError);
    expect(e).toMatchObject({ status: 503, code: 'MR_ERR_INTERNAL', retryAfter: 1 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/refusing requests/);
    expect(acc.stats).toMatchObject({ storeErrors: 1, failOpen: 0 });
    expect(reads).toBe(0);
    await acc.close();
  });

  it("'open' admits, counts and warns; the usage is still written and nothing throws", async () => {
    const warnings: string[] = [];
    const acc = new RedisAccounting(source, { redis: client, onStoreFailure: 'open', onWarning: (m) => warnings.push(m) });
    const adm = await acc.admit(subject, 5 * M, () => 'x');
    expect(adm.reserved).toBe(5 * M);
    expect(acc.stats).toMatchObject({ storeErrors: 1, failOpen: 1 });
    expect(warnings[0]).toMatch(/WITHOUT checking credits/);
    acc.settle(adm, 'gen-open', 3 * M);
    expect(acc.pendingFor('acc_x')).toBe(3 * M);
    const written: string[] = [];
    await acc.writeUsage(async (rows) => {
      written.push(...rows.map((r) => r.id));
    })([{ id: 'gen-open', accountId: 'acc_x', keyId: 'key_x', costNano: 3 * M, charge: true } as UsageRecord]);
    expect(written).toEqual(['gen-open']);
    expect(acc.pendingFor('acc_x')).toBe(0);
    await acc.credited('acc_x', 1);
    await acc.close();
  });
});

/** A redis-server of its own, to kill and restart (skipped without the binary or TEST_REDIS_URL). */
const HAVE_REDIS_SERVER = await new Promise<boolean>((resolve) => {
  const p = spawn('redis-server', ['--version'], { stdio: 'ignore' });
  p.on('error', () => resolve(false));
  p.on('exit', (code) => resolve(code === 0));
});

describe.skipIf(TEST_REDIS_URL === undefined || !HAVE_REDIS_SERVER)('RedisAccounting after Redis loses its data', () => {
  let dir: string;
  let port: number;
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => {});
      const up = await probe.connect().then(
        () => probe.ping().then((r) => r === 'PONG'),
        () => false,
      );
      probe.disconnect();
      if (up) return;
      await sleep(25);
    }
    throw new Error('redis-server did not start');
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-test-redis-'));
    port = await freePort();
    await start();
  });
  afterEach(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('re-adds this instance\'s holds and reads the balance again from the database', async () => {
    const subject: SpendSubject = { keyId: 'key_r', accountId: 'acc_r', billingMode: 'credits', spendLimitNano: null, limitReset: null };
    const source: AccountingSource = { balance: async () => 3 * M, keySpend: async () => 0 };
    const connect = () => {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      c.on('error', () => {});
      return c;
    };
    const c1 = connect();
    const c2 = connect();
    const a = new RedisAccounting(source, { redis: c1, onStoreFailure: 'closed', renewEveryMs: 50 });
    const b = new RedisAccounting(source, { redis: c2, onStoreFailure: 'closed' });
    try {
      const held = await a.admit(subject, 2 * M, () => 'x');
      await stop();
      await start(); // empty
      await sleep(300); // reconnected, and A has renewed (re-added) its hold
      expect(a.stats.leasesLost).toBeGreaterThanOrEqual(1);
      await refused(b.admit(subject, M + 1, () => 'x'));
      await b.admit(subject, M, () => 'x');
      a.settle(held, 'gen-none', 0);
    } finally {
      await a.close();
      await b.close();
      c1.disconnect();
      c2.disconnect();
    }
  });
});
