import { describe, expect, it } from 'vitest';
import { formatUsd, nanoToUsd, perMillionToNano, usdToNano } from '../../src/billing/money.js';

describe('usdToNano', () => {
  it('converts exactly from the decimal text, 1 nano-USD = 0.000000001 USD', () => {
    expect(usdToNano('0.000000001')).toBe(1);
    expect(usdToNano(0.000000001)).toBe(1); // String(1e-9) is "1e-9"
    expect(usdToNano(1)).toBe(1_000_000_000);
    expect(usdToNano(150)).toBe(150_000_000_000);
    expect(usdToNano('123.456789012')).toBe(123_456_789_012);
    expect(usdToNano(' 2.5 ')).toBe(2_500_000_000);
    expect(usdToNano('+.5')).toBe(500_000_000);
    expect(usdToNano('7.')).toBe(7_000_000_000);
  });

  it('reads numbers through String(n), so 0.1 is exactly 100_000_000 (no float multiplication)', () => {
    // Float multiplication is often exact, but not always: 1.005 * 1e9 = 1004999999.9999999.
    expect(1.005 * 1e9).not.toBe(1_005_000_000);
    expect(usdToNano(1.005)).toBe(1_005_000_000);
    expect(8.2 * 1e9).not.toBe(8_200_000_000);
    expect(usdToNano(8.2)).toBe(8_200_000_000);
    expect(usdToNano(1.000000007)).toBe(1_000_000_007);
    expect(usdToNano(0.1)).toBe(100_000_000);
    expect(usdToNano(1.1)).toBe(1_100_000_000);
  });

  it('understands exponent forms, as String(n) prints small and large numbers', () => {
    expect(String(1e-7)).toBe('1e-7');
    expect(usdToNano(1e-7)).toBe(100);
    expect(usdToNano(1.5e-7)).toBe(150);
    expect(usdToNano('1.5E-7')).toBe(150);
    expect(usdToNano('1e3')).toBe(1_000_000_000_000);
    expect(usdToNano('0.0000001500')).toBe(150); // trailing zeros past the 9th place are fine
    expect(usdToNano('1500e-10')).toBe(150);
    expect(usdToNano('0e400')).toBe(0);
  });

  it('rejects more than 9 decimal places', () => {
    expect(() => usdToNano(1e-10)).toThrow(RangeError);
    expect(() => usdToNano('1e-10')).toThrow(/more than 9 decimal places/);
    expect(() => usdToNano('0.0000000001')).toThrow(/more than 9 decimal places/);
    expect(() => usdToNano('0.1234567891')).toThrow(/more than 9 decimal places/);
    expect(() => usdToNano('1e-400')).toThrow(/more than 9 decimal places/);
    // A float sum carries its error into the decimal text, and is refused rather than rounded.
    expect(String(0.1 + 0.2)).toBe('0.30000000000000004');
    expect(() => usdToNano(0.1 + 0.2)).toThrow(RangeError);
  });

  it('rejects negatives unless allowed; -0 is 0', () => {
    expect(() => usdToNano(-1)).toThrow(/negative/);
    expect(() => usdToNano('-0.5')).toThrow(/negative/);
    expect(usdToNano(-1, { allowNegative: true })).toBe(-1_000_000_000);
    expect(usdToNano('-0.000000001', { allowNegative: true })).toBe(-1);
    expect(usdToNano(-0)).toBe(0);
    expect(usdToNano('-0')).toBe(0);
  });

  it('rejects non-finite numbers and text that is not a decimal number', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => usdToNano(bad), String(bad)).toThrow(RangeError);
    }
    for (const bad of ['', '.', 'abc', '1,5', '0x10', '1e', 'e5', '1.2.3', '--1', 'Infinity', 'NaN']) {
      expect(() => usdToNano(bad), bad).toThrow(RangeError);
    }
    expect(() => usdToNano(null as unknown as number)).toThrow(RangeError);
  });

  it('rejects results beyond Number.MAX_SAFE_INTEGER nano-USD', () => {
    expect(usdToNano('9007199.254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => usdToNano('9007199.254740992')).toThrow(/out of range/);
    expect(() => usdToNano(1e21)).toThrow(/out of range/);
    expect(() => usdToNano('1e400')).toThrow(/out of range/);
  });
});

describe('nanoToUsd', () => {
  it('gives the USD number for JSON output', () => {
    expect(nanoToUsd(150)).toBe(1.5e-7);
    expect(nanoToUsd(1_160_000)).toBe(0.00116);
    expect(nanoToUsd(0)).toBe(0);
    expect(nanoToUsd(-2_500_000_000)).toBe(-2.5);
    expect(nanoToUsd(300_000_000)).toBe(0.3);
  });

  it('rejects what is not an integer amount', () => {
    expect(() => nanoToUsd(1.5)).toThrow(RangeError);
    expect(() => nanoToUsd(Number.MAX_SAFE_INTEGER + 1)).toThrow(RangeError);
    expect(() => nanoToUsd(Number.NaN)).toThrow(RangeError);
  });
});

describe('formatUsd', () => {
  it('prints the exact decimal with trailing zeros trimmed', () => {
    expect(formatUsd(150)).toBe('0.00000015'); // not "0.000000150"
    expect(formatUsd(1)).toBe('0.000000001');
    expect(formatUsd(0)).toBe('0');
    expect(formatUsd(1_000_000_000)).toBe('1');
    expect(formatUsd(1_500_000_000)).toBe('1.5');
    expect(formatUsd(123_456_789_012)).toBe('123.456789012');
    expect(formatUsd(-5)).toBe('-0.000000005');
    expect(formatUsd(Number.MAX_SAFE_INTEGER)).toBe('9007199.254740991');
  });

  it('round-trips through usdToNano', () => {
    for (const n of [0, 1, 150, 37_500_000, 1_160_000, 999_999_999, 1_000_000_001, Number.MAX_SAFE_INTEGER]) {
      expect(usdToNano(formatUsd(n))).toBe(n);
    }
  });

  it('rejects what is not an integer amount', () => {
    expect(() => formatUsd(0.5)).toThrow(RangeError);
  });
});

describe('perMillionToNano', () => {
  it('gives integer nano-USD per million tokens', () => {
    expect(perMillionToNano(0.0375)).toBe(37_500_000);
    expect(perMillionToNano(150)).toBe(150_000_000_000);
    expect(perMillionToNano(0.005)).toBe(5_000_000);
    expect(perMillionToNano('0.123456789')).toBe(123_456_789);
    expect(perMillionToNano(0)).toBe(0);
  });

  it('allows up to 9 decimals of USD per million, never negative prices', () => {
    expect(perMillionToNano(0.000000001)).toBe(1);
    expect(() => perMillionToNano(1e-10)).toThrow(RangeError);
    expect(() => perMillionToNano(-1)).toThrow(RangeError);
  });
});
