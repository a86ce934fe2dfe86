/**
 * The admin API (/admin/v1) through a running gateway, on SQLite and (with TEST_POSTGRES_URL)
 * PostgreSQL: off (404) without `admin.key`, 401 for anything but the admin key, accounts,
 * credits and the ledger, an operator handing out the first management key, and usage reports
 * in JSON and CSV.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyId, isWellFormedKey } from '../../src/auth/api-key.js';
import type { UsageRecord } from '../../src/storage/usage-repo.js';
import { openaiText } from '../fixtures/openai.js';
import { DATABASES } from '../helpers/databases.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

const ADMIN_KEY = 'admin-key-0123456789-abcdefghijklmnopqrstuvwxyz';

async function call(base: string, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const MODELS = (providerUrl: string) => ({
  providers: [{ id: 'up', type: 'openai' as const, baseUrl: `${providerUrl}/v1`, apiKey: 'sk-upstream' }],
  models: [{ id: 'test/chat', endpoints: [{ provider: 'up', model: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6 } }] }],
});

describe('admin API without admin.key', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway(MODELS(mock.url));
  });
  afterAll(async () => {
    await t?.close();
    await mock?.close();
  });

  it('every /admin/v1 route is 404, whatever the token', async () => {
    for (const [method, path] of [
      ['GET', '/admin/v1/accounts'],
      ['POST', '/admin/v1/accounts'],
      ['GET', '/admin/v1/usage?from=2025-01-01&to=2025-01-31'],
    ] as const) {
      for (const token of [undefined, ADMIN_KEY, t.apiKey]) {
        const r = await call(t.url, method, path, token, method === 'POST' ? { email: 'x@example.com' } : undefined);
        expect(r.status).toBe(404);
        expect(r.json.error.code).toBe('MR_ERR_NOT_FOUND');
      }
    }
    expect(await t.gw.repos.accounts.findAccountByEmail('x@example.com')).toBeUndefined();
  });
});

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`admin API (${target.name})`, () => {
    let mock: MockUpstream;
    let t: TestGateway;
    const admin = (method: string, path: string, body?: unknown) => call(t.url, method, `/admin/v1${path}`, ADMIN_KEY, body);

    function usageRow(accountId: string, createdAt: number, model: string, costNano: number, tokens: Partial<UsageRecord> = {}): UsageRecord {
      return {
        id: `gen-${generateKeyId()}`,
        keyId: 'key_report',
        accountId,
        model,
        provider: 'up',
        upstreamModel: 'm',
        promptTokens: 100,
        completionTokens: 20,
        cachedTokens: 10,
        cacheWriteTokens: 0,
        reasoningTokens: 5,
        status: 200,
        latencyMs: 5,
        streamed: false,
        createdAt,
        costNano,
        costEstimated: false,
        charge: false,
        ...tokens,
      };
    }

    beforeAll(async () => {
      mock = await startMockUpstream();
      mock.setDefault(openaiText({ text: 'Hi' }));
      const db = await target.openUrl();
      t = await startTestGateway({ database: db.url, admin: { key: ADMIN_KEY }, ...MODELS(mock.url) }, { onClose: db.drop });
    });
    afterAll(async () => {
      await t?.close();
      await mock?.close();
    });

    it('401 without the admin key: none, wrong, an API key, another scheme', async () => {
      for (const auth of [undefined, 'Bearer wrong', `Bearer ${ADMIN_KEY}x`, `Bearer ${t.apiKey}`, `Basic ${ADMIN_KEY}`, ADMIN_KEY]) {
        const res = await fetch(`${t.url}/admin/v1/accounts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(auth !== undefined ? { authorization: auth } : {}) },
          body: '{"email": ', // never read: authentication comes first
        });
        expect(res.status, String(auth)).toBe(401);
        expect(((await res.json()) as any).error).toMatchObject({ code: 'MR_ERR_UNAUTHORIZED', type: 'authentication_error' });
      }
      // The admin key is no API key either.
      expect((await call(t.url, 'GET', '/api/v1/key', ADMIN_KEY)).status).toBe(401);
      expect((await call(t.url, 'GET', '/admin/v1/accounts', ADMIN_KEY)).status).toBe(200);
    });

    it('creates, lists and changes accounts', async () => {
      const created = await admin('POST', '/accounts', { email: ' Ann@Example.com ', billing_mode: 'credits' });
      expect(created.status).toBe(201);
      expect(created.json.data).toEqual({
        id: expect.stringMatching(/^acc_[0-9A-Za-z]{16}$/),
        email: 'ann@example.com',
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        disabled: false,
        billing_mode: 'credits',
        zdr: false,
        data_collection: 'allow',
        balance: 0,
      });
      const id = created.json.data.id;

      const dup = await admin('POST', '/accounts', { email: 'ann@example.com' });
      expect(dup.status).toBe(409);
      expect(dup.json.error.param).toBe('email');
      expect((await admin('POST', '/accounts', { email: 'not-an-email' })).json.error).toMatchObject({ param: 'email', code: 'MR_ERR_INVALID_REQUEST' });
      expect((await admin('POST', '/accounts', { email: 'z@example.com', plan: 'pro' })).json.error).toMatchObject({ param: 'plan' });
      expect((await admin('POST', '/accounts', { email: 'z@example.com', billing_mode: 'free' })).json.error).toMatchObject({ param: 'billing_mode' });

      const list = await admin('GET', '/accounts');
      expect(list.json.data.map((x: { email: string }) => x.email)).toEqual(['e2e@example.com', 'ann@example.com']);

      const patched = await admin('PATCH', `/accounts/${id}`, { billing_mode: null, disabled: true });
      expect(patched.status).toBe(200);
      expect(patched.json.data).toMatchObject({ id, billing_mode: null, disabled: true });
      expect((await admin('PATCH', '/accounts/acc_doesnotexist0000', { disabled: true })).status).toBe(404);
      expect((await admin('PATCH', `/accounts/${id}`, { email: 'x@example.com' })).json.error.param).toBe('email');
    });

    it('credits: top-ups and adjustments move the balance; the ledger lists them newest first', async () => {
      const id = (await admin('POST', '/accounts', { email: 'credits@example.com' })).json.data.id;
      const top = await admin('POST', `/accounts/${id}/credits`, { usd: 12.5, reason: 'invoice 2025-113' });
      expect(top.status).toBe(201);
      expect(top.json.data).toMatchObject({ kind: 'topup', amount: 12.5, reason: 'invoice 2025-113', generation_id: null, balance: 12.5 });
      const adj = await admin('POST', `/accounts/${id}/credits`, { usd: -2.5, reason: 'refund', kind: 'adjustment' });
      expect(adj.json.data).toMatchObject({ kind: 'adjustment', amount: -2.5, balance: 10 });

      const bad = async (body: unknown, param: string) => {
        const r = await admin('POST', `/accounts/${id}/credits`, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.json.error.param, JSON.stringify(body)).toBe(param);
      };
      await bad({ usd: -1, reason: 'x' }, 'usd');
      await bad({ usd: 0, reason: 'x', kind: 'adjustment' }, 'usd');
      await bad({ usd: 0.0000000001, reason: 'x' }, 'usd');
      await bad({ usd: 1, reason: '' }, 'reason');
      await bad({ usd: 1, reason: 'line\nbreak' }, 'reason');
      await bad({ usd: 1 }, 'reason');
      await bad({ usd: 1, reason: 'x', kind: 'charge' }, 'kind');
      expect((await admin('POST', '/accounts/acc_doesnotexist0000/credits', { usd: 1, reason: 'x' })).status).toBe(404);

      const ledger = await admin('GET', `/accounts/${id}/ledger`);
      expect(ledger.status).toBe(200);
      expect(ledger.json.data.map((e: { amount: number; kind: string }) => [e.kind, e.amount])).toEqual([
        ['adjustment', -2.5],
        ['topup', 12.5],
      ]);
      const page = await admin('GET', `/accounts/${id}/ledger?limit=1`);
      expect(page.json.data).toHaveLength(1);
      const next = await admin('GET', `/accounts/${id}/ledger?limit=1&before=${page.json.data[0].id}`);
      expect(next.json.data.map((e: { kind: string }) => e.kind)).toEqual(['topup']);
      expect((await admin('GET', `/accounts/${id}/ledger?limit=0`)).json.error.param).toBe('limit');
      expect((await admin('GET', `/accounts/${id}/ledger?page=2`)).json.error.param).toBe('page');
      expect((await admin('GET', '/accounts/acc_doesnotexist0000/ledger')).status).toBe(404);
      expect((await admin('GET', '/accounts')).json.data.find((a: { id: string }) => a.id === id).balance).toBe(10);
    });

    it('an operator hands out the first management key; the customer takes it from there; disabling applies at once', async () => {
      const id = (await admin('POST', '/accounts', { email: 'customer@example.com', billing_mode: 'credits' })).json.data.id;
      await admin('POST', `/accounts/${id}/credits`, { usd: 1, reason: 'welcome' });

      const first = await admin('POST', `/accounts/${id}/keys`, { name: 'owner', kind: 'management' });
      expect(first.status).toBe(201);
      expect(isWellFormedKey(first.json.key)).toBe(true);
      expect(first.json.data).toMatchObject({ name: 'owner', kind: 'management', usage: 0 });
      const mgmt = first.json.key as string;
      expect((await admin('POST', '/accounts/acc_doesnotexist0000/keys', { name: 'x' })).status).toBe(404);
      expect((await admin('POST', `/accounts/${id}/keys`, { name: 'x', allowed_models: ['nope'] })).json.error.param).toBe('allowed_models[0]');

      const created = await call(t.url, 'POST', '/api/v1/keys', mgmt, { name: 'app' });
      expect(created.status).toBe(201);
      const key = created.json.key as string;
      const chat = () =>
        fetch(`${t.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'test/chat', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }),
        }).then(async (r) => (await r.arrayBuffer(), r.status));
      expect(await chat()).toBe(200);

      expect((await admin('PATCH', `/accounts/${id}`, { disabled: true })).status).toBe(200);
      expect(await chat()).toBe(401);
      expect((await call(t.url, 'GET', '/api/v1/keys', mgmt)).status).toBe(401);
      expect((await admin('PATCH', `/accounts/${id}`, { disabled: false })).status).toBe(200);
      expect(await chat()).toBe(200);

      // Billing mode change applies at once too: no credits left after a negative adjustment → 402 in credits mode.
      await admin('POST', `/accounts/${id}/credits`, { usd: -1, reason: 'claw back', kind: 'adjustment' });
      await t.gw.usageWriter.flush();
      expect(await chat()).toBe(402);
      expect((await admin('PATCH', `/accounts/${id}`, { billing_mode: 'track' })).json.data.billing_mode).toBe('track');
      expect(await chat()).toBe(200);
    });

    it('usage report: rows per account, key, UTC day and model, in JSON and CSV', async () => {
      const x = (await admin('POST', '/accounts', { email: 'report-x@example.com' })).json.data.id as string;
      const y = (await admin('POST', '/accounts', { email: 'report-y@example.com' })).json.data.id as string;
      const day1 = Date.UTC(2024, 2, 1);
      const day2 = Date.UTC(2024, 2, 2);
      await t.gw.repos.usage.insertUsage([
        usageRow(x, day1 + 1_000, 'test/chat', 1_000),
        usageRow(x, day1 + 86_399_999, 'test/chat', 2_500, { promptTokens: 50 }),
        usageRow(x, day1 + 5_000, 'vendor/with,comma', 7),
        usageRow(y, day2 + 10, 'test/chat', 1_000_000_000),
        usageRow(x, day2 + 86_400_000, 'test/chat', 99), // 2024-03-03: outside the range
      ]);

      const json = await admin('GET', '/usage?from=2024-03-01&to=2024-03-02');
      expect(json.status).toBe(200);
      expect(json.json.data).toEqual([
        { date: '2024-03-01', account_id: x, key_id: 'key_report', model: 'test/chat', requests: 2, tokens_prompt: 150, tokens_completion: 40, tokens_cached: 20, tokens_reasoning: 10, cost: 0.0000035 },
        { date: '2024-03-01', account_id: x, key_id: 'key_report', model: 'vendor/with,comma', requests: 1, tokens_prompt: 100, tokens_completion: 20, tokens_cached: 10, tokens_reasoning: 5, cost: 0.000000007 },
        { date: '2024-03-02', account_id: y, key_id: 'key_report', model: 'test/chat', requests: 1, tokens_prompt: 100, tokens_completion: 20, tokens_cached: 10, tokens_reasoning: 5, cost: 1 },
      ]);

      const filtered = await admin('GET', `/usage?account=${x}&from=2024-03-02&to=2024-03-03&format=json`);
      expect(filtered.json.data.map((r: { date: string; cost: number }) => [r.date, r.cost])).toEqual([['2024-03-03', 0.000000099]]);

      const csv = await admin('GET', '/usage?from=2024-03-01&to=2024-03-02&format=csv');
      expect(csv.status).toBe(200);
      expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
      expect(csv.text).toBe(
        'date,account_id,key_id,model,requests,tokens_prompt,tokens_completion,tokens_cached,tokens_reasoning,cost_usd\n' +
          `2024-03-01,${x},key_report,test/chat,2,150,40,20,10,0.0000035\n` +
          `2024-03-01,${x},key_report,"vendor/with,comma",1,100,20,10,5,0.000000007\n` +
          `2024-03-02,${y},key_report,test/chat,1,100,20,10,5,1\n`,
      );
      const empty = await admin('GET', '/usage?from=2020-01-01&to=2020-01-01&format=csv');
      expect(empty.text).toBe('date,account_id,key_id,model,requests,tokens_prompt,tokens_completion,tokens_cached,tokens_reasoning,cost_usd\n');

      const bad = async (query: string, status: number, param: string) => {
        const r = await admin('GET', `/usage?${query}`);
        expect(r.status, query).toBe(status);
        expect(r.json.error.param, query).toBe(param);
      };
      await bad('to=2024-03-02', 400, 'from');
      await bad('from=2024-03-01', 400, 'to');
      await bad('from=2024-02-30&to=2024-03-02', 400, 'from');
      await bad('from=2024-03-01&to=03/02/2024', 400, 'to');
      await bad('from=2024-03-02&to=2024-03-01', 400, 'to');
      await bad('from=2024-03-01&to=2024-03-02&format=xml', 400, 'format');
      await bad('from=2024-03-01&to=2024-03-02&acount=x', 400, 'acount');
      await bad('from=2024-03-01&to=2024-03-02&account=acc_doesnotexist0000', 404, 'account');
    });
  });
}
