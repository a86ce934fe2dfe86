import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAccounts } from '../../src/cli/accounts-command.js';
import { main } from '../../src/cli/main.js';
import { openDatabase } from '../../src/storage/database.js';
import { createRepositories } from '../../src/storage/repositories.js';
import { capturedCli, type CapturedCli } from '../helpers/cli.js';
import { DATABASES } from '../helpers/databases.js';

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`maxrouter accounts list / disable / enable / billing (${target.name})`, () => {
    let dir: string;
    let drop: () => Promise<void>;
    let ctx: CapturedCli;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mr-cli-'));
      const db = await target.openUrl();
      drop = db.drop;
      ctx = capturedCli({
        databaseUrl: db.url,
        dataDir: join(dir, 'data'),
        defaultBillingMode: 'track',
      });
    });
    afterEach(async () => {
      await drop();
      await rm(dir, { recursive: true, force: true });
    });

    const stdout = () => ctx.out.join('');
    const stderr = () => ctx.err.join('');

    async function account(email: string) {
      const database = await openDatabase(ctx.databaseUrl);
      try {
        return await createRepositories(database.db).accounts.findAccountByEmail(email);
      } finally {
        await database.close();
      }
    }

    it('list: header only and a hint when there are none; then one line per account', async () => {
      expect(await runAccounts(['list'], ctx)).toBe(0);
      expect(stdout()).toMatch(/^ID\s+EMAIL\s+CREATED\s+STATUS\s+BILLING\s+BALANCE\n$/);
      expect(stderr()).toContain('maxrouter accounts create --email EMAIL');

      await runAccounts(['create', '--email', 'ann@example.com'], ctx);
      await runAccounts(['create', '--email', 'bob@example.com'], ctx);
      ctx.reset();
      expect(await runAccounts(['list'], ctx)).toBe(0);
      const lines = stdout().trimEnd().split('\n');
      expect(lines).toHaveLength(3);
      expect(lines[1]).toMatch(/^acc_[0-9A-Za-z]{16}\s+ann@example\.com\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+active\s+default \(track\)\s+\$0$/);
      expect(lines[2]).toContain('bob@example.com');
    });

    it('disable and enable: the account state changes, twice is harmless, servers are told how soon it applies', async () => {
      await runAccounts(['create', '--email', 'ann@example.com'], ctx);
      ctx.reset();
      expect(await runAccounts(['disable', '--email', 'ANN@example.com'], ctx)).toBe(0);
      expect(stdout()).toMatch(/^disabled account acc_\w+ \(ann@example\.com\)\n$/);
      expect(stderr()).toContain('within 2 seconds');
      expect((await account('ann@example.com'))!.disabled).toBe(true);

      ctx.reset();
      expect(await runAccounts(['disable', '--email', 'ann@example.com'], ctx)).toBe(0);
      expect(stdout()).toContain('is already disabled');
      ctx.reset();
      await runAccounts(['list'], ctx);
      expect(stdout()).toMatch(/ann@example\.com\s+\S+ \S+\s+disabled/);

      ctx.reset();
      expect(await runAccounts(['enable', '--email', 'ann@example.com'], ctx)).toBe(0);
      expect(stdout()).toMatch(/^enabled account/);
      expect((await account('ann@example.com'))!.disabled).toBe(false);
    });

    it('billing sets credits, track or the default', async () => {
      await runAccounts(['create', '--email', 'ann@example.com'], ctx);
      ctx.reset();
      expect(await runAccounts(['billing', '--email', 'ann@example.com', '--mode', 'credits'], ctx)).toBe(0);
      expect(stdout()).toMatch(/billing mode: credits\n$/);
      expect((await account('ann@example.com'))!.billingMode).toBe('credits');
      ctx.reset();
      await runAccounts(['list'], ctx);
      expect(stdout()).toMatch(/active\s+credits\s+\$0/);

      ctx.reset();
      expect(await runAccounts(['billing', '--email', 'ann@example.com', '--mode', 'default'], ctx)).toBe(0);
      expect(stdout()).toMatch(/billing mode: default \(track\)\n$/);
      expect((await account('ann@example.com'))!.billingMode).toBeNull();
    });

    it('mistakes: usage errors exit 2 with usage; an unknown account exits 1 with the hint', async () => {
      for (const argv of [
        ['disable'],
        ['enable', '--email'],
        ['billing', '--email', 'a@b.co'],
        ['billing', '--email', 'a@b.co', '--mode', 'free'],
        ['list', 'extra'],
        ['list', '--all'],
      ]) {
        ctx.reset();
        expect(await runAccounts(argv, ctx), argv.join(' ')).toBe(2);
        expect(stderr()).toContain('Usage:');
        expect(stdout()).toBe('');
      }
      for (const argv of [
        ['disable', '--email', 'ghost@example.com'],
        ['billing', '--email', 'ghost@example.com', '--mode', 'track'],
      ]) {
        ctx.reset();
        expect(await runAccounts(argv, ctx)).toBe(1);
        expect(stderr()).toBe(
          'error: no account with email ghost@example.com; create it with: maxrouter accounts create --email ghost@example.com\n',
        );
      }
      ctx.reset();
      expect(await runAccounts(['--help'], ctx)).toBe(0);
      expect(stdout()).toContain('maxrouter accounts billing --email EMAIL --mode credits|track|default');
    });
  });
}

describe('maxrouter --help', () => {
  it('lists the account, credits and usage commands', async () => {
    const out: string[] = [];
    expect(await main(['--help'], { stdout: (s) => void out.push(s), stderr: () => {}, env: {} })).toBe(0);
    for (const cmd of ['accounts list', 'accounts disable|enable', 'accounts billing', 'credits add', 'credits show', 'usage report', '--management']) {
      expect(out.join('')).toContain(cmd);
    }
  });
});
