/**
 * The account API (/api/v1/generation, /key, /credits, /keys) through a running gateway, on
 * SQLite and (with TEST_POSTGRES_URL) PostgreSQL: answers, cross-account 404s, management vs
 * inference 403s, validation, and key changes that apply at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, generateKeyId, hashApiKey, isWellFormedKey, last4 } from '../../src/auth/api-key.js';
import type { KeySettings } from '../../src/storage/keys-repo.js';
import type { UsageRecord } from '../../src/storage/usage-repo.js';
import { openaiText } from '../fixtures/openai.js';
import { DATABASES } from '../helpers/databases.js';
import { eventually, startTestGateway, TEST_SECRET, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';

const NOW = Date.UTC(2025, 5, 11, 12, 0, 0); // Wednesday 2025-06-11 12:00Z

interface Account {
  accountId: string;
  inference: string;
  management: string;
  managementId: string;
}

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`account API (${target.name})`, () => {
    let mock: MockUpstream;
    let t: TestGateway;
    let clock = NOW;
    let a: Account;
    let b: Account;

    async function addKey(accountId: string, settings: KeySettings & { name?: string } = {}): Promise<{ key: string; id: string }> {
      const key = generateApiKey();
      const id = generateKeyId();
      await t.gw.repos.keys.insertKey({ id, accountId, keyHash: hashApiKey(key, TEST_SECRET), last4: last4(key), ...settings });
      return { key, id };
    }

    async function addAccount(email: string): Promise<Account> {
      const acc = await t.gw.repos.accounts.createAccount(email);
      const inference = await addKey(acc.id, { name: 'app' });
      const management = await addKey(acc.id, { name: 'admin', kind: 'management' });
      return { accountId: acc.id, inference: inference.key, management: management.key, managementId: management.id };
    }

    async function call(method: string, path: string, key?: string, body?: unknown) {
      const headers: Record<string, string> = {};
      if (key !== undefined) headers.authorization = `Bearer ${key}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${t.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const text = await res.text();
      return { status: res.status, headers: res.headers, text, json: text ? (JSON.parse(text) as any) : undefined };
    }

    async function chat(key: string, model = 'test/chat') {
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }] }),
      });
      await res.arrayBuffer();
      return { status: res.status, generationId: res.headers.get('x-generation-id') };
    }

    function usageRow(accountId: string, keyId: string, createdAt: number, costNano: number, model = 'test/chat'): UsageRecord {
      return {
        id: `gen-${generateKeyId()}`,
        keyId,
        accountId,
        model,
        provider: 'up',
        upstreamModel: 'gpt-4o-mini',
        promptTokens: 10,
        completionTokens: 2,
        cachedTokens: 0,
        cacheWriteTokens: 0,
        reasoningTokens: 0,
        status: 200,
        latencyMs: 5,
        streamed: false,
        createdAt,
        costNano,
        costEstimated: false,
        charge: false,
      };
    }

    beforeAll(async () => {
      mock = await startMockUpstream();
      mock.setDefault(openaiText({ text: 'Hi' }));
      const db = await target.openUrl();
      t = await startTestGateway(
        {
          database: db.url,
          providers: [{ id: 'up', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-upstream' }],
          models: [
            { id: 'test/chat', endpoints: [{ provider: 'up', model: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6 } }] },
            { id: 'test/other', endpoints: [{ provider: 'up', model: 'gpt-4o' }] },
          ],
        },
        { now: () => clock, onClose: db.drop },
      );
      a = await addAccount('a@example.com');
      b = await addAccount('b@example.com');
    });
    afterAll(async () => {
      await t?.close();
      await mock?.close();
    });

    it('every endpoint answers 401 without a valid key, in the OpenAI error shape', async () => {
      for (const [method, path] of [
        ['GET', '/api/v1/generation?id=x'],
        ['GET', '/api/v1/key'],
        ['GET', '/api/v1/credits'],
        ['GET', '/api/v1/keys'],
        ['POST', '/api/v1/keys'],
        ['GET', '/api/v1/keys/key_x'],
        ['PATCH', '/api/v1/keys/key_x'],
        ['DELETE', '/api/v1/keys/key_x'],
      ] as const) {
        for (const key of [undefined, 'mr_nope']) {
          const r = await call(method, path, key, method === 'POST' || method === 'PATCH' ? {} : undefined);
          expect(r.status, `${method} ${path}`).toBe(401);
          expect(r.json.error).toMatchObject({ type: 'authentication_error', code: 'MR_ERR_UNAUTHORIZED' });
        }
      }
    });

    describe('GET /api/v1/generation', () => {
      it("returns the generation's usage and cost to its own account only", async () => {
        const { status, generationId } = await chat(a.inference);
        expect(status).toBe(200);
        expect(generationId).toBeTruthy();
        const path = `/api/v1/generation?id=${encodeURIComponent(generationId!)}`;
        let r = await call('GET', path, a.inference);
        // Usage rows are written a moment after the response.
        await eventually(async () => {
          r = await call('GET', path, a.inference);
          expect(r.status).toBe(200);
        });
        expect(r.json).toEqual({
          data: {
            id: generationId,
            model: 'test/chat',
            provider: 'up',
            upstream_model: 'gpt-4o-mini',
            streamed: false,
            status: 200,
            latency_ms: expect.any(Number),
            created_at: new Date(NOW).toISOString(),
            tokens_prompt: 12,
            tokens_completion: 5,
            tokens_cached: 0,
            tokens_reasoning: 0,
            total_cost: 0.0000048, // 12 × $0.15/M + 5 × $0.60/M
            cost_estimated: false,
          },
        });
        // Any key kind of the same account.
        expect((await call('GET', path, a.management)).json.data.id).toBe(generationId);
        // Another account's keys: as if it did not exist.
        for (const key of [b.inference, b.management]) {
          const other = await call('GET', path, key);
          expect(other.status).toBe(404);
          expect(other.json.error).toMatchObject({ code: 'MR_ERR_NOT_FOUND', param: 'id' });
        }
      });

      it('404 for an unknown id, 400 without one', async () => {
        const unknown = await call('GET', '/api/v1/generation?id=gen-doesnotexist', a.inference);
        expect(unknown.status).toBe(404);
        for (const path of ['/api/v1/generation', '/api/v1/generation?id=']) {
          const missing = await call('GET', path, a.inference);
          expect(missing.status).toBe(400);
          expect(missing.json.error).toMatchObject({ code: 'MR_ERR_INVALID_REQUEST', param: 'id' });
        }
      });
    });

    describe('GET /api/v1/key', () => {
      it('reports the calling key: label, limit, remaining in its window, usage per UTC day, ISO week, month', async () => {
        const acc = await t.gw.repos.accounts.createAccount('windows@example.com');
        const limited = await addKey(acc.id, {
          spendLimitNano: 10_000_000, // $0.01 a week
          limitReset: 'weekly',
          expiresAt: Date.UTC(2026, 0, 1),
          allowedModels: ['test/chat'],
        });
        await t.gw.repos.usage.insertUsage([
          usageRow(acc.id, limited.id, NOW - 3_600_000, 1_000_000), // today
          usageRow(acc.id, limited.id, Date.UTC(2025, 5, 9, 0, 0, 0), 2_000_000), // Monday of this week
          usageRow(acc.id, limited.id, Date.UTC(2025, 5, 8, 23, 59, 59), 4_000_000), // Sunday: this month, last week
          usageRow(acc.id, limited.id, Date.UTC(2025, 4, 31, 23, 59, 59), 8_000_000), // last month
        ]);
        const r = await call('GET', '/api/v1/key', limited.key);
        expect(r.status).toBe(200);
        expect(r.json).toEqual({
          data: {
            label: `mr_…${limited.key.slice(-4)}`,
            limit: 0.01,
            limit_remaining: 0.007,
            limit_reset: 'weekly',
            usage: 0.015,
            usage_daily: 0.001,
            usage_weekly: 0.003,
            usage_monthly: 0.007,
            is_management_key: false,
            expires_at: '2026-01-01T00:00:00.000Z',
            allowed_models: ['test/chat'],
          },
        });

        const plain = await call('GET', '/api/v1/key', a.management);
        expect(plain.json.data).toMatchObject({
          label: 'admin',
          limit: null,
          limit_remaining: null,
          limit_reset: null,
          is_management_key: true,
          expires_at: null,
          allowed_models: null,
        });
      });
    });

    describe('GET /api/v1/credits', () => {
      it('credits net of adjustments, and usage (recorded in every billing mode)', async () => {
        const c = await addAccount('credits@example.com');
        const ledger = t.gw.repos.ledger;
        await ledger.append({ accountId: c.accountId, kind: 'topup', amountNano: 10_000_000_000, reason: 'invoice 1' });
        await ledger.append({ accountId: c.accountId, kind: 'adjustment', amountNano: -1_500_000_000, reason: 'refund' });
        const keyId = (await t.gw.repos.keys.listKeys(c.accountId))[0]!.id;
        await t.gw.repos.usage.insertUsage([usageRow(c.accountId, keyId, NOW, 250_000_000)]);
        const r = await call('GET', '/api/v1/credits', c.inference);
        expect(r.status).toBe(200);
        expect(r.json).toEqual({ data: { total_credits: 8.5, total_usage: 0.25 } });
        // Another account sees its own (empty) totals.
        expect((await call('GET', '/api/v1/credits', b.management)).json).toEqual({ data: { total_credits: 0, total_usage: 0 } });
      });

      it('an account paying with credits: a charge shows in total_usage, total_credits unchanged', async () => {
        const c = await addAccount('prepaid@example.com');
        await t.gw.repos.accounts.setBillingMode(c.accountId, 'credits');
        await t.gw.repos.ledger.append({ accountId: c.accountId, kind: 'topup', amountNano: 1_000_000_000, reason: 'start' });
        expect((await chat(c.inference)).status).toBe(200);
        await eventually(async () => {
          expect((await call('GET', '/api/v1/credits', c.management)).json).toEqual({ data: { total_credits: 1, total_usage: 0.0000048 } });
        });
        await t.gw.usageWriter.flush();
        expect(await t.gw.repos.ledger.balance(c.accountId)).toBe(1_000_000_000 - 4_800);
      });
    });

    describe('/api/v1/keys', () => {
      it('inference keys get 403 on every key-management endpoint', async () => {
        for (const [method, path, body] of [
          ['GET', '/api/v1/keys', undefined],
          ['POST', '/api/v1/keys', { name: 'x' }],
          ['GET', `/api/v1/keys/${a.managementId}`, undefined],
          ['PATCH', `/api/v1/keys/${a.managementId}`, { disabled: true }],
          ['DELETE', `/api/v1/keys/${a.managementId}`, undefined],
        ] as const) {
          const r = await call(method, path, a.inference, body);
          expect(r.status, `${method} ${path}`).toBe(403);
          expect(r.json.error).toMatchObject({ type: 'permission_error', code: 'MR_ERR_FORBIDDEN' });
        }
        // Nothing changed.
        expect((await call('GET', '/api/v1/keys', a.management)).status).toBe(200);
      });

      it('create returns the key once; it works at once; listings never show it', async () => {
        const created = await call('POST', '/api/v1/keys', a.management, {
          name: 'ci runner',
          limit: 5,
          limit_reset: 'monthly',
          allowed_models: ['test/chat', 'test/chat'],
          expires_at: '2026-01-31T00:00:00Z',
          rate_limit: { rpm: 30 },
        });
        expect(created.status).toBe(201);
        const { key, data } = created.json;
        expect(isWellFormedKey(key)).toBe(true);
        expect(data).toEqual({
          id: expect.stringMatching(/^key_[0-9A-Za-z]{16}$/),
          name: 'ci runner',
          label: 'ci runner',
          kind: 'inference',
          disabled: false,
          revoked_at: null,
          limit: 5,
          limit_remaining: 5,
          limit_reset: 'monthly',
          usage: 0,
          created_at: new Date(NOW).toISOString(),
          expires_at: '2026-01-31T00:00:00.000Z',
          allowed_models: ['test/chat'],
          rate_limit: { rpm: 30, tpm: null, concurrency: null },
        });
        expect((await call('GET', '/v1/models', key)).status).toBe(200);
        expect((await chat(key)).status).toBe(200);
        expect((await chat(key, 'test/other')).status).toBe(403);

        const hash = hashApiKey(key, TEST_SECRET);
        const list = await call('GET', '/api/v1/keys', a.management);
        expect(list.status).toBe(200);
        expect(list.json.data.map((k: { id: string }) => k.id)).toContain(data.id);
        const one = await call('GET', `/api/v1/keys/${data.id}`, a.management);
        expect(one.json.data).toMatchObject({ id: data.id, name: 'ci runner', kind: 'inference' });
        for (const r of [list, one]) {
          expect(r.text).not.toContain(key);
          expect(r.text).not.toContain(key.slice(3, 30));
          expect(r.text).not.toContain(hash);
          expect(r.json.key).toBeUndefined();
        }
        // Another account's listing does not have it.
        const others = await call('GET', '/api/v1/keys', b.management);
        expect(others.json.data.map((k: { id: string }) => k.id)).not.toContain(data.id);
        expect(others.json.data.every((k: { label: string }) => ['app', 'admin'].includes(k.label))).toBe(true);
      });

      it('a created management key manages keys and cannot call models', async () => {
        const created = await call('POST', '/api/v1/keys', a.management, { name: 'second admin', kind: 'management' });
        expect(created.status).toBe(201);
        expect(created.json.data.kind).toBe('management');
        const mgmt = created.json.key as string;
        expect((await call('GET', '/api/v1/keys', mgmt)).status).toBe(200);
        expect((await chat(mgmt)).status).toBe(403);
      });

      it("another account's key id is 404 for read, change and delete", async () => {
        for (const [method, body] of [
          ['GET', undefined],
          ['PATCH', { disabled: true }],
          ['DELETE', undefined],
        ] as const) {
          const r = await call(method, `/api/v1/keys/${a.managementId}`, b.management, body);
          expect(r.status, method).toBe(404);
          expect(r.json.error).toMatchObject({ code: 'MR_ERR_NOT_FOUND' });
        }
        expect((await call('GET', '/api/v1/keys/key_doesnotexist0000', a.management)).status).toBe(404);
        // a's key is untouched.
        expect((await call('GET', '/api/v1/keys', a.management)).status).toBe(200);
      });

      it('PATCH disabled: the key is refused at once, and accepted again when enabled', async () => {
        const { key, data } = (await call('POST', '/api/v1/keys', a.management, { name: 'toggle' })).json;
        expect((await call('GET', '/v1/models', key)).status).toBe(200); // now cached by the authenticator
        const off = await call('PATCH', `/api/v1/keys/${data.id}`, a.management, { disabled: true });
        expect(off.status).toBe(200);
        expect(off.json.data.disabled).toBe(true);
        expect((await call('GET', '/v1/models', key)).status).toBe(401);
        expect((await chat(key)).status).toBe(401);
        const on = await call('PATCH', `/api/v1/keys/${data.id}`, a.management, { disabled: false });
        expect(on.json.data.disabled).toBe(false);
        expect((await call('GET', '/v1/models', key)).status).toBe(200);
      });

      it('PATCH changes name, limit (null clears), reset, expiry and models; an empty body changes nothing', async () => {
        const { key, data } = (await call('POST', '/api/v1/keys', a.management, { name: 'patchme', limit: 1 })).json;
        let r = await call('PATCH', `/api/v1/keys/${data.id}`, a.management, {
          name: 'renamed',
          limit: 2.000000001,
          limit_reset: 'daily',
          expires_at: '2025-07-01',
          allowed_models: ['test/other'],
        });
        expect(r.status).toBe(200);
        expect(r.json.data).toMatchObject({
          name: 'renamed',
          label: 'renamed',
          limit: 2.000000001,
          limit_remaining: 2.000000001,
          limit_reset: 'daily',
          expires_at: '2025-07-01T00:00:00.000Z',
          allowed_models: ['test/other'],
        });
        // The new model list applies at once.
        expect((await chat(key, 'test/chat')).status).toBe(403);
        r = await call('PATCH', `/api/v1/keys/${data.id}`, a.management, { limit: null, allowed_models: null, expires_at: null, limit_reset: null });
        expect(r.json.data).toMatchObject({ limit: null, limit_remaining: null, limit_reset: null, expires_at: null, allowed_models: null });
        expect((await chat(key, 'test/chat')).status).toBe(200);
        const same = await call('PATCH', `/api/v1/keys/${data.id}`, a.management);
        expect(same.status).toBe(200);
        expect(same.json.data).toMatchObject({ name: 'renamed', limit: null });
      });

      it('refuses bad input with 400 naming the field', async () => {
        const bad = async (method: 'POST' | 'PATCH', body: unknown, param: string, message?: RegExp) => {
          const path = method === 'POST' ? '/api/v1/keys' : `/api/v1/keys/${a.managementId}`;
          const r = await call(method, path, a.management, body);
          expect(r.status, JSON.stringify(body)).toBe(400);
          expect(r.json.error.code).toBe('MR_ERR_INVALID_REQUEST');
          expect(r.json.error.param, JSON.stringify(body)).toBe(param);
          if (message) expect(r.json.error.message).toMatch(message);
        };
        await bad('POST', {}, 'name');
        await bad('POST', { name: '' }, 'name');
        await bad('POST', { name: 'x', include_byok_in_limit: true, color: 'red' }, 'include_byok_in_limit', /Unknown fields 'include_byok_in_limit', 'color'/);
        await bad('POST', { name: 'x', limit: -1 }, 'limit', /USD ≥ 0 with at most 9 decimal places/);
        await bad('POST', { name: 'x', limit: 0.0000000001 }, 'limit');
        await bad('POST', { name: 'x', limit: '5' }, 'limit');
        await bad('POST', { name: 'x', limit_reset: 'hourly' }, 'limit_reset');
        await bad('POST', { name: 'x', kind: 'admin' }, 'kind');
        await bad('POST', { name: 'x', allowed_models: ['test/chat', 'nope/model'] }, 'allowed_models[1]', /'nope\/model' is not a model of this gateway/);
        await bad('POST', { name: 'x', expires_at: 'tomorrow' }, 'expires_at');
        await bad('POST', { name: 'x', expires_at: '2025-06-11T11:00:00Z' }, 'expires_at', /in the future/);
        await bad('PATCH', { kind: 'management' }, 'kind', /Unknown field 'kind'/);
        await bad('PATCH', { disabled: 'yes' }, 'disabled');
        await bad('PATCH', { name: 'a\u0007b' }, 'name');
        const notObject = await call('POST', '/api/v1/keys', a.management, ['x']);
        expect(notObject.status).toBe(400);
        const invalidJson = await fetch(`${t.url}/api/v1/keys`, {
          method: 'POST',
          headers: { authorization: `Bearer ${a.management}`, 'content-type': 'application/json' },
          body: '{"name": ',
        });
        expect(invalidJson.status).toBe(400);
        // Nothing was created by any of these.
        const names = (await call('GET', '/api/v1/keys', a.management)).json.data.map((k: { name: string }) => k.name);
        expect(names).not.toContain('x');
      });

      it('DELETE removes the key: refused at once, then 404', async () => {
        const { key, data } = (await call('POST', '/api/v1/keys', a.management, { name: 'doomed' })).json;
        expect((await call('GET', '/v1/models', key)).status).toBe(200);
        const r = await call('DELETE', `/api/v1/keys/${data.id}`, a.management);
        expect(r.status).toBe(200);
        expect(r.json).toEqual({ deleted: true });
        expect((await call('GET', '/v1/models', key)).status).toBe(401);
        expect((await call('GET', `/api/v1/keys/${data.id}`, a.management)).status).toBe(404);
        expect((await call('DELETE', `/api/v1/keys/${data.id}`, a.management)).status).toBe(404);
      });

      it('a key past its expiry is refused; the limit left reflects spend in the current window', async () => {
        const { key, data } = (
          await call('POST', '/api/v1/keys', a.management, { name: 'short', limit: 0.01, limit_reset: 'daily', expires_at: '2025-06-11T13:00:00Z' })
        ).json;
        await t.gw.repos.usage.insertUsage([
          usageRow(a.accountId, data.id, NOW - 60_000, 3_000_000),
          usageRow(a.accountId, data.id, NOW - 86_400_000, 5_000_000), // yesterday: not in today's window
        ]);
        const view = (await call('GET', `/api/v1/keys/${data.id}`, a.management)).json.data;
        expect(view).toMatchObject({ usage: 0.008, limit: 0.01, limit_remaining: 0.007 });
        expect((await call('GET', '/v1/models', key)).status).toBe(200);
        clock = Date.UTC(2025, 5, 11, 13, 0, 0);
        try {
          expect((await call('GET', '/v1/models', key)).status).toBe(401);
        } finally {
          clock = NOW;
        }
      });
    });
  });
}
