/**
 * The real gateway, from the COMPILED output (`npm run bench` builds first): temp SQLite
 * database, the logger's default destination (stdout, which the parent points at a file; the
 * access log stays on at level `info`), one provider of type `openai` pointing at the bench
 * upstream, one model `bench/model`, one account and key.
 *
 *   node --import tsx bench/gateway-server.ts <upstream-url> [log-level]  3>control-pipe
 *
 * Reports `{"ready":true,"url":…,"apiKey":…}` on fd 3. On stop it flushes the usage writer and
 * reports `{"stopped":true,"usageRows":…}` before exiting.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import { announce, report, stopOnParentExit } from './child.js';
import { GATEWAY_MODEL, UPSTREAM_MODEL } from './payloads.js';

type StartModule = typeof import('../src/server/start.js');
type ConfigModule = typeof import('../src/config/load-config.js');
type ApiKeyModule = typeof import('../src/auth/api-key.js');

const dist = new URL('../dist/', import.meta.url);
async function load<T>(path: string): Promise<T> {
  return (await import(pathToFileURL(new URL(path, dist).pathname).href)) as T;
}

const upstream = process.argv[2];
const level = process.argv[3] ?? 'info';
if (!upstream) throw new Error('usage: gateway-server.ts <upstream-url> [log-level]');

const SECRET = 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz';

const { startGateway } = await load<StartModule>('server/start.js');
const { validateConfig } = await load<ConfigModule>('config/load-config.js');
const { generateApiKey, generateKeyId, hashApiKey, last4 } = await load<ApiKeyModule>('auth/api-key.js');

const dir = await mkdtemp(join(tmpdir(), 'mr-bench-'));
const { config, problems } = validateConfig({
  listen: { host: '127.0.0.1', port: 0 },
  database: `sqlite:${join(dir, 'maxrouter.db')}`,
  dataDir: dir,
  secret: SECRET,
  log: { level },
  providers: [{ id: 'bench-upstream', type: 'openai', baseUrl: `${upstream}/v1`, apiKey: 'sk-bench-upstream' }],
  models: [
    {
      id: GATEWAY_MODEL,
      contextLength: 128_000,
      endpoints: [{ provider: 'bench-upstream', model: UPSTREAM_MODEL, pricing: { input: 0.15, output: 0.6 } }],
    },
  ],
});
if (!config) throw new Error(`bad bench config: ${JSON.stringify(problems)}`);

// No logDestination: the gateway logs where `maxrouter serve` logs, with the same buffering.
const gw = await startGateway(config);
const account = await gw.repos.accounts.createAccount('bench@example.com');
const apiKey = generateApiKey();
await gw.repos.keys.insertKey({ id: generateKeyId(), accountId: account.id, keyHash: hashApiKey(apiKey, SECRET), last4: last4(apiKey) });

announce({ url: gw.url, apiKey, level });

stopOnParentExit(async () => {
  await gw.usageWriter.flush();
  const { rows } = await sql<{ n: number }>`select count(*) as n from usage`.execute(gw.database.db);
  await gw.stop(); // flushes the log buffer too
  if (!process.env.BENCH_KEEP_TMP) await rm(dir, { recursive: true, force: true });
  report({ stopped: true, usageRows: Number(rows[0]?.n ?? 0) });
});
