import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/ir/errors.js';
import {
  applyAccountDefaults,
  defaultProviderControls,
  MAX_MODELS,
  parseRequestControls,
  withoutRequestControls,
} from '../../src/routing/request-controls.js';
import { thrown } from './fixtures.js';

function badRequest(body: Record<string, unknown>): GatewayError {
  const err = thrown(() => parseRequestControls(body));
  expect(err).toBeInstanceOf(GatewayError);
  const e = err as GatewayError;
  expect(e.status).toBe(400);
  expect(e.code).toBe('MR_ERR_INVALID_REQUEST');
  return e;
}

const withProvider = (provider: unknown) => ({ model: 'm/multi', provider });

describe('request controls: models', () => {
  it('defaults: the model alone, fallbacks allowed, no data policy', () => {
    expect(parseRequestControls({ model: 'a/b' })).toEqual({ models: ['a/b'], provider: defaultProviderControls() });
    expect(defaultProviderControls()).toEqual({ allowFallbacks: true, zdr: false, dataCollection: 'allow', policySource: {} });
  });

  it('puts the model first and removes duplicates from the fallback list', () => {
    expect(parseRequestControls({ model: 'a', models: ['b', 'a', 'c', 'b'] }).models).toEqual(['a', 'b', 'c']);
  });

  it('takes the fallback list alone when model is absent or null', () => {
    expect(parseRequestControls({ models: ['b', 'c'] }).models).toEqual(['b', 'c']);
    expect(parseRequestControls({ model: null, models: ['b'] }).models).toEqual(['b']);
  });

  it('treats null and [] as no fallback list', () => {
    expect(parseRequestControls({ model: 'a', models: null }).models).toEqual(['a']);
    expect(parseRequestControls({ model: 'a', models: [] }).models).toEqual(['a']);
  });

  it('requires a model', () => {
    expect(badRequest({}).param).toBe('model');
    expect(badRequest({ models: [] }).param).toBe('model');
  });

  it('refuses bad types with the path', () => {
    expect(badRequest({ model: 42 }).param).toBe('model');
    expect(badRequest({ model: '' }).param).toBe('model');
    expect(badRequest({ model: 'a', models: 'b' }).param).toBe('models');
    expect(badRequest({ model: 'a', models: { 0: 'b' } }).param).toBe('models');
    expect(badRequest({ model: 'a', models: ['b', 7] }).param).toBe('models[1]');
    expect(badRequest({ model: 'a', models: [''] }).param).toBe('models[0]');
  });

  it(`accepts at most ${MAX_MODELS} fallbacks`, () => {
    const many = Array.from({ length: MAX_MODELS + 1 }, (_, i) => `m${i}`);
    expect(parseRequestControls({ models: many.slice(0, MAX_MODELS) }).models).toHaveLength(MAX_MODELS);
    expect(badRequest({ models: many }).message).toContain(`at most ${MAX_MODELS}`);
  });
});

describe('request controls: provider', () => {
  it('reads every field', () => {
    const c = parseRequestControls(
      withProvider({
        order: ['gamma', 'alpha'],
        only: ['alpha', 'gamma', 'alpha'],
        ignore: ['beta'],
        allow_fallbacks: false,
        sort: 'latency',
        zdr: true,
        data_collection: 'deny',
        max_price: { prompt: 1.5, completion: 2, request: 0.01 },
      }),
    );
    expect(c.provider).toEqual({
      order: ['gamma', 'alpha'],
      only: ['alpha', 'gamma'],
      ignore: ['beta'],
      allowFallbacks: false,
      sort: 'latency',
      zdr: true,
      dataCollection: 'deny',
      maxPrice: { prompt: 1.5, completion: 2, request: 0.01 },
      policySource: { zdr: 'request', dataCollection: 'request' },
    });
  });

  it('accepts each sort and data_collection value', () => {
    for (const sort of ['price', 'latency', 'throughput'] as const) {
      expect(parseRequestControls(withProvider({ sort })).provider.sort).toBe(sort);
    }
    expect(parseRequestControls(withProvider({ data_collection: 'allow' })).provider).toMatchObject({ dataCollection: 'allow', policySource: {} });
    expect(parseRequestControls(withProvider({ zdr: false })).provider).toMatchObject({ zdr: false, policySource: {} });
    expect(parseRequestControls(withProvider({ allow_fallbacks: true })).provider.allowFallbacks).toBe(true);
  });

  it('reads max_price given as decimal strings, as OpenRouter SDKs send it', () => {
    expect(parseRequestControls(withProvider({ max_price: { prompt: '0.5', completion: '3' } })).provider.maxPrice).toEqual({
      prompt: 0.5,
      completion: 3,
    });
    expect(parseRequestControls(withProvider({ max_price: { prompt: 0 } })).provider.maxPrice).toEqual({ prompt: 0 });
  });

  it('treats null as absent, for provider and for its fields', () => {
    expect(parseRequestControls(withProvider(null)).provider).toEqual(defaultProviderControls());
    expect(parseRequestControls(withProvider({ order: null, sort: null, zdr: null, max_price: null })).provider).toEqual(defaultProviderControls());
    expect(parseRequestControls(withProvider({ max_price: { prompt: null } })).provider.maxPrice).toEqual({});
  });

  it('refuses an unknown field, naming provider.x', () => {
    for (const field of ['require_parameters', 'quantizations', 'Order', 'allowFallbacks']) {
      const e = badRequest(withProvider({ [field]: true }));
      expect(e.param).toBe(`provider.${field}`);
      expect(e.message).toContain(`provider.${field}`);
    }
    expect(badRequest(withProvider({ max_price: { image: 1 } })).param).toBe('provider.max_price.image');
  });

  it('refuses bad types, naming the path', () => {
    const cases: Array<[unknown, string]> = [
      [[], 'provider'],
      ['alpha', 'provider'],
      [42, 'provider'],
      [{ order: 'alpha' }, 'provider.order'],
      [{ order: ['alpha', 3] }, 'provider.order[1]'],
      [{ only: {} }, 'provider.only'],
      [{ only: [''] }, 'provider.only[0]'],
      [{ ignore: [null] }, 'provider.ignore[0]'],
      [{ allow_fallbacks: 'false' }, 'provider.allow_fallbacks'],
      [{ allow_fallbacks: 0 }, 'provider.allow_fallbacks'],
      [{ sort: 'fastest' }, 'provider.sort'],
      [{ sort: { by: 'price' } }, 'provider.sort'],
      [{ zdr: 'true' }, 'provider.zdr'],
      [{ zdr: 1 }, 'provider.zdr'],
      [{ data_collection: 'maybe' }, 'provider.data_collection'],
      [{ data_collection: false }, 'provider.data_collection'],
      [{ max_price: 5 }, 'provider.max_price'],
      [{ max_price: [1] }, 'provider.max_price'],
      [{ max_price: { prompt: -1 } }, 'provider.max_price.prompt'],
      [{ max_price: { completion: 'cheap' } }, 'provider.max_price.completion'],
      [{ max_price: { completion: '-1' } }, 'provider.max_price.completion'],
      [{ max_price: { request: true } }, 'provider.max_price.request'],
      [{ max_price: { prompt: Number.POSITIVE_INFINITY } }, 'provider.max_price.prompt'],
    ];
    for (const [provider, param] of cases) expect(badRequest(withProvider(provider)).param, JSON.stringify(provider)).toBe(param);
  });

  it('bounds the provider lists', () => {
    const long = Array.from({ length: 65 }, (_, i) => `p${i}`);
    expect(badRequest(withProvider({ only: long })).param).toBe('provider.only');
  });
});

describe('request controls: account defaults', () => {
  it("applies the account's policy when the request sends none", () => {
    const c = parseRequestControls({ model: 'a' }, { zdr: true, dataCollection: 'deny' });
    expect(c.provider).toMatchObject({ zdr: true, dataCollection: 'deny', policySource: { zdr: 'account', dataCollection: 'account' } });
  });

  it("cannot be relaxed by a request: zdr false and data_collection allow lose to the account's", () => {
    const c = parseRequestControls(withProvider({ zdr: false, data_collection: 'allow' }), { zdr: true, dataCollection: 'deny' });
    expect(c.provider).toMatchObject({ zdr: true, dataCollection: 'deny', policySource: { zdr: 'account', dataCollection: 'account' } });
  });

  it('may be made stricter by a request', () => {
    const c = parseRequestControls(withProvider({ zdr: true, data_collection: 'deny' }), { zdr: false, dataCollection: 'allow' });
    expect(c.provider).toMatchObject({ zdr: true, dataCollection: 'deny', policySource: { zdr: 'request', dataCollection: 'request' } });
    const partly = parseRequestControls(withProvider({ zdr: true }), { dataCollection: 'deny' });
    expect(partly.provider).toMatchObject({ zdr: true, dataCollection: 'deny', policySource: { zdr: 'request', dataCollection: 'account' } });
  });

  it('leaves other controls alone and does not mutate its input', () => {
    const base = parseRequestControls(withProvider({ order: ['alpha'], sort: 'price' })).provider;
    const merged = applyAccountDefaults(base, { zdr: true });
    expect(merged).toMatchObject({ order: ['alpha'], sort: 'price', zdr: true });
    expect(base.zdr).toBe(false);
    expect(base.policySource).toEqual({});
    expect(applyAccountDefaults(base, undefined)).toBe(base);
  });
});

describe('withoutRequestControls', () => {
  it('removes models and provider, and nothing else', () => {
    const body = { model: 'a', models: ['b'], provider: { zdr: true }, messages: [] };
    expect(withoutRequestControls(body)).toEqual({ model: 'a', messages: [] });
    expect(body.provider).toEqual({ zdr: true });
    const plain = { model: 'a', messages: [] };
    expect(withoutRequestControls(plain)).toBe(plain);
  });
});
