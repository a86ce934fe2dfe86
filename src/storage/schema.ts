/**
 * Table types for Kysely. One code path serves SQLite and PostgreSQL, so columns use the
 * portable subset: ids are text, booleans are integers 0/1, timestamps are epoch milliseconds
 * (`bigint` in PostgreSQL, read back as a JS number — see `database.ts`). `Generated<T>` marks a
 * column with a database default (optional on insert).
 *
 * Money is integer nano-USD (1e-9 USD) in `bigint` columns, read back as JS numbers (safe
 * integers, |n| ≤ 2^53 − 1 ≈ 9 million USD).
 *
 * No table has a column that can hold request or response content: `usage` stores token counts
 * and metadata only; `ledger.reason` is short operator text; `audit_log` holds ids and fixed
 * words only. `docs/privacy.md` lists every column.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

/** How an account pays: `credits` (a balance that charges draw down) or `track` (cost recorded only). */
export type BillingMode = 'credits' | 'track';
/** `inference` keys call the API; `management` keys manage the account (keys, credits, reports). */
export type KeyKind = 'inference' | 'management';
/** When a key's spend limit starts over (UTC; weeks start on Monday). */
export type LimitReset = 'daily' | 'weekly' | 'monthly';
/** `topup` and `adjustment` are written by operators; `charge` by usage inserts, one per generation. */
export type LedgerKind = 'topup' | 'charge' | 'adjustment';

/** A customer. `email` is stored lower-cased and unique. */
export interface AccountsTable {
  /** `acc_` + 16 base62. */
  id: string;
  email: string;
  /** Epoch ms. */
  created_at: number;
  /** 0 or 1: a disabled account's keys are rejected. */
  disabled: number;
  /**
   * Nano-USD: the materialised sum of the account's `ledger` rows, updated in the same
   * transaction as every ledger insert.
   */
  balance_nano: Generated<number>;
  /** `credits` | `track`, or null for the deployment's default. */
  billing_mode: BillingMode | null;
  /** 0 or 1: every request of the account is routed only to zero-data-retention endpoints. */
  require_zdr: Generated<number>;
  /** 0 or 1: every request of the account avoids endpoints that may collect data. */
  deny_data_collection: Generated<number>;
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
  kind: Generated<KeyKind>;
  /** Nano-USD the key may spend per `limit_reset` window, or null for no limit. */
  spend_limit_nano: number | null;
  /** `daily` | `weekly` | `monthly`, or null: the limit never resets. */
  limit_reset: LimitReset | null;
  /** Epoch ms after which the key is rejected, or null. */
  expires_at: number | null;
  /** JSON array of the model ids the key may call, or null for all. */
  allowed_models: string | null;
  /** 0 or 1: a disabled key is rejected until enabled again (unlike a revoke, reversible). */
  disabled: Generated<number>;
  /** Requests per minute for this key, or null for the configured default. */
  rpm_limit: number | null;
  /** Tokens per minute for this key, or null for the configured default. */
  tpm_limit: number | null;
  /** Concurrent requests for this key, or null for the configured default. */
  concurrency_limit: number | null;
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
  /** Nano-USD, what the generation cost (recorded in every billing mode). */
  cost_nano: Generated<number>;
  /** 0 or 1: 1 when the token counts were estimated (e.g. a stream the client aborted before upstream usage arrived). */
  cost_estimated: Generated<number>;
}

/**
 * Credit movements. `accounts.balance_nano` is the sum of an account's rows, kept in step in the
 * same transaction as every insert. Rows are never updated or deleted.
 */
export interface LedgerTable {
  /** `led_` + 16 base62. */
  id: string;
  account_id: string;
  kind: LedgerKind;
  /** Nano-USD: positive adds credit, negative removes it (charges are negative). */
  amount_nano: number;
  /** Short operator text (at most 200 characters); `generation` for charges. */
  reason: string;
  /** The charged generation (`usage.id`) for charges, unique; null otherwise. */
  generation_id: string | null;
  /** Epoch ms (for a charge: the generation's time). */
  created_at: number;
}

/** Who made an audited change: the admin API, a management key (the API), or the `maxrouter` CLI. */
export type AuditActorKind = 'admin' | 'management_key' | 'cli';

/** The audited changes to accounts, keys and credits. */
export type AuditAction =
  | 'account.created'
  | 'account.disabled'
  | 'account.enabled'
  | 'account.billing_mode_changed'
  | 'account.routing_changed'
  | 'key.created'
  | 'key.revoked'
  | 'key.deleted'
  | 'key.updated'
  | 'credits.added'
  | 'credits.adjusted';

/**
 * One row per change to an account, a key or an account's credits: who (a kind, and the key id
 * for a management key), what (an action from a fixed list) and on which ids. Ids only: no email,
 * no key name, no amount, no free text (the account, key and ledger rows hold the rest). Rows are
 * never updated or deleted.
 */
export interface AuditLogTable {
  /** `aud_` + 16 base62. */
  id: string;
  /** Epoch ms. */
  at: number;
  actor_kind: AuditActorKind;
  /** The management key's id for `management_key`; null for `admin` and `cli`. */
  actor_id: string | null;
  action: AuditAction;
  /** The account changed, or whose key or credits changed. */
  account_id: string;
  /** The key, for `key.*` actions; null otherwise. */
  key_id: string | null;
  /** The ledger row, for `credits.*` actions; null otherwise. */
  ledger_id: string | null;
}

export interface DB {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  usage: UsageTable;
  ledger: LedgerTable;
  audit_log: AuditLogTable;
}

export type AccountRow = Selectable<AccountsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type UsageRow = Selectable<UsageTable>;
export type NewUsageRow = Insertable<UsageTable>;
export type LedgerRow = Selectable<LedgerTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
