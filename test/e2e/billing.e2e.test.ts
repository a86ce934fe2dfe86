/**
 * Billing end to end through the official `openai` SDK: exact cost in every response and usage
 * row, credits enforced with 402, key limits (spend with reset, expiry, allowed models), and the
 * ledger invariant under 50 concurrent requests — on SQLite and PostgreSQL.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey, generateKeyId, hashApiKey, last4 } from '../../src/auth/api-key.js';
import { openaiText, openaiTextStream } from '../fixtures/openai.js';
import { anthropicCachedUsageReply, anthropicTextStream } from '../fixtures/anthropic.js';
import { DATABASES } from '../helpers/databases.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream } from '../helpers/mock-upstream.js';

const USD = 1_000_000_000; // nano-USD per USD

function providerField(res: unknown): unknown {
  return (res as { provider?: unknown }).provider;
}
function costField(usage: unknown): unknown {
  return (usage as { cost?: unknown } | undefined)?.cost;
}

async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}

/** A completion whose usage is exactly `completion` output tokens and `prompt` input tokens. */
function completionReply(prompt: number, completion: number, delayMs = 0): MockReply {
  const r = openaiText();
  const json = r.json as Record<string, any>;
  json.usage = { ...json.usage, prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  return { ...r, delayMs };
}

describe('cost in responses and usage rows (track mode)', () => {
  let mock: MockUpstream;
  let anth: MockUpstream;
  let t: TestGateway;
  beforeAll(async () => {
    mock = await startMockUpstream();
    anth = await startMockUpstream();
    t = await startTestGateway({
      providers: [
        { id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-up' },
        { id: 'an', type: 'anthropic', baseUrl: anth.url, apiKey: 'sk-an' },
      ],
      models: [
        { id: 'test/chat', endpoints: [{ provider: 'oa', model: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6, cachedInput: 0.075 } }] },
        {
          id: 'test/claude',
          maxOutputTokens: 1000,
          endpoints: [{ provider: 'an', model: 'claude-x', pricing: { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75, cacheWrite1h: 6 } }],
        },
      ],
    });
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
    await anth.close();
  });
  beforeEach(() => {
    mock.reset();
    anth.reset();
  });

  it('a passthrough response carries the generation id, the provider and usage.cost; the row has the same cost', async () => {
    mock.enqueue(openaiText({ cached: 4, reasoning: 0 }));
    const { data: res, response } = await t.client.chat.completions
      .create({ model: 'test/chat', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    // prompt 12 (4 cached) → 8 × 150 000 000 + 4 × 75 000 000 = 1 500 000 000; output 5 × 600 000 000 = 3 000 000 000
    // (nano-USD × tokens per million) → 4 500 000 000 / 1e6 = 4 500 nano-USD.
    expect(costField(res.usage)).toBe(4500 / USD);
    expect(res.id).toBe(response.headers.get('x-generation-id'));
    expect(providerField(res)).toBe('oa');
    expect(response.headers.get('x-maxrouter-provider')).toBe('oa');
    // Everything else is the upstream's answer.
    expect(res.choices[0]!.message.content).toBe('Hello from OpenAI.');
    expect(res.usage?.prompt_tokens_details?.cached_tokens).toBe(4);
    const row = (await t.usage()).find((r) => r.id === res.id)!;
    expect(row).toMatchObject({ costNano: 4500, costEstimated: false });
  });

  it('a passthrough stream carries the provider on every chunk and usage.cost on the usage chunk, billed like non-stream', async () => {
    mock.enqueue(openaiTextStream(['Hel', 'lo']));
    const stream = await t.client.chat.completions.create({
      model: 'test/chat',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(id).toMatch(/^gen-/);
    for (const c of chunks) expect(providerField(c)).toBe('oa');
    const last = chunks.at(-1)!;
    // usage chunk of the fixture: 9 prompt, 2 completion → 9 × 0.15 + 2 × 0.6 = 1.35 + 1.2 = 2.55 µUSD = 2 550 nano-USD
    expect(last.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 2 });
    expect(costField(last.usage)).toBe(2550 / USD);
    const row = (await t.usage()).find((r) => r.id === id)!;
    expect(row).toMatchObject({ costNano: 2550, streamed: true, costEstimated: false });
  });

  it('a translated (Anthropic) response prices cache reads and 5-minute and 1-hour writes', async () => {
    anth.enqueue(anthropicCachedUsageReply());
    const res = await t.client.chat.completions.create({ model: 'test/claude', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.id).toMatch(/^gen-/);
    expect(providerField(res)).toBe('an');
    const row = (await t.usage()).find((r) => r.id === res.id)!;
    const u = res.usage!;
    const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
    const writes = (u.prompt_tokens_details as { cache_write_tokens?: number } | undefined)?.cache_write_tokens ?? 0;
    expect(cached).toBeGreaterThan(0);
    expect(writes).toBeGreaterThan(0);
    // The fixture's writes are all 5-minute writes (no cache_creation split).
    const uncached = u.prompt_tokens - cached - writes;
    const scaled = uncached * 3_000_000_000 + cached * 300_000_000 + writes * 3_750_000_000 + u.completion_tokens * 15_000_000_000;
    const expected = Math.floor((scaled + 500_000) / 1_000_000);
    expect(row.costNano).toBe(expected);
    expect(costField(u)).toBe(expected / USD);
  });

  it('an Anthropic stream is billed from its reported usage, the usage chunk carrying the cost', async () => {
    anth.enqueue(anthropicTextStream({ chunks: ['a', 'b'] }));
    const stream = await t.client.chat.completions.create({
      model: 'test/claude',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const c of stream) {
      expect(providerField(c)).toBe('an');
      last = c;
    }
    const row = (await t.usage()).find((r) => r.id === last!.id)!;
    expect(row.costNano).toBeGreaterThan(0);
    expect(costField(last!.usage)).toBe(row.costNano / USD);
  });

  it('a stream the upstream ends without usage is billed on an estimate, marked as such', async () => {
    mock.enqueue(openaiTextStream(['x'.repeat(400)], false));
    const stream = await t.client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'y'.repeat(80) }], stream: true });
    let id = '';
    for await (const c of stream) id = c.id;
    const row = (await t.usage()).find((r) => r.id === id)!;
    // 80 characters of prompt → 20 tokens; ≈400 characters relayed → ≈100 tokens (the chunk
    // envelope is estimated, so a little more).
    expect(row.costEstimated).toBe(true);
    expect(row.promptTokens).toBe(20);
    expect(row.completionTokens).toBeGreaterThanOrEqual(95);
    expect(row.completionTokens).toBeLessThanOrEqual(120);
    expect(row.costNano).toBe(20 * 150 + row.completionTokens * 600);
  });
});

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`credits and key limits (${target.name})`, () => {
    let mock: MockUpstream;
    let t: TestGateway;
    let clock = Date.UTC(2026, 10, 30, 23, 59, 0);
    const now = () => clock;

    beforeAll(async () => {
      mock = await startMockUpstream();
    });
    afterAll(async () => {
      await mock.close();
    });
    beforeEach(async () => {
      clock = Date.UTC(2026, 10, 30, 23, 59, 0);
      mock.reset();
      const db = await target.openUrl();
      t = await startTestGateway(
        {
          database: db.url,
          billing: { mode: 'credits', refreshMs: 60_000 },
          providers: [{ id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-up' }],
          models: [
            // Input is free, so a request's worst case is exactly max_tokens × $1/M.
            { id: 'test/chat', contextLength: 100_000, endpoints: [{ provider: 'oa', model: 'gpt-4o-mini', pricing: { input: 0, output: 1 } }] },
            { id: 'test/other', endpoints: [{ provider: 'oa', model: 'gpt-4o', pricing: { input: 0, output: 1 } }] },
          ],
        },
        { now, onClose: db.drop },
      );
    });
    afterEach(async () => {
      await t.close();
    });

    async function topUp(usd: number): Promise<void> {
      await t.gw.repos.ledger.append({ accountId: t.accountId, kind: 'topup', amountNano: usd * USD, reason: 'test top-up' });
    }
    const ask = (maxTokens = 1000, model = 'test/chat') =>
      t.client.chat.completions.create({ model, max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] });

    it('an account without credits gets 402 with code 402 naming the limit; after a top-up it is served and charged', async () => {
      const e = await apiError(ask());
      expect(e.status).toBe(402);
      expect(e.code).toBe(402);
      expect(e.message).toMatch(/no credits left/);
      expect((e.error as { metadata?: { reason?: string } }).metadata?.reason).toBe('MR_ERR_INSUFFICIENT_CREDITS');
      expect(mock.requests).toHaveLength(0);

      await topUp(1);
      t.gw.accounting.invalidateAccount(t.accountId);
      mock.enqueue(completionReply(10, 500));
      const res = await ask();
      expect(costField(res.usage)).toBe(500 / 1_000_000); // 500 tokens × $1/M
      await t.gw.usageWriter.flush();
      const ledger = t.gw.repos.ledger;
      expect(await ledger.balance(t.accountId)).toBe(USD - 500_000);
      expect(await ledger.sumLedger(t.accountId)).toBe(USD - 500_000);
    });

    it('refuses a request whose worst case exceeds the available credits, saying how to fix it', async () => {
      await topUp(0.0005); // 500 000 nano-USD: 500 output tokens at $1/M
      mock.setDefault(completionReply(1, 1));
      const e = await apiError(ask(600));
      expect(e.status).toBe(402);
      expect(e.message).toMatch(/may cost up to \$0\.0006 \(.*600 output tokens\), more than the \$0\.0005 of credits available; lower max_tokens or add credits/);
      expect(mock.requests).toHaveLength(0);
      await ask(400); // fits
      expect(mock.requests).toHaveLength(1);
    });

    it('50 concurrent requests on an account that can afford 10: exactly 10 admitted, charged to the unit, balance = ledger sum', async () => {
      // Each request: worst case = actual cost = 1 000 output tokens × $1/M = 1 000 000 nano-USD.
      await topUp(0.01);
      mock.setDefault(completionReply(3, 1000, 150));
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => ask(1000)));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const refused = results.filter((r) => r.status === 'rejected' && (r.reason as { status?: number }).status === 402).length;
      expect(ok).toBe(10);
      expect(refused).toBe(40);
      expect(mock.requests).toHaveLength(10);
      await t.gw.usageWriter.flush();
      const ledger = t.gw.repos.ledger;
      expect(await ledger.balance(t.accountId)).toBe(0);
      expect(await ledger.sumLedger(t.accountId)).toBe(0);
      const totals = await ledger.totals(t.accountId);
      expect(totals).toMatchObject({ creditsNano: 10_000_000, chargesNano: 10_000_000, balanceNano: 0 });
      // Nothing left: the next request is refused.
      expect((await apiError(ask(1000))).status).toBe(402);
    });

    it('a key spend limit refuses with 402 until its daily window resets at UTC midnight', async () => {
      await topUp(10);
      await t.gw.repos.keys.updateKey(t.accountId, t.keyId, { spendLimitNano: 1_500_000, limitReset: 'daily' });
      t.gw.authenticator.invalidate(t.keyId);
      mock.enqueue(completionReply(1, 1000), completionReply(1, 400), completionReply(1, 1000));
      await ask(1000); // spent 1 000 000 of 1 500 000
      const e = await apiError(ask(1000)); // worst case 1 000 000 > 500 000 left
      expect(e.status).toBe(402);
      expect((e.error as { metadata?: { reason?: string } }).metadata?.reason).toBe('MR_ERR_KEY_LIMIT');
      expect(e.message).toMatch(/resets at 2026-12-01T00:00:00\.000Z/);
      await ask(400); // fits in what is left
      await t.gw.usageWriter.flush();
      clock = Date.UTC(2026, 11, 1, 0, 0, 1); // past UTC midnight
      await ask(1000);
      expect(mock.requests).toHaveLength(3);
    });

    it('an expired key gets 401, a key outside its allowed models 403, a management key 403', async () => {
      await topUp(1);
      mock.setDefault(completionReply(1, 1));
      await t.gw.repos.keys.updateKey(t.accountId, t.keyId, { allowedModels: ['test/other'], expiresAt: clock + 60_000 });
      t.gw.authenticator.invalidate(t.keyId);
      const forbidden = await apiError(ask(10, 'test/chat'));
      expect(forbidden.status).toBe(403);
      expect(forbidden).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect(forbidden.message).toMatch(/not allowed to use the model 'test\/chat'/);
      await ask(10, 'test/other');
      clock += 60_000;
      const expired = await apiError(ask(10, 'test/other'));
      expect(expired.status).toBe(401);
      expect(expired).toBeInstanceOf(OpenAI.AuthenticationError);

      const mgmt = generateApiKey();
      await t.gw.repos.keys.insertKey({
        id: generateKeyId(),
        accountId: t.accountId,
        keyHash: hashApiKey(mgmt, TEST_SECRET),
        last4: last4(mgmt),
        kind: 'management',
      });
      const client = new OpenAI({ apiKey: mgmt, baseURL: `${t.url}/v1`, maxRetries: 0 });
      const e = await apiError(client.chat.completions.create({ model: 'test/other', messages: [{ role: 'user', content: 'x' }] }));
      expect(e.status).toBe(403);
      expect(e.message).toMatch(/Management keys cannot call models/);
    });

    it('track mode on one account records cost and enforces no credits', async () => {
      await t.gw.repos.accounts.setBillingMode(t.accountId, 'track');
      t.gw.authenticator.clear();
      mock.enqueue(completionReply(1, 2000));
      const res = await ask(2000);
      expect(costField(res.usage)).toBe(2000 / 1_000_000);
      const row = (await t.usage()).at(-1)!;
      expect(row.costNano).toBe(2_000_000);
      expect(await t.gw.repos.ledger.sumLedger(t.accountId)).toBe(0); // no charge rows in track mode
    });
  });
}

describe('OpenRouter base-URL form', () => {
  it('/api/v1/chat/completions and /api/v1/models answer like /v1/…', async () => {
    const mock = await startMockUpstream();
    const t = await startTestGateway({
      providers: [{ id: 'oa', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-up' }],
      models: [{ id: 'test/chat', endpoints: [{ provider: 'oa', model: 'gpt-4o-mini', pricing: { input: 1, output: 1 } }] }],
    });
    try {
      const client = new OpenAI({ apiKey: t.apiKey, baseURL: `${t.url}/api/v1`, maxRetries: 0 });
      mock.enqueue(openaiText());
      const res = await client.chat.completions.create({ model: 'test/chat', messages: [{ role: 'user', content: 'hi' }] });
      expect(res.choices[0]!.message.content).toBe('Hello from OpenAI.');
      expect(costField(res.usage)).toBe(17 / 1_000_000); // 12 + 5 tokens at $1/M
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['test/chat']);
    } finally {
      await t.close();
      await mock.close();
    }
  });
});
