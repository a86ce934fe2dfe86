import { describe, expect, it } from 'vitest';
import {
  API_KEY_LENGTH,
  BASE62_ALPHABET,
  crc32,
  generateApiKey,
  generateKeyId,
  hashApiKey,
  isWellFormedKey,
  keyChecksum,
  last4,
  maskedKey,
  randomBase62,
} from '../../src/auth/api-key.js';

describe('API key format', () => {
  it('is mr_ + 43 base62 + 6-char checksum', () => {
    for (let i = 0; i < 200; i++) {
      const key = generateApiKey();
      expect(key).toMatch(/^mr_[0-9A-Za-z]{49}$/);
      expect(key).toHaveLength(API_KEY_LENGTH);
      expect(key).toHaveLength(52);
      expect(key.slice(-6)).toBe(keyChecksum(key.slice(3, 46)));
      expect(isWellFormedKey(key)).toBe(true);
    }
  });

  it('keys are unique', () => {
    const keys = new Set(Array.from({ length: 1000 }, generateApiKey));
    expect(keys.size).toBe(1000);
  });

  it('uses the IEEE CRC32', () => {
    expect(crc32('123456789')).toBe(0xcbf43926);
    expect(crc32('')).toBe(0);
  });

  it('encodes the checksum in base62, left-padded with 0', () => {
    const body = 'a';
    let n = crc32(body);
    let expected = '';
    while (n > 0) {
      expected = BASE62_ALPHABET[n % 62] + expected;
      n = Math.floor(n / 62);
    }
    expect(keyChecksum(body)).toBe(expected.padStart(6, '0'));
    expect(keyChecksum('')).toBe('000000');
  });

  it('rejects every single-character typo of a sample key', () => {
    const key = generateApiKey();
    let checked = 0;
    for (let pos = 0; pos < key.length; pos++) {
      for (const c of BASE62_ALPHABET + '_-') {
        if (c === key[pos]) continue;
        const typo = key.slice(0, pos) + c + key.slice(pos + 1);
        expect(isWellFormedKey(typo), `typo at ${pos}: ${c}`).toBe(false);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(52 * 60);
  });

  it('rejects wrong length, prefix, charset and non-strings', () => {
    const key = generateApiKey();
    expect(isWellFormedKey(key.slice(0, -1))).toBe(false);
    expect(isWellFormedKey(key + 'a')).toBe(false);
    expect(isWellFormedKey('sk_' + key.slice(3))).toBe(false);
    expect(isWellFormedKey('MR_' + key.slice(3))).toBe(false);
    expect(isWellFormedKey(key.slice(0, 10) + '+' + key.slice(11))).toBe(false);
    expect(isWellFormedKey(' ' + key.slice(1))).toBe(false);
    expect(isWellFormedKey('')).toBe(false);
    expect(isWellFormedKey(undefined)).toBe(false);
    expect(isWellFormedKey(42)).toBe(false);
  });

  it('rejects transposed characters (almost always)', () => {
    const key = generateApiKey();
    let accepted = 0;
    for (let pos = 3; pos < key.length - 1; pos++) {
      if (key[pos] === key[pos + 1]) continue;
      const swapped = key.slice(0, pos) + key[pos + 1] + key[pos] + key.slice(pos + 2);
      if (isWellFormedKey(swapped)) accepted++;
    }
    expect(accepted).toBe(0);
  });

  it('draws base62 characters uniformly', () => {
    const perChar = 32_000;
    const sample = randomBase62(62 * perChar);
    expect(sample).toHaveLength(62 * perChar);
    const counts = new Map<string, number>();
    for (const c of sample) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    let chi2 = 0;
    for (const c of BASE62_ALPHABET) chi2 += ((counts.get(c)! - perChar) ** 2) / perChar;
    // 61 degrees of freedom: p < 1e-6 above ~125.
    expect(chi2).toBeLessThan(125);
    // A modulo bias (bytes 248–255 folded onto the first 8 characters) favours '0'–'7' by a few
    // per cent or more. σ of a count ≈ 179, of the mean of 8 ≈ 63, of the difference of two such
    // means ≈ 89: a bound of 1.5 % (480) is 5.4 σ (a false alarm about once in 10^7 runs) and
    // still half of a 3 % bias.
    const low = [...'01234567'].reduce((s, c) => s + counts.get(c)!, 0) / 8;
    const high = [...'abcdefgh'].reduce((s, c) => s + counts.get(c)!, 0) / 8;
    expect(Math.abs(low - high)).toBeLessThan(0.015 * perChar);
  });

  it('key ids are key_ + 16 base62', () => {
    expect(generateKeyId()).toMatch(/^key_[0-9A-Za-z]{16}$/);
    expect(generateKeyId()).not.toBe(generateKeyId());
  });

  it('last4 and masked form', () => {
    const key = generateApiKey();
    expect(last4(key)).toBe(key.slice(-4));
    expect(maskedKey(last4(key))).toBe(`mr_…${key.slice(-4)}`);
  });
});

describe('hashApiKey', () => {
  const secretA = 'a'.repeat(32);
  const secretB = 'b'.repeat(32);
  it('is a deterministic HMAC-SHA256 hex', () => {
    const key = generateApiKey();
    const h = hashApiKey(key, secretA);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key, secretA)).toBe(h);
  });
  it('depends on the secret and the key', () => {
    const key = generateApiKey();
    expect(hashApiKey(key, secretA)).not.toBe(hashApiKey(key, secretB));
    expect(hashApiKey(key, secretA)).not.toBe(hashApiKey(generateApiKey(), secretA));
  });
  it('matches a known HMAC-SHA256 vector (RFC 4231 test case 2)', () => {
    expect(hashApiKey('what do ya want for nothing?', 'Jefe')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});
