/**
 * API keys. Only the HMAC of a key is stored; `listKeys` never returns it, so nothing that
 * prints a listing can leak it.
 */
import type { Kysely } from 'kysely';
import type { DB } from './schema.js';

export interface NewApiKey {
  id: string;
  accountId: string;
  name?: string | null;
  /** `hashApiKey(key, secret)`. */
  keyHash: string;
  last4: string;
  /** Epoch ms; defaults to now. */
  createdAt?: number;
}

/** A key as listings show it: no hash, no key. */
export interface ApiKeySummary {
  id: string;
  accountId: string;
  name: string | null;
  last4: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms, or null while active. */
  revokedAt: number | null;
}

/** What authentication needs to know about a key hash. */
export interface KeyLookup {
  keyId: string;
  accountId: string;
  name: string | null;
  revoked: boolean;
  accountDisabled: boolean;
}

export class KeysRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => number = Date.now,
  ) {}

  async insertKey(key: NewApiKey): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: key.id,
        account_id: key.accountId,
        name: key.name ?? null,
        key_hash: key.keyHash,
        last4: key.last4,
        created_at: key.createdAt ?? this.now(),
        revoked_at: null,
      })
      .execute();
  }

  /** An account's keys, oldest first, without hashes. */
  async listKeys(accountId: string): Promise<ApiKeySummary[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .select(['id', 'account_id', 'name', 'last4', 'created_at', 'revoked_at'])
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toSummary);
  }

  /** One key by id, without its hash. */
  async getKey(id: string): Promise<ApiKeySummary | undefined> {
    const row = await this.db
      .selectFrom('api_keys')
      .select(['id', 'account_id', 'name', 'last4', 'created_at', 'revoked_at'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toSummary(row);
  }

  /** The key with this hash and its account's state, in one indexed query. */
  async findKeyByHash(hash: string): Promise<KeyLookup | undefined> {
    const row = await this.db
      .selectFrom('api_keys as k')
      .innerJoin('accounts as a', 'a.id', 'k.account_id')
      .select(['k.id', 'k.account_id', 'k.name', 'k.revoked_at', 'a.disabled'])
      .where('k.key_hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      keyId: row.id,
      accountId: row.account_id,
      name: row.name,
      revoked: row.revoked_at !== null,
      accountDisabled: row.disabled === 1,
    };
  }

  /**
   * Revokes a key; returns whether it exists. Revoking twice keeps the first `revoked_at`.
   * Running servers must also drop it from their auth cache (`KeyAuthenticator.invalidate`).
   */
  async revokeKey(id: string): Promise<boolean> {
    const r = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: this.now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (r.numUpdatedRows > 0n) return true;
    const exists = await this.db.selectFrom('api_keys').select('id').where('id', '=', id).executeTakeFirst();
    return exists !== undefined;
  }
}

function toSummary(row: {
  id: string;
  account_id: string;
  name: string | null;
  last4: string;
  created_at: number;
  revoked_at: number | null;
}): ApiKeySummary {
  return {
    id: row.id,
    accountId: row.account_id,
    name: row.name,
    last4: row.last4,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}
