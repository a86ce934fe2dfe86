/**
 * The audit log on SQLite and (with TEST_POSTGRES_URL) PostgreSQL: the table and its repository
 * (ids only, validation, newest-first pages, a change and its row in one transaction), then
 * every account, key and credits action through the admin API, the management API and the CLI,
 * each writing exactly its rows with the right actor — and nothing for refused or no-op calls.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey, generateKeyId, hashApiKey, last4 } from '../../src/auth/api-key.js';
import { runAccounts } from '../../src/cli/accounts-command.js';
import type { CliContext } from '../../src/cli/context.js';
import { runCredits } from '../../src/cli/credits-command.js';
import { runKeys } from '../../src/cli/keys-command.js';
import type { Database } from '../../src/storage/database.js';
import { migrateToLatest } from '../../src/storage/migrations.js';
import {
  ADMIN_ACTOR,
  CLI_ACTOR,
  createRepositories,
  InvalidFieldError,
  managementKeyActor,
  type AuditEntry,
  type NewAuditEntry,
  type Repositories,
} from '../../src/storage/repositories.js';
import { openaiText } from '../fixtures/openai.js';
import { DATABASES } from '../helpers/databases.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

const ADMIN_KEY = 'audit-admin-key-0123456789-abcdefghijklmnopqrstuvwxyz';
const COLUMNS = ['account_id', 'action', 'actor_id', 'actor_kind', 'at', 'id', 'key_id', 'ledger_id'];

/** The entries in the order they were written (the repository pages newest first). */
async function allEntries(repos: Repositories, accountId?: string): Promise<AuditEntry[]> {
  const page = await repos.audit.entries({ limit: 1000, ...(accountId !== undefined ? { accountId } : {}) });
  return page.reverse();
}

/** What a test compares: who, what, on which ids. */
function brief(e: AuditEntry) {
  return { actorKind: e.actorKind, actorId: e.actorId, action: e.action, accountId: e.accountId, keyId: e.keyId, ledgerId: e.ledgerId };
}

/**
 * Rows as a multiset: entries written within the same millisecond have no defined order (they
 * are ordered by their random ids), so compare sorted lists.
 */
function sorted<T>(rows: T[]): T[] {
  return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : JSON.stringify(a) > JSON.stringify(b) ? 1 : 0));
}

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`audit log repository (${target.name})`, () => {
    let database: Database;
    let repos: Repositories;
    let clock = 1_750_000_000_000;

    beforeEach(async () => {
      database = await target.open();
      await migrateToLatest(database);
      repos = createRepositories(database.db, () => clock);
    });
    afterEach(async () => {
      await database.close();
    });

    it('the migration creates audit_log with exactly its id columns, time, actor and action', async () => {
      const table = (await database.db.introspection.getTables()).find((t) => t.name === 'audit_log');
      expect(table).toBeDefined();
      expect(table!.columns.map((c) => c.name).sort()).toEqual(COLUMNS);
      const nullable = Object.fromEntries(table!.columns.map((c) => [c.name, c.isNullable]));
      expect(nullable).toEqual({
        id: false, at: false, actor_kind: false, actor_id: true, action: false, account_id: false, key_id: true, ledger_id: true,
      });
    });

    it('records entries and pages them newest first, for one account or all', async () => {
      const a = await repos.accounts.createAccount('audit-a@example.com');
      const b = await repos.accounts.createAccount('audit-b@example.com');
      const written: AuditEntry[] = [];
      const add = async (e: NewAuditEntry) => {
        clock += 1;
        written.push(await repos.audit.record(e));
      };
      await add({ actor: ADMIN_ACTOR, action: 'account.created', accountId: a.id });
      await add({ actor: CLI_ACTOR, action: 'account.created', accountId: b.id });
      await add({ actor: managementKeyActor('key_mgmt1'), action: 'key.created', accountId: a.id, keyId: 'key_new1' });
      await add({ actor: ADMIN_ACTOR, action: 'credits.added', accountId: a.id, ledgerId: 'led_1' });
      await add({ actor: CLI_ACTOR, action: 'credits.adjusted', accountId: b.id, ledgerId: 'led_2' });
      await add({ actor: CLI_ACTOR, action: 'key.revoked', accountId: b.id, keyId: 'key_b1' });

      expect(written[0]).toMatchObject({ actorKind: 'admin', actorId: null, action: 'account.created', accountId: a.id, keyId: null, ledgerId: null });
      expect(written[0]!.id).toMatch(/^aud_[0-9A-Za-z]{16}$/);
      expect(written[0]!.at).toBe(1_750_000_000_001);
      expect(written[2]).toMatchObject({ actorKind: 'management_key', actorId: 'key_mgmt1', keyId: 'key_new1' });

      expect(await allEntries(repos)).toEqual(written);
      expect(await allEntries(repos, a.id)).toEqual(written.filter((e) => e.accountId === a.id));
      const first = await repos.audit.entries({ limit: 2 });
      expect(first).toEqual([written[5], written[4]]);
      const next = await repos.audit.entries({ limit: 2, before: first[1]!.id });
      expect(next).toEqual([written[3], written[2]]);
      expect(await repos.audit.entries({ limit: 10, accountId: b.id, before: written[5]!.id })).toEqual([written[4], written[1]]);
      await expect(repos.audit.entries({ limit: 0 })).rejects.toBeInstanceOf(InvalidFieldError);
      await expect(repos.audit.entries({ limit: 1001 })).rejects.toBeInstanceOf(InvalidFieldError);
    });

    it('refuses anything but ids that fit the action, and writes nothing then', async () => {
      const bad: [NewAuditEntry, string][] = [
        [{ actor: ADMIN_ACTOR, action: 'account.renamed' as never, accountId: 'acc_1' }, 'action'],
        [{ actor: { kind: 'robot' as never, id: null }, action: 'account.created', accountId: 'acc_1' }, 'actor.kind'],
        [{ actor: { kind: 'management_key', id: null }, action: 'key.created', accountId: 'acc_1', keyId: 'key_1' }, 'actor.id'],
        [{ actor: { kind: 'admin', id: 'key_1' }, action: 'account.created', accountId: 'acc_1' }, 'actor.id'],
        [{ actor: { kind: 'cli', id: 'ops' }, action: 'account.created', accountId: 'acc_1' }, 'actor.id'],
        // An email, or any text, is not an id.
        [{ actor: ADMIN_ACTOR, action: 'account.created', accountId: 'ann@example.com' }, 'accountId'],
        [{ actor: ADMIN_ACTOR, action: 'account.created', accountId: 'the account of Ann' }, 'accountId'],
        [{ actor: ADMIN_ACTOR, action: 'account.created', accountId: 'a'.repeat(65) }, 'accountId'],
        [{ actor: ADMIN_ACTOR, action: 'key.created', accountId: 'acc_1' }, 'keyId'],
        [{ actor: ADMIN_ACTOR, action: 'key.updated', accountId: 'acc_1', keyId: 'key 1' }, 'keyId'],
        [{ actor: ADMIN_ACTOR, action: 'account.created', accountId: 'acc_1', keyId: 'key_1' }, 'keyId'],
        [{ actor: ADMIN_ACTOR, action: 'credits.added', accountId: 'acc_1' }, 'ledgerId'],
        [{ actor: ADMIN_ACTOR, action: 'key.created', accountId: 'acc_1', keyId: 'key_1', ledgerId: 'led_1' }, 'ledgerId'],
      ];
      for (const [entry, field] of bad) {
        const err = await repos.audit.record(entry).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, JSON.stringify(entry)).toBeInstanceOf(InvalidFieldError);
        expect((err as InvalidFieldError).field).toBe(field);
      }
      expect(await repos.audit.entries({ limit: 10 })).toEqual([]);
    });

    it('a change and its row commit together, or neither does', async () => {
      const account = await repos.audit.transaction(async (tx) => {
        const created = await tx.accounts.createAccount('together@example.com');
        await tx.audit.record({ actor: CLI_ACTOR, action: 'account.created', accountId: created.id });
        return created;
      });
      expect(await repos.accounts.findAccountById(account.id)).toBeDefined();
      expect((await allEntries(repos)).map(brief)).toEqual([
        { actorKind: 'cli', actorId: null, action: 'account.created', accountId: account.id, keyId: null, ledgerId: null },
      ]);

      // The audit row is refused: the change is rolled back.
      await expect(
        repos.audit.transaction(async (tx) => {
          await tx.accounts.setDisabled(account.id, true);
          await tx.audit.record({ actor: CLI_ACTOR, action: 'account.disabled', accountId: 'not an id' });
        }),
      ).rejects.toBeInstanceOf(InvalidFieldError);
      expect((await repos.accounts.findAccountById(account.id))!.disabled).toBe(false);

      // The change fails after its row was recorded: the row is rolled back.
      await expect(
        repos.audit.transaction(async (tx) => {
          await tx.audit.record({ actor: CLI_ACTOR, action: 'account.created', accountId: 'acc_phantom' });
          await tx.accounts.createAccount('together@example.com'); // duplicate email
        }),
      ).rejects.toThrow(/already exists/);
      expect(await allEntries(repos)).toHaveLength(1);

      // A key and its row.
      clock += 1;
      const keyId = generateKeyId();
      await repos.audit.transaction(async (tx) => {
        await tx.keys.insertKey({ id: keyId, accountId: account.id, keyHash: 'h1', last4: 'abcd' });
        await tx.audit.record({ actor: managementKeyActor('key_m'), action: 'key.created', accountId: account.id, keyId });
      });
      expect(await repos.keys.getKey(keyId)).toBeDefined();
      expect((await allEntries(repos)).at(-1)).toMatchObject({ action: 'key.created', keyId, actorId: 'key_m' });
    });

    it('stores no email: the rows of an account hold its id only', async () => {
      const account = await repos.accounts.createAccount('Private.Person@Example.com');
      await repos.audit.record({ actor: ADMIN_ACTOR, action: 'account.created', accountId: account.id });
      const { rows } = await sql<Record<string, unknown>>`select * from audit_log`.execute(database.db);
      expect(rows).toHaveLength(1);
      const text = JSON.stringify(rows).toLowerCase();
      expect(text).not.toContain('private.person');
      expect(text).not.toContain('example.com');
      expect(text).toContain(account.id.toLowerCase());
    });
  });

  describe.skipIf(target.skip)(`audit log through the admin API, the management API and the CLI (${target.name})`, () => {
    let mock: MockUpstream;
    let t: TestGateway;
    let repos: Repositories;
    let dir: string;
    let cli: CliContext & { out: string[]; err: string[] };

    beforeAll(async () => {
      mock = await startMockUpstream();
      mock.setDefault(openaiText());
      const db = await target.openUrl();
      dir = await mkdtemp(join(tmpdir(), 'mr-audit-'));
      t = await startTestGateway(
        {
          database: db.url,
          admin: { key: ADMIN_KEY },
          providers: [{ id: 'up', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-upstream' }],
          models: [{ id: 'test/chat', endpoints: [{ provider: 'up', model: 'gpt-4o-mini' }] }],
        },
        { onClose: db.drop },
      );
      repos = t.gw.repos;
      const out: string[] = [];
      const err: string[] = [];
      cli = { databaseUrl: db.url, dataDir: join(dir, 'data'), secret: TEST_SECRET, defaultBillingMode: 'track', stdout: (s) => out.push(s), stderr: (s) => err.push(s), out, err };
    });
    afterAll(async () => {
      await t?.close();
      await mock?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    async function call(method: string, path: string, token: string | undefined, body?: unknown) {
      const headers: Record<string, string> = {};
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${t.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const text = await res.text();
      return { status: res.status, json: text ? (JSON.parse(text) as any) : undefined };
    }
    const admin = (method: string, path: string, body?: unknown) => call(method, path, ADMIN_KEY, body);

    /** Runs `work` and returns the audit rows it added (sorted: see `sorted`). */
    async function added(work: () => Promise<unknown>): Promise<ReturnType<typeof brief>[]> {
      const before = new Set((await allEntries(repos)).map((e) => e.id));
      await work();
      return sorted((await allEntries(repos)).filter((e) => !before.has(e.id)).map(brief));
    }

    const row = (actor: { kind: string; id: string | null }, action: string, accountId: string, ids: { keyId?: string; ledgerId?: string } = {}) => ({
      actorKind: actor.kind,
      actorId: actor.id,
      action,
      accountId,
      keyId: ids.keyId ?? null,
      ledgerId: ids.ledgerId ?? null,
    });

    it('admin API: account created (with its billing mode), disabled, enabled, billing mode, credits, a key', async () => {
      const startedAt = Date.now();
      let accountId = '';
      expect(
        await added(async () => {
          const r = await admin('POST', '/admin/v1/accounts', { email: 'admin-made@example.com', billing_mode: 'credits' });
          expect(r.status).toBe(201);
          accountId = r.json.data.id;
        }),
      ).toEqual(sorted([row(ADMIN_ACTOR, 'account.created', accountId), row(ADMIN_ACTOR, 'account.billing_mode_changed', accountId)]));
      for (const e of await allEntries(repos, accountId)) {
        expect(e.at).toBeGreaterThanOrEqual(startedAt);
        expect(e.at).toBeLessThanOrEqual(Date.now());
      }

      expect(await added(() => admin('PATCH', `/admin/v1/accounts/${accountId}`, { disabled: true }))).toEqual([
        row(ADMIN_ACTOR, 'account.disabled', accountId),
      ]);
      // Already disabled, same mode: nothing changes, nothing is recorded.
      expect(await added(() => admin('PATCH', `/admin/v1/accounts/${accountId}`, { disabled: true, billing_mode: 'credits' }))).toEqual([]);
      expect(await added(() => admin('PATCH', `/admin/v1/accounts/${accountId}`, { disabled: false, billing_mode: null }))).toEqual(
        sorted([row(ADMIN_ACTOR, 'account.enabled', accountId), row(ADMIN_ACTOR, 'account.billing_mode_changed', accountId)]),
      );

      let topup = '';
      let adjustment = '';
      expect(
        await added(async () => {
          topup = (await admin('POST', `/admin/v1/accounts/${accountId}/credits`, { usd: 10, reason: 'invoice 7' })).json.data.id;
          adjustment = (await admin('POST', `/admin/v1/accounts/${accountId}/credits`, { usd: -2.5, reason: 'refund', kind: 'adjustment' })).json.data.id;
        }),
      ).toEqual(
        sorted([row(ADMIN_ACTOR, 'credits.added', accountId, { ledgerId: topup }), row(ADMIN_ACTOR, 'credits.adjusted', accountId, { ledgerId: adjustment })]),
      );
      expect(topup).toMatch(/^led_/);

      let keyId = '';
      expect(
        await added(async () => {
          const r = await admin('POST', `/admin/v1/accounts/${accountId}/keys`, { name: 'ops', kind: 'management' });
          expect(r.status).toBe(201);
          keyId = r.json.data.id;
        }),
      ).toEqual([row(ADMIN_ACTOR, 'key.created', accountId, { keyId })]);

      // Refused calls record nothing.
      expect(
        await added(async () => {
          expect((await admin('POST', '/admin/v1/accounts', { email: 'admin-made@example.com' })).status).toBe(409);
          expect((await admin('POST', '/admin/v1/accounts', { email: 'not an email' })).status).toBe(400);
          expect((await admin('PATCH', '/admin/v1/accounts/acc_nobody', { disabled: true })).status).toBe(404);
          expect((await admin('POST', '/admin/v1/accounts/acc_nobody/credits', { usd: 1, reason: 'x' })).status).toBe(404);
          expect((await admin('POST', `/admin/v1/accounts/${accountId}/credits`, { usd: 0, reason: 'x' })).status).toBe(400);
          expect((await admin('POST', `/admin/v1/accounts/${accountId}/keys`, { name: '' })).status).toBe(400);
          expect((await call('POST', '/admin/v1/accounts', 'wrong-admin-key', { email: 'x@example.com' })).status).toBe(401);
        }),
      ).toEqual([]);
    });

    it('management API: key created, updated, deleted, by the management key that did it', async () => {
      const account = await repos.accounts.createAccount('managed@example.com');
      const mgmtKey = generateApiKey();
      const mgmtId = generateKeyId();
      await repos.keys.insertKey({ id: mgmtId, accountId: account.id, kind: 'management', keyHash: hashApiKey(mgmtKey, TEST_SECRET), last4: last4(mgmtKey) });
      const actor = managementKeyActor(mgmtId);

      let keyId = '';
      expect(
        await added(async () => {
          const r = await call('POST', '/api/v1/keys', mgmtKey, { name: 'laptop', limit: 5, limit_reset: 'daily' });
          expect(r.status).toBe(201);
          keyId = r.json.data.id;
        }),
      ).toEqual([row(actor, 'key.created', account.id, { keyId })]);
      expect(await added(() => call('PATCH', `/api/v1/keys/${keyId}`, mgmtKey, { disabled: true, name: 'old laptop' }))).toEqual([
        row(actor, 'key.updated', account.id, { keyId }),
      ]);
      // An empty patch, a refused patch, an unknown key, an inference key: nothing recorded.
      const inferenceKey = generateApiKey();
      await repos.keys.insertKey({ id: generateKeyId(), accountId: account.id, keyHash: hashApiKey(inferenceKey, TEST_SECRET), last4: last4(inferenceKey) });
      expect(
        await added(async () => {
          expect((await call('PATCH', `/api/v1/keys/${keyId}`, mgmtKey, {})).status).toBe(200);
          expect((await call('PATCH', `/api/v1/keys/${keyId}`, mgmtKey, { limit: -1 })).status).toBe(400);
          expect((await call('PATCH', '/api/v1/keys/key_nothere', mgmtKey, { disabled: true })).status).toBe(404);
          expect((await call('DELETE', '/api/v1/keys/key_nothere', mgmtKey)).status).toBe(404);
          expect((await call('POST', '/api/v1/keys', inferenceKey, { name: 'x' })).status).toBe(403);
          expect((await call('POST', '/api/v1/keys', mgmtKey, { name: 'x', allowed_models: ['no/such-model'] })).status).toBe(400);
        }),
      ).toEqual([]);
      expect(await added(() => call('DELETE', `/api/v1/keys/${keyId}`, mgmtKey))).toEqual([row(actor, 'key.deleted', account.id, { keyId })]);
      // The row outlives the key.
      expect(await repos.keys.getKey(keyId)).toBeUndefined();
      expect((await allEntries(repos, account.id)).map((e) => e.action).sort()).toEqual(['key.created', 'key.deleted', 'key.updated']);
    });

    it('CLI: account created, disabled, enabled, billing mode, key created and revoked, credits added and adjusted', async () => {
      const email = 'cli-made@example.com';
      expect(await runAccounts(['create', '--email', email], cli)).toBe(0);
      const account = (await repos.accounts.findAccountByEmail(email))!;
      const rows = async () => sorted((await allEntries(repos, account.id)).map(brief));
      expect(await rows()).toEqual([row(CLI_ACTOR, 'account.created', account.id)]);

      expect(await runAccounts(['disable', '--email', email], cli)).toBe(0);
      expect(await runAccounts(['disable', '--email', email], cli)).toBe(0); // already disabled: no row
      expect(await runAccounts(['enable', '--email', email], cli)).toBe(0);
      expect(await runAccounts(['billing', '--email', email, '--mode', 'credits'], cli)).toBe(0);
      expect(await runAccounts(['billing', '--email', email, '--mode', 'credits'], cli)).toBe(0); // unchanged: no row
      expect(await runAccounts(['billing', '--email', email, '--mode', 'default'], cli)).toBe(0);
      cli.out.length = 0;
      expect(await runKeys(['create', '--email', email, '--name', 'ci'], cli)).toBe(0);
      const keyId = (await repos.keys.listKeys(account.id))[0]!.id;
      expect(await runKeys(['revoke', keyId], cli)).toBe(0);
      expect(await runKeys(['revoke', keyId], cli)).toBe(0); // already revoked: no row
      expect(await runCredits(['add', '--email', email, '--usd', '3', '--reason', 'PO 12'], cli)).toBe(0);
      expect(await runCredits(['add', '--email', email, '--usd=-1', '--adjustment'], cli)).toBe(0);
      // Refused commands: no row.
      expect(await runCredits(['add', '--email', email, '--usd', '0'], cli)).toBe(2);
      expect(await runAccounts(['create', '--email', email], cli)).toBe(1);
      expect(await runKeys(['revoke', 'key_nothere'], cli)).toBe(1);

      const ledger = await repos.ledger.entries(account.id, { limit: 10 });
      expect(ledger.map((e) => e.kind).sort()).toEqual(['adjustment', 'topup']);
      const topup = ledger.find((e) => e.kind === 'topup')!;
      const adjustment = ledger.find((e) => e.kind === 'adjustment')!;
      expect(await rows()).toEqual(sorted([
        row(CLI_ACTOR, 'account.created', account.id),
        row(CLI_ACTOR, 'account.disabled', account.id),
        row(CLI_ACTOR, 'account.enabled', account.id),
        row(CLI_ACTOR, 'account.billing_mode_changed', account.id),
        row(CLI_ACTOR, 'account.billing_mode_changed', account.id),
        row(CLI_ACTOR, 'key.created', account.id, { keyId }),
        row(CLI_ACTOR, 'key.revoked', account.id, { keyId }),
        row(CLI_ACTOR, 'credits.added', account.id, { ledgerId: topup.id }),
        row(CLI_ACTOR, 'credits.adjusted', account.id, { ledgerId: adjustment.id }),
      ]));
      // The raw key printed once is in no audit row, nor the email.
      const printedKey = cli.out.join('').trim().split('\n')[0]!;
      expect(printedKey).toMatch(/^mr_/);
      const dump = JSON.stringify(await allEntries(repos));
      expect(dump).not.toContain(printedKey);
      expect(dump).not.toContain(email);
    });

    it('a change whose audit row cannot be written is not made (the API answers 500); credits say they were applied', async () => {
      const funded = await repos.accounts.createAccount('funded@example.com');
      await sql`alter table audit_log rename to audit_log_away`.execute(t.gw.database.db);
      try {
        const r = await admin('POST', '/admin/v1/accounts', { email: 'unaudited@example.com' });
        expect(r.status).toBe(500);
        expect(await repos.accounts.findAccountByEmail('unaudited@example.com')).toBeUndefined();
        expect(await runAccounts(['create', '--email', 'unaudited@example.com'], cli)).toBe(1);
        expect(await repos.accounts.findAccountByEmail('unaudited@example.com')).toBeUndefined();
        expect((await admin('PATCH', `/admin/v1/accounts/${funded.id}`, { disabled: true })).status).toBe(500);
        expect((await repos.accounts.findAccountById(funded.id))!.disabled).toBe(false);

        // The ledger row commits on its own: the answer says it was applied, so nobody repeats it.
        const c = await admin('POST', `/admin/v1/accounts/${funded.id}/credits`, { usd: 2, reason: 'late audit' });
        expect(c.status).toBe(500);
        const [entry] = await repos.ledger.entries(funded.id, { limit: 1 });
        expect(entry).toMatchObject({ kind: 'topup', amountNano: 2_000_000_000 });
        expect(c.json.error.message).toContain(`applied (ledger entry ${entry!.id})`);
        expect(c.json.error.message).toContain('Do not repeat');
        cli.out.length = 0;
        cli.err.length = 0;
        expect(await runCredits(['add', '--email', 'funded@example.com', '--usd', '1'], cli)).toBe(1);
        expect(cli.out.join('')).toContain('added $1');
        expect(cli.err.join('')).toMatch(/the topup was applied \(ledger entry led_\w+\), but its audit-log row could not be written/);
        expect(await repos.ledger.balance(funded.id)).toBe(3_000_000_000);
      } finally {
        await sql`alter table audit_log_away rename to audit_log`.execute(t.gw.database.db);
      }
      expect((await admin('POST', '/admin/v1/accounts', { email: 'unaudited@example.com' })).status).toBe(201);
    });
  });
}
