import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAccounts } from '../../src/cli/accounts-command.js';
import { runUsage } from '../../src/cli/usage-command.js';
import { openDatabase } from '../../src/storage/database.js';
import { createRepositories } from '../../src/storage/repositories.js';
import type { UsageRecord } from '../../src/storage/usage-repo.js';
import { capturedCli, type CapturedCli } from '../helpers/cli.js';
import { DATABASES } from '../helpers/databases.js';

const HEADER = 'date,account_id,key_id,model,requests,tokens_prompt,tokens_completion,tokens_cached,tokens_reasoning,cost_usd\n';

function row(id: string, accountId: string, createdAt: number, model: string, costNano: number): UsageRecord {
  return {
    id,
    keyId: 'key_x',
    accountId,
    model,
    provider: 'p',
    upstreamModel: 'u',
    promptTokens: 100,
    completionTokens: 20,
    cachedTokens: 10,
    cacheWriteTokens: 0,
    reasoningTokens: 5,
    status: 200,
    latencyMs: 1,
    streamed: false,
    createdAt,
    costNano,
    costEstimated: false,
    charge: false,
  };
}

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`maxrouter usage report (${target.name})`, () => {
    let dir: string;
    let drop: () => Promise<void>;
    let ctx: CapturedCli;
    let ann: string;
    let bob: string;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mr-cli-'));
      const db = await target.openUrl();
      drop = db.drop;
      ctx = capturedCli({
        databaseUrl: db.url,
        dataDir: join(dir, 'data'),
      });
      await runAccounts(['create', '--email', 'ann@example.com'], ctx);
      await runAccounts(['create', '--email', 'bob@example.com'], ctx);
      ctx.reset();
      const database = await openDatabase(ctx.databaseUrl);
      try {
        const repos = createRepositories(database.db);
        ann = (await repos.accounts.findAccountByEmail('ann@example.com'))!.id;
        bob = (await repos.accounts.findAccountByEmail('bob@example.com'))!.id;
        const d1 = Date.UTC(2025, 0, 31);
        await repos.usage.insertUsage([
          row('g1', ann, d1, 'openai/gpt-4o-mini', 1_500),
          row('g2', ann, d1 + 86_399_999, 'openai/gpt-4o-mini', 500),
          row('g3', bob, d1 + 86_400_000, 'anthropic/claude-haiku-4-5', 2_000_000_000),
          row('g4', bob, d1 - 1, 'openai/gpt-4o-mini', 9), // 2025-01-30: before the range
        ]);
      } finally {
        await database.close();
      }
    });
    afterEach(async () => {
      await drop();
      await rm(dir, { recursive: true, force: true });
    });

    const stdout = () => ctx.out.join('');
    const stderr = () => ctx.err.join('');

    it('csv: the header line, then one line per account, UTC day and model; costs exact', async () => {
      expect(await runUsage(['report', '--from', '2025-01-31', '--to', '2025-02-01', '--format', 'csv'], ctx)).toBe(0);
      expect(stdout()).toBe(
        HEADER +
          `2025-01-31,${ann},key_x,openai/gpt-4o-mini,2,200,40,20,10,0.000002\n` +
          `2025-02-01,${bob},key_x,anthropic/claude-haiku-4-5,1,100,20,10,5,2\n`,
      );
      ctx.reset();
      expect(await runUsage(['report', '--email', 'bob@example.com', '--from', '2025-01-01', '--to', '2025-01-31', '--format', 'csv'], ctx)).toBe(0);
      expect(stdout()).toBe(HEADER + `2025-01-30,${bob},key_x,openai/gpt-4o-mini,1,100,20,10,5,0.000000009\n`);
    });

    it('json: the admin API shape', async () => {
      expect(await runUsage(['report', '--email', 'ann@example.com', '--from', '2025-01-01', '--to', '2025-12-31', '--format', 'json'], ctx)).toBe(0);
      expect(JSON.parse(stdout())).toEqual({
        data: [
          {
            date: '2025-01-31',
            account_id: ann,
            key_id: 'key_x',
            model: 'openai/gpt-4o-mini',
            requests: 2,
            tokens_prompt: 200,
            tokens_completion: 40,
            tokens_cached: 20,
            tokens_reasoning: 10,
            cost: 0.000002,
          },
        ],
      });
    });

    it('table (default): accounts by email', async () => {
      expect(await runUsage(['report', '--from', '2025-01-31', '--to', '2025-02-01'], ctx)).toBe(0);
      const lines = stdout().trimEnd().split('\n');
      expect(lines[0]).toMatch(/^DATE\s+ACCOUNT\s+KEY\s+MODEL\s+REQUESTS\s+PROMPT\s+COMPLETION\s+CACHED\s+REASONING\s+USD$/);
      expect(lines[1]).toMatch(/^2025-01-31\s+ann@example\.com\s+key_x\s+openai\/gpt-4o-mini\s+2\s+200\s+40\s+20\s+10\s+0\.000002$/);
      expect(lines[2]).toMatch(/^2025-02-01\s+bob@example\.com\s+key_x\s+anthropic\/claude-haiku-4-5\s+1\s+100\s+20\s+10\s+5\s+2$/);
      ctx.reset();
      expect(await runUsage(['report', '--from', '2020-01-01', '--to', '2020-01-01'], ctx)).toBe(0);
      expect(stderr()).toBe('no usage from 2020-01-01 to 2020-01-01\n');
    });

    it('mistakes: exit 2 with usage; an unknown account exits 1', async () => {
      for (const argv of [
        [],
        ['summary'],
        ['report', '--to', '2025-01-01'],
        ['report', '--from', '2025-01-01'],
        ['report', '--from', '2025-02-30', '--to', '2025-03-01'],
        ['report', '--from', '01/02/2025', '--to', '2025-03-01'],
        ['report', '--from', '2025-03-02', '--to', '2025-03-01'],
        ['report', '--from', '2025-03-01', '--to', '2025-03-01', '--format', 'xml'],
      ]) {
        ctx.reset();
        expect(await runUsage(argv, ctx), argv.join(' ')).toBe(2);
        expect(stderr()).toContain('Usage:');
        expect(stdout()).toBe('');
      }
      ctx.reset();
      await runUsage(['report', '--from', '2025-03-02', '--to', '2025-03-01'], ctx);
      expect(stderr()).toMatch(/^error: --to must not be before --from\n/);
      ctx.reset();
      expect(await runUsage(['report', '--email', 'ghost@example.com', '--from', '2025-01-01', '--to', '2025-01-02'], ctx)).toBe(1);
      expect(stderr()).toContain('no account with email ghost@example.com');
    });
  });
}
