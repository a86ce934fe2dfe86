import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MemoryRateStore, RateCheck, RateStore } from '../../src/limits/store.js';
import { STORES, scanKeys, type OpenedStore } from './helpers.js';

const MINUTE = 60_000;

for (const target of STORES) {
  describe.skipIf(target.skip)(`rate store: ${target.name}`, () => {
    let s: OpenedStore;
    let store: RateStore;
    beforeEach(async () => {
      s = await target.open();
      store = s.store;
    });
    afterEach(async () => {
      await s.cleanup();
    });

    const check = (key: string, limit: number, cost = 1, periodMs = MINUTE): RateCheck => ({ key, limit, periodMs, cost });
    /** What a cost-0 consume reports: the state without charging anything. */
    const peek = async (key: string, limit: number, periodMs = MINUTE) => (await store.consume([check(key, limit, 0, periodMs)])).results[0]!;

    it('admits exactly N per period and refuses N+1 with the right retry-after', async () => {
      const first = await store.consume([check('a', 10)]);
      expect(first).toMatchObject({ allowed: true, exceedsLimit: false });
      expect(first.results[0]).toMatchObject({ key: 'a', limit: 10, remaining: 9, ok: true, exceedsLimit: false });
      if (target.exactTime) expect(first.results[0]!.resetMs).toBe(6_000);
      for (let i = 1; i < 10; i++) {
        const d = await store.consume([check('a', 10)]);
        expect(d.allowed).toBe(true);
        expect(d.results[0]!.remaining).toBe(9 - i);
      }
      const refused = await store.consume([check('a', 10)]);
      expect(refused).toMatchObject({ allowed: false, refusedIndex: 0, exceedsLimit: false });
      expect(refused.results[0]).toMatchObject({ ok: false, remaining: 0, exceedsLimit: false });
      // One emission interval (60 s / 10) until one more request fits.
      if (target.exactTime) {
        expect(refused.retryAfterMs).toBe(6_000);
        expect(refused.results[0]!.retryAfterMs).toBe(6_000);
        expect(refused.results[0]!.resetMs).toBe(MINUTE);
      } else {
        expect(refused.retryAfterMs).toBeGreaterThan(5_000);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(6_000);
        expect(refused.results[0]!.resetMs).toBeGreaterThan(MINUTE - 1_000);
        expect(refused.results[0]!.resetMs).toBeLessThanOrEqual(MINUTE);
      }
      // A refusal charges nothing: still exactly one interval away.
      const again = await store.consume([check('a', 10)]);
      expect(again.allowed).toBe(false);
    });

    it('refills over time: one request per interval, the whole burst after a period', async () => {
      const period = 1_000; // 5 per second: one every 200 ms
      for (let i = 0; i < 5; i++) expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(true);
      expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(false);

      await s.advance(target.exactTime ? 200 : 250);
      expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(true);
      expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(false);

      await s.advance(target.exactTime ? 1_000 : 1_100);
      const p = await peek('r', 5, period);
      expect(p.remaining).toBe(5);
      if (target.exactTime) expect(p.resetMs).toBe(0);
      for (let i = 0; i < 5; i++) expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(true);
      expect((await store.consume([check('r', 5, 1, period)])).allowed).toBe(false);
    });

    it('refills in proportion for fractional intervals (7 per minute)', async () => {
      for (let i = 0; i < 7; i++) expect((await store.consume([check('f', 7)])).allowed).toBe(true);
      const refused = await store.consume([check('f', 7)]);
      expect(refused.allowed).toBe(false);
      if (target.exactTime) {
        expect(refused.retryAfterMs).toBe(Math.ceil(MINUTE / 7));
        await s.advance(Math.ceil(MINUTE / 7));
        expect((await store.consume([check('f', 7)])).allowed).toBe(true);
      }
    });

    it('is atomic across checks: a refused tokens check charges no request', async () => {
      const rpm = check('k:rpm', 10);
      const tpm = (cost: number) => check('k:tpm', 100, cost);
      expect((await store.consume([rpm, tpm(60)])).allowed).toBe(true);

      const refused = await store.consume([rpm, tpm(60)]);
      expect(refused).toMatchObject({ allowed: false, refusedIndex: 1, exceedsLimit: false });
      expect(refused.results[0]).toMatchObject({ ok: true, remaining: 8 }); // would have fitted …
      expect(refused.results[1]).toMatchObject({ ok: false, remaining: 40 });
      expect(refused.results[1]!.retryAfterMs).toBeGreaterThan(0);

      expect((await peek('k:rpm', 10)).remaining).toBe(9); // … but was not charged
      expect((await peek('k:tpm', 100)).remaining).toBe(40);
      expect((await store.consume([rpm, tpm(40)])).allowed).toBe(true);
      expect((await peek('k:rpm', 10)).remaining).toBe(8);
      expect((await peek('k:tpm', 100)).remaining).toBe(0);
    });

    it('flags a cost larger than the limit (it can never fit) and charges nothing', async () => {
      const d = await store.consume([check('x:rpm', 10), check('x:tpm', 100, 101)]);
      expect(d).toMatchObject({ allowed: false, exceedsLimit: true, refusedIndex: 1 });
      expect(d.retryAfterMs).toBeUndefined();
      expect(d.results[1]).toMatchObject({ ok: false, exceedsLimit: true, remaining: 100 });
      expect(d.results[1]!.retryAfterMs).toBeUndefined();
      expect((await peek('x:rpm', 10)).remaining).toBe(10);
      // A limit of 0 refuses every request.
      expect((await store.consume([check('zero', 0)])).exceedsLimit).toBe(true);
    });

    it('reports the longest wait when several checks refuse', async () => {
      expect((await store.consume([check('w1', 10, 10), check('w2', 10, 10)])).allowed).toBe(true);
      const d = await store.consume([check('w1', 10, 1), check('w2', 10, 5)]);
      expect(d.allowed).toBe(false);
      expect(d.refusedIndex).toBe(1);
      if (target.exactTime) expect(d.retryAfterMs).toBe(30_000);
      else expect(d.retryAfterMs).toBeGreaterThan(29_000);
    });

    it('evaluates a key given twice in one call cumulatively', async () => {
      expect((await store.consume([check('dup', 2), check('dup', 2)])).allowed).toBe(true);
      expect((await store.consume([check('dup', 2)])).allowed).toBe(false);
      expect((await store.consume([check('dup2', 3), check('dup2', 3, 3)])).allowed).toBe(false);
      expect((await peek('dup2', 3)).remaining).toBe(3);
    });

    it('adjusts: charges more, refunds, never below an empty bucket', async () => {
      expect((await store.consume([check('t', 1_000, 100)])).allowed).toBe(true);
      await store.adjust(check('t', 1_000, 250));
      expect((await peek('t', 1_000)).remaining).toBe(650);
      await store.adjust(check('t', 1_000, -300));
      expect((await peek('t', 1_000)).remaining).toBe(950);
      await store.adjust(check('t', 1_000, -10_000));
      const p = await peek('t', 1_000);
      expect(p.remaining).toBe(1_000);
      expect(p.resetMs).toBe(0);
      // The refund did not create credit beyond a full bucket.
      expect((await store.consume([check('t', 1_000, 1_000)])).allowed).toBe(true);
      expect((await store.consume([check('t', 1_000, 1)])).allowed).toBe(false);
    });

    it('keeps usage beyond the limit as debt that must drain first', async () => {
      await store.adjust(check('debt', 100, 150));
      const d = await store.consume([check('debt', 100, 1)]);
      expect(d.allowed).toBe(false);
      if (target.exactTime) {
        expect(d.retryAfterMs).toBe(30_600); // 51 tokens at 100 per minute
        expect(d.results[0]!.resetMs).toBe(90_000);
      } else {
        expect(d.retryAfterMs).toBeGreaterThan(30_000);
        expect(d.retryAfterMs).toBeLessThanOrEqual(30_600);
      }
    });

    it('holds at most `limit` concurrency leases and frees them on release', async () => {
      const a = await store.acquire('c', 2, 60_000);
      const b = await store.acquire('c', 2, 60_000);
      expect(a).toMatchObject({ ok: true, current: 1 });
      expect(b).toMatchObject({ ok: true, current: 2 });
      expect(a.token).toMatch(/^[0-9a-f]{32}$/);
      expect(a.token).not.toBe(b.token);
      expect(await store.acquire('c', 2, 60_000)).toEqual({ ok: false, token: '', current: 2 });
      await store.release('c', a.token);
      await store.release('c', a.token); // twice is harmless
      expect(await store.acquire('c', 2, 60_000)).toMatchObject({ ok: true, current: 2 });
      expect(await store.acquire('c0', 0, 60_000)).toMatchObject({ ok: false, current: 0 });
    });

    it('lets leases expire (a crashed instance gives its slots back) and renews them', async () => {
      const lease = target.exactTime ? 1_000 : 300;
      const held = await store.acquire('e', 1, lease);
      expect(held.ok).toBe(true);
      expect((await store.acquire('e', 1, lease)).ok).toBe(false);
      await s.advance(lease + (target.exactTime ? 1 : 100));
      const next = await store.acquire('e', 1, lease);
      expect(next).toMatchObject({ ok: true, current: 1 });
      expect(await store.renew('e', held.token, lease)).toBe(false); // the expired lease is gone

      // Renewed before it expires, a lease outlives its first term.
      await s.advance(lease * 0.6);
      expect(await store.renew('e', next.token, lease)).toBe(true);
      await s.advance(lease * 0.6);
      expect((await store.acquire('e', 1, lease)).ok).toBe(false);
      await store.release('e', next.token);
      expect(await store.renew('e', next.token, lease)).toBe(false);
      expect((await store.acquire('e', 1, lease)).ok).toBe(true);
    });

    it('shares concurrency slots between two store instances', async () => {
      const other = await s.second();
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : other).acquire('shared', 5, 60_000)),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(5);
      const tokens = results.filter((r) => r.ok).map((r) => r.token);
      await other.release('shared', tokens[0]!);
      expect((await store.acquire('shared', 5, 60_000)).ok).toBe(true);
    });

    it('shares rate buckets between two store instances', async () => {
      const other = await s.second();
      const decisions = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? store : other).consume([check('both', 25)])),
      );
      expect(decisions.filter((d) => d.allowed)).toHaveLength(25);
    });

    if (target.name === 'memory') {
      it('sweeps expired buckets and leases', async () => {
        const memory = store as MemoryRateStore;
        for (let i = 0; i < 100; i++) await memory.consume([check(`sweep:${i}`, 10, 1, 1_000)]);
        await memory.acquire('sweep:conc', 1, 1_000);
        expect(memory.size).toBe(101);
        await s.advance(1_001);
        for (let i = 0; i < 1_024; i++) await memory.consume([check('sweep:live', 1e9, 1, 1_000)]);
        expect(memory.size).toBe(1);
      });
    }

    if (target.name === 'redis') {
      it('gives every key it writes a TTL', async () => {
        const { client, prefix } = s.admin!;
        await store.consume([check('ttl:rpm', 10, 1), check('ttl:tpm', 1_000, 500, 2_000)]);
        await store.adjust(check('ttl:adj', 100, 50));
        await store.acquire('ttl:conc', 3, 5_000);
        const held = await store.acquire('ttl:conc2', 3, 5_000);
        await store.renew('ttl:conc2', held.token, 10_000);
        const keys = await scanKeys(client, prefix);
        expect(keys.sort()).toEqual(
          ['ttl:adj', 'ttl:conc', 'ttl:conc2', 'ttl:rpm', 'ttl:tpm'].map((k) => prefix + k),
        );
        for (const key of keys) {
          const ttl = await client.pttl(key);
          expect(ttl, key).toBeGreaterThan(0);
          expect(ttl, key).toBeLessThanOrEqual(MINUTE + 1_000);
        }
        // ≈ the time until the state stops mattering + the 1 s margin.
        expect(await client.pttl(`${prefix}ttl:rpm`)).toBeGreaterThan(6_000);
        expect(await client.pttl(`${prefix}ttl:rpm`)).toBeLessThanOrEqual(7_000);
        expect(await client.pttl(`${prefix}ttl:conc2`)).toBeGreaterThan(10_000);
        expect(await client.pttl(`${prefix}ttl:conc2`)).toBeLessThanOrEqual(11_000);
        // A full refund deletes the bucket.
        await store.adjust(check('ttl:adj', 100, -1_000));
        expect(await client.exists(`${prefix}ttl:adj`)).toBe(0);
      });
    }
  });
}
