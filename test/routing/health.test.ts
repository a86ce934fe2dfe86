import { describe, expect, it } from 'vitest';
import { EndpointHealth, HealthRegistry } from '../../src/routing/health.js';

describe('endpoint health', () => {
  it('starts empty and takes the first sample as is', () => {
    const h = new EndpointHealth();
    expect(h.stats()).toEqual({ latencyMs: undefined, throughput: undefined, samples: 0 });
    h.record({ ttfbMs: 200, durationMs: 1200, completionTokens: 50 });
    expect(h.latencyMs).toBe(200);
    expect(h.throughput).toBe(50); // 50 tokens over the 1 s after the first byte
    expect(h.samples).toBe(1);
  });

  it('moves averages by alpha (default 0.3) toward each new sample', () => {
    const h = new EndpointHealth();
    h.record({ ttfbMs: 100, durationMs: 1100, completionTokens: 100 });
    h.record({ ttfbMs: 200, durationMs: 700, completionTokens: 100 }); // 200 tok/s
    expect(h.latencyMs).toBeCloseTo(130, 9);
    expect(h.throughput).toBeCloseTo(130, 9);
    const fast = new EndpointHealth({ alpha: 1 });
    fast.record({ ttfbMs: 100, durationMs: 200, completionTokens: 10 });
    fast.record({ ttfbMs: 50, durationMs: 200, completionTokens: 10 });
    expect(fast.latencyMs).toBe(50);
  });

  it('measures a non-streamed answer over its whole duration', () => {
    const h = new EndpointHealth();
    h.record({ ttfbMs: 1990, durationMs: 2000, completionTokens: 100 });
    expect(h.throughput).toBe(50);
  });

  it('ignores values that are not usable', () => {
    const h = new EndpointHealth();
    h.record({ ttfbMs: Number.NaN, durationMs: 0, completionTokens: 10 });
    h.record({ ttfbMs: -1, durationMs: 100, completionTokens: 0 });
    expect(h.stats()).toEqual({ latencyMs: undefined, throughput: undefined, samples: 0 });
    h.record({ ttfbMs: 80, durationMs: 100, completionTokens: 0 });
    expect(h.stats()).toEqual({ latencyMs: 80, throughput: undefined, samples: 1 });
  });

  it('refuses an alpha outside (0, 1]', () => {
    expect(() => new EndpointHealth({ alpha: 0 })).toThrow(RangeError);
    expect(() => new EndpointHealth({ alpha: 1.5 })).toThrow(RangeError);
  });

  it('keeps one record per endpoint key', () => {
    const r = new HealthRegistry();
    expect(r.stats('a:x').samples).toBe(0);
    r.record('a:x', { ttfbMs: 10, durationMs: 500, completionTokens: 49 });
    r.record('b:x', { ttfbMs: 20, durationMs: 500, completionTokens: 48 });
    expect(r.stats('a:x')).toEqual({ latencyMs: 10, throughput: 100, samples: 1 });
    expect(r.stats('b:x').latencyMs).toBe(20);
  });
});
