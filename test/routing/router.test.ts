import { afterAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { GatewayError } from '../../src/ir/errors.js';
import { BreakerRegistry } from '../../src/routing/breaker.js';
import { HealthRegistry } from '../../src/routing/health.js';
import { parseRequestControls, type AccountRoutingDefaults } from '../../src/routing/request-controls.js';
import { Router, weightedOrder, type RoutePlan } from '../../src/routing/router.js';
import { CONFIG, makeCatalog, manualClock, seeded, thrown } from './fixtures.js';

const catalog = makeCatalog();
afterAll(() => catalog.close());

function setup(seed = 1) {
  const clock = manualClock();
  const breakers = new BreakerRegistry({ now: clock.now });
  const health = new HealthRegistry();
  const router = new Router(catalog, { breakers, health, random: seeded(seed) });
  return { clock, breakers, health, router };
}

/** Plans a request body as the gateway will: parse the controls, then plan. */
function planBody(router: Router, body: Record<string, unknown>, account?: AccountRoutingDefaults, kind: 'chat' | 'embedding' = 'chat'): RoutePlan {
  const controls = parseRequestControls(body, account);
  return router.plan(controls.models, controls.provider, kind);
}

const providers = (plan: RoutePlan) => plan.candidates.map((c) => c.provider.id);
const routeError = (fn: () => unknown): GatewayError => {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
};
function trip(breakers: BreakerRegistry, key: string): void {
  for (let i = 0; i < 5; i++) breakers.get(key).failure();
  expect(breakers.state(key)).toBe('open');
}

describe('catalog', () => {
  it('reads weight, zdr and dataCollection with their defaults', () => {
    const cfg = configSchema.parse(CONFIG);
    const [a, b] = cfg.models[0]!.endpoints;
    expect(a).toMatchObject({ weight: 1, zdr: true, dataCollection: 'deny' });
    expect(b).toMatchObject({ weight: 1, zdr: false, dataCollection: 'allow' });
    expect(cfg.models[1]!.endpoints[0]!.weight).toBe(3);
  });

  it('refuses a weight that is not positive, and unknown endpoint fields', () => {
    const bad = (ep: Record<string, unknown>) =>
      configSchema.safeParse({ ...CONFIG, models: [{ id: 'x', endpoints: [{ provider: 'alpha', model: 'x', ...ep }] }] }).success;
    expect(bad({ weight: 0 })).toBe(false);
    expect(bad({ weight: -1 })).toBe(false);
    expect(bad({ weight: 'heavy' })).toBe(false);
    expect(bad({ zdr: 'yes' })).toBe(false);
    expect(bad({ dataCollection: 'sometimes' })).toBe(false);
    expect(bad({ retention: 0 })).toBe(false);
    expect(bad({ weight: 0.5, zdr: true, dataCollection: 'deny' })).toBe(true);
  });

  it('keeps resolve: the first endpoint, the same route the router plans first', () => {
    const route = catalog.resolve('m/multi');
    expect(route.provider.id).toBe('alpha');
    expect(route.upstreamModel).toBe('multi-a');
    expect(catalog.endpoints('m/multi')[0]).toBe(route);
    expect(catalog.endpoints('m/multi').map((e) => [e.index, e.key])).toEqual([
      [0, 'alpha:multi-a'],
      [1, 'beta:multi-b'],
      [2, 'gamma:multi-c'],
    ]);
    expect(routeError(() => catalog.resolve('nope')).code).toBe('MR_ERR_MODEL_NOT_FOUND');
    expect(routeError(() => catalog.resolve('m/embed', 'chat')).status).toBe(400);
    expect(catalog.resolve('m/embed', 'embedding').upstreamModel).toBe('embed');
  });
});

describe('plan: selection and order', () => {
  it('plans a single-endpoint model as resolve does', () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/single' });
    expect(plan.candidates).toEqual([catalog.resolve('m/single')]);
    expect(plan.excluded).toEqual([]);
  });

  it('order: listed providers first in that order, then the rest', () => {
    const { router } = setup();
    expect(providers(planBody(router, { model: 'm/multi', provider: { order: ['gamma', 'alpha'] } }))).toEqual(['gamma', 'alpha', 'beta']);
    expect(providers(planBody(router, { model: 'm/multi', provider: { order: ['beta'], sort: 'price' } }))).toEqual(['beta', 'alpha', 'gamma']);
  });

  it('only and ignore leave endpoints out, with the reason', () => {
    const { router } = setup();
    const only = planBody(router, { model: 'm/multi', provider: { only: ['alpha', 'gamma'], sort: 'price' } });
    expect(providers(only)).toEqual(['alpha', 'gamma']);
    expect(only.excluded).toEqual([{ model: 'm/multi', provider: 'beta', endpoint: 1, key: 'beta:multi-b', reason: 'only' }]);
    const ignore = planBody(router, { model: 'm/multi', provider: { ignore: ['alpha'], sort: 'price' } });
    expect(providers(ignore)).toEqual(['beta', 'gamma']);
    expect(ignore.excluded).toMatchObject([{ provider: 'alpha', reason: 'ignore' }]);
    expect(providers(planBody(router, { model: 'm/multi', provider: { only: ['alpha', 'beta'], ignore: ['beta'] } }))).toEqual(['alpha']);
  });

  it('answers 404 when only/ignore leave nothing', () => {
    const { router } = setup();
    const e = routeError(() => planBody(router, { model: 'm/single', provider: { ignore: ['alpha'] } }));
    expect(e).toMatchObject({ status: 404, code: 'MR_ERR_NOT_FOUND', reason: 'provider_preferences', param: 'provider.ignore' });
    expect(e.message).toContain("in provider.ignore: alpha for 'm/single'");
    expect(routeError(() => planBody(router, { model: 'm/single', provider: { only: ['beta'] } })).param).toBe('provider.only');
  });

  it('refuses unknown provider ids with 400 and matches ids case-insensitively', () => {
    const { router } = setup();
    const e = routeError(() => planBody(router, { model: 'm/multi', provider: { ignore: ['alpha', 'delta'] } }));
    expect(e).toMatchObject({ status: 400, param: 'provider.ignore[1]' });
    expect(e.message).toContain("unknown provider 'delta'");
    expect(routeError(() => planBody(router, { model: 'm/multi', provider: { order: ['x'] } })).param).toBe('provider.order[0]');
    expect(routeError(() => planBody(router, { model: 'm/multi', provider: { only: ['x'] } })).param).toBe('provider.only[0]');
    expect(providers(planBody(router, { model: 'm/multi', provider: { order: ['GAMMA'] } }))[0]).toBe('gamma');
  });

  it('sort price: cheapest input + output first', () => {
    const { router } = setup();
    expect(providers(planBody(router, { model: 'm/multi', provider: { sort: 'price' } }))).toEqual(['beta', 'alpha', 'gamma']);
  });

  it('sort latency and throughput: from health statistics, endpoints without any last', () => {
    const { router, health } = setup();
    health.record('gamma:multi-c', { ttfbMs: 100, durationMs: 1100, completionTokens: 100 }); // 100 tok/s
    health.record('beta:multi-b', { ttfbMs: 300, durationMs: 800, completionTokens: 100 }); // 200 tok/s
    expect(providers(planBody(router, { model: 'm/multi', provider: { sort: 'latency' } }))).toEqual(['gamma', 'beta', 'alpha']);
    expect(providers(planBody(router, { model: 'm/multi', provider: { sort: 'throughput' } }))).toEqual(['beta', 'gamma', 'alpha']);
  });

  it('weights 3:1 send about 75 % of first attempts to the heavier endpoint (seeded)', () => {
    const { router } = setup(42);
    const n = 20_000;
    let key1 = 0;
    let lengths = 0;
    for (let i = 0; i < n; i++) {
      const plan = planBody(router, { model: 'm/weighted' });
      lengths += plan.candidates.length;
      if (plan.candidates[0]!.provider.id === 'key1') key1++;
    }
    expect(lengths).toBe(2 * n); // the other endpoint always follows as a fallback
    expect(key1 / n).toBeGreaterThan(0.73);
    expect(key1 / n).toBeLessThan(0.77);
  });

  it('weighted choice is deterministic for a given random source', () => {
    const a = setup(7).router;
    const b = setup(7).router;
    const seq = (r: Router) => Array.from({ length: 50 }, () => providers(planBody(r, { model: 'm/weighted' }))[0]);
    expect(seq(a)).toEqual(seq(b));
  });

  it('weightedOrder draws without replacement', () => {
    const list = [1, 2, 3].map((w) => ({ endpoint: { weight: w }, id: w }));
    // r = 0.99 * 6 picks the last (weight 3); then 0.99 * 3 picks weight 2 among the rest.
    expect(weightedOrder(list, () => 0.99).map((x) => x.id)).toEqual([3, 2, 1]);
    expect(weightedOrder(list, () => 0).map((x) => x.id)).toEqual([1, 2, 3]);
  });
});

describe('plan: models fallback list', () => {
  it("tries each model's endpoints after the previous model's", () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/single', models: ['m/multi'], provider: { sort: 'price' } });
    expect(plan.candidates.map((c) => `${c.modelId}@${c.provider.id}`)).toEqual(['m/single@alpha', 'm/multi@beta', 'm/multi@alpha', 'm/multi@gamma']);
  });

  it('answers 404 for an unknown model anywhere in the list, and 400 for a model of the other kind', () => {
    const { router } = setup();
    expect(routeError(() => planBody(router, { model: 'nope', models: ['m/single'] }))).toMatchObject({ status: 404, code: 'MR_ERR_MODEL_NOT_FOUND', param: 'model' });
    expect(routeError(() => planBody(router, { model: 'm/single', models: ['nope'] }))).toMatchObject({ status: 404, param: 'models' });
    expect(routeError(() => planBody(router, { model: 'm/single', models: ['m/embed'] }))).toMatchObject({ status: 400, param: 'models' });
    expect(providers(planBody(router, { model: 'm/embed' }, undefined, 'embedding'))).toEqual(['alpha']);
    expect(routeError(() => router.plan([], undefined, 'chat')).param).toBe('model');
  });
});

describe('plan: allow_fallbacks false', () => {
  it('with order: only the first model, only its providers in order', () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/multi', models: ['m/single'], provider: { order: ['gamma', 'alpha'], allow_fallbacks: false } });
    expect(providers(plan)).toEqual(['gamma', 'alpha']);
    expect(plan.excluded).toEqual([
      { model: 'm/multi', provider: 'beta', endpoint: 1, key: 'beta:multi-b', reason: 'not_in_order' },
      { model: 'm/single', provider: 'alpha', endpoint: 0, key: 'alpha:single', reason: 'fallbacks_disabled' },
    ]);
  });

  it('without order: the single chosen endpoint', () => {
    const { router } = setup(3);
    const price = planBody(router, { model: 'm/multi', provider: { sort: 'price', allow_fallbacks: false } });
    expect(providers(price)).toEqual(['beta']);
    expect(price.excluded.map((e) => [e.provider, e.reason])).toEqual([
      ['alpha', 'fallbacks_disabled'],
      ['gamma', 'fallbacks_disabled'],
    ]);
    let key1 = 0;
    let lengths = 0;
    for (let i = 0; i < 4000; i++) {
      const plan = planBody(router, { model: 'm/weighted', provider: { allow_fallbacks: false } });
      lengths += plan.candidates.length;
      if (plan.candidates[0]!.provider.id === 'key1') key1++;
    }
    expect(lengths).toBe(4000);
    expect(key1 / 4000).toBeGreaterThan(0.72);
    expect(key1 / 4000).toBeLessThan(0.78);
  });

  it('answers 404 when none of the first model is in order', () => {
    const { router } = setup();
    const e = routeError(() => planBody(router, { model: 'm/single', models: ['m/multi'], provider: { order: ['gamma'], allow_fallbacks: false } }));
    expect(e).toMatchObject({ status: 404, reason: 'provider_preferences', param: 'provider.order' });
    expect(e.message).toContain("model 'm/single'");
  });
});

describe('plan: data policy fails closed', () => {
  it('zdr: true leaves non-ZDR endpoints out', () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/multi', provider: { zdr: true, sort: 'price' } });
    expect(providers(plan)).toEqual(['alpha', 'gamma']);
    expect(plan.excluded).toMatchObject([{ provider: 'beta', reason: 'zdr' }]);
  });

  it('data_collection: deny leaves endpoints that allow collection out', () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/multi', provider: { data_collection: 'deny' } });
    expect(providers(plan)).toEqual(['alpha']);
    expect(plan.excluded.map((e) => [e.provider, e.reason])).toEqual([
      ['beta', 'data_collection'],
      ['gamma', 'data_collection'],
    ]);
  });

  it('answers 403 naming the policy and the endpoints when nothing is left, never falling back', () => {
    const { router } = setup();
    const e = routeError(() => planBody(router, { model: 'm/nonzdr', provider: { zdr: true } }));
    expect(e).toMatchObject({ status: 403, code: 'MR_ERR_FORBIDDEN', reason: 'data_policy', param: 'provider.zdr', retryable: false });
    expect(e.message).toBe(
      "No endpoint of model 'm/nonzdr' satisfies the data policy, so the request was not sent to any provider: zdr: true (zero data retention), required by the request, excluded beta for 'm/nonzdr'.",
    );
    const both = routeError(() => planBody(router, { model: 'm/multi', provider: { zdr: true, data_collection: 'deny', ignore: ['alpha'] } }));
    expect(both.status).toBe(403);
    expect(both.message).toContain("in provider.ignore: alpha for 'm/multi'");
    expect(both.message).toContain("zdr: true (zero data retention), required by the request, excluded beta for 'm/multi'");
    expect(both.message).toContain("data_collection: deny, required by the request, excluded gamma for 'm/multi'");
  });

  it('uses only compliant endpoints of the fallback models', () => {
    const { router } = setup();
    const plan = planBody(router, { model: 'm/nonzdr', models: ['m/multi'], provider: { zdr: true } });
    expect(plan.candidates.every((c) => c.endpoint.zdr)).toBe(true);
    expect(plan.candidates.map((c) => c.modelId)).toEqual(['m/multi', 'm/multi']);
  });

  it("applies the account's policy, which a request cannot relax", () => {
    const { router } = setup();
    const account = { zdr: true, dataCollection: 'deny' as const };
    expect(providers(planBody(router, { model: 'm/multi', provider: { zdr: false, data_collection: 'allow' } }, account))).toEqual(['alpha']);
    const e = routeError(() => planBody(router, { model: 'm/nonzdr', provider: { zdr: false } }, { zdr: true }));
    expect(e).toMatchObject({ status: 403, reason: 'data_policy', param: null });
    expect(e.message).toContain("required by this account's data policy, excluded beta for 'm/nonzdr'");
  });

  it('prefers the data-policy error to the breaker when the policy alone leaves nothing', () => {
    const { router, breakers } = setup();
    trip(breakers, 'beta:nonzdr');
    expect(routeError(() => planBody(router, { model: 'm/nonzdr', provider: { zdr: true } })).status).toBe(403);
  });
});

describe('plan: max_price', () => {
  it('leaves endpoints above a ceiling out; an endpoint without pricing costs nothing', () => {
    const { router } = setup();
    expect(providers(planBody(router, { model: 'm/multi', provider: { max_price: { prompt: 1 }, sort: 'price' } }))).toEqual(['beta', 'alpha']);
    expect(providers(planBody(router, { model: 'm/multi', provider: { max_price: { completion: 1.5 } } }))).toEqual(['beta']);
    expect(providers(planBody(router, { model: 'm/multi', provider: { max_price: { request: 0.001 }, sort: 'price' } }))).toEqual(['beta', 'alpha']);
    expect(providers(planBody(router, { model: 'm/single', provider: { max_price: { prompt: 0, completion: 0, request: 0 } } }))).toEqual(['alpha']);
  });

  it('answers 404 when no endpoint is within it', () => {
    const { router } = setup();
    const e = routeError(() => planBody(router, { model: 'm/multi', provider: { max_price: { prompt: 0.1 } } }));
    expect(e).toMatchObject({ status: 404, code: 'MR_ERR_NOT_FOUND', reason: 'max_price', param: 'provider.max_price' });
    expect(e.message).toContain("above provider.max_price: alpha, beta, gamma for 'm/multi'");
  });
});

describe('plan: circuit breakers', () => {
  it('skips an endpoint whose breaker is open', () => {
    const { router, breakers } = setup();
    trip(breakers, 'beta:multi-b');
    const plan = planBody(router, { model: 'm/multi', provider: { sort: 'price' } });
    expect(providers(plan)).toEqual(['alpha', 'gamma']);
    expect(plan.excluded).toMatchObject([{ provider: 'beta', reason: 'breaker_open' }]);
  });

  it('answers 503 with retry-after when only open breakers are left', () => {
    const { router, breakers, clock } = setup();
    trip(breakers, 'alpha:single');
    clock.advance(10_000);
    const e = routeError(() => planBody(router, { model: 'm/single' }));
    expect(e).toMatchObject({ status: 503, code: 'MR_ERR_UPSTREAM_UNAVAILABLE', reason: 'circuit_open', retryAfter: 20 });
    expect(e.message).toContain("circuit breaker open: alpha for 'm/single'");
  });

  it('answers 503 when the policy leaves endpoints but their breakers are open', () => {
    const { router, breakers } = setup();
    trip(breakers, 'alpha:multi-a');
    trip(breakers, 'gamma:multi-c');
    const e = routeError(() => planBody(router, { model: 'm/multi', provider: { zdr: true } }));
    expect(e.status).toBe(503);
    expect(e.message).toContain("zdr: true (zero data retention), required by the request, excluded beta for 'm/multi'");
    expect(e.message).toContain("circuit breaker open: alpha, gamma for 'm/multi'");
  });

  it('puts a half-open endpoint first for its single probe, and leaves it out while the probe is in flight', () => {
    const { router, breakers, clock } = setup();
    trip(breakers, 'alpha:multi-a');
    clock.advance(30_000);
    expect(breakers.state('alpha:multi-a')).toBe('half-open');
    expect(providers(planBody(router, { model: 'm/multi', provider: { sort: 'price' } }))).toEqual(['alpha', 'beta', 'gamma']);
    expect(providers(planBody(router, { model: 'm/multi', provider: { order: ['alpha'] } }))[0]).toBe('alpha');
    expect(breakers.get('alpha:multi-a').allow()).toBe(true); // the probe
    expect(providers(planBody(router, { model: 'm/multi', provider: { sort: 'price' } }))).toEqual(['beta', 'gamma']);
  });
});
