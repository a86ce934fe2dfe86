/**
 * API keys. Only the HMAC of a key is stored; `listKeys` never returns it, so nothing that
 * prints a listing can leak it.
 */
import type { Kysely } from 'kysely';
import { InvalidFieldError } from './errors.js';
import type { BillingMode, DB, KeyKind, LimitReset } from './schema.js';

/** Longest key name, as the CLI accepts it. */
export const MAX_KEY_NAME_LENGTH = 100;
/** Most entries in `allowedModels`, and the longest entry. */
export const MAX_ALLOWED_MODELS = 1000;
export const MAX_MODEL_ID_LENGTH = 200;

/** A key's spending and access settings (all optional on creation). */
export interface KeySettings {
  /** Default `inference`. */
  kind?: KeyKind;
  /** Nano-USD per `limitReset` window (a non-negative safe integer), or null for no limit. */
  spendLimitNano?: number | null;
  /** null: the limit never resets. */
  limitReset?: LimitReset | null;
  /** Epoch ms after which the key is rejected, or null. */
  expiresAt?: number | null;
  /** Model ids the key may call, or null for every model. */
  allowedModels?: string[] | null;
  /** Overrides of the configured per-key rate limits; null or absent: the default. */
  rateLimits?: Partial<KeyRateLimits>;
}

/** A key's own rate limits (positive integers), each null when the configured default applies. */
export interface KeyRateLimits {
  rpm: number | null;
  tpm: number | null;
  concurrency: number | null;
}

export interface NewApiKey extends KeySettings {
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
  kind: KeyKind;
  disabled: boolean;
  spendLimitNano: number | null;
  limitReset: LimitReset | null;
  /** Epoch ms, or null. */
  expiresAt: number | null;
  allowedModels: string[] | null;
  rateLimits: KeyRateLimits;
}

/** What authentication needs to know about a key hash. */
export interface KeyLookup {
  keyId: string;
  accountId: string;
  name: string | null;
  revoked: boolean;
  accountDisabled: boolean;
  kind: KeyKind;
  /** The key itself is disabled (reversible, unlike `revoked`). */
  disabled: boolean;
  spendLimitNano: number | null;
  limitReset: LimitReset | null;
  /** Epoch ms, or null: the caller compares it with its clock. */
  expiresAt: number | null;
  /** null: every model. An unreadable stored list reads as `[]` (no model), never as "all". */
  allowedModels: string[] | null;
  /** The account's billing mode; null: the deployment's default. */
  accountBillingMode: BillingMode | null;
  rateLimits: KeyRateLimits;
  /** The account's routing data policy. */
  accountRequireZdr: boolean;
  accountDenyDataCollection: boolean;
}

/** What `updateKey` may change; an omitted field is left as it is, null clears it. */
export interface ApiKeyPatch {
  name?: string | null;
  disabled?: boolean;
  spendLimitNano?: number | null;
  limitReset?: LimitReset | null;
  expiresAt?: number | null;
  allowedModels?: string[] | null;
  /** Each given field replaces the key's override; null returns it to the configured default. */
  rateLimits?: Partial<KeyRateLimits>;
}

const SUMMARY_COLUMNS = [
  'id',
  'account_id',
  'name',
  'last4',
  'created_at',
  'revoked_at',
  'kind',
  'disabled',
  'spend_limit_nano',
  'limit_reset',
  'expires_at',
  'allowed_models',
  'rpm_limit',
  'tpm_limit',
  'concurrency_limit',
] as const;

export class KeysRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws `InvalidFieldError` for a bad name or setting. */
  async insertKey(key: NewApiKey): Promise<void> {
    const name = key.name === undefined || key.name === null ? null : validName(key.name);
    await this.db
      .insertInto('api_keys')
      .values({
        id: key.id,
        account_id: key.accountId,
        name,
        key_hash: key.keyHash,
        last4: key.last4,
        created_at: key.createdAt ?? this.now(),
        revoked_at: null,
        kind: validKind(key.kind ?? 'inference'),
        spend_limit_nano: key.spendLimitNano == null ? null : validSpendLimit(key.spendLimitNano),
        limit_reset: key.limitReset == null ? null : validLimitReset(key.limitReset),
        expires_at: key.expiresAt == null ? null : validExpiresAt(key.expiresAt),
        allowed_models: key.allowedModels == null ? null : JSON.stringify(validModels(key.allowedModels)),
        disabled: 0,
        rpm_limit: validRate('rpm', key.rateLimits?.rpm),
        tpm_limit: validRate('tpm', key.rateLimits?.tpm),
        concurrency_limit: validRate('concurrency', key.rateLimits?.concurrency),
      })
      .execute();
  }

  /** An account's keys, oldest first, without hashes. */
  async listKeys(accountId: string): Promise<ApiKeySummary[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .select(SUMMARY_COLUMNS)
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toSummary);
  }

  /** One key by id, without its hash; with `accountId`, only if it is that account's. */
  async getKey(id: string, accountId?: string): Promise<ApiKeySummary | undefined> {
    let q = this.db.selectFrom('api_keys').select(SUMMARY_COLUMNS).where('id', '=', id);
    if (accountId !== undefined) q = q.where('account_id', '=', accountId);
    const row = await q.executeTakeFirst();
    return row && toSummary(row);
  }

  /** The key with this hash and its account's state, in one indexed query. */
  async findKeyByHash(hash: string): Promise<KeyLookup | undefined> {
    const row = await this.db
      .selectFrom('api_keys as k')
      .innerJoin('accounts as a', 'a.id', 'k.account_id')
      .select([
        'k.id',
        'k.account_id',
        'k.name',
        'k.revoked_at',
        'k.kind',
        'k.disabled as key_disabled',
        'k.spend_limit_nano',
        'k.limit_reset',
        'k.expires_at',
        'k.allowed_models',
        'a.disabled',
        'a.billing_mode',
        'a.require_zdr',
        'a.deny_data_collection',
        'k.rpm_limit',
        'k.tpm_limit',
        'k.concurrency_limit',
      ])
      .where('k.key_hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      keyId: row.id,
      accountId: row.account_id,
      name: row.name,
      revoked: row.revoked_at !== null,
      accountDisabled: row.disabled === 1,
      kind: row.kind,
      disabled: row.key_disabled === 1,
      spendLimitNano: row.spend_limit_nano === null ? null : Number(row.spend_limit_nano),
      limitReset: row.limit_reset,
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      allowedModels: parseModels(row.allowed_models),
      accountBillingMode: row.billing_mode,
      rateLimits: { rpm: row.rpm_limit, tpm: row.tpm_limit, concurrency: row.concurrency_limit },
      accountRequireZdr: row.require_zdr === 1,
      accountDenyDataCollection: row.deny_data_collection === 1,
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

  /**
   * Changes this account's key; returns the updated key, or undefined when no key with this id
   * belongs to the account. Throws `InvalidFieldError` for a bad value (nothing is changed).
   * Running servers must drop the key from their auth cache.
   */
  async updateKey(accountId: string, keyId: string, patch: ApiKeyPatch): Promise<ApiKeySummary | undefined> {
    const set: {
      name?: string | null;
      disabled?: number;
      spend_limit_nano?: number | null;
      limit_reset?: LimitReset | null;
      expires_at?: number | null;
      allowed_models?: string | null;
      rpm_limit?: number | null;
      tpm_limit?: number | null;
      concurrency_limit?: number | null;
    } = {};
    if (patch.name !== undefined) set.name = patch.name === null ? null : validName(patch.name);
    if (patch.disabled !== undefined) {
      if (typeof patch.disabled !== 'boolean') throw new InvalidFieldError('disabled', 'disabled must be true or false.');
      set.disabled = patch.disabled ? 1 : 0;
    }
    if (patch.spendLimitNano !== undefined) {
      set.spend_limit_nano = patch.spendLimitNano === null ? null : validSpendLimit(patch.spendLimitNano);
    }
    if (patch.limitReset !== undefined) set.limit_reset = patch.limitReset === null ? null : validLimitReset(patch.limitReset);
    if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt === null ? null : validExpiresAt(patch.expiresAt);
    if (patch.allowedModels !== undefined) {
      set.allowed_models = patch.allowedModels === null ? null : JSON.stringify(validModels(patch.allowedModels));
    }
    const rl = patch.rateLimits;
    if (rl?.rpm !== undefined) set.rpm_limit = validRate('rpm', rl.rpm);
    if (rl?.tpm !== undefined) set.tpm_limit = validRate('tpm', rl.tpm);
    if (rl?.concurrency !== undefined) set.concurrency_limit = validRate('concurrency', rl.concurrency);
    if (Object.keys(set).length === 0) return this.getKey(keyId, accountId);
    const row = await this.db
      .updateTable('api_keys')
      .set(set)
      .where('id', '=', keyId)
      .where('account_id', '=', accountId)
      .returning(SUMMARY_COLUMNS)
      .executeTakeFirst();
    return row && toSummary(row);
  }

  /**
   * Deletes this account's key (the row itself; usage rows keep its id). Returns false when no
   * key with this id belongs to the account. Running servers must drop it from their auth cache.
   */
  async deleteKey(accountId: string, keyId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('api_keys')
      .where('id', '=', keyId)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }
}

function validName(name: string): string {
  if (typeof name !== 'string' || name.length > MAX_KEY_NAME_LENGTH || /[\p{Cc}]/u.test(name)) {
    throw new InvalidFieldError('name', `name must be at most ${MAX_KEY_NAME_LENGTH} characters, without control characters.`);
  }
  return name;
}

/** A rate-limit override: a positive integer, or null/undefined for the configured default. */
function validRate(name: 'rpm' | 'tpm' | 'concurrency', v: number | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new InvalidFieldError(`rateLimits.${name}`, `rateLimits.${name} must be a positive integer, or null for the default.`);
  }
  return v;
}

function validKind(kind: KeyKind): KeyKind {
  if (kind !== 'inference' && kind !== 'management') {
    throw new InvalidFieldError('kind', "kind must be 'inference' or 'management'.");
  }
  return kind;
}

function validSpendLimit(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidFieldError('spendLimitNano', 'spendLimitNano must be a non-negative integer number of nano-USD, or null.');
  }
  return n;
}

function validLimitReset(r: LimitReset): LimitReset {
  if (r !== 'daily' && r !== 'weekly' && r !== 'monthly') {
    throw new InvalidFieldError('limitReset', "limitReset must be 'daily', 'weekly', 'monthly' or null.");
  }
  return r;
}

function validExpiresAt(t: number): number {
  if (!Number.isSafeInteger(t) || t < 0) {
    throw new InvalidFieldError('expiresAt', 'expiresAt must be epoch milliseconds (an integer ≥ 0), or null.');
  }
  return t;
}

function validModels(models: string[]): string[] {
  if (
    !Array.isArray(models) ||
    models.length > MAX_ALLOWED_MODELS ||
    !models.every((m) => typeof m === 'string' && m.length > 0 && m.length <= MAX_MODEL_ID_LENGTH)
  ) {
    throw new InvalidFieldError(
      'allowedModels',
      `allowedModels must be null or a list of at most ${MAX_ALLOWED_MODELS} model ids (1 to ${MAX_MODEL_ID_LENGTH} characters each).`,
    );
  }
  return [...new Set(models)];
}

/** The stored JSON list; anything unreadable grants no model rather than every model. */
function parseModels(json: string | null): string[] | null {
  if (json === null) return null;
  try {
    const v: unknown = JSON.parse(json);
    if (Array.isArray(v) && v.every((m) => typeof m === 'string')) return v as string[];
  } catch {
    // fall through
  }
  return [];
}

function toSummary(row: {
  id: string;
  account_id: string;
  name: string | null;
  last4: string;
  created_at: number;
  revoked_at: number | null;
  kind: KeyKind;
  disabled: number;
  spend_limit_nano: number | null;
  limit_reset: LimitReset | null;
  expires_at: number | null;
  allowed_models: string | null;
  rpm_limit: number | null;
  tpm_limit: number | null;
  concurrency_limit: number | null;
}): ApiKeySummary {
  return {
    id: row.id,
    accountId: row.account_id,
    name: row.name,
    last4: row.last4,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    kind: row.kind,
    disabled: row.disabled === 1,
    spendLimitNano: row.spend_limit_nano === null ? null : Number(row.spend_limit_nano),
    limitReset: row.limit_reset,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    allowedModels: parseModels(row.allowed_models),
    rateLimits: { rpm: row.rpm_limit, tpm: row.tpm_limit, concurrency: row.concurrency_limit },
  };
}
