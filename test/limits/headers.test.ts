import { describe, expect, it } from 'vitest';
import { formatResetDuration, rateLimitHeaders, tightest } from '../../src/limits/headers.js';

describe('formatResetDuration (Go durations, as OpenAI sends them)', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [Number.NaN, '0s'],
    [0.4, '1ms'],
    [20, '20ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [8_640, '8.64s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [61_001, '1m1.001s'],
    [360_000, '6m0s'],
    [3_600_000, '1h0m0s'],
    [3_723_500, '1h2m3.5s'],
    [90_000_000, '25h0m0s'],
  ])('%s ms → %s', (ms, expected) => {
    expect(formatResetDuration(ms)).toBe(expected);
  });
});

describe('rateLimitHeaders', () => {
  it('sends only the trios of the limits that exist', () => {
    expect(rateLimitHeaders([], [])).toEqual({});
    expect(rateLimitHeaders([{ limit: 60, remaining: 59, resetMs: 1_000 }], [])).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
    });
    expect(rateLimitHeaders([], [{ limit: 150_000, remaining: 149_984, resetMs: 360_000 }])).toEqual({
      'x-ratelimit-limit-tokens': '150000',
      'x-ratelimit-remaining-tokens': '149984',
      'x-ratelimit-reset-tokens': '6m0s',
    });
  });

  it('reports the tightest limit of each kind', () => {
    const h = rateLimitHeaders(
      [
        { limit: 100, remaining: 90, resetMs: 6_000 },
        { limit: 10, remaining: 3, resetMs: 42_000 },
        { limit: 1_000, remaining: 999, resetMs: 60 },
      ],
      [
        { limit: 10_000, remaining: 9_000, resetMs: 6_000 },
        { limit: 5_000, remaining: 4_000, resetMs: 12_000 },
      ],
    );
    expect(h).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '3',
      'x-ratelimit-reset-requests': '42s',
      'x-ratelimit-limit-tokens': '5000',
      'x-ratelimit-remaining-tokens': '4000',
      'x-ratelimit-reset-tokens': '12s',
    });
  });

  it('breaks ties on remaining by the smaller limit, then the later reset', () => {
    expect(tightest([{ limit: 100, remaining: 0, resetMs: 1 }, { limit: 10, remaining: 0, resetMs: 1 }])?.limit).toBe(10);
    expect(tightest([{ limit: 10, remaining: 0, resetMs: 1 }, { limit: 10, remaining: 0, resetMs: 9 }])?.resetMs).toBe(9);
    expect(tightest([])).toBeUndefined();
  });
});
