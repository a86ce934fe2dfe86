import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAccounts } from '../../src/cli/accounts-command.js';
import { runCredits } from '../../src/cli/credits-command.js';
import { openDatabase } from '../../src/storage/database.js';
import { createRepositories } from '../../src/storage/repositories.js';
import { capturedCli, type CapturedCli } from '../helpers/cli.js';
import { DATABASES } from '../helpers/databases.js';

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`maxrouter credits add / show (${target.name})`, () => {
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
      await runAccounts(['create', '--email', 'ann@example.com'], ctx);
      ctx.reset();
    });
    afterEach(async () => {
      await drop();
      await rm(dir, { recursive: true, force: true });
    });

    const stdout = () => ctx.out.join('');
    const stderr = () => ctx.err.join('');

    async function withRepos<T>(work: (repos: ReturnType<typeof createRepositories>) => Promise<T>): Promise<T> {
      const database = await openDatabase(ctx.databaseUrl);
      try {
        return await work(createRepositories(database.db));
      } finally {
        await database.close();
      }
    }

    it('add prints the new balance; --adjustment may remove credit; the ledger and balance agree', async () => {
      expect(await runCredits(['add', '--email', 'ann@example.com', '--usd', '12.5', '--reason', 'invoice 7'], ctx)).toBe(0);
      expect(stdout()).toBe('added $12.5 (topup); balance of ann@example.com: $12.5\n');
      // The account pays per the default ('track'): the operator is told.
      expect(stderr()).toContain('not billed from its credits');

      await runAccounts(['billing', '--email', 'ann@example.com', '--mode', 'credits'], ctx);
      ctx.reset();
      expect(await runCredits(['add', '--email', 'ann@example.com', '--usd=-2.500000001', '--adjustment'], ctx)).toBe(0);
      expect(stdout()).toBe('removed $2.500000001 (adjustment); balance of ann@example.com: $9.999999999\n');
      expect(stderr()).not.toContain('not billed');

      const { balance, entries } = await withRepos(async (r) => {
        const a = (await r.accounts.findAccountByEmail('ann@example.com'))!;
        return { balance: await r.ledger.balance(a.id), entries: await r.ledger.entries(a.id, { limit: 10 }) };
      });
      expect(balance).toBe(9_999_999_999);
      expect(entries.map((e) => [e.kind, e.amountNano, e.reason])).toEqual([
        ['adjustment', -2_500_000_001, 'adjustment'],
        ['topup', 12_500_000_000, 'invoice 7'],
      ]);
    });

    it('add refuses bad amounts and reasons with exit 2, writing nothing', async () => {
      for (const argv of [
        ['add', '--email', 'ann@example.com'],
        ['add', '--usd', '5'],
        ['add', '--email', 'ann@example.com', '--usd', 'five'],
        ['add', '--email', 'ann@example.com', '--usd', '0'],
        ['add', '--email', 'ann@example.com', '--usd', '0.0000000001'],
        ['add', '--email', 'ann@example.com', '--usd=-5'],
        ['add', '--email', 'ann@example.com', '--usd', '-5'],
        ['add', '--email', 'ann@example.com', '--usd', '5', '--reason', 'two\nlines'],
        ['add', '--email', 'ann@example.com', '--usd', '5', '--reason', ''],
        ['frobnicate'],
        [],
      ]) {
        ctx.reset();
        expect(await runCredits(argv, ctx), argv.join(' ')).toBe(2);
        expect(stderr()).toContain('Usage:');
        expect(stdout()).toBe('');
      }
      const balance = await withRepos(async (r) => r.ledger.balance((await r.accounts.findAccountByEmail('ann@example.com'))!.id));
      expect(balance).toBe(0);
      ctx.reset();
      expect(await runCredits(['add', '--email', 'ghost@example.com', '--usd', '1'], ctx)).toBe(1);
      expect(stderr()).toContain('no account with email ghost@example.com');
    });

    it('show: balance, net credits, usage, and the latest ledger entries', async () => {
      await runCredits(['add', '--email', 'ann@example.com', '--usd', '10', '--reason', 'first'], ctx);
      await runCredits(['add', '--email', 'ann@example.com', '--usd', '5', '--reason', 'second'], ctx);
      await runCredits(['add', '--email', 'ann@example.com', '--usd=-1', '--adjustment', '--reason', 'fix'], ctx);
      await withRepos(async (r) => {
        const a = (await r.accounts.findAccountByEmail('ann@example.com'))!;
        await r.usage.insertUsage([
          {
            id: 'gen-cli-1',
            keyId: 'key_x',
            accountId: a.id,
            model: 'm',
            provider: 'p',
            upstreamModel: 'u',
            promptTokens: 1,
            completionTokens: 1,
            cachedTokens: 0,
            cacheWriteTokens: 0,
            reasoningTokens: 0,
            status: 200,
            latencyMs: 1,
            streamed: false,
            createdAt: Date.now(),
            costNano: 250_000_000,
            costEstimated: false,
            charge: true,
          },
        ]);
      });
      ctx.reset();
      expect(await runCredits(['show', '--email', 'ann@example.com'], ctx)).toBe(0);
      const [head, table] = stdout().split('\n\n');
      expect(head).toMatch(/^account  acc_\w{16} ann@example\.com\nbilling  default \(track\)\nbalance  \$13\.75\ncredits  \$14\nusage    \$0\.25$/);
      const lines = table!.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^CREATED\s+KIND\s+USD\s+REASON$/);
      // Entries written in the same millisecond are ordered by id: compare as a set.
      expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(1).join('|')).sort()).toEqual(
        ['adjustment|-1|fix', 'charge|-0.25|generation', 'topup|10|first', 'topup|5|second'].sort(),
      );

      ctx.reset();
      expect(await runCredits(['show', '--email', 'ann@example.com', '--limit', '1'], ctx)).toBe(0);
      expect(stdout().split('\n\n')[1]!.trimEnd().split('\n')).toHaveLength(2);
      ctx.reset();
      expect(await runCredits(['show', '--email', 'ann@example.com', '--limit', '0'], ctx)).toBe(0);
      expect(stdout()).not.toContain('REASON');
      ctx.reset();
      expect(await runCredits(['show', '--email', 'ann@example.com', '--limit', 'all'], ctx)).toBe(2);
    });
  });
}
