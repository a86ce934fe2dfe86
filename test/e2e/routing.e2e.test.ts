/**
 * Routing controls end to end (docs/routing.md): the `models` fallback list and the `provider`
 * preferences (order, only, ignore, allow_fallbacks, sort, zdr, data_collection), endpoint
 * weights and circuit breakers — through the running gateway with the official `openai` SDK,
 * against three mock providers. The gateway's own fields never reach an upstream.
 *
 * Every test gets its own gateway, so breakers and usage rows start from zero.
 */
import OpenAI, { APIError, BadRequestError, InternalServerError, NotFoundError, PermissionDeniedError } from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openaiError, openaiText, openaiTextStream } from '../fixtures/openai.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream, type RecordedRequest } from '../helpers/mock-upstream.js';

type Name = 'alpha' | 'beta' | 'gamma';
const NAMES: readonly Name[] = ['alpha', 'beta', 'gamma'];

const TIMEOUTS = { connect: 500, headers: 1_000, body: 1_000 };
const COOL_DOWN_MS = 500;

/** A healthy answer naming its endpoint: 12 + 5 tokens non-streamed, 9 + 2 streamed. */
function ok(name: Name, stream: boolean): MockReply {
  return stream ? openaiTextStream(['from', ` ${name}`]) : openaiText({ text: `from ${name}` });
}
const serverError = (): MockReply => openaiError(500, 'The server had an error while processing your request.', 'server_error');

interface Upstream {
  mock: MockUpstream;
  /** Replies to use next, in order; then healthy answers (or `fallback`'s). */
  script(...replies: MockReply[]): void;
  /** Replies once the script is used up (default: a healthy answer). */
  fallback(reply: (() => MockReply) | undefined): void;
}

/** Every upstream request of the test, in arrival order: `provider:upstream model`. */
let calls: string[] = [];

async function upstream(name: Name): Promise<Upstream> {
  const mock = await startMockUpstream();
  let queue: MockReply[] = [];
  let otherwise: (() => MockReply) | undefined;
  mock.setDefault((req) => {
    calls.push(`${name}:${req.json?.model}`);
    return queue.shift() ?? otherwise?.() ?? ok(name, req.json?.stream === true);
  });
  return {
    mock,
    script: (...replies) => void queue.push(...replies),
    fallback: (reply) => void (otherwise = reply),
  };
}

interface Outcome {
  status: number | undefined;
  headers: Headers | undefined;
  text: string;
  /** The `provider` field of the answer (or of the stream's chunks). */
  provider: string | undefined;
  error: APIError | undefined;
}

/** A chat request with routing controls (which the SDK's types do not know) in `extra`. */
async function chat(t: TestGateway, extra: Record<string, unknown>, stream = false): Promise<Outcome> {
  const body = { messages: [{ role: 'user' as const, content: 'Hello' }], ...extra } as OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;
  try {
    if (!stream) {
      const { data, response } = await t.client.chat.completions.create(body).withResponse();
      return { status: response.status, headers: response.headers, text: data.choices[0]?.message.content ?? '', provider: (data as { provider?: string }).provider, error: undefined };
    }
    const { data, response } = await t.client.chat.completions.create({ ...body, stream: true }).withResponse();
    let text = '';
    let provider: string | undefined;
    for await (const chunk of data) {
      text += chunk.choices[0]?.delta.content ?? '';
      provider ??= (chunk as { provider?: string }).provider;
    }
    return { status: response.status, headers: response.headers, text, provider, error: undefined };
  } catch (error) {
    if (!(error instanceof APIError)) throw error;
    return { status: error.status, headers: error.headers, text: '', provider: undefined, error };
  }
}

/** Asserts a request was answered by `name`, in `attempts` attempts. */
function expectServedBy(out: Outcome, name: Name, attempts = 1): void {
  expect(out.error).toBeUndefined();
  expect(out.text).toBe(`from ${name}`);
  expect(out.provider).toBe(name);
  expect(out.headers?.get('x-maxrouter-provider')).toBe(name);
  expect(out.headers?.get('x-maxrouter-attempts')).toBe(String(attempts));
}

/** Asserts a request failed with this SDK error class, status, code and param. */
function expectError(out: Outcome, cls: typeof APIError<number, Headers>, status: number, code: string, param?: string | null): APIError {
  expect(out.error).toBeInstanceOf(cls);
  const err = out.error!;
  expect(err.status).toBe(status);
  expect(err.code).toBe(code);
  if (param !== undefined) expect(err.param).toBe(param);
  return err;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MODES = [false, true] as const;
const modeName = (stream: boolean) => (stream ? 'stream' : 'non-stream');

describe('routing controls', () => {
  const up = {} as Record<Name, Upstream>;
  let t: TestGateway;
  const requests = (name: Name): RecordedRequest[] => up[name].mock.requests;

  beforeEach(async () => {
    calls = [];
    for (const name of NAMES) up[name] = await upstream(name);
    const provider = (name: Name) => ({ id: name, type: 'openai' as const, baseUrl: `${up[name].mock.url}/v1`, apiKey: `sk-${name}`, timeouts: TIMEOUTS });
    t = await startTestGateway({
      providers: NAMES.map(provider),
      models: [
        {
          // alpha: mid-priced; beta: cheapest and zero data retention; gamma: dearest, no data collection.
          id: 'r/main',
          endpoints: [
            { provider: 'alpha', model: 'alpha-main', pricing: { input: 1, output: 2 } },
            { provider: 'beta', model: 'beta-main', pricing: { input: 0.1, output: 0.2 }, zdr: true },
            { provider: 'gamma', model: 'gamma-main', pricing: { input: 5, output: 5 }, dataCollection: 'deny' },
          ],
        },
        { id: 'r/primary', endpoints: [{ provider: 'alpha', model: 'alpha-primary' }] },
        { id: 'r/fallback', endpoints: [{ provider: 'beta', model: 'beta-fallback', zdr: true }] },
        { id: 'r/plain', endpoints: [{ provider: 'alpha', model: 'alpha-plain' }] },
        {
          id: 'r/weighted',
          endpoints: [
            { provider: 'alpha', model: 'alpha-weighted', weight: 3 },
            { provider: 'beta', model: 'beta-weighted', weight: 1 },
          ],
        },
        {
          id: 'r/breaker',
          endpoints: [
            { provider: 'alpha', model: 'alpha-breaker' },
            { provider: 'beta', model: 'beta-breaker' },
          ],
        },
      ],
      retries: { attemptsPerEndpoint: 2, maxAttempts: 5, timeBudgetMs: 3_000, maxRetryAfterMs: 2_000 },
      circuitBreaker: { failureThreshold: 2, coolDownMs: COOL_DOWN_MS },
    });
  });
  afterEach(async () => {
    await t.close();
    for (const name of NAMES) await up[name].mock.close();
  });

  describe('models: a fallback list', () => {
    for (const stream of MODES) {
      it(`serves from the next model when the first model's endpoint fails; the usage row names the model that served [${modeName(stream)}]`, async () => {
        up.alpha.script(serverError());
        const out = await chat(t, { model: 'r/primary', models: ['r/fallback'], stream }, stream);
        expectServedBy(out, 'beta', 2);
        expect(calls).toEqual(['alpha:alpha-primary', 'beta:beta-fallback']);
        const rows = await t.usage();
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ model: 'r/fallback', provider: 'beta', upstreamModel: 'beta-fallback', status: 200, streamed: stream });
      });
    }

    it('serves from the first model when it answers', async () => {
      const out = await chat(t, { model: 'r/primary', models: ['r/fallback'] });
      expectServedBy(out, 'alpha');
      expect(calls).toEqual(['alpha:alpha-primary']);
      expect((await t.usage())[0]).toMatchObject({ model: 'r/primary', provider: 'alpha', status: 200 });
    });

    it('404 for an unknown model in the list, before any upstream request', async () => {
      const out = await chat(t, { model: 'r/primary', models: ['r/nope'] });
      expectError(out, NotFoundError, 404, 'MR_ERR_MODEL_NOT_FOUND');
      expect(calls).toEqual([]);
    });
  });

  describe('provider.order', () => {
    for (const stream of MODES) {
      it(`tries the listed providers first, in order, then the others [${modeName(stream)}]`, async () => {
        for (let i = 0; i < 5; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { order: ['gamma', 'beta'] }, stream }, stream), 'gamma');
        expect(calls).toEqual(Array(5).fill('gamma:gamma-main'));

        calls = [];
        up.gamma.script(serverError());
        expectServedBy(await chat(t, { model: 'r/main', provider: { order: ['gamma', 'beta'] }, stream }, stream), 'beta', 2);
        expect(calls).toEqual(['gamma:gamma-main', 'beta:beta-main']);

        calls = [];
        up.gamma.script(serverError());
        up.beta.script(serverError());
        expectServedBy(await chat(t, { model: 'r/main', provider: { order: ['gamma', 'beta'] }, stream }, stream), 'alpha', 3);
        expect(calls).toEqual(['gamma:gamma-main', 'beta:beta-main', 'alpha:alpha-main']);
      });
    }

    it('matches provider ids case-insensitively', async () => {
      expectServedBy(await chat(t, { model: 'r/main', provider: { order: ['GAMMA'] } }), 'gamma');
    });

    it('400 naming the path for an unknown provider id, before any upstream request', async () => {
      const out = await chat(t, { model: 'r/main', provider: { order: ['alpha', 'nope'] } });
      const err = expectError(out, BadRequestError, 400, 'MR_ERR_INVALID_REQUEST', 'provider.order[1]');
      expect(err.message).toContain("'provider.order[1]'");
      expect(err.message).toContain("'nope'");
      const typo = await chat(t, { model: 'r/main', provider: { ignore: ['gama'] } });
      expectError(typo, BadRequestError, 400, 'MR_ERR_INVALID_REQUEST', 'provider.ignore[0]');
      expect(calls).toEqual([]);
    });
  });

  describe('provider.only and provider.ignore', () => {
    for (const stream of MODES) {
      it(`only: the listed provider serves, and no other even when it fails [${modeName(stream)}]`, async () => {
        for (let i = 0; i < 3; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { only: ['beta'] }, stream }, stream), 'beta');
        up.beta.script(serverError(), serverError());
        const out = await chat(t, { model: 'r/main', provider: { only: ['beta'] }, stream }, stream);
        expectError(out, InternalServerError, 502, 'MR_ERR_UPSTREAM_ERROR');
        expect(out.headers?.get('x-maxrouter-attempts')).toBe('2');
        expect(out.headers?.get('x-maxrouter-provider')).toBe('beta');
        expect(calls).toEqual(Array(5).fill('beta:beta-main'));
        expect((await t.usage()).at(-1)).toMatchObject({ provider: 'beta', status: 502 });
      });

      it(`ignore: the ignored providers never serve, even as fallbacks [${modeName(stream)}]`, async () => {
        for (let i = 0; i < 3; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { ignore: ['alpha', 'Beta'] }, stream }, stream), 'gamma');
        up.gamma.script(serverError(), serverError());
        const out = await chat(t, { model: 'r/main', provider: { ignore: ['alpha', 'Beta'] }, stream }, stream);
        expectError(out, InternalServerError, 502, 'MR_ERR_UPSTREAM_ERROR');
        expect(calls).toEqual(Array(5).fill('gamma:gamma-main'));
      });
    }

    it('404 when only and ignore leave no endpoint', async () => {
      const out = await chat(t, { model: 'r/main', provider: { only: ['beta'], ignore: ['beta'] } });
      expectError(out, NotFoundError, 404, 'MR_ERR_NOT_FOUND', 'provider.only');
      const all = await chat(t, { model: 'r/main', provider: { ignore: ['alpha', 'beta', 'gamma'] } });
      expectError(all, NotFoundError, 404, 'MR_ERR_NOT_FOUND', 'provider.ignore');
      expect(calls).toEqual([]);
    });
  });

  describe('provider.allow_fallbacks: false', () => {
    for (const stream of MODES) {
      it(`with order: only the listed endpoint, retried, and not the fallback models [${modeName(stream)}]`, async () => {
        up.alpha.script(serverError(), serverError());
        const out = await chat(t, { model: 'r/main', models: ['r/fallback'], provider: { order: ['alpha'], allow_fallbacks: false }, stream }, stream);
        expectError(out, InternalServerError, 502, 'MR_ERR_UPSTREAM_ERROR');
        expect(out.headers?.get('x-maxrouter-attempts')).toBe('2');
        expect(out.headers?.get('x-maxrouter-provider')).toBe('alpha');
        expect(calls).toEqual(['alpha:alpha-main', 'alpha:alpha-main']);
      });
    }

    it('without order: only the one endpoint chosen first', async () => {
      for (const name of NAMES) up[name].fallback(serverError);
      const out = await chat(t, { model: 'r/main', provider: { allow_fallbacks: false } });
      expectError(out, InternalServerError, 502, 'MR_ERR_UPSTREAM_ERROR');
      expect(out.headers?.get('x-maxrouter-attempts')).toBe('2');
      expect(calls).toHaveLength(2);
      expect(calls[1]).toBe(calls[0]);
      const chosen = calls[0]!.split(':')[0];
      expect(out.headers?.get('x-maxrouter-provider')).toBe(chosen);
      expect((await t.usage())[0]).toMatchObject({ provider: chosen, status: 502 });
    });

    it('the same request with fallbacks allowed moves on to the other endpoints', async () => {
      up.alpha.script(serverError());
      const out = await chat(t, { model: 'r/main', provider: { order: ['alpha'] } });
      expect(out.error).toBeUndefined();
      expect(out.headers?.get('x-maxrouter-attempts')).toBe('2');
      expect(['beta', 'gamma']).toContain(out.provider);
      expect(calls).toEqual(['alpha:alpha-main', `${out.provider}:${out.provider}-main`]);
    });
  });

  describe('provider.sort: price', () => {
    for (const stream of MODES) {
      it(`tries the cheapest endpoint first, then the next cheapest [${modeName(stream)}]`, async () => {
        for (let i = 0; i < 5; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { sort: 'price' }, stream }, stream), 'beta');
        calls = [];
        up.beta.script(serverError());
        up.alpha.script(serverError());
        expectServedBy(await chat(t, { model: 'r/main', provider: { sort: 'price' }, stream }, stream), 'gamma', 3);
        expect(calls).toEqual(['beta:beta-main', 'alpha:alpha-main', 'gamma:gamma-main']);
      });
    }
  });

  describe('data policy: zdr and data_collection', () => {
    for (const stream of MODES) {
      it(`zdr: 403 for a model without a ZDR endpoint, and no upstream request [${modeName(stream)}]`, async () => {
        const out = await chat(t, { model: 'r/plain', provider: { zdr: true }, stream }, stream);
        const err = expectError(out, PermissionDeniedError, 403, 'MR_ERR_FORBIDDEN', 'provider.zdr');
        expect((err.error as { message: string }).message).toBe(
          "No endpoint of model 'r/plain' satisfies the data policy, so the request was not sent to any provider: zdr: true (zero data retention), required by the request, excluded alpha for 'r/plain'.",
        );
        expect(calls).toEqual([]);
      });
    }

    it('zdr: only the ZDR endpoint serves, and no other even when it fails', async () => {
      for (let i = 0; i < 5; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { zdr: true } }), 'beta');
      up.beta.script(serverError(), serverError());
      const out = await chat(t, { model: 'r/main', provider: { zdr: true } });
      expectError(out, InternalServerError, 502, 'MR_ERR_UPSTREAM_ERROR');
      expect(calls).toEqual(Array(7).fill('beta:beta-main'));
    });

    it('zdr: applies to every model of the list (the first has no ZDR endpoint, the fallback serves)', async () => {
      const out = await chat(t, { model: 'r/plain', models: ['r/fallback'], provider: { zdr: true } });
      expectServedBy(out, 'beta');
      expect(calls).toEqual(['beta:beta-fallback']);
      expect((await t.usage())[0]).toMatchObject({ model: 'r/fallback', provider: 'beta', status: 200 });
    });

    it("data_collection: 'deny' — only an endpoint configured dataCollection: deny serves; 403 when none is", async () => {
      for (let i = 0; i < 5; i++) expectServedBy(await chat(t, { model: 'r/main', provider: { data_collection: 'deny' } }), 'gamma');
      expect(calls).toEqual(Array(5).fill('gamma:gamma-main'));
      const out = await chat(t, { model: 'r/plain', provider: { data_collection: 'deny' } });
      const err = expectError(out, PermissionDeniedError, 403, 'MR_ERR_FORBIDDEN', 'provider.data_collection');
      expect(err.message).toContain("data_collection: deny, required by the request, excluded alpha for 'r/plain'");
      expect(calls).toHaveLength(5);
    });

    it('zdr and data_collection together leave no endpoint of r/main: 403', async () => {
      const out = await chat(t, { model: 'r/main', provider: { zdr: true, data_collection: 'deny' } });
      expectError(out, PermissionDeniedError, 403, 'MR_ERR_FORBIDDEN');
      expect(calls).toEqual([]);
    });
  });

  it('weights 3:1 split about 200 requests about 75 / 25', async () => {
    const N = 200;
    for (let i = 0; i < N; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => chat(t, { model: 'r/weighted' })));
      for (const out of batch) {
        expect(out.error).toBeUndefined();
        expect(out.headers?.get('x-maxrouter-attempts')).toBe('1');
      }
    }
    const alpha = requests('alpha').length;
    const beta = requests('beta').length;
    expect(alpha + beta).toBe(N);
    // Expected 150 / 50, standard deviation about 6: these bounds are about 5 deviations wide.
    expect(alpha).toBeGreaterThanOrEqual(120);
    expect(alpha).toBeLessThanOrEqual(180);
    const rows = await t.usage();
    expect(rows.filter((r) => r.provider === 'alpha')).toHaveLength(alpha);
    expect(rows.filter((r) => r.provider === 'beta')).toHaveLength(beta);
  });

  describe('circuit breaker (failureThreshold 2, coolDownMs 500)', () => {
    // `order` puts alpha first, and keeps it first while its breaker is half-open, so that the
    // probe goes to it (without `order`, half-open endpoints come after the closed ones).
    const ALPHA_FIRST = { model: 'r/breaker', provider: { order: ['alpha'] } };

    /** Two requests whose alpha attempt fails (each served by beta): alpha's breaker opens. */
    async function openAlpha(): Promise<void> {
      up.alpha.script(serverError(), serverError());
      for (let i = 0; i < 2; i++) expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 2);
      expect(calls).toEqual(['alpha:alpha-breaker', 'beta:beta-breaker', 'alpha:alpha-breaker', 'beta:beta-breaker']);
      calls = [];
    }

    it('two failures open it: the next request goes straight to beta, and only-alpha gets a 503 with retry-after', async () => {
      await openAlpha();
      const out = await chat(t, ALPHA_FIRST);
      expectServedBy(out, 'beta', 1); // alpha skipped, not counted as an attempt
      expect(calls).toEqual(['beta:beta-breaker']);

      const only = await chat(t, { model: 'r/breaker', provider: { only: ['alpha'] } });
      expectError(only, InternalServerError, 503, 'MR_ERR_UPSTREAM_UNAVAILABLE');
      expect(only.error!.message).toContain('circuit breaker open');
      expect(Number(only.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(calls).toEqual(['beta:beta-breaker']);
    });

    it('after the cool-down one probe goes to alpha while concurrent requests go to beta; its success closes the breaker', async () => {
      await openAlpha();
      await sleep(COOL_DOWN_MS + 50);

      // The probe: alpha answers, slowly.
      up.alpha.script({ ...ok('alpha', false), delayMs: 300 });
      const probe = chat(t, ALPHA_FIRST);
      await eventually(() => expect(calls).toEqual(['alpha:alpha-breaker']));
      const meanwhile = await Promise.all([chat(t, ALPHA_FIRST), chat(t, ALPHA_FIRST), chat(t, ALPHA_FIRST)]);
      for (const out of meanwhile) expectServedBy(out, 'beta', 1);
      expect(requests('alpha')).toHaveLength(3); // the two failures and the probe
      expectServedBy(await probe, 'alpha', 1);

      // Closed: alpha serves again, and one failure does not open it.
      calls = [];
      expectServedBy(await chat(t, ALPHA_FIRST), 'alpha', 1);
      up.alpha.script(serverError());
      expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 2);
      expectServedBy(await chat(t, ALPHA_FIRST), 'alpha', 1);
      expect(calls).toEqual(['alpha:alpha-breaker', 'alpha:alpha-breaker', 'beta:beta-breaker', 'alpha:alpha-breaker']);
    });

    it('a streamed probe holds the endpoint until the stream ends, and a complete stream closes the breaker', async () => {
      await openAlpha();
      await sleep(COOL_DOWN_MS + 50);

      // Frames 100 ms apart: the stream lasts about 0.6 s after its headers.
      up.alpha.script({ ...ok('alpha', true), sseDelayMs: 100 });
      const probe = chat(t, { ...ALPHA_FIRST, stream: true }, true);
      await eventually(() => expect(calls).toEqual(['alpha:alpha-breaker']));
      await sleep(150); // the probe's headers and first frames are through
      expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 1);
      expectServedBy(await probe, 'alpha', 1);
      expectServedBy(await chat(t, ALPHA_FIRST), 'alpha', 1);
      expect(calls).toEqual(['alpha:alpha-breaker', 'beta:beta-breaker', 'alpha:alpha-breaker']);
    });

    it('streams that fail after their first byte count as failures too: two of them open it', async () => {
      const cutShort = (): MockReply => ({ ...openaiTextStream(['Hel', 'lo']), resetAfterEvents: 2 });
      up.alpha.script(cutShort(), cutShort());
      for (let i = 0; i < 2; i++) {
        const out = await chat(t, { ...ALPHA_FIRST, stream: true }, true);
        // Not retried, not failed over: the client got an error event after the first chunks.
        expect(out.error).toBeInstanceOf(APIError);
        expect(out.error!.status).toBeUndefined();
        expect(out.error!.code).toBe('MR_ERR_UPSTREAM_ERROR');
      }
      expect(calls).toEqual(['alpha:alpha-breaker', 'alpha:alpha-breaker']);
      calls = [];
      expectServedBy(await chat(t, { ...ALPHA_FIRST, stream: true }, true), 'beta', 1);
      expect(calls).toEqual(['beta:beta-breaker']);
    });

    it('a failed probe opens it again, for a doubled cool-down', async () => {
      await openAlpha();
      await sleep(COOL_DOWN_MS + 50);

      up.alpha.script(serverError());
      expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 2); // the probe failed; beta served
      expect(calls).toEqual(['alpha:alpha-breaker', 'beta:beta-breaker']);
      calls = [];

      expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 1);
      await sleep(COOL_DOWN_MS + 50); // past the first cool-down, not the doubled one
      expectServedBy(await chat(t, ALPHA_FIRST), 'beta', 1);
      expect(calls).toEqual(['beta:beta-breaker', 'beta:beta-breaker']);

      await sleep(COOL_DOWN_MS); // past the doubled cool-down: a probe, which succeeds
      calls = [];
      expectServedBy(await chat(t, ALPHA_FIRST), 'alpha', 1);
      expect(calls).toEqual(['alpha:alpha-breaker']);
    });
  });

  describe('routing controls never reach an upstream', () => {
    for (const stream of MODES) {
      it(`provider and models are removed from the body sent upstream [${modeName(stream)}]`, async () => {
        up.gamma.script(serverError());
        const out = await chat(
          t,
          {
            model: 'r/main',
            models: ['r/fallback'],
            provider: { order: ['gamma', 'alpha'], ignore: ['beta'], sort: 'price', zdr: false, data_collection: 'allow', allow_fallbacks: true, max_price: { prompt: 10 } },
            temperature: 0.5,
            stream,
          },
          stream,
        );
        expectServedBy(out, 'alpha', 2);
        expect(calls).toEqual(['gamma:gamma-main', 'alpha:alpha-main']);
        for (const req of [...requests('gamma'), ...requests('alpha')]) {
          expect(req.json).not.toHaveProperty('provider');
          expect(req.json).not.toHaveProperty('models');
          expect(req.json).toMatchObject({ messages: [{ role: 'user', content: 'Hello' }], temperature: 0.5 });
          expect(req.body).not.toContain('"provider"');
          expect(req.body).not.toContain('"models"');
        }
      });
    }
  });
});

describe('account routing policy', () => {
  it('an account that requires ZDR is never routed to a non-ZDR endpoint, and its requests cannot relax it', async () => {
    const { startTestGateway } = await import('../helpers/gateway.js');
    const { startMockUpstream } = await import('../helpers/mock-upstream.js');
    const { openaiText } = await import('../fixtures/openai.js');
    const plain = await startMockUpstream();
    const zdr = await startMockUpstream();
    plain.setDefault(openaiText({ text: 'plain' }));
    zdr.setDefault(openaiText({ text: 'zdr' }));
    const adminKey = 'admin-key-for-routing-policy-0123456789abcdef';
    const t = await startTestGateway({
      admin: { key: adminKey },
      providers: [
        { id: 'plain', type: 'openai', baseUrl: `${plain.url}/v1`, apiKey: 'k1' },
        { id: 'safe', type: 'openai', baseUrl: `${zdr.url}/v1`, apiKey: 'k2' },
      ],
      models: [
        { id: 'm/plain-only', endpoints: [{ provider: 'plain', model: 'x' }] },
        { id: 'm/both', endpoints: [{ provider: 'plain', model: 'x', weight: 1000 }, { provider: 'safe', model: 'x', zdr: true }] },
      ],
    });
    try {
      const ask = (model: string, extra: Record<string, unknown> = {}) =>
        t.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], ...extra } as never);
      expect((await ask('m/plain-only')).choices[0]!.message.content).toBe('plain');
      const patched = await fetch(`${t.url}/admin/v1/accounts/${t.accountId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ zdr: true }),
      });
      expect(patched.status).toBe(200);
      expect(((await patched.json()) as { data: { zdr: boolean } }).data.zdr).toBe(true);
      const before = plain.requests.length;
      const err = await ask('m/plain-only').then(
        () => undefined,
        (e: unknown) => e as { status?: number; message?: string },
      );
      expect(err?.status).toBe(403);
      expect(err?.message).toMatch(/zdr/i);
      // A request asking for zdr: false does not relax the account's policy.
      for (let i = 0; i < 5; i++) {
        const res = await ask('m/both', { provider: { zdr: false } });
        expect(res.choices[0]!.message.content).toBe('zdr');
      }
      expect(plain.requests.length).toBe(before);
    } finally {
      await t.close();
      await plain.close();
      await zdr.close();
    }
  });
});
