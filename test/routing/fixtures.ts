/** A small catalog and deterministic clock and random sources for the routing tests. */
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { Catalog } from '../../src/routing/catalog.js';

export const CONFIG: ConfigInput = {
  providers: [
    { id: 'alpha', type: 'openai-compatible', baseUrl: 'http://127.0.0.1:9/v1' },
    { id: 'beta', type: 'openai-compatible', baseUrl: 'http://127.0.0.1:9/v1' },
    { id: 'gamma', type: 'anthropic', apiKey: 'k' },
    // One provider account with two API keys: two providers in config.
    { id: 'key1', type: 'openai', apiKey: 'k1' },
    { id: 'key2', type: 'openai', apiKey: 'k2' },
  ],
  models: [
    {
      id: 'm/multi',
      endpoints: [
        { provider: 'alpha', model: 'multi-a', pricing: { input: 1, output: 2 }, zdr: true, dataCollection: 'deny' },
        { provider: 'beta', model: 'multi-b', pricing: { input: 0.5, output: 1 } },
        { provider: 'gamma', model: 'multi-c', pricing: { input: 3, output: 3, request: 0.01 }, zdr: true },
      ],
    },
    {
      id: 'm/weighted',
      endpoints: [
        { provider: 'key1', model: 'gpt', weight: 3 },
        { provider: 'key2', model: 'gpt', weight: 1 },
      ],
    },
    { id: 'm/single', endpoints: [{ provider: 'alpha', model: 'single' }] },
    { id: 'm/nonzdr', endpoints: [{ provider: 'beta', model: 'nonzdr' }] },
    { id: 'm/embed', kind: 'embedding', endpoints: [{ provider: 'alpha', model: 'embed' }] },
  ],
};

export function makeCatalog(): Catalog {
  return new Catalog(configSchema.parse(CONFIG));
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock the test moves by hand. */
export function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void; set(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    set(ms: number) {
      t = ms;
    },
  };
}

/** Runs `fn` and returns the error it throws (fails the test when it does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
