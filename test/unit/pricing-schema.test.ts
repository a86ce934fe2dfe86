import { describe, expect, it } from 'vitest';
import { pricingSchema } from '../../src/config/schema.js';

describe('pricingSchema', () => {
  it('keeps the existing fields and accepts cacheWrite1h, reasoning and request', () => {
    const all = { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75, cacheWrite1h: 6, reasoning: 15, request: 0.001 };
    expect(pricingSchema.parse(all)).toEqual(all);
    expect(pricingSchema.parse({ input: 0.15 })).toEqual({ input: 0.15, output: 0 });
  });

  it('accepts up to 9 decimal places and rejects a 10th', () => {
    expect(pricingSchema.safeParse({ input: 0.000000001, output: 0.123456789 }).success).toBe(true);
    for (const bad of [{ input: 1e-10 }, { input: 1, output: 0.1234567891 }, { input: 1, request: 0.0000000005 }, { input: 1, cacheWrite1h: 2.0000000001 }]) {
      const r = pricingSchema.safeParse(bad);
      expect(r.success, JSON.stringify(bad)).toBe(false);
      expect(r.error!.issues[0]!.message).toMatch(/must have at most 9 decimal places/);
    }
  });

  it('rejects negative prices, too large prices and unknown fields', () => {
    const negative = pricingSchema.safeParse({ input: -1 });
    expect(negative.error!.issues.map((i) => i.message)).toEqual(['Too small: expected number to be >=0']);
    expect(pricingSchema.safeParse({ input: 1e7 }).error!.issues[0]!.message).toMatch(/too large/);
    expect(pricingSchema.safeParse({ input: 1, reasoning: -0.5 }).success).toBe(false);
    expect(pricingSchema.safeParse({ input: 1, cacheRead: 0.1 }).success).toBe(false);
  });
});
