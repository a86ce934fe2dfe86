/**
 * Graceful shutdown of `maxrouter serve`, as an orchestrator drives it: SIGTERM while streams
 * are running. The process is the CLI's own `main()` (what bin/maxrouter.js calls, run from the
 * sources so the test never exercises a stale build), with a slow mock upstream.
 *
 * - Streams in flight finish with their final chunk and `[DONE]`; new requests are refused;
 *   the process exits 0 and the usage rows are in the database.
 * - A stream longer than `shutdown.graceMs` is ended at the deadline with an OpenAI-shaped error
 *   event after complete frames, and its (estimated) usage is still written.
 * - A second SIGTERM while draining exits at once with 143, after writing the usage it can.
 * - In process: a request still waiting for its provider at the deadline gets a 503.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openDatabase } from '../../src/storage/database.js';
import { createRepositories } from '../../src/storage/repositories.js';
import { openaiTextStream } from '../fixtures/openai.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');

async function run(argv: string[], env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const code = await main(argv, { stdout: (s) => void out.push(s), stderr: () => undefined, env });
  return { code, stdout: out.join('') };
}

interface Served {
  child: ChildProcessWithoutNullStreams;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  /** Sends SIGTERM, once (a second one would mean "exit now"). */
  terminate: () => void;
}

/** `maxrouter serve --config FILE` in a child process; resolves once it listens. */
async function serve(config: string, env: NodeJS.ProcessEnv): Promise<Served> {
  const script = `import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(['serve', '--config', ${JSON.stringify(config)}]); })`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, env: { ...process.env, ...env }, stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let url = '';
  await eventually(() => {
    const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
    expect(m, out).toBeTruthy();
    url = m![1]!;
  }, 15_000);
  let signalled = false;
  const terminate = () => {
    if (signalled) return;
    signalled = true;
    child.kill('SIGTERM');
  };
  return { child, url, output: () => out, exited, terminate };
}

/**
 * An SDK client whose fetch keeps a copy of each raw response body, to check the wire format
 * (`data: [DONE]`, whole frames) under what the SDK parses.
 */
function tappedClient(apiKey: string, baseURL: string) {
  const raw: Promise<string>[] = [];
  const client = new OpenAI({
    apiKey,
    baseURL,
    maxRetries: 0,
    timeout: 20_000,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      if (!res.body) return res;
      const [forSdk, forTest] = res.body.tee();
      raw.push(new Response(forTest).text());
      return new Response(forSdk, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
  });
  return { client, raw };
}

/** The SSE `data:` payloads of a raw body, asserting it is made of whole frames only. */
function frames(body: string): string[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      expect(frame.startsWith('data: ')).toBe(true);
      return frame.slice('data: '.length);
    });
}

/** A request made now: refused (connection refused or reset) or answered 503. */
async function refusedOrUnavailable(url: string, init?: RequestInit): Promise<string> {
  try {
    const res = await fetch(url, init);
    await res.arrayBuffer();
    return String(res.status);
  } catch {
    return 'refused';
  }
}

async function usageRows(dataDir: string) {
  const database = await openDatabase(`sqlite:${join(dataDir, 'maxrouter.db')}`);
  try {
    const repos = createRepositories(database.db);
    const account = await repos.accounts.findAccountByEmail('dev@example.com');
    return await repos.usage.listUsage(account!.id);
  } finally {
    await database.close();
  }
}

const PARTS = Array.from({ length: 16 }, (_, i) => `w${i} `); // 20 frames with role, stop, usage and [DONE]

describe('maxrouter serve: graceful shutdown', () => {
  let mock: MockUpstream;
  const dirs: string[] = [];

  beforeAll(async () => {
    mock = await startMockUpstream();
  });
  afterAll(async () => {
    await mock.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** A data dir with a config (plus `extra` YAML), an account and a key. */
  async function setup(extra = ''): Promise<{ config: string; dataDir: string; key: string; env: NodeJS.ProcessEnv }> {
    const dir = await mkdtemp(join(tmpdir(), 'mr-shutdown-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const config = join(dir, 'maxrouter.yaml');
    await writeFile(
      config,
      `listen: { host: 127.0.0.1, port: 0 }
database: sqlite:${join(dataDir, 'maxrouter.db')}
dataDir: ${dataDir}
providers:
  - id: local
    type: openai-compatible
    baseUrl: \${LOCAL_URL}/v1
models:
  - id: local/llama
    endpoints: [{ provider: local, model: llama3, pricing: { input: 1, output: 2 } }]
${extra}`,
    );
    const env = { LOCAL_URL: mock.url };
    expect((await run(['accounts', 'create', '--email', 'dev@example.com', '--config', config], env)).code).toBe(0);
    const created = await run(['keys', 'create', '--email', 'dev@example.com', '--config', config], env);
    expect(created.code).toBe(0);
    return { config, dataDir, key: created.stdout.trim(), env };
  }

  it('lets running streams finish on SIGTERM, refuses new requests, exits 0 with every usage row written', async () => {
    const { config, dataDir, key, env } = await setup();
    mock.reset();
    mock.setDefault({ ...openaiTextStream(PARTS), sseDelayMs: 50 });
    const gw = await serve(config, env);
    try {
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);

      const streams = [0, 1, 2].map(async () => {
        const { client, raw } = tappedClient(key, `${gw.url}/v1`);
        const stream = await client.chat.completions.create({
          model: 'local/llama',
          messages: [{ role: 'user', content: 'count slowly' }],
          stream: true,
          stream_options: { include_usage: true },
        });
        const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
        for await (const chunk of stream) chunks.push(chunk);
        return { chunks, body: await raw[0]! };
      });
      await eventually(() => expect(mock.requests).toHaveLength(3), 5000);
      await new Promise((r) => setTimeout(r, 100)); // a few frames into each stream

      gw.terminate();
      await eventually(() => expect(gw.output()).toContain('"msg":"draining"'), 2000);
      // Draining: no new work is taken, and a load balancer's health check sees it.
      expect(['refused', '503']).toContain(await refusedOrUnavailable(`${gw.url}/healthz`));
      expect(['refused', '503']).toContain(
        await refusedOrUnavailable(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'local/llama', messages: [{ role: 'user', content: 'too late' }] }),
        }),
      );
      expect(mock.requests).toHaveLength(3);

      for (const { chunks, body } of await Promise.all(streams)) {
        const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
        expect(text).toBe(PARTS.join(''));
        expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
        expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: PARTS.length });
        expect(frames(body).at(-1)).toBe('[DONE]');
      }
    } finally {
      gw.terminate();
    }
    expect(await gw.exited).toBe(0);
    expect(gw.output()).toContain('"msg":"shutdown complete"');
    expect(gw.output()).not.toContain('count slowly');
    // The three streams were still running when draining started (their lines come at their end).
    const lines = gw
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { time: number; msg: string });
    const drainingAt = lines.find((l) => l.msg === 'draining')!.time;
    const requestLines = lines.filter((l) => l.msg === 'request');
    expect(requestLines).toHaveLength(3);
    for (const l of requestLines) expect(l.time).toBeGreaterThan(drainingAt);

    const rows = await usageRows(dataDir);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toMatchObject({ model: 'local/llama', status: 200, streamed: true, promptTokens: 9, completionTokens: PARTS.length });
    }
  }, 40_000);

  it('ends a stream still running at shutdown.graceMs with an error event, and still exits 0 with its usage row', async () => {
    const { config, dataDir, key, env } = await setup('shutdown: { graceMs: 300 }\n');
    mock.reset();
    const long = Array.from({ length: 100 }, (_, i) => `x${i} `); // ≈ 5 s at 50 ms a frame
    mock.setDefault({ ...openaiTextStream(long), sseDelayMs: 50 });
    const gw = await serve(config, env);
    let signalledAt = 0;
    try {
      const { client, raw } = tappedClient(key, `${gw.url}/v1`);
      const stream = await client.chat.completions.create({ model: 'local/llama', messages: [{ role: 'user', content: 'go on' }], stream: true });
      let received = '';
      let error: unknown;
      try {
        for await (const chunk of stream) {
          received += chunk.choices[0]?.delta.content ?? '';
          if (!signalledAt && received.length > 0) {
            signalledAt = Date.now();
            gw.terminate();
          }
        }
      } catch (err) {
        error = err;
      }
      const endedAfterMs = Date.now() - signalledAt;

      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).message).toContain('shutting down');
      expect(received.length).toBeGreaterThan(0);
      expect(received.length).toBeLessThan(long.join('').length);
      expect(endedAfterMs).toBeGreaterThanOrEqual(250);
      expect(endedAfterMs).toBeLessThan(2500);

      // The body ended cleanly, made of whole frames, the last one the error (no [DONE]).
      const payloads = frames(await raw[0]!);
      expect(payloads).not.toContain('[DONE]');
      expect(JSON.parse(payloads.at(-1)!)).toEqual({
        error: { message: expect.stringContaining('shutting down'), type: 'upstream_error', param: null, code: 'MR_ERR_UPSTREAM_UNAVAILABLE' },
      });
    } finally {
      gw.terminate();
    }
    expect(await gw.exited).toBe(0);
    expect(gw.output()).toContain('"deadlineReached":true');

    const rows = await usageRows(dataDir);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ model: 'local/llama', status: 503, streamed: true, costEstimated: true });
    expect(rows[0]!.completionTokens).toBeGreaterThan(0);
    await eventually(() => expect(mock.closedRequests).toBe(1)); // the upstream call was cut too
  }, 40_000);

  it('exits at once, non-zero, on a second SIGTERM while draining, after writing the usage it can', async () => {
    const { config, dataDir, key, env } = await setup();
    mock.reset();
    mock.setDefault({ ...openaiTextStream(Array.from({ length: 200 }, (_, i) => `y${i} `)), sseDelayMs: 50 }); // ≈ 10 s
    const gw = await serve(config, env);
    let secondAt = 0;
    try {
      const { client } = tappedClient(key, `${gw.url}/v1`);
      const stream = await client.chat.completions.create({ model: 'local/llama', messages: [{ role: 'user', content: 'go on' }], stream: true });
      const consumed = (async () => {
        for await (const _chunk of stream) {
          // drain the stream until the gateway ends it
        }
      })().catch(() => undefined);
      await eventually(() => expect(mock.requests).toHaveLength(1), 5000);
      gw.terminate();
      await eventually(() => expect(gw.output()).toContain('"msg":"draining"'), 2000);
      secondAt = Date.now();
      gw.child.kill('SIGTERM');
      expect(await gw.exited).toBe(143);
      expect(Date.now() - secondAt).toBeLessThan(2000);
      await consumed;
    } finally {
      gw.terminate();
    }
    expect(gw.output()).toContain('second signal');
    const rows = await usageRows(dataDir);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ model: 'local/llama', streamed: true });
    expect(rows[0]!.status).toBeGreaterThanOrEqual(499);
  }, 40_000);
});

describe('RunningGateway.stop: a request still waiting for its provider at the deadline', () => {
  it('gets a 503 in OpenAI error shape, and the drain ends', async () => {
    const mock = await startMockUpstream();
    mock.setDefault({ hang: true });
    const t = await startTestGateway({
      providers: [{ id: 'local', type: 'openai-compatible', baseUrl: `${mock.url}/v1` }],
      models: [{ id: 'local/llama', endpoints: [{ provider: 'local', model: 'llama3' }] }],
      shutdown: { graceMs: 200 },
    });
    try {
      const pending = t.client.chat.completions.create({ model: 'local/llama', messages: [{ role: 'user', content: 'hi' }] }, { maxRetries: 0 });
      const outcome = pending.then(
        () => undefined,
        (err: unknown) => err,
      );
      await eventually(() => expect(mock.requests).toHaveLength(1));
      await t.gw.stop();
      const err = await outcome;
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('MR_ERR_UPSTREAM_UNAVAILABLE');
      expect(t.logs.join('')).toContain('"deadlineReached":true');
    } finally {
      await t.close();
      await mock.close();
    }
  });
});
