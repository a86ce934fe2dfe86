/**
 * Table types for Kysely. One code path serves SQLite and PostgreSQL, so columns use the
 * portable subset: ids are text, booleans are integers 0/1, timestamps are epoch milliseconds
 * (`bigint` in PostgreSQL, read back as a JS number — see `database.ts`).
 *
 * No table has a column that can hold request or response content: `usage` stores token counts
 * and metadata only. `docs/privacy.md` lists every column.
 */
import type { Insertable, Selectable } from 'kysely';

/** A customer. `email` is stored lower-cased and unique. */
export interface AccountsTable {
  /** `acc_` + 16 base62. */
  id: string;
  email: string;
  /** Epoch ms. */
  created_at: number;
  /** 0 or 1: a disabled account's keys are rejected. */
  disabled: number;
}

/** An API key. Only its HMAC is stored; the key itself is shown once at creation. */
export interface ApiKeysTable {
  /** `key_` + 16 base62. */
  id: string;
  account_id: string;
  name: string | null;
  /** HMAC-SHA256(key, server secret), lower-case hex; unique. */
  key_hash: string;
  /** The key's last four characters, for display (`mr_…abcd`). */
  last4: string;
  /** Epoch ms. */
  created_at: number;
  /** Epoch ms, or null while the key is active. */
  revoked_at: number | null;
}

/** One row per generation (request), token counts and metadata only. */
export interface UsageTable {
  /** The generation id returned to the client. */
  id: string;
  key_id: string;
  account_id: string;
  /** The model id the client asked for. */
  model: string;
  /** The provider id (from config) that served it. */
  provider: string;
  /** The model id at that provider. */
  upstream_model: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  /** HTTP status returned to the client. */
  status: number;
  latency_ms: number;
  /** 0 or 1. */
  streamed: number;
  /** Epoch ms. */
  created_at: number;
}

export interface DB {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  usage: UsageTable;
}

export type AccountRow = Selectable<AccountsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type UsageRow = Selectable<UsageTable>;
export type NewUsageRow = Insertable<UsageTable>;
