/**
 * Zero data retention, checked from the outside: a gateway at log level `trace` is driven
 * through every path — successes, streams, tool calls, embeddings, upstream errors that echo the
 * prompt, timeouts, resets, malformed requests, bad keys, rate limits, missing credits, client
 * aborts — with unique canary strings in everything that is content (prompts, system messages,
 * tool definitions and arguments, tool results, completions, upstream error bodies) and in the
 * headers and fields a client controls. Then everything the gateway could have kept is searched
 * as raw bytes: every file under its data directory (SQLite database, WAL and shm included),
 * every column of every table of its PostgreSQL schema, every key and value in Redis, every log
 * line, everything written to stdout/stderr, and `/metrics`. One canary found anywhere fails
 * the suite, and so does the raw text of an API key, the admin key, the server secret or an
 * upstream API key. A self-check plants canaries in each of those places and requires the
 * scanner to find them, so a scanner that looks nowhere cannot pass.
 *
 * Runs once over SQLite and, with TEST_POSTGRES_URL and TEST_REDIS_URL, once over PostgreSQL
 * with Redis (rate limits and shared billing counters in Redis). Docs: docs/privacy.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import OpenAI from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key.js';
import * as anthropic from '../fixtures/anthropic.js';
import * as gemini from '../fixtures/gemini.js';
import { openaiEmbeddings, openaiError, openaiText, openaiTextStream, openaiToolCalls } from '../fixtures/openai.js';
import { DATABASES, TEST_POSTGRES_URL } from '../helpers/databases.js';
import { eventually, startTestGateway, TEST_SECRET, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream, type SSEItem } from '../helpers/mock-upstream.js';
import { TEST_REDIS_URL } from '../limits/helpers.js';

/** One run id: every canary of this file starts with CANARY-<run>-, and the scanner looks for that prefix. */
const RUN = randomBytes(6).toString('hex');
const PREFIX = `CANARY-${RUN}-`;

// =============================================================================================
// Capturing what the process writes to stdout and stderr
// =============================================================================================

/**
 * Records every write to stdout and stderr — `process.stdout/stderr.write`, `console.*`, and
 * `fs.write`/`fs.writeSync` on file descriptors 1 and 2 (what pino's own destination uses) —
 * and passes each one on.
 */
interface OutputCapture {
  chunks: Buffer[];
  restore(): void;
}

function toBuffer(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(String(data), 'utf8');
}

function captureOutput(): OutputCapture {
  const chunks: Buffer[] = [];
  const restores: (() => void)[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    stream.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
      chunks.push(toBuffer(chunk));
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof stream.write;
    restores.push(() => {
      stream.write = original;
    });
  }
  for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
    const original = console[method];
    console[method] = (...args: unknown[]) => {
      chunks.push(Buffer.from(format(...args), 'utf8'));
      original.apply(console, args);
    };
    restores.push(() => {
      console[method] = original;
    });
  }
  // The CommonJS `fs` object, which pino's SonicBoom calls at write time.
  const fs = createRequire(import.meta.url)('node:fs') as Record<'write' | 'writeSync', (...a: unknown[]) => unknown>;
  for (const name of ['write', 'writeSync'] as const) {
    const original = fs[name];
    fs[name] = function (this: unknown, fd: unknown, data: unknown, ...rest: unknown[]) {
      if (fd === 1 || fd === 2) chunks.push(toBuffer(data));
      return original.call(this, fd, data, ...rest);
    };
    restores.push(() => {
      fs[name] = original;
    });
  }
  return { chunks, restore: () => restores.reverse().forEach((r) => r()) };
}

// =============================================================================================
// The scanner
// =============================================================================================

interface Needle {
  /** What is printed for a hit (never the needle itself). */
  label: string;
  text: string;
  /** A canary prefix: a hit prints the canary's label that follows it. */
  prefix?: boolean;
}

interface Hit {
  needle: string;
  encoding: string;
  where: string;
}

interface Form {
  needle: Needle;
  encoding: string;
  bytes: Buffer;
  /** Searched in the ASCII-lower-cased haystack. */
  caseless: boolean;
}

/**
 * The needle as it could be stored: UTF-8 and UTF-16LE text in any letter case, hex, and base64
 * (standard and URL-safe) at the three byte alignments — the characters of a base64 text that
 * depend on neighbouring bytes are left out.
 */
function formsOf(needle: Needle): Form[] {
  const lower = needle.text.toLowerCase();
  const forms: Form[] = [
    { needle, encoding: 'utf-8', bytes: Buffer.from(lower, 'utf8'), caseless: true },
    { needle, encoding: 'utf-16le', bytes: Buffer.from(lower, 'utf16le'), caseless: true },
    { needle, encoding: 'hex', bytes: Buffer.from(Buffer.from(needle.text, 'utf8').toString('hex'), 'latin1'), caseless: true },
  ];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), Buffer.from(needle.text, 'utf8')]).toString('base64').replace(/=+$/, '');
    const stable = b64.slice(k === 0 ? 0 : 4, -4);
    if (stable.length < 12) continue;
    forms.push({ needle, encoding: `base64/${k}`, bytes: Buffer.from(stable, 'latin1'), caseless: false });
    const url = stable.replace(/\+/g, '-').replace(/\//g, '_');
    if (url !== stable) forms.push({ needle, encoding: `base64url/${k}`, bytes: Buffer.from(url, 'latin1'), caseless: false });
  }
  return forms;
}

function asciiLower(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i < out.length; i++) {
    const b = out[i]!;
    if (b >= 0x41 && b <= 0x5a) out[i] = b + 0x20;
  }
  return out;
}

class Scanner {
  readonly hits: Hit[] = [];
  /** Where the scanner looked (location labels), for the coverage checks. */
  readonly scanned: string[] = [];
  readonly #forms: Form[];
  readonly #needles: Needle[];

  constructor(needles: Needle[]) {
    this.#needles = needles.filter((n) => n.text.length >= 8);
    this.#forms = this.#needles.flatMap(formsOf);
  }

  scan(where: string, data: Buffer | string): void {
    this.scanned.push(where);
    const raw = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let lower: Buffer | undefined;
    for (const form of this.#forms) {
      const hay = form.caseless ? (lower ??= asciiLower(raw)) : raw;
      for (let at = hay.indexOf(form.bytes); at !== -1 && this.hits.length < 500; at = hay.indexOf(form.bytes, at + 1)) {
        const label = form.needle.prefix && form.encoding === 'utf-8' ? `${form.needle.label}[${canaryLabel(hay, at + form.bytes.length)}]` : form.needle.label;
        this.hits.push({ needle: label, encoding: form.encoding, where: `${where} @ byte ${at}` });
      }
    }
  }

  /** `text` with every needle replaced by its label: location names (Redis keys) are printable then. */
  redact(text: string): string {
    let out = text;
    for (const n of this.#needles) out = out.replace(new RegExp(escapeRegExp(n.text), 'gi'), `<${n.label}>`);
    return out;
  }

  report(): string {
    return this.hits.map((h) => `${h.needle} (${h.encoding}) in ${h.where}`).join('\n');
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The label after a canary prefix: the path it was sent on (lower-case, as searched). */
function canaryLabel(hay: Buffer, from: number): string {
  let end = from;
  while (end < hay.length && end - from < 80 && /[a-z0-9-]/.test(String.fromCharCode(hay[end]!))) end++;
  return hay.toString('latin1', from, end);
}

/** Every file under `root`, recursively, as raw bytes. Returns the paths scanned (relative). */
async function scanDirectory(scanner: Scanner, root: string, rel = ''): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      files.push(...(await scanDirectory(scanner, root, path)));
    } else {
      let data: Buffer;
      try {
        data = await readFile(join(root, path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // e.g. a WAL removed at close
        throw err;
      }
      scanner.scan(`file ${path}`, data);
      files.push(path);
    }
  }
  return files;
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * Every column (cast to text, so text, varchar and json columns as they are) of every table in
 * the connection's schema, and the last statement of every session on the database. Returns the
 * tables and their row counts.
 */
async function scanPostgres(scanner: Scanner, url: string): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const tables = new Map<string, number>();
  try {
    const { rows: columns } = await client.query<{ table_name: string; column_name: string }>(
      `select c.table_name, c.column_name from information_schema.columns c
         join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = current_schema() and t.table_type = 'BASE TABLE'
        order by c.table_name, c.ordinal_position`,
    );
    const byTable = new Map<string, string[]>();
    for (const c of columns) byTable.set(c.table_name, [...(byTable.get(c.table_name) ?? []), c.column_name]);
    for (const [table, cols] of byTable) {
      const select = cols.map((c, i) => `${quoteIdent(c)}::text as c${i}`).join(', ');
      const { rows } = await client.query<Record<string, string | null>>(`select ${select} from ${quoteIdent(table)}`);
      tables.set(table, rows.length);
      rows.forEach((row, r) => {
        cols.forEach((col, i) => {
          const v = row[`c${i}`];
          if (v !== null && v !== undefined) scanner.scan(`postgres ${table}.${col} (row ${r})`, v);
        });
      });
      if (rows.length === 0) scanner.scanned.push(`postgres ${table} (empty)`);
    }
    const { rows: sessions } = await client.query<{ pid: number; query: string | null }>(
      'select pid, query from pg_stat_activity where datname = current_database()',
    );
    for (const s of sessions) if (s.query) scanner.scan(`postgres pg_stat_activity.query (pid ${s.pid})`, s.query);
  } finally {
    await client.end();
  }
  return tables;
}

/** Every key of the Redis database (SCAN), its name and its value by type. Returns the key names. */
async function scanRedis(scanner: Scanner, client: Redis): Promise<string[]> {
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scanBuffer(cursor, 'COUNT', 1000);
    cursor = next.toString();
    for (const key of keys) {
      const name = scanner.redact(key.toString('utf8'));
      names.push(key.toString('utf8'));
      scanner.scan(`redis key name ${name}`, key);
      const type = await client.type(key);
      const where = `redis ${type} ${name}`;
      switch (type) {
        case 'string': {
          const v = await client.getBuffer(key);
          if (v) scanner.scan(where, v);
          break;
        }
        case 'hash': {
          const h = await client.hgetallBuffer(key);
          for (const [field, v] of Object.entries(h)) {
            scanner.scan(`${where} field`, field);
            scanner.scan(`${where} value`, v);
          }
          break;
        }
        case 'list':
          for (const v of await client.lrangeBuffer(key, 0, -1)) scanner.scan(where, v);
          break;
        case 'set':
          for (const v of await client.smembersBuffer(key)) scanner.scan(where, v);
          break;
        case 'zset':
          for (const v of await client.zrangeBuffer(key, '0', '-1', 'WITHSCORES')) scanner.scan(where, v);
          break;
        case 'stream':
          scanner.scan(where, JSON.stringify(await client.xrange(key, '-', '+')));
          break;
        case 'none':
          break; // expired since SCAN listed it
        default:
          scanner.scan(`${where} (dump)`, (await client.dumpBuffer(key)) ?? Buffer.alloc(0));
      }
    }
  } while (cursor !== '0');
  return names;
}

// =============================================================================================
// Replies carrying canaries
// =============================================================================================

const canary = (label: string) => `${PREFIX}${label}`;

function openaiToolReply(args: string): MockReply {
  const reply = openaiToolCalls();
  const json = reply.json as { choices: { message: { tool_calls: unknown[] } }[] };
  json.choices[0]!.message.tool_calls = [{ id: 'call_c1', type: 'function', function: { name: 'lookup', arguments: args } }];
  return reply;
}

function openaiChunk(delta: unknown, finish: string | null = null): SSEItem {
  return {
    data: JSON.stringify({
      id: 'chatcmpl-canary',
      object: 'chat.completion.chunk',
      created: 1_764_000_000,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    }),
  };
}

function openaiToolStreamReply(args: string): MockReply {
  return {
    sse: [
      openaiChunk({ role: 'assistant', content: null }),
      openaiChunk({ tool_calls: [{ index: 0, id: 'call_c1', type: 'function', function: { name: 'lookup', arguments: '' } }] }),
      openaiChunk({ tool_calls: [{ index: 0, function: { arguments: args } }] }),
      openaiChunk({}, 'tool_calls'),
      {
        data: JSON.stringify({
          id: 'chatcmpl-canary',
          object: 'chat.completion.chunk',
          created: 1_764_000_000,
          model: 'gpt-4o-mini',
          choices: [],
          usage: { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52 },
        }),
      },
      { data: '[DONE]' },
    ],
  };
}

type Provider = 'openai' | 'anthropic' | 'gemini';
const PROVIDERS: readonly Provider[] = ['openai', 'anthropic', 'gemini'];

/** Replies of each provider, in its own wire format, carrying canaries. */
const REPLIES: Record<
  Provider,
  {
    text(text: string): MockReply;
    stream(chunks: string[]): MockReply;
    tool(args: Record<string, string>): MockReply;
    toolStream(args: Record<string, string>, text: string): MockReply;
    error4xx(message: string): MockReply;
    error5xx(message: string): MockReply;
    /** How many SSE frames of `stream` come before the first text. */
    framesBeforeText: number;
  }
> = {
  openai: {
    text: (text) => openaiText({ text }),
    stream: (chunks) => openaiTextStream(chunks),
    tool: (args) => openaiToolReply(JSON.stringify(args)),
    toolStream: (args) => openaiToolStreamReply(JSON.stringify(args)),
    error4xx: (message) => openaiError(400, message, 'invalid_request_error'),
    error5xx: (message) => openaiError(500, message, 'server_error'),
    framesBeforeText: 1,
  },
  anthropic: {
    text: (text) => anthropic.anthropicTextReply({ text }),
    stream: (chunks) => anthropic.anthropicTextStream({ chunks }),
    tool: (args) => anthropic.anthropicToolCallReply({ text: 'Looking it up.', calls: [{ id: 'toolu_canary01', name: 'lookup', input: args }] }),
    toolStream: (args, text) => anthropic.anthropicToolCallStream({ text, calls: [{ id: 'toolu_canary02', name: 'lookup', input: args }] }),
    error4xx: (message) => anthropic.anthropicErrorReply(400, 'invalid_request_error', message),
    error5xx: (message) => anthropic.anthropicErrorReply(500, 'api_error', message),
    framesBeforeText: 3,
  },
  gemini: {
    text: (text) => gemini.geminiTextReply({ text }),
    stream: (chunks) => gemini.geminiTextStream({ chunks }),
    tool: (args) => gemini.geminiFunctionCallsReply({ calls: [{ name: 'lookup', args }] }),
    toolStream: (args, text) => gemini.geminiFunctionCallsStream({ text, calls: [{ name: 'lookup', args }] }),
    error4xx: (message) => gemini.geminiErrorReply('invalid-argument', { message }),
    error5xx: (message) => gemini.geminiErrorReply('internal', { message }),
    framesBeforeText: 0,
  },
};

const MODEL: Record<Provider, string> = { openai: 'c/openai', anthropic: 'c/anthropic', gemini: 'c/gemini' };

/** A chat request with canaries in every place content can be: system, user (text and parts), tool call, tool result, tool schema, user id, metadata. */
function chatBody(label: string, model: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model,
    messages: [
      { role: 'system', content: canary(`${label}-system`) },
      { role: 'user', content: canary(`${label}-prompt`) },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_h1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: canary(`${label}-history-args`) }) } }],
      },
      { role: 'tool', tool_call_id: 'call_h1', content: canary(`${label}-tool-result`) },
      { role: 'user', content: [{ type: 'text', text: canary(`${label}-prompt-part`) }] },
    ],
    tools: [
      {
        type: 'function',
        function: {
          name: 'lookup',
          description: canary(`${label}-tool-desc`),
          parameters: { type: 'object', properties: { q: { type: 'string', description: canary(`${label}-tool-param`) } }, required: ['q'] },
        },
      },
    ],
    user: canary(`${label}-user`),
    metadata: { note: canary(`${label}-metadata`) },
    max_tokens: 200,
    ...extra,
  };
}

/** Headers a client controls, each a canary (including the ones some servers take a request id from). */
function canaryHeaders(label: string): Record<string, string> {
  return {
    'x-title': canary(`${label}-x-title`),
    'http-referer': `https://${canary(`${label}-referer`).toLowerCase()}.example/`,
    'user-agent': canary(`${label}-user-agent`),
    'request-id': canary(`${label}-request-id`),
    'x-request-id': canary(`${label}-x-request-id`),
    'x-canary': canary(`${label}-header`),
  };
}

interface Sent {
  status: number;
  text: string;
}

// =============================================================================================
// The suite, once per storage
// =============================================================================================

const TARGETS = [
  { name: 'sqlite', skip: false, redis: undefined as string | undefined },
  { name: 'postgres+redis', skip: TEST_POSTGRES_URL === undefined || TEST_REDIS_URL === undefined, redis: TEST_REDIS_URL },
] as const;

for (const target of TARGETS) {
  describe.skipIf(target.skip)(`zero data retention canaries (${target.name})`, () => {
    const tag = target.name === 'sqlite' ? 'sqlite' : 'pg';
    const label = (path: string) => `${tag}-${path}`;
    const ADMIN_KEY = `admin-${randomBytes(24).toString('hex')}`;
    const UPSTREAM_KEYS = {
      oa: `sk-oa-${randomBytes(16).toString('hex')}`,
      an: `sk-ant-${randomBytes(16).toString('hex')}`,
      gm: `AIza${randomBytes(16).toString('hex')}`,
      slow: `sk-slow-${randomBytes(16).toString('hex')}`,
    };
    const ids = randomBytes(3).toString('hex');
    /** Secrets that must be nowhere: every raw key the suite holds, the admin key, the server secret, the upstream keys. */
    const secrets: Needle[] = [
      { label: 'secret:admin-key', text: ADMIN_KEY },
      { label: 'secret:server-secret', text: TEST_SECRET },
      ...Object.entries(UPSTREAM_KEYS).map(([id, text]) => ({ label: `secret:upstream-key-${id}`, text })),
    ];

    let capture: OutputCapture;
    let mocks: Record<Provider | 'slow', MockUpstream>;
    let dataDir: string;
    let databaseUrl: string;
    let dropDatabase: () => Promise<void> = async () => {};
    let redis: Redis | undefined;
    let t: TestGateway;
    /** Raw keys made through the admin API for the rate-limit and credit paths. */
    const keys: Record<'rpm' | 'tpm' | 'concurrency' | 'credits' | 'limit0' | 'management', string> = {
      rpm: '',
      tpm: '',
      concurrency: '',
      credits: '',
      limit0: '',
      management: '',
    };

    const addSecret = (name: string, text: string) => secrets.push({ label: `secret:${name}`, text });

    beforeAll(async () => {
      capture = captureOutput();
      mocks = {
        openai: await startMockUpstream(),
        anthropic: await startMockUpstream(),
        gemini: await startMockUpstream(),
        slow: await startMockUpstream(),
      };
      dataDir = await mkdtemp(join(tmpdir(), 'mr-canary-'));
      if (target.name === 'sqlite') {
        databaseUrl = `sqlite:${join(dataDir, 'maxrouter.db')}`;
      } else {
        const db = await DATABASES.find((d) => d.name === 'postgres')!.openUrl();
        databaseUrl = db.url;
        dropDatabase = db.drop;
        redis = new Redis(target.redis!, { maxRetriesPerRequest: 1 });
        redis.on('error', () => {});
      }
      const providerLimits = { rpm: 100_000, concurrency: 1_000 };
      const pricing = { input: 1, output: 2 };
      t = await startTestGateway(
        {
          log: { level: 'trace' },
          dataDir,
          database: databaseUrl,
          ...(target.redis ? { redis: target.redis } : {}),
          admin: { key: ADMIN_KEY },
          limits: {
            bodyBytes: 256 * 1024,
            key: { rpm: 10_000, tpm: 50_000_000, concurrency: 100 },
            account: { rpm: 20_000, tpm: 100_000_000, concurrency: 200 },
            redisFailure: 'open',
          },
          providers: [
            { id: `oa-${ids}`, type: 'openai', baseUrl: `${mocks.openai.url}/v1`, apiKey: UPSTREAM_KEYS.oa, limits: providerLimits },
            { id: `an-${ids}`, type: 'anthropic', baseUrl: mocks.anthropic.url, apiKey: UPSTREAM_KEYS.an, limits: providerLimits },
            { id: `gm-${ids}`, type: 'gemini', baseUrl: mocks.gemini.url, apiKey: UPSTREAM_KEYS.gm, limits: providerLimits },
            {
              id: `slow-${ids}`,
              type: 'openai',
              baseUrl: `${mocks.slow.url}/v1`,
              apiKey: UPSTREAM_KEYS.slow,
              timeouts: { connect: 1_000, headers: 300, body: 300 },
            },
          ],
          models: [
            { id: 'c/openai', endpoints: [{ provider: `oa-${ids}`, model: 'gpt-4o-mini', pricing }] },
            { id: 'c/anthropic', maxOutputTokens: 1000, endpoints: [{ provider: `an-${ids}`, model: 'claude-sonnet-4-5', pricing }] },
            { id: 'c/gemini', endpoints: [{ provider: `gm-${ids}`, model: 'gemini-2.5-flash', pricing }] },
            { id: 'c/embed', kind: 'embedding', endpoints: [{ provider: `oa-${ids}`, model: 'text-embedding-3-small', pricing }] },
            { id: 'c/gembed', kind: 'embedding', endpoints: [{ provider: `gm-${ids}`, model: 'gemini-embedding-001' }] },
            { id: 'c/slow', endpoints: [{ provider: `slow-${ids}`, model: 'gpt-4o-mini', pricing }] },
          ],
        },
        { onClose: () => dropDatabase() },
      );
      addSecret('api-key', t.apiKey);

      // Accounts and keys for the refusal paths, made through the admin API (audited).
      const account = async (email: string, mode?: 'credits') => {
        const r = await admin('POST', '/admin/v1/accounts', { email, ...(mode ? { billing_mode: mode } : {}) });
        expect(r.status).toBe(201);
        return JSON.parse(r.text).data.id as string;
      };
      const key = async (accountId: string, name: keyof typeof keys, settings: Record<string, unknown>) => {
        const r = await admin('POST', `/admin/v1/accounts/${accountId}/keys`, { name, ...settings });
        expect(r.status).toBe(201);
        const raw = JSON.parse(r.text).key as string;
        keys[name] = raw;
        addSecret(`${name}-key`, raw);
      };
      const limited = await account(`limited-${ids}@example.com`);
      await key(limited, 'rpm', { rate_limit: { rpm: 1 } });
      await key(limited, 'tpm', { rate_limit: { tpm: 20 } });
      await key(limited, 'concurrency', { rate_limit: { concurrency: 1 } });
      await key(limited, 'limit0', { limit: 0 });
      await key(limited, 'management', { kind: 'management' });
      const broke = await account(`broke-${ids}@example.com`, 'credits');
      await key(broke, 'credits', {});
    });

    afterAll(async () => {
      capture?.restore();
      await t?.close();
      for (const m of Object.values(mocks ?? {})) await m.close();
      redis?.disconnect();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    async function admin(method: string, path: string, body?: unknown, token = ADMIN_KEY): Promise<Sent> {
      return send(path, body === undefined ? undefined : JSON.stringify(body), { method, key: token });
    }

    async function send(
      path: string,
      body: string | undefined,
      opts: { method?: string; key?: string | null; headers?: Record<string, string>; signal?: AbortSignal; contentType?: string } = {},
    ): Promise<Sent> {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? t.apiKey}`;
      if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
      const res = await fetch(`${t.url}${path}`, {
        method: opts.method ?? 'POST',
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { status: res.status, text: await res.text() };
    }

    const chat = (name: string, model: string, extra: Record<string, unknown> = {}, key?: string) =>
      send('/v1/chat/completions', JSON.stringify(chatBody(name, model, extra)), { headers: canaryHeaders(name), ...(key ? { key } : {}) });

    /** The upstream saw the prompt canary: the gateway really held it. */
    function upstreamSaw(mock: MockUpstream, name: string): void {
      expect(mock.requests.at(-1)?.body).toContain(canary(`${name}-prompt`));
    }

    function client(apiKey = t.apiKey): OpenAI {
      return new OpenAI({ apiKey, baseURL: `${t.url}/v1`, maxRetries: 0, timeout: 10_000 });
    }

    it('runs at log level trace, the most verbose', () => {
      expect(t.gw.logger.level).toBe('trace');
      expect(t.gw.logger.isLevelEnabled('trace')).toBe(true);
    });

    it('drives successful completions, non-stream and stream, for openai, anthropic and gemini', async () => {
      for (const p of PROVIDERS) {
        const name = label(`${p}-success`);
        mocks[p].enqueue(REPLIES[p].text(canary(`${name}-completion`)));
        const res = await client().chat.completions.create(
          chatBody(name, MODEL[p]) as unknown as OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming,
          { headers: canaryHeaders(name) },
        );
        expect(res.choices[0]!.message.content).toContain(canary(`${name}-completion`));
        upstreamSaw(mocks[p], name);

        const sname = label(`${p}-stream`);
        mocks[p].enqueue(REPLIES[p].stream([canary(`${sname}-completion-1`), ' ', canary(`${sname}-completion-2`)]));
        const stream = await client().chat.completions.create(
          { ...(chatBody(sname, MODEL[p]) as object), stream: true, stream_options: { include_usage: true } } as unknown as OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming,
          { headers: canaryHeaders(sname) },
        );
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
        expect(text).toContain(canary(`${sname}-completion-2`));
        upstreamSaw(mocks[p], sname);
      }
    });

    it('drives tool calls with canary arguments, non-stream and stream', async () => {
      for (const p of PROVIDERS) {
        const name = label(`${p}-tools`);
        mocks[p].enqueue(REPLIES[p].tool({ q: canary(`${name}-call-args`) }));
        const r = await chat(name, MODEL[p]);
        expect(r.status).toBe(200);
        expect(r.text).toContain(canary(`${name}-call-args`));
        upstreamSaw(mocks[p], name);

        const sname = label(`${p}-tools-stream`);
        mocks[p].enqueue(REPLIES[p].toolStream({ q: canary(`${sname}-call-args`) }, canary(`${sname}-completion`)));
        const s = await chat(sname, MODEL[p], { stream: true });
        expect(s.status).toBe(200);
        expect(s.text).toContain('lookup'); // the arguments arrive split across deltas
        upstreamSaw(mocks[p], sname);
      }
    });

    it('drives embeddings (openai pass-through and gemini)', async () => {
      const name = label('embeddings');
      mocks.openai.enqueue(openaiEmbeddings([[0.25, 0.5], [0.75, 1]]));
      const r = await send('/v1/embeddings', JSON.stringify({ model: 'c/embed', input: [canary(`${name}-input-1`), canary(`${name}-input-2`)], user: canary(`${name}-user`) }), {
        headers: canaryHeaders(name),
      });
      expect(r.status).toBe(200);
      expect(mocks.openai.requests.at(-1)?.body).toContain(canary(`${name}-input-1`));

      const gname = label('gemini-embeddings');
      mocks.gemini.enqueue(gemini.geminiEmbeddingsReply({ vectors: [[0.1, 0.2]] }));
      const g = await send('/v1/embeddings', JSON.stringify({ model: 'c/gembed', input: canary(`${gname}-input`), encoding_format: 'base64' }), {
        headers: canaryHeaders(gname),
      });
      expect(g.status).toBe(200);
      expect(mocks.gemini.requests.at(-1)?.body).toContain(canary(`${gname}-input`));
    });

    it('drives upstream 4xx and 5xx errors whose body echoes the prompt (the client may see it)', async () => {
      for (const p of PROVIDERS) {
        for (const [kind, stream] of [['4xx', false], ['5xx', false], ['4xx-stream', true]] as const) {
          const name = label(`${p}-upstream-${kind}`);
          const echo = `Invalid request: '${canary(`${name}-prompt`)}' ${canary(`${name}-error-body`)}`;
          mocks[p].enqueue(kind.startsWith('4xx') ? REPLIES[p].error4xx(echo) : REPLIES[p].error5xx(echo));
          const r = await chat(name, MODEL[p], stream ? { stream: true } : {});
          expect(r.status).toBeGreaterThanOrEqual(400);
          upstreamSaw(mocks[p], name);
        }
      }
      // An upstream 401 (the gateway's upstream key refused) echoing the prompt.
      const name = label('openai-upstream-401');
      mocks.openai.enqueue(openaiError(401, `Incorrect API key provided for '${canary(`${name}-prompt`)}'`, 'invalid_request_error', 'invalid_api_key'));
      expect((await chat(name, MODEL.openai)).status).toBe(502);
    });

    it('drives upstream errors in the middle of a stream, echoing the prompt', async () => {
      const an = label('anthropic-midstream-error');
      mocks.anthropic.enqueue(anthropic.anthropicStreamWithError({ chunks: [canary(`${an}-completion`)], message: `Overloaded: ${canary(`${an}-prompt`)}` }));
      const a = await chat(an, MODEL.anthropic, { stream: true });
      expect(a.text).toContain(canary(`${an}-completion`));
      expect(a.text).not.toContain('[DONE]');

      const gm = label('gemini-midstream-error');
      const first = gemini.geminiTextStream({ chunks: [canary(`${gm}-completion`), 'more'] }).sse![0]!;
      mocks.gemini.enqueue({
        status: 200,
        sse: [first, { data: JSON.stringify({ error: { code: 503, message: `Overloaded: ${canary(`${gm}-prompt`)}`, status: 'UNAVAILABLE' } }) }],
      });
      const g = await chat(gm, MODEL.gemini, { stream: true });
      expect(g.text).toContain(canary(`${gm}-completion`));
      expect(g.text).not.toContain('[DONE]');
    });

    it('drives upstream timeouts: no headers in time (504), and a stream that goes idle', async () => {
      const name = label('timeout-headers');
      mocks.slow.enqueue({ hang: true });
      expect((await chat(name, 'c/slow')).status).toBe(504);
      upstreamSaw(mocks.slow, name);

      const sname = label('timeout-stream');
      mocks.slow.enqueue({ ...openaiTextStream([canary(`${sname}-completion`), 'x']), hangAfterEvents: 2 });
      const s = await chat(sname, 'c/slow', { stream: true });
      expect(s.text).toContain(canary(`${sname}-completion`));
      expect(s.text).toContain('MR_ERR_UPSTREAM_TIMEOUT');
    });

    it('drives upstream resets: mid-stream for each provider, and before the headers', async () => {
      for (const p of PROVIDERS) {
        const name = label(`${p}-reset`);
        const reply = REPLIES[p].stream([canary(`${name}-completion-1`), canary(`${name}-completion-2`), canary(`${name}-completion-3`)]);
        mocks[p].enqueue({ ...reply, resetAfterEvents: REPLIES[p].framesBeforeText + 1 });
        const r = await chat(name, MODEL[p], { stream: true });
        expect(r.text).toContain(canary(`${name}-completion-1`));
        expect(r.text).not.toContain('[DONE]');
      }
      const name = label('reset-before-headers');
      mocks.openai.enqueue({ resetBeforeHeaders: true });
      expect((await chat(name, MODEL.openai)).status).toBeGreaterThanOrEqual(500);
    });

    it('drives malformed requests: invalid JSON and bad field values holding canaries', async () => {
      const name = label('malformed');
      const c = (what: string) => canary(`${name}-${what}`);
      const h = canaryHeaders(name);
      const post = (path: string, body: string, contentType?: string) => send(path, body, { headers: h, ...(contentType ? { contentType } : {}) });
      /** What was sent, and the status it got: each must be refused by the gateway itself (4xx). */
      const statuses: [string, number][] = [];
      const refused = async (what: string, sent: Promise<Sent>) => void statuses.push([what, (await sent).status]);

      // Not JSON, cut-off JSON, JSON that is not an object, the wrong content type, a body over the limit.
      await refused('cut-off json', post('/v1/chat/completions', `{"model":"c/openai","messages":[{"role":"user","content":"${c('invalid-json')}"`));
      await refused('not json', post('/v1/chat/completions', `${c('not-json')} {`));
      await refused('array body', post('/v1/chat/completions', JSON.stringify([c('array-body')])));
      await refused('text/plain body', post('/v1/chat/completions', c('text-body'), 'text/plain'));
      await refused('embeddings cut-off json', post('/v1/embeddings', `{"input":"${c('embed-invalid-json')}`));
      const big = JSON.stringify(chatBody(label('too-large'), MODEL.openai, { padding: canary('too-large-padding').repeat(9000) }));
      expect(big.length).toBeGreaterThan(256 * 1024);
      expect((await post('/v1/chat/completions', big)).status).toBe(413);
      // Bad values in fields, nested fields and routing controls.
      const bad: Record<string, unknown>[] = [
        { temperature: c('temperature') },
        { max_tokens: c('max-tokens') },
        { model: c('model') },
        { models: [c('models')] },
        { provider: { order: [c('provider-order')] } },
        { messages: [{ role: c('role'), content: c('role-content') }] },
        { messages: [{ role: 'user', content: { text: c('content-object') } }] },
        { messages: [{ role: 'user', content: [{ type: c('part-type'), text: c('part-text') }] }] },
        { tools: [{ type: c('tool-type'), function: { name: c('tool-name') } }] },
        { response_format: { type: c('response-format') } },
        { stream_options: c('stream-options') },
        { tool_choice: c('tool-choice') },
        { base_url: `https://${c('base-url').toLowerCase()}.example` },
        { extra_body: { api_key: c('nested-api-key') } },
        { n: c('n') },
      ];
      // A translated provider: the gateway decodes the request and refuses it. The same-dialect
      // provider gets the body as it is (pass-through), and the upstream refuses it the way OpenAI
      // does, quoting the bad value back.
      mocks.openai.setDefault((req) => openaiError(400, `Invalid request: ${req.body.slice(0, 400)}`, 'invalid_request_error'));
      try {
        for (const extra of bad) {
          for (const model of [MODEL.anthropic, MODEL.gemini, MODEL.openai]) {
            await refused(`${model} ${JSON.stringify(Object.keys(extra))}`, post('/v1/chat/completions', JSON.stringify(chatBody(name, model, extra))));
          }
        }
      } finally {
        mocks.openai.setDefault({ status: 500, json: { error: { message: 'mock upstream: no reply enqueued' } } });
      }
      for (const extra of [{ input: { text: c('embed-object') } }, { encoding_format: c('encoding-format') }, { model: c('embed-model') }, { dimensions: c('dimensions') }]) {
        await refused(`embeddings ${JSON.stringify(Object.keys(extra))}`, post('/v1/embeddings', JSON.stringify({ model: 'c/gembed', input: c('embed-input'), ...extra })));
      }
      // Unknown routes, and ids in paths and query strings.
      await refused('unknown route', send(`/v1/${c('route')}`, JSON.stringify({ x: c('route-body') }), { headers: h }));
      await refused('generation id', send(`/api/v1/generation?id=${c('generation-id')}`, undefined, { method: 'GET', headers: h }));
      // The account and admin APIs, refusing values that hold canaries (nothing may reach the audit log).
      const mgmt = { headers: h, key: keys.management };
      await refused('key name', send('/api/v1/keys', JSON.stringify({ name: `${c('key-name')}\u0007` }), mgmt));
      await refused('allowed model', send('/api/v1/keys', JSON.stringify({ name: 'ok', allowed_models: [c('allowed-model')] }), mgmt));
      await refused('unknown field', send('/api/v1/keys', JSON.stringify({ name: 'ok', [c('unknown-field')]: 1 }), mgmt));
      await refused('patch key id', send(`/api/v1/keys/${c('key-id')}`, JSON.stringify({ disabled: true }), { ...mgmt, method: 'PATCH' }));
      await refused('delete key id', send(`/api/v1/keys/${c('key-id-delete')}`, undefined, { ...mgmt, method: 'DELETE' }));
      await refused('admin email', admin('POST', '/admin/v1/accounts', { email: c('not-an-email') }));
      await refused('admin account id', admin('PATCH', `/admin/v1/accounts/${c('account-id')}`, { disabled: true }));
      await refused('admin credits account id', admin('POST', `/admin/v1/accounts/${c('account-id-credits')}/credits`, { usd: 5, reason: c('credit-reason') }));
      await refused('admin keys account id', admin('POST', `/admin/v1/accounts/${c('account-id-keys')}/keys`, { name: 'x' }));
      await refused('admin usage from', admin('GET', `/admin/v1/usage?from=${c('from')}&to=2025-01-01`));
      expect(statuses.filter(([, status]) => status < 400 || status >= 500)).toEqual([]);
    });

    it('drives authentication failures: a wrong key, a malformed key holding a canary, no key (keys never logged)', async () => {
      const wrong = generateApiKey(); // well formed, unknown
      addSecret('wrong-key', wrong);
      const name = label('auth');
      for (const key of [wrong, `mr_${canary(`${name}-malformed-key`)}`, canary(`${name}-bare-key`)]) {
        expect((await chat(name, MODEL.openai, {}, key)).status).toBe(401);
      }
      expect((await send('/v1/chat/completions', JSON.stringify(chatBody(name, MODEL.openai)), { key: null, headers: canaryHeaders(name) })).status).toBe(401);
      expect((await send('/v1/embeddings', JSON.stringify({ model: 'c/embed', input: canary(`${name}-embed`) }), { key: wrong })).status).toBe(401);
      expect((await send('/api/v1/keys', JSON.stringify({ name: 'x' }), { key: canary(`${name}-management-key`) })).status).toBe(401);
      expect((await admin('GET', '/admin/v1/accounts', undefined, canary(`${name}-admin-key`))).status).toBe(401);
      expect((await admin('GET', '/admin/v1/accounts', undefined, wrong)).status).toBe(401);
    });

    it('drives rate limits: requests, tokens and concurrency per key (429)', async () => {
      const name = label('rate-rpm');
      mocks.openai.enqueue(openaiText({ text: canary(`${name}-completion`) }));
      expect((await chat(`${name}-first`, MODEL.openai, {}, keys.rpm)).status).toBe(200);
      expect((await chat(name, MODEL.openai, {}, keys.rpm)).status).toBe(429);

      const tname = label('rate-tpm');
      expect((await chat(tname, MODEL.openai, { max_tokens: 50 }, keys.tpm)).status).toBe(429);

      const cname = label('rate-concurrency');
      mocks.openai.enqueue({ ...openaiText({ text: canary(`${cname}-completion`) }), delayMs: 600 });
      const first = chat(`${cname}-first`, MODEL.openai, {}, keys.concurrency);
      await eventually(() => expect(mocks.openai.requests.at(-1)?.body).toContain(canary(`${cname}-first-prompt`)));
      expect((await chat(cname, MODEL.openai, {}, keys.concurrency)).status).toBe(429);
      expect((await first).status).toBe(200);
    });

    it('drives refusals for money: no credits (402) and a key limit of 0 (402)', async () => {
      const name = label('no-credits');
      const r = await chat(name, MODEL.openai, {}, keys.credits);
      expect(r.status).toBe(402);
      expect(r.text).toContain('MR_ERR_INSUFFICIENT_CREDITS');
      const lname = label('key-limit');
      const l = await chat(lname, MODEL.openai, {}, keys.limit0);
      expect(l.status).toBe(402);
      expect(l.text).toContain('MR_ERR_KEY_LIMIT');
    });

    it('drives client aborts mid-stream for each provider, and before the first byte', async () => {
      for (const p of PROVIDERS) {
        const name = label(`${p}-abort`);
        const chunks = Array.from({ length: 60 }, (_, i) => canary(`${name}-completion-${i}`));
        mocks[p].enqueue({ ...REPLIES[p].stream(chunks), sseDelayMs: 40 });
        const before = mocks[p].closedRequests;
        const controller = new AbortController();
        const res = await fetch(`${t.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json', ...canaryHeaders(name) },
          body: JSON.stringify(chatBody(name, MODEL[p], { stream: true })),
          signal: controller.signal,
        });
        const reader = res.body!.getReader();
        let seen = '';
        while (!seen.includes(canary(`${name}-completion-0`))) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += Buffer.from(value).toString('utf8');
        }
        expect(seen).toContain(canary(`${name}-completion-0`));
        controller.abort();
        await eventually(() => expect(mocks[p].closedRequests).toBe(before + 1), 2000);
      }
      const name = label('abort-before-first-byte');
      mocks.openai.enqueue({ hang: true });
      const controller = new AbortController();
      const before = mocks.openai.closedRequests;
      const pending = send('/v1/chat/completions', JSON.stringify(chatBody(name, MODEL.openai)), { signal: controller.signal, headers: canaryHeaders(name) }).catch(
        () => undefined,
      );
      await eventually(() => expect(mocks.openai.requests.at(-1)?.body).toContain(canary(`${name}-prompt`)));
      controller.abort();
      await pending;
      await eventually(() => expect(mocks.openai.closedRequests).toBe(before + 1), 2000);
      // Every metered request has its usage row (499 for the aborts) before the scan.
      await eventually(async () => expect((await t.usage()).filter((u) => u.status === 499).length).toBeGreaterThanOrEqual(3));
    });

    // -----------------------------------------------------------------------------------------
    // The scans
    // -----------------------------------------------------------------------------------------

    const needles = (): Needle[] => [{ label: 'CANARY', text: PREFIX, prefix: true }, ...secrets];

    /** Scans every location; returns what was covered. */
    async function scanEverything(scanner: Scanner, opts: { running: boolean }) {
      const files = await scanDirectory(scanner, dataDir);
      const tables = target.name === 'sqlite' ? undefined : await scanPostgres(scanner, databaseUrl);
      const redisKeys = redis ? await scanRedis(scanner, redis) : undefined;
      t.logs.forEach((line, i) => scanner.scan(`log chunk #${i}`, line));
      capture.chunks.forEach((chunk, i) => scanner.scan(`stdout/stderr write #${i}`, chunk));
      let metricsStatus: number | undefined;
      if (opts.running) {
        for (const token of [undefined, ADMIN_KEY]) {
          const res = await fetch(`${t.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
          metricsStatus = res.status;
          scanner.scan(`GET /metrics (${res.status})`, Buffer.from(await res.arrayBuffer()));
        }
      }
      return { files, tables, redisKeys, metricsStatus };
    }

    function expectNoHits(scanner: Scanner): void {
      // Only labels and locations are printed, never what surrounds a hit.
      expect(scanner.hits, `canaries or secrets found:\n${scanner.report()}`).toEqual([]);
    }

    it('finds no canary and no secret anywhere while the gateway runs', async () => {
      await t.usage(); // usage rows written
      const scanner = new Scanner(needles());
      const covered = await scanEverything(scanner, { running: true });

      // The scan covered what the gateway wrote.
      if (target.name === 'sqlite') {
        expect(covered.files).toContain('maxrouter.db');
        expect(covered.files).toContain('maxrouter.db-wal');
      } else {
        for (const table of ['accounts', 'api_keys', 'usage', 'ledger', 'audit_log']) expect(covered.tables?.has(table)).toBe(true);
        expect(covered.tables!.get('usage')).toBeGreaterThan(20);
        expect(covered.tables!.get('audit_log')).toBeGreaterThanOrEqual(8);
        const mine = covered.redisKeys!.filter((k) => k.startsWith('mr:rl:'));
        expect(mine.some((k) => k.includes(t.keyId))).toBe(true);
      }
      // One access-log line per inference request and per refused request (about a hundred).
      expect(t.logs.join('').split('"msg":"request"').length - 1).toBeGreaterThanOrEqual(60);
      expect(covered.metricsStatus).toBeDefined();
      expectNoHits(scanner);
    });

    it('self-check: canaries planted in each scanned place are found', async () => {
      const self = `CANARY-${randomBytes(6).toString('hex')}-`;
      const planted = (where: string) => `${self}planted-${where}`;
      const fakeKey = generateApiKey();
      const scanner = new Scanner([
        { label: 'SELFCHECK', text: self, prefix: true },
        { label: 'secret:selfcheck-key', text: fakeKey },
      ]);
      const removals: (() => Promise<void> | void)[] = [];
      try {
        // Files under the data dir: plain, base64, UTF-16, nested.
        await mkdir(join(dataDir, 'selfcheck', 'deeper'), { recursive: true });
        removals.push(() => rm(join(dataDir, 'selfcheck'), { recursive: true, force: true }));
        await writeFile(join(dataDir, 'selfcheck', 'deeper', 'plain.bin'), Buffer.concat([randomBytes(64), Buffer.from(`${planted('file')}\0`), randomBytes(64)]));
        await writeFile(join(dataDir, 'selfcheck', 'b64.txt'), Buffer.from(`x${planted('base64')}`).toString('base64'));
        await writeFile(join(dataDir, 'selfcheck', 'utf16.txt'), Buffer.from(planted('utf16').toLowerCase(), 'utf16le'));
        await writeFile(join(dataDir, 'selfcheck', 'upper.txt'), `${planted('upper').toUpperCase()}\n`);
        // The database: a row in a scratch table (SQLite: found in the raw file bytes).
        await sql`create table canary_selfcheck (v text)`.execute(t.gw.database.db);
        removals.push(() => sql`drop table if exists canary_selfcheck`.execute(t.gw.database.db).then(() => undefined));
        await sql`insert into canary_selfcheck (v) values (${planted('db-row')})`.execute(t.gw.database.db);
        // Redis: one key of each type in a prefix of its own, and a key whose name is the canary.
        const prefix = `mr-canary-selfcheck:${randomBytes(4).toString('hex')}:`;
        if (redis) {
          removals.push(async () => {
            const leftover = await redis!.keys(`${prefix}*`);
            if (leftover.length > 0) await redis!.del(...leftover);
          });
          await redis.set(`${prefix}string`, planted('redis-string'), 'EX', 60);
          await redis.hset(`${prefix}hash`, 'f', planted('redis-hash'));
          await redis.zadd(`${prefix}zset`, 1, planted('redis-zset'));
          await redis.rpush(`${prefix}list`, planted('redis-list'));
          await redis.sadd(`${prefix}set`, planted('redis-set'));
          await redis.set(`${prefix}${planted('redis-key-name')}`, '1', 'EX', 60);
        }
        // The log, through the gateway's own logger at its most verbose level.
        const logsBefore = t.logs.length;
        t.gw.logger.trace({ planted: planted('log') }, 'selfcheck');
        t.gw.logger.trace({ authorization: `Bearer ${fakeKey}` }, 'selfcheck');
        await eventually(() => expect(t.logs.length).toBeGreaterThan(logsBefore));
        removals.push(() => {
          t.logs.splice(0, t.logs.length, ...t.logs.filter((l) => !l.includes(self)));
        });
        // stdout and stderr, by each route the capture covers.
        const chunksBefore = capture.chunks.length;
        process.stderr.write(`${planted('stderr')}\n`);
        console.error(planted('console'));
        createRequire(import.meta.url)('node:fs').writeSync(2, `${planted('fd2')}\n`);
        removals.push(() => {
          const kept = capture.chunks.filter((c) => !c.includes(self));
          capture.chunks.splice(0, capture.chunks.length, ...kept);
        });
        expect(capture.chunks.length).toBeGreaterThan(chunksBefore);

        await scanEverything(scanner, { running: true });
        // Hits name the canary's label (what was planted where) and the place, never the content around it.
        const found = new Set(scanner.hits.map((h) => h.needle.replace(/^SELFCHECK\[planted-/, '').replace(/\]$/, '')));
        const at = (what: string, where: string) => scanner.hits.some((h) => h.needle === `SELFCHECK[planted-${what}]` && h.where.startsWith(where));
        expect(at('file', 'file selfcheck/deeper/plain.bin')).toBe(true);
        expect(scanner.hits.some((h) => h.encoding.startsWith('base64') && h.where.startsWith('file selfcheck/b64.txt'))).toBe(true);
        expect(scanner.hits.some((h) => h.encoding === 'utf-16le' && h.where.startsWith('file selfcheck/utf16.txt'))).toBe(true);
        expect(at('upper', 'file selfcheck/upper.txt')).toBe(true);
        expect(at('db-row', target.name === 'sqlite' ? 'file maxrouter.db' : 'postgres canary_selfcheck.v')).toBe(true);
        if (redis) {
          for (const what of ['redis-string', 'redis-hash', 'redis-zset', 'redis-list', 'redis-set']) expect(at(what, 'redis ')).toBe(true);
          expect(found).toContain('redis-key-name');
          // A key name is reported redacted.
          expect(scanner.hits.some((h) => h.where.startsWith('redis key name') && h.where.includes('<SELFCHECK>') && !h.where.includes(self))).toBe(true);
        }
        expect(at('log', 'log chunk #')).toBe(true);
        expect(scanner.hits.some((h) => h.needle === 'secret:selfcheck-key' && h.where.startsWith('log chunk #'))).toBe(true);
        for (const what of ['stderr', 'console', 'fd2']) expect(at(what, 'stdout/stderr write #')).toBe(true);
      } finally {
        for (const remove of removals.reverse()) await remove();
      }
    });

    it('finds no canary and no secret anywhere once the gateway has shut down', async () => {
      await t.gw.stop();
      const scanner = new Scanner(needles());
      const covered = await scanEverything(scanner, { running: false });
      if (target.name === 'sqlite') expect(covered.files).toContain('maxrouter.db');
      expect(t.logs.join('')).toContain('shutdown complete');
      expectNoHits(scanner);
    });
  });
}
