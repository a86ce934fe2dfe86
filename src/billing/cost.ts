/**
 * The cost of one request in nano-USD, from its normalised usage and the endpoint's prices.
 * Pure and exact: integer prices, BigInt arithmetic, one rounding step. See docs/billing.md
 * ("Cost of a request").
 */
import type { IRUsage } from '../ir/usage.js';
import { assertNano, perMillionToNano, usdToNano } from './money.js';

/**
 * An endpoint's prices as integers. Every token price is nano-USD per MILLION tokens (the
 * config's USD-per-million price × 1e9, exactly); `request` is nano-USD per request.
 */
export interface PriceTable {
  /** Uncached prompt tokens. */
  input: number;
  /** Completion tokens other than reasoning. */
  output: number;
  /** Prompt tokens read from the provider's cache. */
  cachedInput: number;
  /** Prompt tokens written to the cache (Anthropic: 5-minute cache writes). */
  cacheWrite: number;
  /** Prompt tokens written to Anthropic's 1-hour cache. */
  cacheWrite1h: number;
  /** Reasoning (thinking) tokens. */
  reasoning: number;
  /** A flat fee per request. */
  request: number;
}

/**
 * Prices as a config file writes them: USD per million tokens, `request` in USD per request.
 * Both the schema's input and output types fit (`output` may be absent in the former).
 */
export interface PricingLike {
  input: number;
  output?: number | undefined;
  cachedInput?: number | undefined;
  cacheWrite?: number | undefined;
  cacheWrite1h?: number | undefined;
  reasoning?: number | undefined;
  request?: number | undefined;
}

/** Every price 0: the table of an endpoint without pricing. */
export const FREE: Readonly<PriceTable> = Object.freeze({
  input: 0,
  output: 0,
  cachedInput: 0,
  cacheWrite: 0,
  cacheWrite1h: 0,
  reasoning: 0,
  request: 0,
});

/**
 * Config pricing → price table. Absent prices default to the price they refine:
 * `cachedInput` → `input`, `cacheWrite` → `input`, `cacheWrite1h` → `cacheWrite`,
 * `reasoning` → `output`, `output` → 0, `request` → 0. No pricing at all costs nothing.
 * Throws a `RangeError` for a price with more than 9 decimal places (the schema rejects those).
 */
export function priceTable(pricing: PricingLike | undefined): PriceTable {
  if (!pricing) return { ...FREE };
  const input = perMillionToNano(pricing.input);
  const output = perMillionToNano(pricing.output ?? 0);
  const cacheWrite = pricing.cacheWrite === undefined ? input : perMillionToNano(pricing.cacheWrite);
  return {
    input,
    output,
    cachedInput: pricing.cachedInput === undefined ? input : perMillionToNano(pricing.cachedInput),
    cacheWrite,
    cacheWrite1h: pricing.cacheWrite1h === undefined ? cacheWrite : perMillionToNano(pricing.cacheWrite1h),
    reasoning: pricing.reasoning === undefined ? output : perMillionToNano(pricing.reasoning),
    request: pricing.request === undefined ? 0 : usdToNano(pricing.request),
  };
}

/**
 * The same computation in plain numbers, for the common case where every product and the sum
 * stay below 2^53 and are therefore exact; undefined when they might not (then BigInt decides).
 * It runs on every request, so it avoids allocating BigInts.
 */
function computeCostExactNumber(u: IRUsage, p: PriceTable): number | undefined {
  const prompt = u.promptTokens;
  const completion = u.completionTokens;
  const cached = u.cachedTokens;
  const cacheWrite = u.cacheWriteTokens;
  const cacheWrite1h = u.cacheWrite1hTokens;
  const reasoning = u.reasoningTokens;
  if (
    !(whole(prompt) && whole(completion) && whole(cached) && whole(cacheWrite) && whole(cacheWrite1h) && whole(reasoning)) ||
    !(whole(p.input) && whole(p.output) && whole(p.cachedInput) && whole(p.cacheWrite) && whole(p.cacheWrite1h) && whole(p.reasoning)) ||
    !whole(p.request)
  ) {
    return undefined;
  }
  const uncachedInput = Math.max(0, prompt - cached - cacheWrite);
  const cacheWrite5m = Math.max(0, cacheWrite - cacheWrite1h);
  const output = Math.max(0, completion - reasoning);
  // A product of two integers is exact when the true product is below 2^53, and rounding is
  // monotonic, so a float sum below 2^53 means every product and partial sum was exact.
  const scaled =
    uncachedInput * p.input + cached * p.cachedInput + cacheWrite5m * p.cacheWrite + cacheWrite1h * p.cacheWrite1h + output * p.output + reasoning * p.reasoning;
  if (scaled > Number.MAX_SAFE_INTEGER - 500_000) return undefined;
  // Exact integer division with half-up rounding: floor, then correct the float quotient.
  const n = scaled + 500_000;
  let q = Math.floor(n / 1_000_000);
  const r = n - q * 1_000_000;
  if (r < 0) q -= 1;
  else if (r >= 1_000_000) q += 1;
  const total = q + p.request;
  return Number.isSafeInteger(total) ? total : undefined;
}

function whole(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

const PER_MILLION = 1_000_000n;
const HALF_MILLION = 500_000n;

function count(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${String(n)}`);
  return BigInt(n);
}

function price(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`price ${what} must be a non-negative integer, got ${String(n)}`);
  return BigInt(n);
}

const clamp0 = (n: bigint): bigint => (n > 0n ? n : 0n);
const max = (...xs: bigint[]): bigint => xs.reduce((a, b) => (b > a ? b : a));

function toNano(total: bigint): number {
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('cost exceeds the largest exact amount');
  const nano = Number(total);
  assertNano(nano);
  return nano;
}

/**
 * The cost of one request in nano-USD. `usage` follows the IR's OpenAI semantics (prompt tokens
 * include cache reads and writes; completion tokens include reasoning), so it is split into
 * disjoint parts first:
 *
 *   uncachedInput = promptTokens − cachedTokens − cacheWriteTokens   (clamped at 0)
 *   cacheWrite5m  = cacheWriteTokens − cacheWrite1hTokens            (clamped at 0)
 *   output        = completionTokens − reasoningTokens               (clamped at 0)
 *
 *   cost = round_half_up( Σ tokensᵢ × priceᵢ / 1e6 ) + request
 *
 * over the parts above plus cachedTokens (cache-read price), cacheWrite1hTokens (1-hour write
 * price) and reasoningTokens (reasoning price).
 *
 * Rounding rule: each product tokens × price (nano-USD per million tokens) is exact, the
 * products are summed exactly, and the sum is divided by 1e6 ONCE, rounding half up (0.5
 * nano-USD → 1). The request fee, already whole, is added after. So a request's cost is within
 * half a nano-USD of the exact price, and no part of it is rounded away on its own.
 *
 * Counts are trusted as reported: when an upstream reports a subset larger than its total (say
 * more cached than prompt tokens), the difference is 0 and the subset is still priced in full.
 * Throws a `RangeError` for a count or price that is not a non-negative safe integer, or a cost
 * beyond `Number.MAX_SAFE_INTEGER`.
 */
export function computeCost(usage: IRUsage, prices: PriceTable): number {
  const fast = computeCostExactNumber(usage, prices);
  if (fast !== undefined) return fast;
  const prompt = count(usage.promptTokens, 'promptTokens');
  const completion = count(usage.completionTokens, 'completionTokens');
  const cached = count(usage.cachedTokens, 'cachedTokens');
  const cacheWrite = count(usage.cacheWriteTokens, 'cacheWriteTokens');
  const cacheWrite1h = count(usage.cacheWrite1hTokens, 'cacheWrite1hTokens');
  const reasoning = count(usage.reasoningTokens, 'reasoningTokens');

  const uncachedInput = clamp0(prompt - cached - cacheWrite);
  const cacheWrite5m = clamp0(cacheWrite - cacheWrite1h);
  const output = clamp0(completion - reasoning);

  // nano-USD × tokens / 1e6 units: exact.
  const scaled =
    uncachedInput * price(prices.input, 'input') +
    cached * price(prices.cachedInput, 'cachedInput') +
    cacheWrite5m * price(prices.cacheWrite, 'cacheWrite') +
    cacheWrite1h * price(prices.cacheWrite1h, 'cacheWrite1h') +
    output * price(prices.output, 'output') +
    reasoning * price(prices.reasoning, 'reasoning');

  return toNano((scaled + HALF_MILLION) / PER_MILLION + price(prices.request, 'request'));
}

/**
 * An upper bound of a request's cost in nano-USD before it runs (for holds and credit checks):
 * every prompt token at the dearest prompt price (max of input, cacheWrite, cacheWrite1h — and
 * cachedInput, which only matters for a config that prices cache reads above input),
 * every output token at the dearest output price (max of output, reasoning), plus the request
 * fee. Rounding rule: the division by 1e6 rounds UP, so the bound is never below the cost that
 * `computeCost` can return for a usage within these limits.
 */
export function worstCaseCost(promptTokensUpperBound: number, maxOutputTokens: number, prices: PriceTable): number {
  const prompt = count(promptTokensUpperBound, 'promptTokensUpperBound');
  const out = count(maxOutputTokens, 'maxOutputTokens');
  const promptPrice = max(
    price(prices.input, 'input'),
    price(prices.cacheWrite, 'cacheWrite'),
    price(prices.cacheWrite1h, 'cacheWrite1h'),
    price(prices.cachedInput, 'cachedInput'),
  );
  const outputPrice = max(price(prices.output, 'output'), price(prices.reasoning, 'reasoning'));
  const scaled = prompt * promptPrice + out * outputPrice;
  return toNano((scaled + PER_MILLION - 1n) / PER_MILLION + price(prices.request, 'request'));
}
