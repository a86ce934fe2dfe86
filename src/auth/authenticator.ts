/**
 * Request authentication: `Authorization: Bearer <key>` (or a bare key, as Anthropic's
 * `x-api-key` carries it) → the key's id and account.
 *
 * The hot path is one SHA-256 and one Map lookup: key records are cached in memory under an
 * unkeyed SHA-256 digest of the key (positive entries for `ttlMs`, unknown keys for
 * `negativeTtlMs`); the keyed HMAC that the database stores is computed only on a cache miss
 * (a one-shot SHA-256 costs a sixth of an HMAC object). The cache never holds a raw key, and the
 * digest never leaves the process. Malformed keys (length, alphabet, checksum) are rejected
 * before the HMAC and any database work. Every rejection is the same 401 with the same
 * message, so a caller cannot tell a typo from a revoked key.
 */
import { hash as oneShotHash } from 'node:crypto';
import type { BillingMode, LimitReset, SpendSubject } from '../billing/accounting.js';
import { GatewayError } from '../ir/errors.js';
import type { KeyLookup, KeyRateLimits } from '../storage/keys-repo.js';
import type { AccountRoutingDefaults } from '../routing/request-controls.js';
import { hashApiKey, isWellFormedKey } from './api-key.js';

/** The identity a request runs as, with the key's policy (cached with it). */
export interface AuthedKey extends SpendSubject {
  readonly keyId: string;
  readonly accountId: string;
  /** Inference keys call models; management keys only manage the account's keys. */
  readonly kind: 'inference' | 'management';
  readonly name: string | null;
  /** Epoch ms after which the key is refused, or null. */
  readonly expiresAt: number | null;
  /** Model ids this key may call, or null for all. */
  readonly allowedModels: ReadonlySet<string> | null;
  /** The account's billing mode, or the deployment's default. */
  readonly billingMode: BillingMode;
  readonly spendLimitNano: number | null;
  readonly limitReset: LimitReset | null;
  /** The key's own rate limits; null: the configured default applies. */
  readonly rateLimits: Readonly<KeyRateLimits>;
  /** The account's routing data policy, which its requests cannot relax; undefined: none. */
  readonly routingDefaults: AccountRoutingDefaults | undefined;
}

/** Where key records come from on a cache miss (`KeysRepo` satisfies it). */
export interface KeyLookupSource {
  findKeyByHash(hash: string): Promise<KeyLookup | undefined>;
}

export interface KeyAuthenticatorOptions {
  /**
   * How long a key record (valid or rejected) may be used, ms (default 2 000): the longest a
   * revoke, disable or limit change made by another process (the CLI, another instance) takes
   * to apply here.
   */
  ttlMs?: number;
  /**
   * After this long (default half of `ttlMs`) a request that uses the record also reloads it in
   * the background, so active keys are refreshed without any request waiting for the database.
   */
  refreshMs?: number;
  /** How long an unknown key hash stays cached, ms. */
  negativeTtlMs?: number;
  /** Bound of each cache (known keys, unknown hashes): the oldest entry goes first. */
  maxEntries?: number;
  /** Billing mode of accounts that have none of their own (default `track`). */
  defaultBillingMode?: BillingMode;
  now?: () => number;
}

export const UNAUTHORIZED_MESSAGE = 'Invalid API key.';

/** The one rejection: a new instance each time, so handlers may decorate it freely. */
export function unauthorizedError(): GatewayError {
  return new GatewayError('MR_ERR_UNAUTHORIZED', UNAUTHORIZED_MESSAGE);
}

interface Entry {
  /** null: the key exists but is revoked or its account is disabled. */
  readonly authed: AuthedKey | null;
  readonly keyId: string;
  readonly expiresAt: number;
  /** When a use of this entry starts a background reload. */
  readonly refreshAt: number;
}

const BEARER = /^bearer\s+/i;

/** The in-memory cache key of a raw key: SHA-256, base64. Keys carry ≥ 238 bits of entropy. */
function cacheDigest(key: string): string {
  return oneShotHash('sha256', key, 'base64');
}

/** The key from `Authorization: Bearer <key>` or a bare key. */
function extractKey(header: string): string {
  // Fast path for the canonical form; anything else goes through the tolerant regex.
  if (header.startsWith('Bearer ') && header.charCodeAt(7) !== 32) {
    const key = header.slice(7);
    const last = key.charCodeAt(key.length - 1);
    if (last !== 32 && last !== 9) return key;
  }
  return BEARER.test(header) ? header.replace(BEARER, '').trim() : header.trim();
}

/**
 * How long a server keeps a key record (and an unknown key's refusal) before reading it again:
 * the longest a change made through another process (revoke, disable, limits) can go unseen.
 */
export const KEY_CACHE_TTL_MS = 2_000;

export class KeyAuthenticator {
  readonly #source: KeyLookupSource;
  readonly #secret: string;
  readonly #ttlMs: number;
  readonly #refreshMs: number;
  readonly #negativeTtlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #defaultMode: BillingMode;
  /** Key digest → record, for keys that exist in the database. Map order ≈ recency. */
  readonly #known = new Map<string, Entry>();
  /** Key id → digest, to invalidate by id. */
  readonly #hashById = new Map<string, string>();
  /**
   * Unknown digest → expiry. Separate from `#known` so a flood of random well-formed keys can
   * only evict other unknown digests, never a real key's entry.
   */
  readonly #unknown = new Map<string, number>();
  /** Concurrent misses for one key share one query. */
  readonly #inflight = new Map<string, Promise<Entry | undefined>>();
  /** Bumped by invalidate()/clear(), so a lookup that started before does not cache stale data. */
  #epoch = 0;

  constructor(source: KeyLookupSource, secret: string, opts: KeyAuthenticatorOptions = {}) {
    this.#source = source;
    this.#secret = secret;
    this.#ttlMs = opts.ttlMs ?? KEY_CACHE_TTL_MS;
    this.#refreshMs = Math.min(this.#ttlMs, opts.refreshMs ?? this.#ttlMs / 2);
    this.#negativeTtlMs = opts.negativeTtlMs ?? KEY_CACHE_TTL_MS;
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.#now = opts.now ?? Date.now;
    this.#defaultMode = opts.defaultBillingMode ?? 'track';
  }

  /**
   * Resolves to the key's identity, or rejects with `GatewayError('MR_ERR_UNAUTHORIZED')`.
   * A database failure rejects with `MR_ERR_INTERNAL` (the cause attached) and is not cached.
   */
  authenticate(authorizationHeaderOrKey: string | undefined): Promise<AuthedKey> {
    if (authorizationHeaderOrKey === undefined) return Promise.reject(unauthorizedError());
    const key = extractKey(authorizationHeaderOrKey);
    // Bounded before hashing: a well-formed key is 52 characters.
    if (key.length === 0 || key.length > 256) return Promise.reject(unauthorizedError());

    const hash = cacheDigest(key);
    const now = this.#now();
    const hit = this.#known.get(hash);
    if (hit !== undefined) {
      if (hit.expiresAt > now) {
        // Refresh recency (Map keeps insertion order; the first entry is evicted first).
        this.#known.delete(hash);
        this.#known.set(hash, hit);
        if (hit.refreshAt <= now && !this.#inflight.has(hash)) this.#miss(hash, key).catch(() => {});
        return hit.authed && !expired(hit.authed, now) ? Promise.resolve(hit.authed) : Promise.reject(unauthorizedError());
      }
      this.#deleteKnown(hash, hit);
    }
    const unknownUntil = this.#unknown.get(hash);
    if (unknownUntil !== undefined) {
      if (unknownUntil > now) return Promise.reject(unauthorizedError());
      this.#unknown.delete(hash);
    }
    // Only well-formed keys reach the HMAC, the database and the caches.
    if (!isWellFormedKey(key)) return Promise.reject(unauthorizedError());
    return this.#miss(hash, key);
  }

  /** Drops any cached record of this key (call on revoke, and on a revoke broadcast). */
  invalidate(keyId: string): void {
    this.#epoch++;
    this.#inflight.clear();
    const hash = this.#hashById.get(keyId);
    if (hash === undefined) return;
    const entry = this.#known.get(hash);
    if (entry !== undefined) this.#deleteKnown(hash, entry);
    else this.#hashById.delete(keyId);
  }

  /** Drops every cached entry (e.g. after accounts were disabled in bulk). */
  clear(): void {
    this.#epoch++;
    this.#inflight.clear();
    this.#known.clear();
    this.#hashById.clear();
    this.#unknown.clear();
  }

  /** Cached entries, for metrics and tests. */
  get size(): { known: number; unknown: number } {
    return { known: this.#known.size, unknown: this.#unknown.size };
  }

  async #miss(hash: string, key: string): Promise<AuthedKey> {
    let pending = this.#inflight.get(hash);
    if (pending === undefined) {
      pending = this.#load(hash, key);
      this.#inflight.set(hash, pending);
      // Clean up whether the lookup succeeds or fails; the caller sees the failure below.
      const p = pending;
      const done = (): void => {
        if (this.#inflight.get(hash) === p) this.#inflight.delete(hash);
      };
      p.then(done, done);
    }
    const entry = await pending;
    if (entry?.authed && !expired(entry.authed, this.#now())) return entry.authed;
    throw unauthorizedError();
  }

  async #load(hash: string, key: string): Promise<Entry | undefined> {
    const epoch = this.#epoch;
    let found: KeyLookup | undefined;
    try {
      found = await this.#source.findKeyByHash(hashApiKey(key, this.#secret));
    } catch (err) {
      const e = new GatewayError('MR_ERR_INTERNAL', 'Authentication is temporarily unavailable.');
      e.cause = err;
      throw e;
    }
    // An invalidate() or clear() while the query ran: answer this request, cache nothing.
    if (epoch !== this.#epoch) return found && toEntry(found, 0, 0, this.#defaultMode);
    const now = this.#now();
    if (found === undefined) {
      // Deleted since it was cached (a background reload): forget the record at once.
      const stale = this.#known.get(hash);
      if (stale !== undefined) this.#deleteKnown(hash, stale);
      if (this.#unknown.size >= this.#maxEntries) evictOldest(this.#unknown);
      this.#unknown.set(hash, now + this.#negativeTtlMs);
      return undefined;
    }
    const entry = toEntry(found, now + this.#ttlMs, now + this.#refreshMs, this.#defaultMode);
    const old = this.#known.get(hash);
    if (old !== undefined) this.#deleteKnown(hash, old);
    while (this.#known.size >= this.#maxEntries) {
      const first = this.#known.entries().next().value;
      if (first === undefined) break;
      this.#deleteKnown(first[0], first[1]);
    }
    this.#known.set(hash, entry);
    this.#hashById.set(entry.keyId, hash);
    return entry;
  }

  #deleteKnown(hash: string, entry: Entry): void {
    this.#known.delete(hash);
    if (this.#hashById.get(entry.keyId) === hash) this.#hashById.delete(entry.keyId);
  }
}

function toEntry(found: KeyLookup, expiresAt: number, refreshAt: number, defaultMode: BillingMode): Entry {
  const refused = found.revoked || found.accountDisabled || found.disabled;
  const authed: AuthedKey | null = refused
    ? null
    : Object.freeze({
        keyId: found.keyId,
        accountId: found.accountId,
        kind: found.kind,
        name: found.name,
        expiresAt: found.expiresAt,
        allowedModels: found.allowedModels ? new Set(found.allowedModels) : null,
        billingMode: found.accountBillingMode ?? defaultMode,
        spendLimitNano: found.spendLimitNano,
        limitReset: found.limitReset,
        rateLimits: Object.freeze({ ...found.rateLimits }),
        routingDefaults:
          found.accountRequireZdr || found.accountDenyDataCollection
            ? Object.freeze({
                ...(found.accountRequireZdr ? { zdr: true } : {}),
                ...(found.accountDenyDataCollection ? { dataCollection: 'deny' as const } : {}),
              })
            : undefined,
      });
  return { authed, keyId: found.keyId, expiresAt, refreshAt };
}

function expired(key: AuthedKey, now: number): boolean {
  return key.expiresAt !== null && now >= key.expiresAt;
}

function evictOldest(map: Map<string, unknown>): void {
  const first = map.keys().next();
  if (!first.done) map.delete(first.value);
}
