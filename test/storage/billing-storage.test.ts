/**
 * Billing storage: migration 0002, the credits ledger, charges written with usage batches, key
 * limits and management keys, reports. Every test runs on SQLite and PostgreSQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { generateApiKey, generateKeyId, hashApiKey, last4 } from '../../src/auth/api-key.js';
import type { Database } from '../../src/storage/database.js';
import { MIGRATIONS, createMigrator, migrateToLatest } from '../../src/storage/migrations.js';
import {
  AccountNotFoundError,
  createRepositories,
  InvalidFieldError,
  type Repositories,
  type UsageRecord,
} from '../../src/storage/repositories.js';
import { UsageRepo, type SqliteHandle } from '../../src/storage/usage-repo.js';
import { DATABASES } from '../helpers/databases.js';

/** Every migration after 0001, in order. */
const LATER = Object.keys(MIGRATIONS).slice(1);

const SECRET = 'billing-test-secret-billing-test-secret-01';
const T0 = Date.UTC(2024, 2, 9, 12); // 2024-03-09T12:00:00Z

let seq = 0;
/** A usage record with a unique, time-ordered generation id. */
function gen(accountId: string, over: Partial<UsageRecord> = {}): UsageRecord {
  seq++;
  return {
    id: `gen-${String(seq).padStart(12, '0')}`,
    keyId: 'key_b',
    accountId,
    model: 'openai/gpt-4o-mini',
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    promptTokens: 100,
    completionTokens: 50,
    cachedTokens: 10,
    cacheWriteTokens: 0,
    reasoningTokens: 5,
    status: 200,
    latencyMs: 42,
    streamed: false,
    createdAt: T0 + seq,
    costNano: 1_000,
    costEstimated: false,
    charge: true,
    ...over,
  };
}

/** Wraps a better-sqlite3 handle so that every `run` of a prepared statement is counted by SQL text. */
function countingHandle(real: SqliteHandle): { handle: SqliteHandle; runs: Map<string, number> } {
  const runs = new Map<string, number>();
  const handle = new Proxy(real, {
    get(target, prop) {
      if (prop === 'prepare') {
        return (source: string) => {
          const stmt = target.prepare(source);
          const kind = source.split(' ').slice(0, 3).join(' ');
          return new Proxy(stmt, {
            get(s, p) {
              if (p === 'run') {
                return (...args: unknown[]) => {
                  runs.set(kind, (runs.get(kind) ?? 0) + 1);
                  return (s.run as (...a: unknown[]) => unknown)(...args);
                };
              }
              const v = Reflect.get(s, p, s);
              return typeof v === 'function' ? v.bind(s) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { handle, runs };
}

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`billing storage on ${target.name}`, () => {
    let database: Database;
    let repos: Repositories;

    async function account(email: string): Promise<string> {
      return (await repos.accounts.createAccount(email)).id;
    }

    async function expectInvariant(accountId: string): Promise<number> {
      const balance = await repos.ledger.balance(accountId);
      expect(await repos.ledger.sumLedger(accountId)).toBe(balance);
      return balance;
    }

    /** The usage repositories to exercise: through Kysely, and with the raw SQLite handle. */
    function usageRepos(): Array<[string, UsageRepo]> {
      const out: Array<[string, UsageRepo]> = [['kysely', new UsageRepo(database.db)]];
      if (database.sqlite) out.push(['prepared', new UsageRepo(database.db, database.sqlite)]);
      return out;
    }

    describe('on a fresh database', () => {
      beforeEach(async () => {
        database = await target.open();
      });
      afterEach(async () => {
        await database.close();
      });

      it('0002_billing applies on a database at 0001 with data, and rolls back', async () => {
        const migrator = await createMigrator(database);
        const first = await migrator.migrateTo('0001_initial');
        expect(first.error).toBeUndefined();
        const db = database.db as unknown as import('kysely').Kysely<any>;
        await db.insertInto('accounts').values({ id: 'acc_old', email: 'old@example.com', created_at: 1, disabled: 0 }).execute();
        await db
          .insertInto('api_keys')
          .values({ id: 'key_old', account_id: 'acc_old', name: 'old', key_hash: 'h-old', last4: 'abcd', created_at: 2, revoked_at: null })
          .execute();
        await db
          .insertInto('usage')
          .values({
            id: 'gen-old', key_id: 'key_old', account_id: 'acc_old', model: 'm', provider: 'p', upstream_model: 'um',
            prompt_tokens: 1, completion_tokens: 2, cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0,
            status: 200, latency_ms: 3, streamed: 0, created_at: 4,
          })
          .execute();

        expect(await migrateToLatest(database)).toEqual(LATER);
        repos = createRepositories(database.db);
        expect(await repos.accounts.findAccountById('acc_old')).toEqual({
          id: 'acc_old', email: 'old@example.com', createdAt: 1, disabled: false, balanceNano: 0, billingMode: null,
          requireZdr: false, denyDataCollection: false,
        });
        expect(await repos.keys.findKeyByHash('h-old')).toMatchObject({
          keyId: 'key_old', kind: 'inference', disabled: false, spendLimitNano: null, limitReset: null, expiresAt: null,
          allowedModels: null, accountBillingMode: null,
        });
        expect(await repos.usage.listUsage('acc_old')).toEqual([
          expect.objectContaining({ id: 'gen-old', promptTokens: 1, costNano: 0, costEstimated: false }),
        ]);
        await repos.ledger.append({ accountId: 'acc_old', kind: 'topup', amountNano: 5, reason: 'first' });
        expect(await repos.ledger.balance('acc_old')).toBe(5);

        // Down to 0001 and up again: the 0001 data survives.
        const down = await migrator.migrateTo('0001_initial');
        expect(down.error).toBeUndefined();
        expect(down.results?.map((r) => r.migrationName)).toEqual([...LATER].reverse());
        const tables = (await database.db.introspection.getTables()).map((t) => t.name);
        expect(tables).not.toContain('ledger');
        expect(await migrateToLatest(database)).toEqual(LATER);
        expect(await repos.accounts.findAccountById('acc_old')).toMatchObject({ balanceNano: 0 });
        expect(await repos.usage.listUsage('acc_old')).toHaveLength(1);
      });
    });

    describe('on a fresh database, failing', () => {
      beforeEach(async () => {
        database = await target.open();
      });
      afterEach(async () => {
        await database.close();
      });

      it('a 0002_billing that fails half-way leaves the 0001 schema, and applies once the cause is gone', async () => {
        const migrator = await createMigrator(database);
        expect((await migrator.migrateTo('0001_initial')).error).toBeUndefined();
        // A stray table makes `create table ledger` fail after the columns were added.
        await sql`create table ledger (x integer)`.execute(database.db);
        await expect(migrateToLatest(database)).rejects.toThrow(/Database migration 0002_billing failed/);
        const columns = async (table: string) =>
          (await database.db.introspection.getTables()).find((t) => t.name === table)!.columns.map((c) => c.name);
        expect(await columns('usage')).not.toContain('cost_nano');
        expect(await columns('accounts')).not.toContain('balance_nano');
        expect(await columns('api_keys')).not.toContain('kind');
        await sql`drop table ledger`.execute(database.db);
        expect(await migrateToLatest(database)).toEqual(LATER);
        expect(await columns('usage')).toContain('cost_nano');
      });
    });

    describe('migrated', () => {
      beforeEach(async () => {
        database = await target.open();
        await migrateToLatest(database);
        repos = createRepositories(database.db, Date.now, database.sqlite);
      });
      afterEach(async () => {
        await database.close();
      });

      it('creates the ledger with its indexes', async () => {
        const ledger = (await database.db.introspection.getTables()).find((t) => t.name === 'ledger')!;
        expect(ledger.columns.map((c) => c.name).sort()).toEqual(
          ['account_id', 'amount_nano', 'created_at', 'generation_id', 'id', 'kind', 'reason'].sort(),
        );
        const indexes =
          target.name === 'sqlite'
            ? (await sql<{ name: string; sql: string }>`select name, sql from sqlite_master where type = 'index' and tbl_name = 'ledger' and sql is not null`.execute(database.db)).rows
            : (await sql<{ name: string; sql: string }>`select indexname as name, indexdef as sql from pg_indexes where tablename = 'ledger' and schemaname = current_schema()`.execute(database.db)).rows;
        const byName = new Map(indexes.map((i) => [i.name, i.sql.toLowerCase()]));
        expect(byName.get('ledger_generation_id_idx')).toMatch(/unique/);
        expect(byName.get('ledger_account_id_created_at_idx')).toMatch(/account_id.*created_at/);
      });

      it('appends top-ups and adjustments with the balance, and totals them', async () => {
        let now = 1_000;
        repos = createRepositories(database.db, () => now++, database.sqlite);
        const a = await account('ledger@example.com');
        const b = await account('other@example.com');

        const t1 = await repos.ledger.append({ accountId: a, kind: 'topup', amountNano: 5_000_000_000, reason: '  invoice 1  ' });
        expect(t1.balanceNano).toBe(5_000_000_000);
        expect(t1.entry).toMatchObject({ accountId: a, kind: 'topup', amountNano: 5_000_000_000, reason: 'invoice 1', generationId: null, createdAt: 1_002 });
        expect(t1.entry.id).toMatch(/^led_[0-9A-Za-z]{16}$/);
        expect((await repos.ledger.append({ accountId: a, kind: 'adjustment', amountNano: -1_500_000_000, reason: 'refund' })).balanceNano).toBe(3_500_000_000);
        expect((await repos.ledger.append({ accountId: a, kind: 'adjustment', amountNano: 7, reason: 'goodwill' })).balanceNano).toBe(3_500_000_007);
        await repos.ledger.append({ accountId: b, kind: 'topup', amountNano: 1, reason: 'b' });

        expect(await repos.ledger.balance(a)).toBe(3_500_000_007);
        expect((await repos.accounts.findAccountById(a))!.balanceNano).toBe(3_500_000_007);
        expect(await repos.ledger.balance('acc_missing')).toBe(0);
        expect(await repos.ledger.totals('acc_missing')).toBeUndefined();

        await repos.usage.insertUsage([gen(a, { costNano: 300 }), gen(a, { costNano: 200 }), gen(a, { costNano: 99, charge: false })]);
        expect(await repos.ledger.totals(a)).toEqual({ creditsNano: 5_000_000_007, chargesNano: 500, balanceNano: 3_499_999_507 });
        expect(await repos.ledger.totals(b)).toEqual({ creditsNano: 1, chargesNano: 0, balanceNano: 1 });
        expect(await expectInvariant(a)).toBe(3_499_999_507);
        await expectInvariant(b);

        // Newest first, paged with the id of the last entry seen.
        const all = await repos.ledger.entries(a, { limit: 100 });
        expect(all.map((e) => [e.kind, e.amountNano])).toEqual([
          ['charge', -200],
          ['charge', -300],
          ['adjustment', 7],
          ['adjustment', -1_500_000_000],
          ['topup', 5_000_000_000],
        ]);
        expect(all[0]).toMatchObject({ reason: 'generation', generationId: expect.stringMatching(/^gen-/) });
        const page1 = await repos.ledger.entries(a, { limit: 2 });
        const page2 = await repos.ledger.entries(a, { limit: 2, before: page1[1]!.id });
        const page3 = await repos.ledger.entries(a, { limit: 2, before: page2[1]!.id });
        expect([...page1, ...page2, ...page3]).toEqual(all);
        expect(await repos.ledger.entries(a, { limit: 2, before: page3[0]!.id })).toEqual([]);
        // Another account's entry is no cursor here.
        const bEntry = (await repos.ledger.entries(b, { limit: 1 }))[0]!;
        expect(await repos.ledger.entries(a, { limit: 10, before: bEntry.id })).toEqual([]);
        await expect(repos.ledger.entries(a, { limit: 0 })).rejects.toBeInstanceOf(InvalidFieldError);
        await expect(repos.ledger.entries(a, { limit: 1001 })).rejects.toBeInstanceOf(InvalidFieldError);
      });

      it('orders entries of the same millisecond by id, and pages through them', async () => {
        repos = createRepositories(database.db, () => 5_000, database.sqlite);
        const a = await account('same-ms@example.com');
        for (let i = 0; i < 7; i++) await repos.ledger.append({ accountId: a, kind: 'topup', amountNano: i + 1, reason: `r${i}` });
        const all = await repos.ledger.entries(a, { limit: 10 });
        expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort().reverse());
        const seen: string[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await repos.ledger.entries(a, { limit: 3, ...(before ? { before } : {}) });
          if (page.length === 0) break;
          seen.push(...page.map((e) => e.id));
          before = page.at(-1)!.id;
        }
        expect(seen).toEqual(all.map((e) => e.id));
      });

      it('refuses bad appends with clear errors and writes nothing', async () => {
        const a = await account('bad@example.com');
        await repos.ledger.append({ accountId: a, kind: 'topup', amountNano: 10, reason: 'ok' });
        const bad: Array<[Parameters<Repositories['ledger']['append']>[0], string]> = [
          [{ accountId: a, kind: 'topup', amountNano: 1.5, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'topup', amountNano: 0, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'adjustment', amountNano: 0, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'topup', amountNano: Number.NaN, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'topup', amountNano: 2 ** 53, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'topup', amountNano: -5, reason: 'x' }, 'amountNano'],
          [{ accountId: a, kind: 'charge' as 'topup', amountNano: -5, reason: 'x' }, 'kind'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: '' }, 'reason'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: '   ' }, 'reason'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: 'x'.repeat(201) }, 'reason'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: 'two\nlines' }, 'reason'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: 'bell\u0007' }, 'reason'],
          [{ accountId: a, kind: 'topup', amountNano: 5, reason: undefined as unknown as string }, 'reason'],
        ];
        for (const [input, field] of bad) {
          const err = await repos.ledger.append(input).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, JSON.stringify(input)).toBeInstanceOf(InvalidFieldError);
          expect((err as InvalidFieldError).field).toBe(field);
        }
        expect((await repos.ledger.append({ accountId: a, kind: 'topup', amountNano: 5, reason: 'x'.repeat(200) })).balanceNano).toBe(15);

        const missing = await repos.ledger.append({ accountId: 'acc_nobody', kind: 'topup', amountNano: 5, reason: 'x' }).catch((e: unknown) => e);
        expect(missing).toBeInstanceOf(AccountNotFoundError);
        expect((missing as Error).message).toBe('No account with id acc_nobody.');
        expect(await repos.ledger.sumLedger('acc_nobody')).toBe(0);

        // A balance that would leave the safe-integer range is refused and rolled back.
        await expect(
          repos.ledger.append({ accountId: a, kind: 'topup', amountNano: Number.MAX_SAFE_INTEGER, reason: 'too much' }),
        ).rejects.toBeInstanceOf(InvalidFieldError);
        expect(await repos.ledger.entries(a, { limit: 10 })).toHaveLength(2);
        expect(await expectInvariant(a)).toBe(15);
      });

      it('charges generations in the usage batch; a replayed batch charges once', async () => {
        for (const [name, usage] of usageRepos()) {
          const a = await account(`charge-${name}@example.com`);
          const b = await account(`charge-b-${name}@example.com`);
          await repos.ledger.append({ accountId: a, kind: 'topup', amountNano: 1_000_000, reason: 'start' });
          const batch = [
            gen(a, { costNano: 1_234 }),
            gen(a, { costNano: 766, costEstimated: true }),
            gen(b, { costNano: 50 }),
            gen(a, { costNano: 400, charge: false }), // tracked, not charged
            gen(a, { costNano: 0 }), // free: no ledger row
            gen(`acc_unknown_${name}`, { costNano: 10 }), // stored, but no account to charge
          ];
          await usage.insertUsage(batch);
          await usage.insertUsage(batch);
          await usage.insertUsage(batch.slice(1, 3));

          expect(await repos.ledger.balance(a), name).toBe(1_000_000 - 2_000);
          expect(await repos.ledger.balance(b), name).toBe(-50);
          await expectInvariant(a);
          await expectInvariant(b);
          const charges = (await repos.ledger.entries(a, { limit: 10 })).filter((e) => e.kind === 'charge');
          expect(charges.map((c) => [c.generationId, c.amountNano, c.reason, c.createdAt])).toEqual([
            [batch[1]!.id, -766, 'generation', batch[1]!.createdAt],
            [batch[0]!.id, -1_234, 'generation', batch[0]!.createdAt],
          ]);
          expect(await repos.ledger.sumLedger(`acc_unknown_${name}`)).toBe(0);

          const stored = await usage.listUsage(a);
          expect(stored.map((u) => [u.costNano, u.costEstimated])).toEqual([
            [1_234, false],
            [766, true],
            [400, false],
            [0, false],
          ]);
          expect(await usage.listUsage(`acc_unknown_${name}`)).toHaveLength(1);
          expect(await repos.usage.sumCost({ accountId: a })).toBe(2_400);
        }
      });

      it('stores an odd cost as a non-negative integer instead of failing the batch', async () => {
        const a = await account('odd@example.com');
        const rows = [gen(a, { costNano: 10.6 }), gen(a, { costNano: -5 }), gen(a, { costNano: Number.NaN })];
        await repos.usage.insertUsage(rows);
        expect((await repos.usage.listUsage(a)).map((u) => u.costNano)).toEqual([11, 0, 0]);
        expect(await expectInvariant(a)).toBe(-11);
      });

      it('writes a batch with charges as one statement on PostgreSQL, and rows without charges as one insert', async () => {
        const a = await account('one@example.com');
        let statements = 0;
        const logged = database.db.withPlugin({
          transformQuery(args) {
            statements++;
            return args.node;
          },
          async transformResult(args) {
            return args.result;
          },
        });
        const usage = new UsageRepo(logged);
        await usage.insertUsage([gen(a, { charge: false }), gen(a, { charge: false })]);
        expect(statements).toBe(1);
        statements = 0;
        await usage.insertUsage([gen(a), gen(a)]);
        if (target.name === 'postgres') expect(statements).toBe(1);
        expect(await expectInvariant(a)).toBe(-2_000);
      });

      it('on SQLite, rows without charges cost no statement beyond their insert', async () => {
        if (!database.sqlite) return expect(target.name).toBe('postgres');
        const a = await account('hot@example.com');
        const { handle, runs } = countingHandle(database.sqlite);
        const usage = new UsageRepo(database.db, handle);
        await usage.insertUsage(Array.from({ length: 100 }, () => gen(a, { charge: false })));
        expect(Object.fromEntries(runs)).toEqual({ 'insert into usage': 100 });
        runs.clear();
        await usage.insertUsage([gen(a), gen(a), gen(a, { costNano: 0 }), gen(a, { charge: false })]);
        // Two charges, one balance update for their account.
        expect(Object.fromEntries(runs)).toEqual({ 'insert into usage': 4, 'insert into ledger': 2, 'update accounts set': 1 });
        expect(await expectInvariant(a)).toBe(-2_000);
      });

      it('on SQLite, a usage batch never joins a Kysely transaction that is open on the connection', async () => {
        if (!database.sqlite) return expect(target.name).toBe('postgres');
        const a = await account('savepoint@example.com');
        const rows = [gen(a), gen(a, { charge: false })];
        let pending: Promise<void> | undefined;
        await expect(
          database.db.transaction().execute(async (trx) => {
            await trx.updateTable('accounts').set({ disabled: 1 }).where('id', '=', a).execute();
            pending = repos.usage.insertUsage(rows); // while the transaction is open
            throw new Error('roll back');
          }),
        ).rejects.toThrow('roll back');
        await pending;
        expect(await repos.usage.listUsage(a)).toHaveLength(2);
        expect((await repos.accounts.findAccountById(a))!.disabled).toBe(false);
        expect(await expectInvariant(a)).toBe(-1_000);
      });

      it('keeps balance_nano == SUM(ledger) under 50 concurrent appends and usage batches', async () => {
        const accounts = [await account('c1@example.com'), await account('c2@example.com'), await account('c3@example.com')];
        const expected = new Map(accounts.map((id) => [id, 0]));
        const add = (id: string, n: number) => expected.set(id, expected.get(id)! + n);
        const batches: UsageRecord[][] = [];
        const ops: Array<() => Promise<unknown>> = [];
        for (let i = 0; i < 50; i++) {
          const acc = accounts[i % 3]!;
          if (i % 2 === 0) {
            const amount = i % 4 === 0 ? 1_000 + i : -(10 + i);
            add(acc, amount);
            ops.push(() =>
              repos.ledger.append({ accountId: acc, kind: amount > 0 ? 'topup' : 'adjustment', amountNano: amount, reason: `op ${i}` }),
            );
          } else if (i % 10 === 9 && batches.length > 0) {
            // A replay of an earlier batch: must change nothing.
            const replay = batches[batches.length - 1]!;
            ops.push(() => repos.usage.insertUsage(replay));
          } else {
            // Batches spanning every account, in varying order (lock order must not matter).
            const batch = [gen(accounts[(i + 1) % 3]!, { costNano: 7 }), gen(acc, { costNano: 11 + i }), gen(accounts[(i + 2) % 3]!, { costNano: 3, charge: false }), gen(accounts[i % 3]!, { costNano: 5 })];
            for (const r of batch) if (r.charge && r.costNano > 0) add(r.accountId, -r.costNano);
            batches.push(batch);
            ops.push(() => repos.usage.insertUsage(batch));
          }
        }
        const results = await Promise.allSettled(ops.map((op) => op()));
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        for (const id of accounts) {
          expect(await expectInvariant(id)).toBe(expected.get(id));
        }
        const replays = await Promise.allSettled(batches.map((b) => repos.usage.insertUsage(b)));
        expect(replays.filter((r) => r.status === 'rejected')).toEqual([]);
        for (const id of accounts) expect(await expectInvariant(id)).toBe(expected.get(id));
      });

      it('concurrent batches charging overlapping sets of accounts neither deadlock nor lose a charge', async () => {
        const accounts: string[] = [];
        for (let i = 0; i < 16; i++) accounts.push(await account(`order${i}@example.com`));
        const expected = new Map(accounts.map((a) => [a, 0]));
        // Each batch charges a different subset of the accounts, in a different order.
        const batches = Array.from({ length: 100 }, (_, i) => {
          const subset = accounts.filter((_, j) => (i * 7 + j * 3) % 5 !== 0);
          const ordered = i % 2 === 0 ? subset : subset.reverse();
          return ordered.flatMap((a) => {
            expected.set(a, expected.get(a)! - 7);
            return [gen(a, { costNano: 3 }), gen(a, { costNano: 4 })];
          });
        });
        const results = await Promise.allSettled(batches.map((b) => repos.usage.insertUsage(b)));
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        for (const a of accounts) expect(await expectInvariant(a)).toBe(expected.get(a));
      });

      it('reads one generation only for its own account', async () => {
        const a = await account('owner@example.com');
        const b = await account('stranger@example.com');
        const charged = gen(a, { costNano: 321, costEstimated: true });
        const tracked = gen(a, { costNano: 9, charge: false });
        await repos.usage.insertUsage([charged, tracked]);
        const { charge: _c, ...rest } = charged;
        expect(await repos.usage.getGeneration(charged.id, a)).toEqual({ ...rest, chargedNano: 321 });
        expect(await repos.usage.getGeneration(tracked.id, a)).toMatchObject({ costNano: 9, chargedNano: 0 });
        expect(await repos.usage.getGeneration(charged.id, b)).toBeUndefined();
        expect(await repos.usage.getGeneration('gen-missing', a)).toBeUndefined();
      });

      it('sums cost by key, account and time', async () => {
        const a = await account('sum@example.com');
        await repos.usage.insertUsage([
          gen(a, { keyId: 'key_1', costNano: 100, createdAt: 1_000 }),
          gen(a, { keyId: 'key_1', costNano: 20, createdAt: 2_000, charge: false }),
          gen(a, { keyId: 'key_2', costNano: 3, createdAt: 2_000 }),
          gen('acc_else', { keyId: 'key_3', costNano: 4_000, createdAt: 3_000 }),
        ]);
        expect(await repos.usage.sumCost({ keyId: 'key_1' })).toBe(120);
        expect(await repos.usage.sumCost({ keyId: 'key_1', since: 1_001 })).toBe(20);
        expect(await repos.usage.sumCost({ keyId: 'key_1', since: 2_000 })).toBe(20);
        expect(await repos.usage.sumCost({ accountId: a })).toBe(123);
        expect(await repos.usage.sumCost({ accountId: a, since: 2_000 })).toBe(23);
        expect(await repos.usage.sumCost({ keyId: 'key_2', accountId: a })).toBe(3);
        expect(await repos.usage.sumCost({ keyId: 'key_none' })).toBe(0);
        expect(await repos.usage.sumCost()).toBe(4_123);
      });

      it('reports by UTC day and model across a day boundary', async () => {
        const a = await account('report@example.com');
        const b = await account('report-b@example.com');
        const midnight = Date.UTC(2024, 2, 10); // 2024-03-10T00:00:00Z
        const row = (accountId: string, createdAt: number, model: string, costNano: number) =>
          gen(accountId, { createdAt, model, costNano, promptTokens: 10, completionTokens: 20, cachedTokens: 3, reasoningTokens: 1 });
        await repos.usage.insertUsage([
          row(a, midnight - 1, 'm1', 100),
          row(a, midnight - 1, 'm1', 1),
          row(a, midnight - 3_600_000, 'm2', 5),
          row(a, midnight, 'm1', 1_000),
          row(a, midnight + 86_400_000 - 1, 'm1', 2_000),
          row(b, midnight + 5, 'm1', 7),
          row(a, midnight + 86_400_000, 'm1', 9_999), // outside `to`
          row(a, midnight - 86_400_000 - 1, 'm1', 9_999), // before `from`
        ]);
        const from = midnight - 86_400_000;
        const to = midnight + 86_400_000;
        const tokens = { promptTokens: 10, completionTokens: 20, cachedTokens: 3, reasoningTokens: 1 };
        const times = (n: number) => ({ promptTokens: 10 * n, completionTokens: 20 * n, cachedTokens: 3 * n, reasoningTokens: n });
        expect(await repos.usage.report({ accountId: a, from, to })).toEqual([
          { accountId: a, keyId: 'key_b', day: '2024-03-09', model: 'm1', requests: 2, ...times(2), costNano: 101 },
          { accountId: a, keyId: 'key_b', day: '2024-03-09', model: 'm2', requests: 1, ...tokens, costNano: 5 },
          { accountId: a, keyId: 'key_b', day: '2024-03-10', model: 'm1', requests: 2, ...times(2), costNano: 3_000 },
        ]);
        const all = await repos.usage.report({ from, to });
        expect(all).toHaveLength(4);
        expect(all.filter((r) => r.accountId === b)).toEqual([
          { accountId: b, keyId: 'key_b', day: '2024-03-10', model: 'm1', requests: 1, ...tokens, costNano: 7 },
        ]);
        for (const r of all) {
          expect(typeof r.requests).toBe('number');
          expect(typeof r.costNano).toBe('number');
        }
        expect(await repos.usage.report({ accountId: a, from: midnight, to: midnight + 1 })).toEqual([
          { accountId: a, keyId: 'key_b', day: '2024-03-10', model: 'm1', requests: 1, ...tokens, costNano: 1_000 },
        ]);
        expect(await repos.usage.report({ accountId: a, from: 0, to: 1 })).toEqual([]);
        // Each key of an account has its own rows: what each key spent by day and model.
        await repos.usage.insertUsage([gen(a, { createdAt: midnight + 10, model: 'm1', costNano: 4, keyId: 'key_c', promptTokens: 1, completionTokens: 1, cachedTokens: 0, reasoningTokens: 0 })]);
        const byKey = await repos.usage.report({ accountId: a, from: midnight, to: midnight + 86_400_000 });
        expect(byKey.map((r) => [r.keyId, r.model, r.requests, r.costNano])).toEqual([
          ['key_b', 'm1', 2, 3_000],
          ['key_c', 'm1', 1, 4],
        ]);
      });

      it('stores key limits and kinds, and findKeyByHash returns them with the billing mode in one query', async () => {
        const a = await account('limits@example.com');
        const raw = generateApiKey();
        const hash = hashApiKey(raw, SECRET);
        const id = generateKeyId();
        await repos.keys.insertKey({
          id, accountId: a, name: 'ci', keyHash: hash, last4: last4(raw),
          spendLimitNano: 5_000_000_000, limitReset: 'weekly', expiresAt: 1_900_000_000_000, allowedModels: ['openai/gpt-4o', 'anthropic/claude'],
          rateLimits: { rpm: 60, tpm: null },
        });
        const mgmtRaw = generateApiKey();
        const mgmtId = generateKeyId();
        await repos.keys.insertKey({ id: mgmtId, accountId: a, keyHash: hashApiKey(mgmtRaw, SECRET), last4: last4(mgmtRaw), kind: 'management' });

        let statements = 0;
        const keys = createRepositories(
          database.db.withPlugin({
            transformQuery(args) {
              statements++;
              return args.node;
            },
            async transformResult(args) {
              return args.result;
            },
          }),
        ).keys;
        expect(await keys.findKeyByHash(hash)).toEqual({
          keyId: id, accountId: a, name: 'ci', revoked: false, accountDisabled: false, kind: 'inference', disabled: false,
          spendLimitNano: 5_000_000_000, limitReset: 'weekly', expiresAt: 1_900_000_000_000,
          allowedModels: ['openai/gpt-4o', 'anthropic/claude'], accountBillingMode: null,
          rateLimits: { rpm: 60, tpm: null, concurrency: null },
          accountRequireZdr: false, accountDenyDataCollection: false,
        });
        expect(statements).toBe(1);
        expect(await repos.keys.findKeyByHash(hashApiKey(mgmtRaw, SECRET))).toMatchObject({ kind: 'management', allowedModels: null, spendLimitNano: null });

        expect(await repos.accounts.setBillingMode(a, 'credits')).toBe(true);
        await repos.keys.updateKey(a, id, { disabled: true, allowedModels: null });
        expect(await repos.keys.findKeyByHash(hash)).toMatchObject({ disabled: true, allowedModels: null, accountBillingMode: 'credits' });
        await repos.accounts.setBillingMode(a, 'track');
        expect(await repos.keys.findKeyByHash(hash)).toMatchObject({ accountBillingMode: 'track' });

        expect(await repos.keys.getKey(mgmtId)).toMatchObject({ kind: 'management', disabled: false, expiresAt: null });

        for (const bad of [
          { spendLimitNano: -1 },
          { spendLimitNano: 1.5 },
          { limitReset: 'hourly' },
          { expiresAt: -1 },
          { allowedModels: 'openai/gpt-4o' },
          { allowedModels: [''] },
          { kind: 'admin' },
          { name: 'tab\tname' },
        ]) {
          await expect(
            repos.keys.insertKey({ id: generateKeyId(), accountId: a, keyHash: `h-${Math.random()}`, last4: 'abcd', ...(bad as object) }),
          ).rejects.toBeInstanceOf(InvalidFieldError);
        }
      });

      it('updates and deletes keys only for their own account', async () => {
        const a = await account('mine@example.com');
        const b = await account('theirs@example.com');
        const raw = generateApiKey();
        const id = generateKeyId();
        await repos.keys.insertKey({ id, accountId: a, name: 'laptop', keyHash: hashApiKey(raw, SECRET), last4: last4(raw) });
        await repos.usage.insertUsage([gen(a, { keyId: id })]);

        expect(await repos.keys.updateKey(b, id, { name: 'stolen', disabled: true })).toBeUndefined();
        expect(await repos.keys.getKey(id, b)).toBeUndefined();
        expect(await repos.keys.deleteKey(b, id)).toBe(false);
        expect(await repos.keys.getKey(id)).toMatchObject({ name: 'laptop', disabled: false });

        const updated = await repos.keys.updateKey(a, id, {
          name: 'desktop', spendLimitNano: 0, limitReset: 'daily', expiresAt: 1_800_000_000_000, allowedModels: ['m1', 'm1', 'm2'],
          rateLimits: { concurrency: 4 },
        });
        expect(updated).toEqual({
          id, accountId: a, name: 'desktop', last4: last4(raw), createdAt: expect.any(Number), revokedAt: null, kind: 'inference',
          disabled: false, spendLimitNano: 0, limitReset: 'daily', expiresAt: 1_800_000_000_000, allowedModels: ['m1', 'm2'],
          rateLimits: { rpm: null, tpm: null, concurrency: 4 },
        });
        expect(await repos.keys.getKey(id, a)).toEqual(updated);
        expect(await repos.keys.listKeys(a)).toEqual([updated]);
        // An empty patch changes nothing; null clears.
        expect(await repos.keys.updateKey(a, id, {})).toEqual(updated);
        expect(await repos.keys.updateKey(b, id, {})).toBeUndefined();
        expect(await repos.keys.updateKey(a, id, { name: null, spendLimitNano: null, limitReset: null, expiresAt: null })).toMatchObject({
          name: null, spendLimitNano: null, limitReset: null, expiresAt: null, allowedModels: ['m1', 'm2'],
        });
        await expect(repos.keys.updateKey(a, id, { spendLimitNano: -5 })).rejects.toBeInstanceOf(InvalidFieldError);
        await expect(repos.keys.updateKey(a, id, { rateLimits: { rpm: 0 } })).rejects.toBeInstanceOf(InvalidFieldError);
        expect(await repos.keys.updateKey(a, id, { rateLimits: { concurrency: null, tpm: 1000 } })).toMatchObject({
          rateLimits: { rpm: null, tpm: 1000, concurrency: null },
        });
        await expect(repos.keys.updateKey(a, id, { name: 'x'.repeat(101) })).rejects.toBeInstanceOf(InvalidFieldError);
        expect(await repos.keys.updateKey(a, 'key_missing', { disabled: true })).toBeUndefined();

        expect(await repos.keys.deleteKey(a, id)).toBe(true);
        expect(await repos.keys.deleteKey(a, id)).toBe(false);
        expect(await repos.keys.getKey(id)).toBeUndefined();
        expect(await repos.keys.findKeyByHash(hashApiKey(raw, SECRET))).toBeUndefined();
        // Usage rows keep the deleted key's id.
        expect((await repos.usage.listUsage(a)).map((u) => u.keyId)).toEqual([id]);
      });

      it('lists accounts and sets their billing mode', async () => {
        let now = 10;
        repos = createRepositories(database.db, () => now++, database.sqlite);
        const a = await account('list-a@example.com');
        const b = await account('list-b@example.com');
        await repos.ledger.append({ accountId: b, kind: 'topup', amountNano: 42, reason: 'x' });
        expect(await repos.accounts.setBillingMode(b, 'credits')).toBe(true);
        expect(await repos.accounts.setBillingMode('acc_missing', 'credits')).toBe(false);
        await expect(repos.accounts.setBillingMode(a, 'free' as 'credits')).rejects.toBeInstanceOf(InvalidFieldError);
        expect(await repos.accounts.setDisabled(a, true)).toBe(true);
        expect(await repos.accounts.listAccounts()).toEqual([
          { id: a, email: 'list-a@example.com', createdAt: 10, disabled: true, balanceNano: 0, billingMode: null, requireZdr: false, denyDataCollection: false },
          { id: b, email: 'list-b@example.com', createdAt: 11, disabled: false, balanceNano: 42, billingMode: 'credits', requireZdr: false, denyDataCollection: false },
        ]);
        expect(await repos.accounts.findAccountByEmail('LIST-B@example.com')).toMatchObject({ balanceNano: 42, billingMode: 'credits' });
        expect(await repos.accounts.setBillingMode(b, null)).toBe(true);
        expect(await repos.accounts.setRoutingPolicy(b, { requireZdr: true })).toBe(true);
        expect(await repos.accounts.findAccountById(b)).toMatchObject({ requireZdr: true, denyDataCollection: false });
        expect(await repos.accounts.setRoutingPolicy('acc_missing', { denyDataCollection: true })).toBe(false);
        expect((await repos.accounts.findAccountById(b))!.billingMode).toBeNull();
      });
    });
  });
}
