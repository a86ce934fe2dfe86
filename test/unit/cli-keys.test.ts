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
import { runMigrate } from '../../src/cli/migrate-command.js';
import { openDatabase } from '../../src/storage/database.js';
import { KeysRepo } from '../../src/storage/keys-repo.js';
import { MIGRATIONS } from '../../src/storage/migrations.js';

describe('maxrouter accounts / keys / migrate', () => {
  let dir: string;
  let ctx: CapturedCli;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-cli-'));
    ctx = capturedCli({
      databaseUrl: `sqlite:${join(dir, 'db', 'maxrouter.db')}`,
      dataDir: join(dir, 'data'),
    });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const stdout = () => ctx.out.join('');
  const stderr = () => ctx.err.join('');

  it('migrate applies once, then reports up to date', async () => {
    const names = Object.keys(MIGRATIONS).sort();
    expect(names[0]).toBe('0001_initial');
    expect(await runMigrate([], ctx)).toBe(0);
    expect(stdout()).toBe(names.map((n) => `applied ${n}\n`).join(''));
    ctx.reset();
    expect(await runMigrate([], ctx)).toBe(0);
    expect(stdout()).toBe('database is up to date\n');
    ctx.reset();
    expect(await runMigrate(['--status'], ctx)).toBe(0);
    expect(stdout()).toBe(names.map((n) => `applied  ${n}\n`).join(''));
    ctx.reset();
    expect(await runMigrate(['--bogus'], ctx)).toBe(2);
    expect(stderr()).toMatch(/Unknown option '--bogus'[\s\S]*Usage:/);
  });

  it('accounts create prints the id and the email; duplicates fail', async () => {
    expect(await runAccounts(['create', '--email', 'Ann@Example.com'], ctx)).toBe(0);
    expect(stdout()).toMatch(/^acc_[0-9A-Za-z]{16} ann@example\.com\n$/);
    ctx.reset();
    expect(await runAccounts(['create', '--email', 'ann@example.com'], ctx)).toBe(1);
    expect(stderr()).toContain('already exists');
    ctx.reset();
    expect(await runAccounts(['create', '--email', 'nope'], ctx)).toBe(1);
    expect(stderr()).toContain('not a valid email');
  });

  it('usage errors exit 2 with usage on stderr', async () => {
    for (const argv of [[], ['frobnicate'], ['create'], ['create', '--email', 'a@b.co', '--color']]) {
      ctx.reset();
      expect(await runAccounts(argv, ctx), argv.join(' ')).toBe(2);
      expect(stderr()).toContain('Usage:');
      expect(stdout()).toBe('');
    }
    for (const argv of [[], ['create', '--email'], ['list'], ['revoke'], ['revoke', 'a', 'b'], ['list', '--email', 'a@b.co', '-x']]) {
      ctx.reset();
      expect(await runKeys(argv, ctx), argv.join(' ')).toBe(2);
      expect(stderr()).toContain('Usage:');
      expect(stdout()).toBe('');
    }
    ctx.reset();
    expect(await runKeys(['--help'], ctx)).toBe(0);
    expect(stdout()).toContain('maxrouter keys create');
  });

  it('keys create needs an existing account', async () => {
    expect(await runKeys(['create', '--email', 'ghost@example.com'], ctx)).toBe(1);
    expect(stdout()).toBe('');
    expect(stderr()).toBe(
      'error: no account with email ghost@example.com; create it with: maxrouter accounts create --email ghost@example.com\n',
    );
  });

  it('keys create prints only the key; list never shows key or hash; revoke works', async () => {
    await runAccounts(['create', '--email', 'dev@example.com'], ctx);
    ctx.reset();

    expect(await runKeys(['create', '--email', 'DEV@example.com', '--name', 'ci runner'], ctx)).toBe(0);
    const out = stdout();
    expect(out).toMatch(/^mr_[0-9A-Za-z]{49}\n$/);
    const key = out.trim();
    expect(isWellFormedKey(key)).toBe(true);
    const keyId = /created key (key_[0-9A-Za-z]{16})/.exec(stderr())![1]!;

    // The key authenticates against the stored hash (secret created in the data dir).
    const secret = await loadOrCreateSecret({ dataDir: ctx.dataDir });
    const database = await openDatabase(ctx.databaseUrl);
    try {
      const auth = new KeyAuthenticator(new KeysRepo(database.db), secret);
      expect(await auth.authenticate(`Bearer ${key}`)).toMatchObject({ keyId });
    } finally {
      await database.close();
    }
    const hash = hashApiKey(key, secret);

    ctx.reset();
    expect(await runKeys(['create', '--email', 'dev@example.com'], ctx)).toBe(0);
    const key2 = stdout().trim();

    ctx.reset();
    expect(await runKeys(['list', '--email', 'dev@example.com'], ctx)).toBe(0);
    const listing = stdout();
    const lines = listing.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+KEY\s+CREATED\s+REVOKED$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain(keyId);
    expect(lines[1]).toContain('ci runner');
    expect(lines[1]).toContain(`mr_…${key.slice(-4)}`);
    expect(lines[1]).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+-$/);
    for (const secretText of [key, key2, hash, key.slice(3, 20), hashApiKey(key2, secret)]) {
      expect(listing).not.toContain(secretText);
      expect(stderr()).not.toContain(secretText);
    }

    ctx.reset();
    expect(await runKeys(['revoke', keyId], ctx)).toBe(0);
    expect(stdout()).toBe(`revoked key ${keyId}\n`);
    // The note matches the servers' key cache (2 s), which other processes learn the revoke by.
    expect(ctx.err.join('')).toContain('running servers reject it within 2 seconds');
    ctx.reset();
    expect(await runKeys(['revoke', keyId], ctx)).toBe(0);
    expect(stdout()).toContain('already revoked');
    ctx.reset();
    expect(await runKeys(['revoke', 'key_doesnotexist000'], ctx)).toBe(1);
    expect(stderr()).toContain('no key with id key_doesnotexist000');

    ctx.reset();
    await runKeys(['list', '--email', 'dev@example.com'], ctx);
    const revokedLine = stdout().split('\n').find((l) => l.startsWith(keyId))!;
    expect(revokedLine).toMatch(/Z\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  });

  it('keys list for an unknown account fails with the same hint', async () => {
    expect(await runKeys(['list', '--email', 'who@example.com'], ctx)).toBe(1);
    expect(stderr()).toContain('maxrouter accounts create --email who@example.com');
  });

  it('an unsupported database URL is a clear error, exit 1', async () => {
    ctx.databaseUrl = 'mysql://root:hunter2@db/x';
    expect(await runMigrate([], ctx)).toBe(1);
    expect(stderr()).toContain("Unsupported database URL scheme 'mysql:'");
    expect(stderr()).not.toContain('hunter2');
  });
});
