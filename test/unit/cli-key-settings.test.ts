import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capturedCli, type CapturedCli } from '../helpers/cli.js';
import { hashApiKey, isWellFormedKey } from '../../src/auth/api-key.js';
import { KeyAuthenticator } from '../../src/auth/authenticator.js';
import { loadOrCreateSecret } from '../../src/auth/secret.js';
import { runAccounts } from '../../src/cli/accounts-command.js';
import { runKeys } from '../../src/cli/keys-command.js';
import { openDatabase } from '../../src/storage/database.js';
import { KeysRepo } from '../../src/storage/keys-repo.js';

describe('maxrouter keys create with settings', () => {
  let dir: string;
  let ctx: CapturedCli;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-cli-'));
    ctx = capturedCli({
      databaseUrl: `sqlite:${join(dir, 'db', 'maxrouter.db')}`,
      dataDir: join(dir, 'data'),
      models: new Set(['openai/gpt-4o-mini', 'anthropic/claude-haiku-4-5']),
    });
    await runAccounts(['create', '--email', 'dev@example.com'], ctx);
    ctx.reset();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const stdout = () => ctx.out.join('');
  const stderr = () => ctx.err.join('');

  it('stores kind, limit, reset, expiry and models; prints only the key', async () => {
    const argv = [
      'create',
      '--email',
      'dev@example.com',
      '--name',
      'ops',
      '--management',
      '--limit',
      '12.000000005',
      '--limit-reset',
      'weekly',
      '--expires',
      '2099-01-31T12:00:00Z',
      '--models',
      'openai/gpt-4o-mini, anthropic/claude-haiku-4-5,openai/gpt-4o-mini',
      '--rpm',
      '60',
      '--concurrency',
      '4',
    ];
    expect(await runKeys(argv, ctx)).toBe(0);
    expect(stdout()).toMatch(/^mr_[0-9A-Za-z]{49}\n$/);
    const key = stdout().trim();
    expect(isWellFormedKey(key)).toBe(true);
    expect(stderr()).toMatch(/^created management key key_\w{16} for dev@example\.com; it is shown only this once\n$/);
    const keyId = /(key_\w{16})/.exec(stderr())![1]!;

    const database = await openDatabase(ctx.databaseUrl);
    try {
      const stored = await new KeysRepo(database.db).getKey(keyId);
      expect(stored).toMatchObject({
        name: 'ops',
        kind: 'management',
        spendLimitNano: 12_000_000_005,
        limitReset: 'weekly',
        expiresAt: Date.UTC(2099, 0, 31, 12),
        allowedModels: ['openai/gpt-4o-mini', 'anthropic/claude-haiku-4-5'],
        disabled: false,
        rateLimits: { rpm: 60, tpm: null, concurrency: 4 },
      });
      const secret = await loadOrCreateSecret({ dataDir: ctx.dataDir });
      const authed = await new KeyAuthenticator(new KeysRepo(database.db), secret).authenticate(`Bearer ${key}`);
      expect(authed).toMatchObject({ keyId, kind: 'management', spendLimitNano: 12_000_000_005, limitReset: 'weekly' });
      expect(stderr()).not.toContain(hashApiKey(key, secret));
    } finally {
      await database.close();
    }
  });

  it('a date alone expires at midnight UTC; without flags the key is a plain inference key', async () => {
    expect(await runKeys(['create', '--email', 'dev@example.com', '--expires', '2099-06-01'], ctx)).toBe(0);
    const id1 = /(key_\w{16})/.exec(stderr())![1]!;
    ctx.reset();
    expect(await runKeys(['create', '--email', 'dev@example.com'], ctx)).toBe(0);
    const id2 = /(key_\w{16})/.exec(stderr())![1]!;
    const database = await openDatabase(ctx.databaseUrl);
    try {
      const repo = new KeysRepo(database.db);
      expect((await repo.getKey(id1))!.expiresAt).toBe(Date.UTC(2099, 5, 1));
      expect(await repo.getKey(id2)).toMatchObject({ kind: 'inference', spendLimitNano: null, limitReset: null, expiresAt: null, allowedModels: null });
    } finally {
      await database.close();
    }
  });

  it('bad settings are usage errors (exit 2): nothing on stdout, no key created', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--limit', 'ten'], /--limit must be an amount of USD/],
      [['--limit', '0.0000000001'], /--limit must be an amount of USD/],
      [['--limit=-1'], /--limit must be an amount of USD/],
      [['--limit', '5', '--limit-reset', 'hourly'], /--limit-reset must be 'daily', 'weekly' or 'monthly'/],
      [['--limit-reset', 'daily'], /--limit-reset needs --limit/],
      [['--expires', 'next week'], /--expires must be an ISO 8601 date/],
      [['--expires', '2020-01-01'], /--expires must be in the future/],
      [['--expires', '2099-01-01T00:00:00'], /--expires must be an ISO 8601 date/], // no offset: ambiguous
      [['--models', 'openai/gpt-4o-mini,nope/model'], /not in the configured catalog: nope\/model/],
      [['--models', 'openai/gpt-4o-mini,,'], /comma-separated list/],
      [['--management', 'yes'], /Unexpected argument 'yes'/],
      [['--rpm', '0'], /--rpm must be a positive integer/],
      [['--tpm', '1.5'], /--tpm must be a positive integer/],
    ];
    for (const [flags, message] of cases) {
      ctx.reset();
      expect(await runKeys(['create', '--email', 'dev@example.com', ...flags], ctx), flags.join(' ')).toBe(2);
      expect(stdout()).toBe('');
      expect(stderr()).toMatch(message);
      expect(stderr()).toContain('Usage:');
    }
    ctx.reset();
    await runKeys(['list', '--email', 'dev@example.com'], ctx);
    expect(stdout().trimEnd().split('\n')).toHaveLength(1); // the header: no key was created
  });

  it('without a known catalog, --models is not checked against one', async () => {
    delete ctx.models;
    expect(await runKeys(['create', '--email', 'dev@example.com', '--models', 'any/model'], ctx)).toBe(0);
  });
});
