/**
 * Money as integers. An amount is a whole number of nano-USD (1 nano-USD = 0.000000001 USD)
 * held in a JS `number` that is a safe integer (|n| ≤ 2^53 − 1, about 9 million USD), so sums
 * of amounts are exact. Decimal USD values (config prices, JSON output) are converted from and
 * to their decimal text, never by multiplying or dividing floats by 1e9 and rounding.
 *
 * Prices per million tokens use the same scale: a price of P USD per million tokens is
 * `usdToNano(P)` nano-USD per million tokens (0.0375 $/M → 37_500_000), which keeps nine
 * decimals of a per-million price exact. See docs/billing.md.
 */

/** Nano-USD in one USD. */
export const NANO_PER_USD = 1_000_000_000;

/** Decimal places of a USD amount that nano-USD can hold. */
export const USD_DECIMALS = 9;

const NANO_PER_USD_BIG = 1_000_000_000n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A plain decimal or exponent form, as `String(n)` prints numbers and config files write them:
 * optional sign, digits with an optional fraction (at least one digit), optional exponent.
 */
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

export interface UsdToNanoOptions {
  /** Accept negative amounts (credits, refunds, adjustments). Default: false. */
  allowNegative?: boolean;
}

/**
 * USD → integer nano-USD, exactly, from the decimal representation of `usd` (a number is read
 * as `String(usd)`, the shortest decimal that round-trips, so `0.1` is exactly 100_000_000 and
 * `1e-7` is 100). Throws a `RangeError` for: text that is not a decimal number, a non-finite
 * number, a value with a non-zero digit past the 9th decimal place (finer than 1 nano-USD; e.g.
 * `1e-10`), a negative value unless `allowNegative`, and a result beyond
 * `Number.MAX_SAFE_INTEGER` nano-USD.
 */
export function usdToNano(usd: number | string, options: UsdToNanoOptions = {}): number {
  let text: string;
  if (typeof usd === 'number') {
    if (!Number.isFinite(usd)) throw new RangeError(`not a finite amount: ${String(usd)}`);
    text = String(usd);
  } else if (typeof usd === 'string') {
    text = usd.trim();
  } else {
    throw new RangeError('an amount must be a number or a decimal string');
  }
  const m = DECIMAL.exec(text);
  const intDigits = m?.[2] ?? '';
  const fracDigits = m?.[3] ?? '';
  if (!m || intDigits.length + fracDigits.length === 0) throw new RangeError(`not a decimal amount: '${text}'`);

  const negative = m[1] === '-';
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  // value = digits × 10^(exponent − fracDigits.length); nano = value × 10^9.
  let digits = (intDigits + fracDigits).replace(/^0+/, '');
  let shift = exponent - fracDigits.length + USD_DECIMALS;
  if (digits === '') return 0; // any form of zero, "-0" included
  // Trailing zeros carry no precision: move them into the shift.
  const trimmed = digits.replace(/0+$/, '');
  shift += digits.length - trimmed.length;
  digits = trimmed;
  if (shift < 0) {
    throw new RangeError(`${text} has more than ${USD_DECIMALS} decimal places (the smallest unit is 0.000000001 USD)`);
  }
  // More than 16 significant digits after the shift cannot be a safe integer.
  if (digits.length + shift > 16) throw new RangeError(`${text} USD is out of range`);
  const nano = BigInt(digits) * 10n ** BigInt(shift);
  if (nano > MAX_SAFE_BIG) throw new RangeError(`${text} USD is out of range`);
  if (negative && !options.allowNegative) throw new RangeError(`a negative amount is not allowed here: ${text}`);
  return negative ? -Number(nano) : Number(nano);
}

/**
 * Nano-USD → USD as a JS number, for JSON output (e.g. a response's `usage.cost`). The result
 * is the double nearest to the exact decimal value (one correctly rounded division); never add
 * these numbers up — add nano-USD and convert once.
 */
export function nanoToUsd(nano: number): number {
  assertNano(nano);
  return nano / NANO_PER_USD;
}

/**
 * Nano-USD → exact decimal USD text, trailing zeros and a bare point trimmed:
 * 150 → "0.00000015", 1_500_000_000 → "1.5", 2_000_000_000 → "2", -5 → "-0.000000005".
 */
export function formatUsd(nano: number): string {
  assertNano(nano);
  const negative = nano < 0;
  const abs = BigInt(negative ? -nano : nano);
  const whole = (abs / NANO_PER_USD_BIG).toString();
  const frac = (abs % NANO_PER_USD_BIG).toString().padStart(USD_DECIMALS, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/**
 * A price in USD per million tokens → integer nano-USD per million tokens, exactly
 * (0.0375 → 37_500_000; 150 → 150_000_000_000). Up to 9 decimal places of USD per million are
 * accepted; prices are never negative. Throws a `RangeError` otherwise (see `usdToNano`).
 */
export function perMillionToNano(usdPerMillion: number | string): number {
  return usdToNano(usdPerMillion);
}

/** Throws a `RangeError` unless `nano` is a safe integer (a valid nano-USD amount). */
export function assertNano(nano: number): void {
  if (!Number.isSafeInteger(nano)) throw new RangeError(`not an integer amount of nano-USD: ${String(nano)}`);
}
