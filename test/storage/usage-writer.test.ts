import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageQueueOverflowError, UsageWriter } from '../../src/metering/usage-writer.js';
import type { Database } from '../../src/storage/database.js';
import { migrateToLatest } from '../../src/storage/migrations.js';
import { UsageRepo, type UsageRecord } from '../../src/storage/usage-repo.js';
import { DATABASES } from '../helpers/databases.js';

function row(i: number): UsageRecord {
  return {
    id: `gen_${String(i).padStart(6, '0')}`,
    keyId: 'key_w',
    accountId: 'acc_w',
    model: 'm',
    provider: 'p',
    upstreamModel: 'um',
    promptTokens: i,
    completionTokens: 1,
    cachedTokens: 0,
    cacheWriteTokens: 0,
    reasoningTokens: 0,
    status: 200,
    latencyMs: 5,
    streamed: false,
    createdAt: 1_700_000_000_000 + i,
    costNano: 0,
    costEstimated: false,
    charge: false,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('UsageWriter (in memory)', () => {
  it('record() is synchronous and batches rows into few inserts', async () => {
    const batches: number[] = [];
    const writer = new UsageWriter(async (rows) => {
      batches.push(rows.length);
    }, { maxBatch: 100, flushIntervalMs: 5 });
    for (let i = 0; i < 1000; i++) expect(writer.record(row(i))).toBeUndefined();
    await writer.flush();
    expect(batches.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(batches.length).toBeLessThanOrEqual(10);
    expect(Math.max(...batches)).toBeLessThanOrEqual(100);
    expect(writer.pending).toBe(0);
  });

  it('writes a small batch after the flush interval without an explicit flush', async () => {
    const batches: UsageRecord[][] = [];
    const writer = new UsageWriter(async (rows) => {
      batches.push(rows);
    }, { flushIntervalMs: 5 });
    writer.record(row(1));
    writer.record(row(2));
    expect(batches).toHaveLength(0);
    await sleep(30);
    expect(batches.map((b) => b.map((r) => r.id))).toEqual([['gen_000001', 'gen_000002']]);
  });

  it('rows recorded while a write is in flight form the next batch', async () => {
    const batches: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writer = new UsageWriter(async (rows) => {
      batches.push(rows.length);
      if (batches.length === 1) await gate;
    }, { flushIntervalMs: 0 });
    writer.record(row(0));
    await sleep(5);
    for (let i = 1; i <= 50; i++) writer.record(row(i));
    expect(writer.pending).toBe(51);
    release();
    await writer.flush();
    expect(batches).toEqual([1, 50]);
  });

  it('retries a failed insert with backoff, keeps order, and reports the error', async () => {
    const written: string[] = [];
    const errors: Error[] = [];
    let failures = 3;
    const attempts: number[] = [];
    const writer = new UsageWriter(
      async (rows) => {
        attempts.push(Date.now());
        if (failures-- > 0) throw new Error('database is locked');
        written.push(...rows.map((r) => r.id));
      },
      { maxBatch: 10, retryBaseMs: 10, retryMaxMs: 40, onError: (e) => errors.push(e) },
    );
    for (let i = 0; i < 25; i++) writer.record(row(i));
    await writer.flush();
    expect(written).toEqual(Array.from({ length: 25 }, (_, i) => row(i).id));
    expect(errors.map((e) => e.message)).toEqual(['database is locked', 'database is locked', 'database is locked']);
    // Backoff 10, 20, 40 ms between the first four attempts.
    expect(attempts[3]! - attempts[0]!).toBeGreaterThanOrEqual(60);
  });

  it('keeps rows past maxQueue and reports the overflow with a counter', async () => {
    const errors: Error[] = [];
    let fail = true;
    const written: UsageRecord[] = [];
    const writer = new UsageWriter(
      async (rows) => {
        if (fail) throw new Error('down');
        written.push(...rows);
      },
      { maxQueue: 5, maxBatch: 100, retryBaseMs: 5, retryMaxMs: 5, onError: (e) => errors.push(e) },
    );
    for (let i = 0; i < 8; i++) writer.record(row(i));
    const overflow = errors.filter((e) => e instanceof UsageQueueOverflowError) as UsageQueueOverflowError[];
    expect(overflow).toHaveLength(1);
    expect(overflow[0]!.overflowCount).toBe(1);
    expect(overflow[0]!.message).not.toContain('gen_');
    expect(writer.pending).toBe(8);
    await sleep(20);
    fail = false;
    await writer.flush();
    expect(written.map((r) => r.id)).toEqual(Array.from({ length: 8 }, (_, i) => row(i).id));
  });

  it('an onError that throws does not stop the writer', async () => {
    let fail = true;
    let n = 0;
    const writer = new UsageWriter(
      async (rows) => {
        if (fail) {
          fail = false;
          throw new Error('x');
        }
        n += rows.length;
      },
      { retryBaseMs: 1, onError: () => {
        throw new Error('bad handler');
      } },
    );
    writer.record(row(1));
    await writer.flush();
    expect(n).toBe(1);
  });
});

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`UsageWriter on ${target.name}`, () => {
    let database: Database;
    beforeEach(async () => {
      database = await target.open();
      await migrateToLatest(database);
    });
    afterEach(async () => {
      await database.close();
    });

    it('writes every row in few multi-row inserts; nothing lost across a failing insert', async () => {
      const repo = new UsageRepo(database.db);
      let calls = 0;
      let failNext = true;
      const errors: Error[] = [];
      const writer = new UsageWriter(
        async (rows) => {
          calls++;
          if (failNext && calls === 2) {
            failNext = false;
            throw new Error('simulated outage');
          }
          await repo.insertUsage(rows);
        },
        { maxBatch: 500, retryBaseMs: 5, onError: (e) => errors.push(e) },
      );
      for (let i = 0; i < 2000; i++) writer.record(row(i));
      await writer.flush();
      const stored = await repo.listUsage('acc_w');
      expect(stored).toHaveLength(2000);
      const { charge: _charge, ...last } = row(1999);
      expect(stored[1999]).toEqual(last);
      expect(calls).toBeLessThanOrEqual(6);
      expect(errors).toHaveLength(1);
    });
  });
}
