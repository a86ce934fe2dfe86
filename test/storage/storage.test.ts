import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { hashApiKey, generateApiKey, generateKeyId, last4 } from '../../src/auth/api-key.js';
import type { Database } from '../../src/storage/database.js';
import { openDatabase, sqlitePath } from '../../src/storage/database.js';
import { migrateToLatest, migrationStatus, MIGRATIONS } from '../../src/storage/migrations.js';
import {
  createRepositories,
  DuplicateEmailError,
  InvalidEmailError,
  type Repositories,
  type StoredUsage,
  type UsageRecord,
} from '../../src/storage/repositories.js';
import { DATABASES } from '../helpers/databases.js';

const SECRET = 'test-secret-test-secret-test-secret-0123';

export function usageRow(i: number, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id: `gen_${String(i).padStart(6, '0')}`,
    keyId: 'key_a',
    accountId: 'acc_a',
    model: 'openai/gpt-4o-mini',
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    promptTokens: 10 + i,
    completionTokens: 20,
    cachedTokens: 3,
    cacheWriteTokens: 4,
    reasoningTokens: 5,
    status: 200,
    latencyMs: 123,
    streamed: i % 2 === 0,
    createdAt: 1_700_000_000_000 + i,
    costNano: 0,
    costEstimated: false,
    charge: false,
    ...over,
  };
}

/** A record as `listUsage` returns it (without the `charge` instruction). */
export function stored(r: UsageRecord): StoredUsage {
  const { charge: _charge, ...rest } = r;
  return rest;
}

describe('openDatabase', () => {
  it('rejects an unknown scheme with a clear message', async () => {
    await expect(openDatabase('mysql://root@localhost/db')).rejects.toThrow(/Unsupported database URL scheme 'mysql:'.*sqlite:PATH.*postgres:\/\//);
  });
  it('resolves sqlite paths', () => {
    expect(sqlitePath('sqlite::memory:')).toBe(':memory:');
    expect(sqlitePath('sqlite:./data/x.db')).toBe(`${process.cwd()}/data/x.db`);
    expect(sqlitePath('sqlite:///tmp/x.db')).toBe('/tmp/x.db');
    expect(sqlitePath('sqlite:', '/srv/mr')).toBe('/srv/mr/maxrouter.db');
  });
  it('creates a new SQLite file, and the WAL and shared-memory files beside it, readable by the owner only', async () => {
    const { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'mr-test-mode-'));
    chmodSync(dir, 0o755); // a directory others may enter: the files themselves must be private
    try {
      const path = join(dir, 'sub', 'maxrouter.db');
      const database = await openDatabase(`sqlite:${path}`);
      await migrateToLatest(database);
      await createRepositories(database.db).accounts.createAccount('mode@example.com');
      for (const f of [path, `${path}-wal`, `${path}-shm`]) expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
      await database.close();
      // A file the operator made keeps its mode.
      const own = join(dir, 'own.db');
      writeFileSync(own, '');
      chmodSync(own, 0o640);
      const again = await openDatabase(`sqlite:${own}`);
      await again.close();
      expect((statSync(own).mode & 0o777).toString(8)).toBe('640');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('opens sqlite::memory:', async () => {
    const database = await openDatabase('sqlite::memory:');
    expect(database.dialect).toBe('sqlite');
    expect(await migrateToLatest(database)).toEqual(Object.keys(MIGRATIONS));
    await database.close();
  });
});

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`storage on ${target.name}`, () => {
    let database: Database;
    let repos: Repositories;

    beforeEach(async () => {
      database = await target.open();
      expect(database.dialect).toBe(target.name);
      await migrateToLatest(database);
      repos = createRepositories(database.db);
    });
    afterEach(async () => {
      await database.close();
    });

    it('migrations are idempotent', async () => {
      expect(await migrateToLatest(database)).toEqual([]);
      expect(await migrationStatus(database)).toEqual(Object.keys(MIGRATIONS).map((name) => ({ name, applied: true })));
    });

    it('isolates each PostgreSQL test database in its own schema', async () => {
      if (target.name !== 'postgres') return;
      const { rows } = await sql<{ s: string }>`select current_schema() as s`.execute(database.db);
      expect(rows[0]!.s).toMatch(/^mr_test_[0-9a-f]{12}$/);
    });

    it('applies pragmas on SQLite', async () => {
      if (target.name !== 'sqlite') return;
      const one = async (p: string) => Object.values((await sql.raw<Record<string, unknown>>(`pragma ${p}`).execute(database.db)).rows[0] ?? {})[0];
      expect(await one('journal_mode')).toBe('wal');
      expect(await one('foreign_keys')).toBe(1);
      expect(await one('synchronous')).toBe(1); // NORMAL
      expect(await one('busy_timeout')).toBe(5000);
    });

    it('creates accounts with lower-cased, unique emails', async () => {
      const a = await repos.accounts.createAccount('  Alice@Example.COM ');
      expect(a.email).toBe('alice@example.com');
      expect(a.id).toMatch(/^acc_[0-9A-Za-z]{16}$/);
      expect(a.disabled).toBe(false);
      expect(a.balanceNano).toBe(0);
      expect(a.billingMode).toBeNull();
      expect(typeof a.createdAt).toBe('number');

      await expect(repos.accounts.createAccount('ALICE@example.com')).rejects.toBeInstanceOf(DuplicateEmailError);
      await expect(repos.accounts.createAccount('not-an-email')).rejects.toBeInstanceOf(InvalidEmailError);
      await expect(repos.accounts.createAccount('a b@example.com')).rejects.toBeInstanceOf(InvalidEmailError);

      const found = await repos.accounts.findAccountByEmail('alice@EXAMPLE.com');
      expect(found).toEqual(a);
      expect(await repos.accounts.findAccountByEmail('bob@example.com')).toBeUndefined();
      expect(await repos.accounts.findAccountByEmail('garbage')).toBeUndefined();

      const again = await repos.accounts.getOrCreateAccount('Alice@example.com');
      expect(again.id).toBe(a.id);
      const bob = await repos.accounts.getOrCreateAccount('bob@example.com');
      expect(bob.id).not.toBe(a.id);
      expect(bob.email).toBe('bob@example.com');
    });

    it('reads timestamps back as numbers (bigint columns)', async () => {
      const a = await repos.accounts.createAccount('t@example.com');
      const row = await database.db.selectFrom('accounts').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
      expect(typeof row.created_at).toBe('number');
      expect(row.created_at).toBe(a.createdAt);
    });

    it('inserts, lists, finds and revokes keys', async () => {
      const acc = await repos.accounts.createAccount('keys@example.com');
      const key = generateApiKey();
      const id = generateKeyId();
      await repos.keys.insertKey({ id, accountId: acc.id, name: 'laptop', keyHash: hashApiKey(key, SECRET), last4: last4(key) });
      const key2 = generateApiKey();
      const id2 = generateKeyId();
      await repos.keys.insertKey({ id: id2, accountId: acc.id, keyHash: hashApiKey(key2, SECRET), last4: last4(key2), createdAt: Date.now() + 1 });

      const list = await repos.keys.listKeys(acc.id);
      expect(list.map((k) => k.id)).toEqual([id, id2]);
      expect(list[0]).toMatchObject({ accountId: acc.id, name: 'laptop', last4: last4(key), revokedAt: null });
      expect(list[1]!.name).toBeNull();
      for (const k of list) {
        expect(Object.keys(k).sort()).toEqual(
          [
            'accountId', 'allowedModels', 'createdAt', 'disabled', 'expiresAt', 'id', 'kind', 'last4', 'limitReset', 'name',
            'rateLimits', 'revokedAt', 'spendLimitNano',
          ].sort(),
        );
        expect(JSON.stringify(k)).not.toContain(hashApiKey(key, SECRET));
      }

      expect(await repos.keys.findKeyByHash(hashApiKey(key, SECRET))).toEqual({
        keyId: id,
        accountId: acc.id,
        name: 'laptop',
        revoked: false,
        accountDisabled: false,
        kind: 'inference',
        disabled: false,
        spendLimitNano: null,
        limitReset: null,
        expiresAt: null,
        allowedModels: null,
        accountBillingMode: null,
        rateLimits: { rpm: null, tpm: null, concurrency: null },
        accountRequireZdr: false,
        accountDenyDataCollection: false,
      });
      expect(await repos.keys.findKeyByHash(hashApiKey(generateApiKey(), SECRET))).toBeUndefined();

      expect(await repos.keys.revokeKey(id)).toBe(true);
      const revokedAt = (await repos.keys.getKey(id))!.revokedAt;
      expect(typeof revokedAt).toBe('number');
      expect(await repos.keys.revokeKey(id)).toBe(true); // exists; first revoked_at kept
      expect((await repos.keys.getKey(id))!.revokedAt).toBe(revokedAt);
      expect(await repos.keys.revokeKey('key_doesnotexist0000')).toBe(false);
      expect(await repos.keys.findKeyByHash(hashApiKey(key, SECRET))).toMatchObject({ keyId: id, revoked: true });

      expect(await repos.accounts.setDisabled(acc.id, true)).toBe(true);
      expect(await repos.keys.findKeyByHash(hashApiKey(key2, SECRET))).toMatchObject({
        keyId: id2,
        revoked: false,
        accountDisabled: true,
      });
    });

    it('rejects duplicate key hashes and keys of unknown accounts', async () => {
      const acc = await repos.accounts.createAccount('dup@example.com');
      const hash = hashApiKey(generateApiKey(), SECRET);
      await repos.keys.insertKey({ id: generateKeyId(), accountId: acc.id, keyHash: hash, last4: 'abcd' });
      await expect(repos.keys.insertKey({ id: generateKeyId(), accountId: acc.id, keyHash: hash, last4: 'abcd' })).rejects.toThrow();
      await expect(
        repos.keys.insertKey({ id: generateKeyId(), accountId: 'acc_missing', keyHash: 'ff', last4: 'abcd' }),
      ).rejects.toThrow();
    });

    it('writes usage as one insert statement per batch', async () => {
      const statements: string[] = [];
      const logged = database.db.withPlugin({
        transformQuery(args) {
          statements.push('statement');
          return args.node;
        },
        async transformResult(args) {
          return args.result;
        },
      });
      const usage = createRepositories(logged).usage;
      const rows = Array.from({ length: 250 }, (_, i) => usageRow(i, { accountId: i < 200 ? 'acc_a' : 'acc_b' }));
      await usage.insertUsage(rows);
      expect(statements).toEqual(['statement']);

      const a = await repos.usage.listUsage('acc_a');
      expect(a).toHaveLength(200);
      expect(a[0]).toEqual(stored(rows[0]!));
      expect(a[199]).toEqual(stored(rows[199]!));
      expect(await repos.usage.listUsage('acc_b')).toHaveLength(50);

      // Re-inserting a batch (a retry after an ambiguous failure) neither fails nor double-counts.
      await usage.insertUsage(rows.slice(0, 10));
      expect(await repos.usage.listUsage('acc_a')).toHaveLength(200);
      await usage.insertUsage([]);
      expect(statements).toEqual(['statement', 'statement']);
    });

    it('writes usage through the prepared-once statement when given the SQLite handle', async () => {
      if (!database.sqlite) return expect(database.dialect).toBe('postgres');
      const usage = createRepositories(database.db, Date.now, database.sqlite).usage;
      const rows = Array.from({ length: 30 }, (_, i) => usageRow(i, { accountId: 'acc_raw' }));
      await usage.insertUsage(rows);
      await usage.insertUsage(rows.slice(0, 5)); // a retried batch neither fails nor double-counts
      expect(await usage.listUsage('acc_raw')).toEqual(rows.map(stored));
    });

    it('writes batches larger than any parameter limit', async () => {
      const rows = Array.from({ length: 5000 }, (_, i) => usageRow(i));
      await repos.usage.insertUsage(rows);
      expect(await repos.usage.listUsage('acc_a')).toHaveLength(rows.length);
    });

    it('has no column that can hold content', async () => {
      const tables = await database.db.introspection.getTables();
      const usage = tables.find((t) => t.name === 'usage')!;
      expect(usage.columns.map((c) => c.name).sort()).toEqual(
        [
          'account_id', 'cache_write_tokens', 'cached_tokens', 'completion_tokens', 'cost_estimated', 'cost_nano', 'created_at',
          'id', 'key_id', 'latency_ms', 'model', 'prompt_tokens', 'provider', 'reasoning_tokens', 'status', 'streamed',
          'upstream_model',
        ].sort(),
      );
    });
  });
}
