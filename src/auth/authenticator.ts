/**
 * Request authentication: `Authorization: Bearer <key>` (or a bare key, as Anthropic's
 * `x-api-key` carries it) → the key's id and account.
 *
 * The hot path is one HMAC and one Map lookup: key records are cached by key hash (positive
 * entries for `ttlMs`, unknown hashes for `negativeTtlMs`). Malformed keys (length, alphabet,
 * checksum) are rejected before any hashing or database work. Every rejection is the same
 * 401 with the same message, so a caller cannot tell a typo from a revoked key.
 */
import { GatewayError } from '../ir/errors.js';
import type { KeyLookup } from '../storage/keys-repo.js';
import { hashApiKey, isWellFormedKey } from './api-key.js';

/** The identity a request runs as. */
export interface AuthedKey {
  readonly keyId: string;
  readonly accountId: string;
}

/** Where key records come from on a cache miss (`KeysRepo` satisfies it). */
export interface KeyLookupSource {
  findKeyByHash(hash: string): Promise<KeyLookup | undefined>;
}

export interface KeyAuthenticatorOptions {
  /** How long a key record (valid or rejected) stays cached, ms. Also how long a revoke made by another process takes to apply. */
  ttlMs?: number;
  /** How long an unknown key hash stays cached, ms. */
  negativeTtlMs?: number;
  /** Bound of each cache (known keys, unknown hashes): the oldest entry goes first. */
  maxEntries?: number;
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
}

const BEARER = /^bearer\s+/i;

export class KeyAuthenticator {
  readonly #source: KeyLookupSource;
  readonly #secret: string;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Key hash → record, for hashes that exist in the database. Map order ≈ recency. */
  readonly #known = new Map<string, Entry>();
  /** Key id → hash, to invalidate by id. */
  readonly #hashById = new Map<string, string>();
  /**
   * Unknown hash → expiry. Separate from `#known` so a flood of random well-formed keys can
   * only evict other unknown hashes, never a real key's entry.
   */
  readonly #unknown = new Map<string, number>();
  /** Concurrent misses for one hash share one query. */
  readonly #inflight = new Map<string, Promise<Entry | undefined>>();
  /** Bumped by invalidate()/clear(), so a lookup that started before does not cache stale data. */
  #epoch = 0;

  constructor(source: KeyLookupSource, secret: string, opts: KeyAuthenticatorOptions = {}) {
    this.#source = source;
    this.#secret = secret;
    this.#ttlMs = opts.ttlMs ?? 30_000;
    this.#negativeTtlMs = opts.negativeTtlMs ?? 2_000;
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Resolves to the key's identity, or rejects with `GatewayError('MR_ERR_UNAUTHORIZED')`.
   * A database failure rejects with `MR_ERR_INTERNAL` (the cause attached) and is not cached.
   */
  authenticate(authorizationHeaderOrKey: string | undefined): Promise<AuthedKey> {
    if (authorizationHeaderOrKey === undefined) return Promise.reject(unauthorizedError());
    const key = BEARER.test(authorizationHeaderOrKey)
      ? authorizationHeaderOrKey.replace(BEARER, '').trim()
      : authorizationHeaderOrKey.trim();
    if (!isWellFormedKey(key)) return Promise.reject(unauthorizedError());

    const hash = hashApiKey(key, this.#secret);
    const now = this.#now();
    const hit = this.#known.get(hash);
    if (hit !== undefined) {
      if (hit.expiresAt > now) {
        // Refresh recency (Map keeps insertion order; the first entry is evicted first).
        this.#known.delete(hash);
        this.#known.set(hash, hit);
        return hit.authed ? Promise.resolve(hit.authed) : Promise.reject(unauthorizedError());
      }
      this.#deleteKnown(hash, hit);
    }
    const unknownUntil = this.#unknown.get(hash);
    if (unknownUntil !== undefined) {
      if (unknownUntil > now) return Promise.reject(unauthorizedError());
      this.#unknown.delete(hash);
    }
    return this.#miss(hash);
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

  async #miss(hash: string): Promise<AuthedKey> {
    let pending = this.#inflight.get(hash);
    if (pending === undefined) {
      pending = this.#load(hash);
      this.#inflight.set(hash, pending);
      // Clean up whether the lookup succeeds or fails; the caller sees the failure below.
      const p = pending;
      const done = (): void => {
        if (this.#inflight.get(hash) === p) this.#inflight.delete(hash);
      };
      p.then(done, done);
    }
    const entry = await pending;
    if (entry?.authed) return entry.authed;
    throw unauthorizedError();
  }

  async #load(hash: string): Promise<Entry | undefined> {
    const epoch = this.#epoch;
    let found: KeyLookup | undefined;
    try {
      found = await this.#source.findKeyByHash(hash);
    } catch (err) {
      const e = new GatewayError('MR_ERR_INTERNAL', 'Authentication is temporarily unavailable.');
      e.cause = err;
      throw e;
    }
    // An invalidate() or clear() while the query ran: answer this request, cache nothing.
    if (epoch !== this.#epoch) return found && toEntry(found, 0);
    const now = this.#now();
    if (found === undefined) {
      if (this.#unknown.size >= this.#maxEntries) evictOldest(this.#unknown);
      this.#unknown.set(hash, now + this.#negativeTtlMs);
      return undefined;
    }
    const entry = toEntry(found, now + this.#ttlMs);
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

function toEntry(found: KeyLookup, expiresAt: number): Entry {
  const authed =
    found.revoked || found.accountDisabled ? null : Object.freeze({ keyId: found.keyId, accountId: found.accountId });
  return { authed, keyId: found.keyId, expiresAt };
}

function evictOldest(map: Map<string, unknown>): void {
  const first = map.keys().next();
  if (!first.done) map.delete(first.value);
}
