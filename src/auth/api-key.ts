/**
 * API key format and hashing.
 *
 * A key is `mr_` + 43 random base62 characters (≈ 256 bits) + a 6-character checksum: the CRC32
 * of the 43-character body, written in base62 and left-padded with `0`. The checksum lets the
 * gateway reject typos and garbage without touching the database, and lets secret scanners
 * recognise a real key. CRC32 detects every burst error of up to 32 bits, so every
 * single-character substitution in the body is caught; a change inside the checksum itself
 * never matches because the encoding is one-to-one.
 *
 * Only an HMAC-SHA256 of the key (keyed with the server secret) is stored.
 */
import { createHmac, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';

export const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const API_KEY_PREFIX = 'mr_';
export const API_KEY_BODY_LENGTH = 43;
export const API_KEY_CHECKSUM_LENGTH = 6;
/** 3 + 43 + 6 = 52 characters. */
export const API_KEY_LENGTH = API_KEY_PREFIX.length + API_KEY_BODY_LENGTH + API_KEY_CHECKSUM_LENGTH;

const KEY_SHAPE = /^mr_[0-9A-Za-z]{49}$/;
/** Largest multiple of 62 that fits a byte: bytes at or above it are rejected (no modulo bias). */
const BYTE_LIMIT = 248;

/** `count` characters drawn uniformly from the base62 alphabet (rejection sampling). */
export function randomBase62(count: number): string {
  let out = '';
  while (out.length < count) {
    // 248/256 of bytes are accepted; ask for ~15 % more than needed to usually finish in one pass.
    const bytes = randomBytes(Math.ceil((count - out.length) * 1.15) + 4);
    for (let i = 0; i < bytes.length && out.length < count; i++) {
      const b = bytes[i]!;
      if (b < BYTE_LIMIT) out += BASE62_ALPHABET[b % 62];
    }
  }
  return out;
}

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function tableCrc32(data: string): number {
  const bytes = Buffer.from(data, 'utf8');
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC32 (IEEE): `zlib.crc32` exists since Node 20.15; the table version is a fallback. */
export const crc32: (data: string) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (data) => zlib.crc32(data) >>> 0 : tableCrc32;

/** The 6-character base62 checksum of a key body. */
export function keyChecksum(body: string): string {
  let n = crc32(body);
  const chars = ['0', '0', '0', '0', '0', '0'];
  for (let i = API_KEY_CHECKSUM_LENGTH - 1; i >= 0 && n > 0; i--) {
    chars[i] = BASE62_ALPHABET[n % 62]!;
    n = Math.floor(n / 62);
  }
  return chars.join('');
}

/** A new random API key, e.g. `mr_4k…Xz0aB1c2`. Shown to the user once; never stored. */
export function generateApiKey(): string {
  const body = randomBase62(API_KEY_BODY_LENGTH);
  return API_KEY_PREFIX + body + keyChecksum(body);
}

/**
 * Whether `s` has the shape of a MaxRouter key: prefix, length, alphabet and checksum.
 * Pure and cheap (one regex, one CRC32 of 43 bytes); no database.
 */
export function isWellFormedKey(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== API_KEY_LENGTH || !KEY_SHAPE.test(s)) return false;
  const bodyEnd = API_KEY_PREFIX.length + API_KEY_BODY_LENGTH;
  return keyChecksum(s.slice(API_KEY_PREFIX.length, bodyEnd)) === s.slice(bodyEnd);
}

/** HMAC-SHA256 of the key with the server secret, as lower-case hex: what the database stores. */
export function hashApiKey(key: string, secret: string): string {
  return createHmac('sha256', secret).update(key).digest('hex');
}

/** The last four characters, kept so users can tell their keys apart (`mr_…abcd`). */
export function last4(key: string): string {
  return key.slice(-4);
}

/** How a key is shown in listings: never more than the prefix and the last four characters. */
export function maskedKey(last: string): string {
  return `${API_KEY_PREFIX}…${last}`;
}

/** A new key id, `key_` + 16 base62 characters. Ids are not secret. */
export function generateKeyId(): string {
  return 'key_' + randomBase62(16);
}
