/**
 * The README flow as a user runs it: a config file, `maxrouter accounts create`, `keys create`
 * (key alone on stdout), `maxrouter serve`, a call with the openai SDK, then SIGTERM — the
 * process exits 0 after flushing the usage row.
 */
import { spawn } from 'node:child_process';
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
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { eventually } from '../helpers/gateway.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');

async function run(argv: string[], env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), env });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('maxrouter serve', () => {
  let dir: string;
  let mock: MockUpstream;
  let config: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-cli-'));
    mock = await startMockUpstream();
    config = join(dir, 'maxrouter.yaml');
    await writeFile(
      config,
      `listen: { host: 127.0.0.1, port: 0 }
database: sqlite:${join(dir, 'data', 'maxrouter.db')}
dataDir: ${join(dir, 'data')}
providers:
  - id: local
    type: openai-compatible
    baseUrl: \${LOCAL_URL}/v1
    apiKey: \${LOCAL_KEY}
models:
  - id: local/llama
    endpoints: [{ provider: local, model: llama3 }]
`,
    );
  });
  afterAll(async () => {
    await mock.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates an account and a key, serves requests and shuts down cleanly on SIGTERM', async () => {
    const env = { LOCAL_URL: mock.url, LOCAL_KEY: 'sk-local' };
    expect((await run(['accounts', 'create', '--email', 'Dev@Example.com', '--config', config], env)).code).toBe(0);
    const created = await run(['keys', 'create', '--email', 'dev@example.com', '--name', 'laptop', '--config', config], env);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(created.stdout).toBe(`${key}\n`);
    expect(key).toMatch(/^mr_[0-9A-Za-z]{49}$/);

    const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(['serve', '--config', ${JSON.stringify(config)}]); })`], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      let url = '';
      await eventually(() => {
        const m = /"url":"(http:\/\/[^"]+)"/.exec(stdout);
        expect(m, stderr).toBeTruthy();
        url = m![1]!;
      }, 15_000);

      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
      mock.enqueue(openaiText({ text: 'served' }));
      const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
      const res = await client.chat.completions.create({ model: 'local/llama', messages: [{ role: 'user', content: 'secret prompt text' }] });
      expect(res.choices[0]!.message.content).toBe('served');
      expect(mock.requests[0]!.headers.authorization).toBe('Bearer sk-local');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout + stderr).not.toContain('secret prompt text');
    expect(stdout + stderr).not.toContain(key);

    const database = await openDatabase(`sqlite:${join(dir, 'data', 'maxrouter.db')}`);
    try {
      const repos = createRepositories(database.db);
      const account = await repos.accounts.findAccountByEmail('dev@example.com');
      const rows = await repos.usage.listUsage(account!.id);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ model: 'local/llama', provider: 'local', upstreamModel: 'llama3', promptTokens: 12, status: 200 });
    } finally {
      await database.close();
    }

    const listed = await run(['keys', 'list', '--email', 'dev@example.com', '--config', config], env);
    expect(listed.stdout).toContain('laptop');
    expect(listed.stdout).not.toContain(key);
  }, 40_000);
});
