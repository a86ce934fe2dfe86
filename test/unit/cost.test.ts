import { describe, expect, it } from 'vitest';
import { computeCost, FREE, priceTable, worstCaseCost, type PriceTable } from '../../src/billing/cost.js';
import { formatUsd } from '../../src/billing/money.js';
import { BUNDLED_MODELS } from '../../src/config/bundled-catalog.js';
import { emptyUsage, type IRUsage } from '../../src/ir/usage.js';
import { normaliseUsage } from '../../src/providers/anthropic/convert-response.js';
import { normalizeUsage } from '../../src/providers/gemini/convert-response.js';
import { usageFromOpenAI } from '../../src/providers/openai/usage.js';

/** The price table of a bundled model's (only) endpoint. */
function bundled(id: string): PriceTable {
  const model = BUNDLED_MODELS.find((m) => m.id === id);
  if (!model) throw new Error(`no bundled model ${id}`);
  return priceTable(model.endpoints[0]!.pricing);
}

const usage = (u: Partial<IRUsage>): IRUsage => ({ ...emptyUsage(), ...u });

describe('priceTable', () => {
  it('converts USD per million tokens to integer nano-USD per million tokens', () => {
    expect(priceTable({ input: 0.0375, output: 0.15, cachedInput: 0.01875, cacheWrite: 0.046875, cacheWrite1h: 0.075, reasoning: 0.2, request: 0.0004 })).toEqual({
      input: 37_500_000,
      output: 150_000_000,
      cachedInput: 18_750_000,
      cacheWrite: 46_875_000,
      cacheWrite1h: 75_000_000,
      reasoning: 200_000_000,
      request: 400_000, // nano-USD per request
    });
  });

  it('defaults cachedInput and cacheWrite to input, cacheWrite1h to cacheWrite, reasoning to output', () => {
    expect(priceTable({ input: 1, output: 4 })).toEqual({
      input: 1_000_000_000,
      output: 4_000_000_000,
      cachedInput: 1_000_000_000,
      cacheWrite: 1_000_000_000,
      cacheWrite1h: 1_000_000_000,
      reasoning: 4_000_000_000,
      request: 0,
    });
    expect(priceTable({ input: 1, cacheWrite: 1.25 }).cacheWrite1h).toBe(1_250_000_000);
    expect(priceTable({ input: 1 }).output).toBe(0);
  });

  it('prices an endpoint without pricing at nothing', () => {
    expect(priceTable(undefined)).toEqual(FREE);
    expect(computeCost(usage({ promptTokens: 1000, completionTokens: 1000 }), priceTable(undefined))).toBe(0);
  });

  it('refuses a price finer than 1e-9 USD per million tokens', () => {
    expect(() => priceTable({ input: 1e-10 })).toThrow(RangeError);
  });
});

describe('computeCost, per provider', () => {
  it('OpenAI: prompt_tokens include cached tokens, completion_tokens include reasoning (gpt-5-mini)', () => {
    const u = usageFromOpenAI({
      prompt_tokens: 1000,
      completion_tokens: 500,
      prompt_tokens_details: { cached_tokens: 400 },
      completion_tokens_details: { reasoning_tokens: 200 },
    })!;
    // gpt-5-mini: input $0.25/M, cached $0.025/M, output $2/M (reasoning defaults to output).
    //   uncached 1000 − 400 = 600 × 250_000_000   = 150_000_000_000
    //   cached             400 × 25_000_000     =  10_000_000_000
    //   output   500 − 200 = 300 × 2_000_000_000 = 600_000_000_000
    //   reasoning          200 × 2_000_000_000  = 400_000_000_000
    //   sum 1_160_000_000_000 / 1e6 = 1_160_000 nano-USD = $0.00116
    const cost = computeCost(u, bundled('openai/gpt-5-mini'));
    expect(cost).toBe(1_160_000);
    expect(formatUsd(cost)).toBe('0.00116');
  });

  it('Anthropic: input_tokens exclude cache reads and writes; 1-hour writes priced apart (claude-sonnet-5-5)', () => {
    const u = normaliseUsage({
      input_tokens: 100,
      cache_read_input_tokens: 300,
      cache_creation_input_tokens: 200,
      cache_creation: { ephemeral_5m_input_tokens: 150, ephemeral_1h_input_tokens: 50 },
      output_tokens: 80,
    });
    expect(u).toEqual({ promptTokens: 600, completionTokens: 80, cachedTokens: 300, cacheWriteTokens: 200, cacheWrite1hTokens: 50, reasoningTokens: 0 });
    // claude-sonnet-5-5: input $2/M, cache read $0.10/M, 5m write $2.50/M, 1h write $4/M, output $10/M.
    //   uncached 600 − 300 − 200 = 100 × 2_000_000_000  = 200_000_000_000
    //   cache reads               300 × 100_000_000    =  30_000_000_000
    //   5m writes    200 − 50   = 150 × 2_500_000_000  = 375_000_000_000
    //   1h writes                  50 × 4_000_000_000  = 200_000_000_000
    //   output                     80 × 10_000_000_000 = 800_000_000_000
    //   sum 1_605_000_000_000 / 1e6 = 1_605_000 nano-USD = $0.001605
    expect(computeCost(u, bundled('anthropic/claude-sonnet-5-5'))).toBe(1_605_000);
  });

  it('Gemini: promptTokenCount includes cached content; thoughts are billed as output (gemini-3.8-flash)', () => {
    const u = normalizeUsage({
      promptTokenCount: 5000,
      cachedContentTokenCount: 4096,
      candidatesTokenCount: 120,
      thoughtsTokenCount: 880,
      totalTokenCount: 6000,
    });
    expect(u).toMatchObject({ promptTokens: 5000, cachedTokens: 4096, completionTokens: 1000, reasoningTokens: 880 });
    // gemini-3.8-flash: input $0.75/M, cache read $0.075/M, output $3.75/M (thinking included).
    //   uncached 5000 − 4096 = 904 × 750_000_000   =   678_000_000_000
    //   cached              4096 × 75_000_000    =   307_200_000_000
    //   output  1000 − 880  = 120 × 3_750_000_000 =   450_000_000_000
    //   thoughts             880 × 3_750_000_000 = 3_300_000_000_000
    //   sum 4_735_200_000_000 / 1e6 = 4_735_200 nano-USD = $0.0047352
    expect(computeCost(u, bundled('google/gemini-3.8-flash'))).toBe(4_735_200);
  });

  it('prices reasoning apart when a reasoning price is set', () => {
    const prices = priceTable({ input: 1, output: 2, reasoning: 3 });
    // 10 prompt × 1e9 + (30 − 20) output × 2e9 + 20 reasoning × 3e9 = 10e9 + 20e9 + 60e9 = 90e9
    // 90_000_000_000 / 1e6 = 90_000 nano-USD
    expect(computeCost(usage({ promptTokens: 10, completionTokens: 30, reasoningTokens: 20 }), prices)).toBe(90_000);
  });

  it('adds the request fee after the rounding', () => {
    const prices = priceTable({ input: 0.0005, request: 0.0001 });
    // 1 token × 500_000 = 500_000 / 1e6 = 0.5 → 1; + 100_000 nano-USD fee
    expect(computeCost(usage({ promptTokens: 1 }), prices)).toBe(100_001);
    expect(computeCost(emptyUsage(), prices)).toBe(100_000);
  });
});

describe('computeCost, arithmetic', () => {
  it('one token on the cheapest bundled price is not zero', () => {
    let cheapest = Number.POSITIVE_INFINITY;
    for (const m of BUNDLED_MODELS) {
      const p = priceTable(m.endpoints[0]!.pricing);
      const chat = (m.kind ?? 'chat') === 'chat';
      expect(computeCost(usage({ promptTokens: 1 }), p), `${m.id} input`).toBeGreaterThan(0);
      if (chat) {
        expect(computeCost(usage({ promptTokens: 1, cachedTokens: 1 }), p), `${m.id} cached`).toBeGreaterThan(0);
        expect(computeCost(usage({ completionTokens: 1 }), p), `${m.id} output`).toBeGreaterThan(0);
        expect(computeCost(usage({ completionTokens: 1, reasoningTokens: 1 }), p), `${m.id} reasoning`).toBeGreaterThan(0);
      }
      cheapest = Math.min(cheapest, p.input, p.cachedInput, chat ? p.output : Number.POSITIVE_INFINITY);
    }
    // gpt-5-nano cache reads, $0.005/M: 1 × 5_000_000 / 1e6 = 5 nano-USD.
    expect(cheapest).toBe(5_000_000);
    expect(computeCost(usage({ promptTokens: 1, cachedTokens: 1 }), bundled('openai/gpt-5-nano'))).toBe(5);
  });

  it('rounds half up, once, on the total', () => {
    const half = priceTable({ input: 0.0005 }); // 500_000 nano-USD per million tokens
    expect(computeCost(usage({ promptTokens: 1 }), half)).toBe(1); // 0.5 → 1
    expect(computeCost(usage({ promptTokens: 3 }), half)).toBe(2); // 1.5 → 2
    const below = priceTable({ input: 0.000499999 }); // 499_999
    expect(computeCost(usage({ promptTokens: 1 }), below)).toBe(0); // 0.499999 → 0
    // Two quarters: 1 × 250_000 + 1 × 250_000 = 500_000 / 1e6 = 0.5 → 1. Rounding each part
    // on its own would give 0 + 0.
    const quarter = priceTable({ input: 0.00025, output: 0.00025 });
    expect(computeCost(usage({ promptTokens: 1, completionTokens: 1 }), quarter)).toBe(1);
  });

  it('is exact for large counts: 10M tokens at $150/M', () => {
    const prices = priceTable({ input: 150, output: 600 });
    // 10_000_000 × 150_000_000_000 = 1.5e18 (beyond 2^53: BigInt), / 1e6 = 1_500_000_000_000 = $1500
    expect(computeCost(usage({ promptTokens: 10_000_000 }), prices)).toBe(1_500_000_000_000);
    expect(formatUsd(computeCost(usage({ promptTokens: 10_000_000 }), prices))).toBe('1500');
    // + 10M output × 600_000_000_000 / 1e6 = 6_000_000_000_000 → $7500 in all
    expect(computeCost(usage({ promptTokens: 10_000_000, completionTokens: 10_000_000 }), prices)).toBe(7_500_000_000_000);
    // 10_000_001 tokens: + 150_000 nano-USD exactly
    expect(computeCost(usage({ promptTokens: 10_000_001 }), prices)).toBe(1_500_000_150_000);
  });

  it('adds money without floats: $0.1/M + $0.2/M over 1M tokens each is exactly $0.3', () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    const prices = priceTable({ input: 0.1, output: 0.2 });
    const cost = computeCost(usage({ promptTokens: 1_000_000, completionTokens: 1_000_000 }), prices);
    expect(cost).toBe(300_000_000);
    expect(formatUsd(cost)).toBe('0.3');
  });

  it('clamps parts that inconsistent counts would make negative', () => {
    const prices = priceTable({ input: 1, cachedInput: 0.1, output: 2, reasoning: 2 });
    // cached 8 > prompt 5: uncached 0; cached 8 × 100_000_000 = 800_000_000
    // reasoning 4 > completion 1: output 0; reasoning 4 × 2e9 = 8_000_000_000
    // 8_800_000_000 / 1e6 = 8_800
    expect(computeCost(usage({ promptTokens: 5, cachedTokens: 8, completionTokens: 1, reasoningTokens: 4 }), prices)).toBe(8_800);
    // 1-hour writes above all writes: 5-minute writes 0, the reported subsets billed as reported.
    const anthropic = bundled('anthropic/claude-haiku-4-5');
    //   uncached 10 − 0 − 5 = 5 × 1_000_000_000 =  5_000_000_000
    //   5m writes  5 − 10 → 0
    //   1h writes       10 × 2_000_000_000 = 20_000_000_000
    //   25_000_000_000 / 1e6 = 25_000
    expect(computeCost(usage({ promptTokens: 10, cacheWriteTokens: 5, cacheWrite1hTokens: 10 }), anthropic)).toBe(25_000);
  });

  it('refuses counts and prices that are not non-negative integers', () => {
    const prices = bundled('openai/gpt-5-mini');
    expect(() => computeCost(usage({ promptTokens: -1 }), prices)).toThrow(RangeError);
    expect(() => computeCost(usage({ promptTokens: 1.5 }), prices)).toThrow(RangeError);
    expect(() => computeCost(usage({ completionTokens: Number.NaN }), prices)).toThrow(RangeError);
    expect(() => computeCost(usage({ promptTokens: 1 }), { ...prices, input: 0.5 })).toThrow(RangeError);
  });
});

describe('worstCaseCost', () => {
  it('prices every prompt token at the dearest prompt price and every output token at the dearest output price', () => {
    // claude-sonnet-5-5: max(input 2e9, 5m write 2.5e9, 1h write 4e9) = 4_000_000_000;
    // max(output 1e10, reasoning 1e10) = 10_000_000_000.
    //   1000 × 4_000_000_000 + 500 × 10_000_000_000 = 4e12 + 5e12 = 9e12; / 1e6 = 9_000_000 ($0.009)
    expect(worstCaseCost(1000, 500, bundled('anthropic/claude-sonnet-5-5'))).toBe(9_000_000);
    // A reasoning price above output is the output bound: 2 × 3e9 / 1e6 = 6_000.
    expect(worstCaseCost(0, 2, priceTable({ input: 1, output: 2, reasoning: 3 }))).toBe(6_000);
  });

  it('rounds up and adds the request fee', () => {
    const prices = priceTable({ input: 0.000000001, request: 0.000001 }); // 1 nano-USD per million tokens
    // 1 × 1 / 1e6 = 0.000001 → 1; + 1_000 fee
    expect(worstCaseCost(1, 0, prices)).toBe(1_001);
    expect(worstCaseCost(0, 0, prices)).toBe(1_000);
    // 1_000_000 × 1 / 1e6 = 1 exactly: no extra unit
    expect(worstCaseCost(1_000_000, 0, prices)).toBe(1_001);
  });

  it('is never below the cost of a usage within its limits', () => {
    for (const m of BUNDLED_MODELS) {
      const p = priceTable(m.endpoints[0]!.pricing);
      const limit = { prompt: 12_345, output: 678 };
      const worst = worstCaseCost(limit.prompt, limit.output, p);
      for (const u of [
        usage({ promptTokens: limit.prompt, completionTokens: limit.output }),
        usage({ promptTokens: limit.prompt, cacheWriteTokens: limit.prompt, cacheWrite1hTokens: 7, completionTokens: limit.output, reasoningTokens: 600 }),
        usage({ promptTokens: limit.prompt, cachedTokens: 12_000, completionTokens: 1 }),
      ]) {
        expect(computeCost(u, p), m.id).toBeLessThanOrEqual(worst);
      }
    }
  });
});

describe('computeCost: the plain-number path agrees with exact BigInt arithmetic', () => {
  it('on random usages and prices, including sums near 2^53', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      const big = i % 10 === 0;
      const t = (n: number) => rnd(big ? 2 ** 30 : n);
      const prompt = t(200_000);
      const cached = Math.min(prompt, t(50_000));
      const completion = t(100_000);
      const usage = { promptTokens: prompt, completionTokens: completion, cachedTokens: cached, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: Math.min(completion, t(1000)) };
      const prices = { input: rnd(2 ** 31) * 7, output: rnd(2 ** 31) * 13, cachedInput: rnd(2 ** 30), cacheWrite: 0, cacheWrite1h: 0, reasoning: rnd(2 ** 31), request: rnd(1000) };
      const exact =
        (BigInt(Math.max(0, prompt - cached)) * BigInt(prices.input) +
          BigInt(cached) * BigInt(prices.cachedInput) +
          BigInt(completion - usage.reasoningTokens) * BigInt(prices.output) +
          BigInt(usage.reasoningTokens) * BigInt(prices.reasoning) +
          500_000n) /
          1_000_000n +
        BigInt(prices.request);
      if (exact > BigInt(Number.MAX_SAFE_INTEGER)) {
        expect(() => computeCost(usage, prices)).toThrow(RangeError);
      } else {
        expect(computeCost(usage, prices)).toBe(Number(exact));
      }
    }
  });
});
