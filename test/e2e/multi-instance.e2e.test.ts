/**
 * Two gateway processes on different ports over the same PostgreSQL and Redis, with the load
 * split between them: a rate limit of N admits N in all, credits admit exactly what the account
 * can pay for, a key disabled through one instance is refused by the other within 2 seconds, and
 * every usage row is written once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openDatabase } from '../../src/storage/database.js';
import { createRepositories } from '../../src/storage/repositories.js';
import { openaiText } from '../fixtures/openai.js';
import { DATABASES, TEST_POSTGRES_URL } from '../helpers/databases.js';
import { eventually } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { TEST_REDIS_URL } from '../limits/helpers.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const postgres = DATABASES.find((d) => d.name === 'postgres')!;

interface Instance {
  url: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

async function cli(argv: string[], config: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main([...argv, '--config', config], { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), env: {} });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function startInstance(config: string): Promise<Instance> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', `import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(['serve', '--config', ${JSON.stringify(config)}]); })`],
    { cwd: root, env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return (async () => {
    let url = '';
    await eventually(() => {
      const m = /"url":"(http:\/\/[^"]+)"/.exec(output);
      expect(m, output).toBeTruthy();
      url = m![1]!;
    }, 20_000);
    return { url, child, output: () => output, exited };
  })();
}

describe.skipIf(!TEST_POSTGRES_URL || !TEST_REDIS_URL)('two gateway instances over one PostgreSQL and one Redis', () => {
  let dir: string;
  let config: string;
  let drop: () => Promise<void>;
  let dbUrl: string;
  let mock: MockUpstream;
  let a: Instance;
  let b: Instance;
  const provider = `up-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-multi-'));
    const db = await postgres.openUrl();
    drop = db.drop;
    dbUrl = db.url;
    mock = await startMockUpstream();
    // Every answer: 3 prompt + 1 000 completion tokens at $1/M output = 1 000 000 nano-USD, which
    // is also the worst case of a request with max_tokens 1 000 (input is free).
    const reply = openaiText();
    const json = reply.json as Record<string, any>;
    json.usage = { ...json.usage, prompt_tokens: 3, completion_tokens: 1000, total_tokens: 1003 };
    mock.setDefault({ ...reply, delayMs: 100 });
    config = join(dir, 'maxrouter.yaml');
    await writeFile(
      config,
      `listen: { host: 127.0.0.1, port: 0 }
database: ${JSON.stringify(dbUrl)}
dataDir: ${JSON.stringify(join(dir, 'data'))}
secret: multi-instance-test-secret-0123456789abcdef
redis: ${TEST_REDIS_URL}
log: { level: info }
billing: { mode: credits, refreshMs: 60000 }
limits: { key: { rpm: 10 } }
retries: { attemptsPerEndpoint: 1 }
providers:
  - { id: ${provider}, type: openai, baseUrl: "${mock.url}/v1", apiKey: sk-up }
models:
  - id: test/chat
    endpoints: [{ provider: ${provider}, model: gpt-4o-mini, pricing: { input: 0, output: 1 } }]
`,
    );
    expect((await cli(['migrate'], config)).code).toBe(0);
    [a, b] = await Promise.all([startInstance(config), startInstance(config)]);
  }, 60_000);

  afterAll(async () => {
    for (const i of [a, b]) i?.child.kill('SIGTERM');
    await Promise.all([a?.exited, b?.exited]);
    await mock?.close();
    await drop?.();
    await rm(dir, { recursive: true, force: true });
  }, 30_000);

  async function account(email: string, usd?: number, mode?: 'track' | 'credits', keyFlags: string[] = []): Promise<string> {
    expect((await cli(['accounts', 'create', '--email', email], config)).code).toBe(0);
    if (mode) expect((await cli(['accounts', 'billing', '--email', email, '--mode', mode], config)).code).toBe(0);
    if (usd !== undefined) expect((await cli(['credits', 'add', '--email', email, '--usd', String(usd), '--reason', 'test'], config)).code).toBe(0);
    const created = await cli(['keys', 'create', '--email', email, ...keyFlags], config);
    expect(created.code, created.stderr).toBe(0);
    return created.stdout.trim();
  }
  const client = (i: Instance, key: string) => new OpenAI({ apiKey: key, baseURL: `${i.url}/v1`, maxRetries: 0, timeout: 20_000 });
  const ask = (c: OpenAI) => c.chat.completions.create({ model: 'test/chat', max_tokens: 1000, messages: [{ role: 'user', content: 'hi' }] });

  it('a key limit of 10 requests per minute admits exactly 10 across both instances', async () => {
    const key = await account('rpm@example.com', undefined, 'track');
    const clients = [client(a, key), client(b, key)];
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => ask(clients[i % 2]!)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as { status?: number });
    expect(refused.every((e) => e.status === 429)).toBe(true);
  }, 60_000);

  it('credits for 10 requests: 50 concurrent requests split over both instances, exactly 10 served and charged', async () => {
    // Its own rate limit is far above the deployment's 10 per minute: only credits bind here.
    const key = await account('credits@example.com', 0.01, undefined, ['--rpm', '1000']);
    const clients = [client(a, key), client(b, key)];
    const before = mock.requests.length;
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => ask(clients[i % 2]!)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(ok).toBe(10);
    expect(mock.requests.length - before).toBe(10);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { status?: number }).status).toBe(402);

    const database = await openDatabase(dbUrl);
    try {
      const repos = createRepositories(database.db);
      const acc = (await repos.accounts.findAccountByEmail('credits@example.com'))!;
      await eventually(async () => {
        expect(await repos.ledger.balance(acc.id)).toBe(0);
        expect(await repos.ledger.sumLedger(acc.id)).toBe(0);
        const rows = (await repos.usage.listUsage(acc.id)).filter((r) => r.status === 200);
        expect(rows).toHaveLength(10);
      }, 5_000);
    } finally {
      await database.close();
    }
  }, 60_000);

  it('a key disabled through one instance is refused by the other within 2 seconds', async () => {
    const key = await account('revoke@example.com', undefined, 'track');
    const mgmt = await cli(['keys', 'create', '--email', 'revoke@example.com', '--management'], config);
    const mgmtKey = mgmt.stdout.trim();
    await ask(client(b, key)); // B has the key cached now
    const list = (await fetch(`${a.url}/api/v1/keys`, { headers: { authorization: `Bearer ${mgmtKey}` } }).then((r) => r.json())) as {
      data: Array<{ id: string; kind: string }>;
    };
    const id = list.data.find((k) => k.kind === 'inference')!.id;
    const patched = await fetch(`${a.url}/api/v1/keys/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${mgmtKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ disabled: true }),
    });
    expect(patched.status).toBe(200);
    const disabledAt = Date.now();
    await eventually(async () => {
      const e = await ask(client(b, key)).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((e as { status?: number } | undefined)?.status).toBe(401);
    }, 2_500);
    expect(Date.now() - disabledAt).toBeLessThan(2_500);
  }, 30_000);

  it('usage rows: one per request served, whichever instance served it', async () => {
    const key = await account('usage@example.com', undefined, 'track', ['--rpm', '1000']);
    const clients = [client(a, key), client(b, key)];
    for (let i = 0; i < 8; i++) await ask(clients[i % 2]!);
    const database = await openDatabase(dbUrl);
    try {
      const repos = createRepositories(database.db);
      const acc = (await repos.accounts.findAccountByEmail('usage@example.com'))!;
      await eventually(async () => {
        const rows = await repos.usage.listUsage(acc.id);
        expect(rows).toHaveLength(8);
        expect(new Set(rows.map((r) => r.id)).size).toBe(8);
      }, 5_000);
    } finally {
      await database.close();
    }
  }, 30_000);
});
