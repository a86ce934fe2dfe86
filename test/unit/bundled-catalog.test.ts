import { describe, it, expect } from 'vitest';
import { BUNDLED_MODELS, bundledModelsFor, bundledProviders } from '../../src/config/bundled-catalog.js';
import { configSchema, modelSchema, providerSchema } from '../../src/config/schema.js';

const VENDOR_OF_PROVIDER: Record<string, string> = { openai: 'openai', anthropic: 'anthropic', gemini: 'google' };

describe('bundled catalog', () => {
  it('has models of all three providers', () => {
    const providers = new Set(BUNDLED_MODELS.flatMap((m) => m.endpoints.map((e) => e.provider)));
    expect([...providers].sort()).toEqual(['anthropic', 'gemini', 'openai']);
  });

  it('every model parses with modelSchema', () => {
    for (const m of BUNDLED_MODELS) {
      const r = modelSchema.safeParse(m);
      expect(r.success, `${m.id}: ${r.success ? '' : r.error.message}`).toBe(true);
    }
  });

  it('ids are unique and prefixed by the vendor of their endpoint', () => {
    const ids = BUNDLED_MODELS.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const m of BUNDLED_MODELS) {
      expect(m.endpoints).toHaveLength(1);
      const provider = m.endpoints[0]!.provider;
      const vendor = VENDOR_OF_PROVIDER[provider];
      expect(vendor, `${m.id}: unknown provider ${provider}`).toBeDefined();
      expect(m.id.startsWith(`${vendor}/`), m.id).toBe(true);
      expect(m.id.length).toBeGreaterThan(vendor!.length + 1);
    }
  });

  it('every chat model has limits and input & output prices', () => {
    const chat = BUNDLED_MODELS.filter((m) => (m.kind ?? 'chat') === 'chat');
    expect(chat.length).toBeGreaterThan(0);
    for (const m of chat) {
      expect(m.contextLength, m.id).toBeGreaterThan(0);
      expect(m.maxOutputTokens, m.id).toBeGreaterThan(0);
      expect(m.maxOutputTokens!, m.id).toBeLessThanOrEqual(m.contextLength!);
      for (const e of m.endpoints) {
        expect(e.pricing, m.id).toBeDefined();
        expect(e.pricing!.input, m.id).toBeGreaterThan(0);
        expect(e.pricing!.output, m.id).toBeGreaterThan(0);
        // Cached reads are a discount on input; cache writes a premium.
        if (e.pricing!.cachedInput !== undefined) expect(e.pricing!.cachedInput, m.id).toBeLessThan(e.pricing!.input);
        if (e.pricing!.cacheWrite !== undefined) expect(e.pricing!.cacheWrite, m.id).toBeGreaterThan(e.pricing!.input);
      }
    }
  });

  it('every chat model has a cache-read price', () => {
    for (const m of BUNDLED_MODELS.filter((x) => (x.kind ?? 'chat') === 'chat')) {
      for (const e of m.endpoints) expect(e.pricing!.cachedInput, m.id).toBeGreaterThan(0);
    }
  });

  it('embedding models are marked kind embedding and priced on input', () => {
    const embeddingIds = [
      'openai/text-embedding-3-small',
      'openai/text-embedding-3-large',
      'google/gemini-embedding-001',
    ];
    for (const id of embeddingIds) {
      const m = BUNDLED_MODELS.find((x) => x.id === id);
      expect(m, id).toBeDefined();
      expect(m!.kind).toBe('embedding');
      expect(m!.endpoints[0]!.pricing!.input).toBeGreaterThan(0);
    }
    for (const m of BUNDLED_MODELS) {
      if (/embedding/.test(m.id)) expect(m.kind, m.id).toBe('embedding');
    }
  });

  it('Anthropic models carry the 5-minute and 1-hour cache-write prices', () => {
    const anthropic = BUNDLED_MODELS.filter((x) => x.endpoints[0]!.provider === 'anthropic');
    expect(anthropic.length).toBeGreaterThan(0);
    for (const m of anthropic) {
      const p = m.endpoints[0]!.pricing!;
      expect(p.cacheWrite, m.id).toBeGreaterThan(0);
      expect(p.cachedInput, m.id).toBeGreaterThan(0);
      // Anthropic: 5-minute writes 1.25× input, 1-hour writes 2× input.
      expect(p.cacheWrite, m.id).toBeCloseTo(p.input * 1.25, 9);
      expect(p.cacheWrite1h, m.id).toBeCloseTo(p.input * 2, 9);
    }
  });

  it('only Anthropic models carry a 1-hour cache-write price', () => {
    for (const m of BUNDLED_MODELS.filter((x) => x.endpoints[0]!.provider !== 'anthropic')) {
      expect(m.endpoints[0]!.pricing!.cacheWrite1h, m.id).toBeUndefined();
    }
  });
});

describe('bundledProviders', () => {
  it('returns nothing without keys', () => {
    expect(bundledProviders({})).toEqual([]);
  });

  it('picks up only keys that are set and not blank', () => {
    const providers = bundledProviders({
      OPENAI_API_KEY: 'sk-openai',
      ANTHROPIC_API_KEY: '',
      GEMINI_API_KEY: '   ',
      GOOGLE_API_KEY: 'ignored',
    });
    expect(providers).toEqual([{ id: 'openai', type: 'openai', apiKey: 'sk-openai' }]);
  });

  it('maps each variable to its provider', () => {
    const providers = bundledProviders({
      OPENAI_API_KEY: 'a',
      ANTHROPIC_API_KEY: 'b',
      GEMINI_API_KEY: ' c\n',
    });
    expect(providers).toEqual([
      { id: 'openai', type: 'openai', apiKey: 'a' },
      { id: 'anthropic', type: 'anthropic', apiKey: 'b' },
      { id: 'gemini', type: 'gemini', apiKey: 'c' },
    ]);
    for (const p of providers) expect(providerSchema.safeParse(p).success).toBe(true);
  });
});

describe('bundledModelsFor', () => {
  it('returns only the models of enabled providers', () => {
    const models = bundledModelsFor(new Set(['anthropic']));
    expect(models.length).toBeGreaterThan(0);
    expect(models.every((m) => m.endpoints.every((e) => e.provider === 'anthropic'))).toBe(true);
    expect(models.length).toBe(BUNDLED_MODELS.filter((m) => m.endpoints[0]!.provider === 'anthropic').length);
  });

  it('returns nothing when no provider is enabled, everything when all are', () => {
    expect(bundledModelsFor(new Set())).toEqual([]);
    expect(bundledModelsFor(new Set(['openai', 'anthropic', 'gemini']))).toEqual(BUNDLED_MODELS);
  });

  it('returns copies that do not alias the catalog', () => {
    const [first] = bundledModelsFor(new Set(['openai']));
    first!.endpoints[0]!.pricing!.input = 999;
    expect(BUNDLED_MODELS.find((m) => m.id === first!.id)!.endpoints[0]!.pricing!.input).not.toBe(999);
  });

  it('yields a valid config together with bundledProviders', () => {
    const providers = bundledProviders({ OPENAI_API_KEY: 'a', ANTHROPIC_API_KEY: 'b', GEMINI_API_KEY: 'c' });
    const models = bundledModelsFor(new Set(providers.map((p) => p.id)));
    const r = configSchema.safeParse({ providers, models });
    expect(r.success, r.success ? '' : r.error.message).toBe(true);

    const onlyGemini = bundledProviders({ GEMINI_API_KEY: 'c' });
    const r2 = configSchema.safeParse({ providers: onlyGemini, models: bundledModelsFor(new Set(['gemini'])) });
    expect(r2.success).toBe(true);
  });
});
