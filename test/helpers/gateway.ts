/**
 * Starts a real gateway (listening on a free port) over a temp SQLite file, with one account
 * and one API key, for end-to-end tests driven by the official `openai` SDK.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { generateApiKey, generateKeyId, hashApiKey, last4 } from '../../src/auth/api-key.js';
import { validateConfig } from '../../src/config/load-config.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startGateway, type RunningGateway } from '../../src/server/start.js';

export const TEST_SECRET = 'test-secret-0123456789abcdefghijklmnopqrstuvwxyz';

export interface TestGateway {
  gw: RunningGateway;
  url: string;
  apiKey: string;
  accountId: string;
  keyId: string;
  client: OpenAI;
  /** Everything the gateway logged. */
  logs: string[];
  /** Usage rows written so far (flushes the writer first). */
  usage(): Promise<Awaited<ReturnType<RunningGateway['repos']['usage']['listUsage']>>>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** The gateway's clock (key expiry, spend windows, usage times). */
  now?: () => number;
  /** Runs after the gateway stopped (e.g. to drop a test database). */
  onClose?: () => Promise<void>;
}

export async function startTestGateway(
  cfg: Pick<ConfigInput, 'providers' | 'models'> & Partial<ConfigInput>,
  opts: TestGatewayOptions = {},
): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'mr-e2e-'));
  const { config, problems } = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    database: `sqlite:${join(dir, 'maxrouter.db')}`,
    dataDir: dir,
    secret: TEST_SECRET,
    log: { level: 'info' },
    // Tests of one behaviour at a time: no retry of a failed upstream call and no breaker, unless
    // a test asks for them (the fault matrix does).
    retries: { attemptsPerEndpoint: 1 },
    circuitBreaker: { failureThreshold: 1000 },
    ...cfg,
  });
  if (!config) throw new Error(`bad test config: ${JSON.stringify(problems)}`);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const gw = await startGateway(config, { logDestination: sink, ...(opts.now ? { now: opts.now } : {}) });
  const account = await gw.repos.accounts.createAccount('e2e@example.com');
  const apiKey = generateApiKey();
  const keyId = generateKeyId();
  await gw.repos.keys.insertKey({ id: keyId, accountId: account.id, keyHash: hashApiKey(apiKey, TEST_SECRET), last4: last4(apiKey) });
  const client = new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
  return {
    gw,
    url: gw.url,
    apiKey,
    accountId: account.id,
    keyId,
    client,
    logs,
    async usage() {
      await gw.usageWriter.flush();
      return gw.repos.usage.listUsage(account.id);
    },
    async close() {
      await gw.stop();
      await rm(dir, { recursive: true, force: true });
      await opts.onClose?.();
    },
  };
}

/** Waits until `check` passes or the time runs out (for effects that land asynchronously). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
