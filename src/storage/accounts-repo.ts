/** Accounts: the owner of API keys and usage. Emails are stored lower-cased and unique. */
import type { Kysely } from 'kysely';
import { randomBase62 } from '../auth/api-key.js';
import { DuplicateEmailError, InvalidEmailError, InvalidFieldError, isUniqueViolation } from './errors.js';
import type { AccountRow, BillingMode, DB } from './schema.js';

export interface Account {
  id: string;
  email: string;
  /** Epoch ms. */
  createdAt: number;
  disabled: boolean;
  /** Nano-USD: the sum of the account's ledger (see `LedgerRepo`). */
  balanceNano: number;
  /** null: the deployment's default. */
  billingMode: BillingMode | null;
  /** Route this account's requests only to zero-data-retention endpoints. */
  requireZdr: boolean;
  /** Route this account's requests only to endpoints that collect no data. */
  denyDataCollection: boolean;
}

/** Deliberately simple: one `@`, no whitespace, a dot in the domain, at most 254 characters. */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

/** The canonical form of an email (trimmed, lower-cased); throws `InvalidEmailError`. */
export function normalizeEmail(email: string): string {
  const e = email.trim().toLowerCase();
  if (e.length > 254 || !EMAIL_SHAPE.test(e)) throw new InvalidEmailError(email);
  return e;
}

/** A new account id, `acc_` + 16 base62 characters. */
export function generateAccountId(): string {
  return 'acc_' + randomBase62(16);
}

export class AccountsRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates an account; throws `InvalidEmailError` or `DuplicateEmailError`. */
  async createAccount(email: string): Promise<Account> {
    const account: Account = {
      id: generateAccountId(),
      email: normalizeEmail(email),
      createdAt: this.now(),
      disabled: false,
      balanceNano: 0,
      billingMode: null,
      requireZdr: false,
      denyDataCollection: false,
    };
    try {
      await this.db
        .insertInto('accounts')
        .values({ id: account.id, email: account.email, created_at: account.createdAt, disabled: 0 })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateEmailError(account.email);
      throw err;
    }
    return account;
  }

  async findAccountByEmail(email: string): Promise<Account | undefined> {
    let e: string;
    try {
      e = normalizeEmail(email);
    } catch {
      return undefined;
    }
    const row = await this.db.selectFrom('accounts').selectAll().where('email', '=', e).executeTakeFirst();
    return row && toAccount(row);
  }

  async findAccountById(id: string): Promise<Account | undefined> {
    const row = await this.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toAccount(row);
  }

  /** The account with this email, created if missing (safe against a concurrent create). */
  async getOrCreateAccount(email: string): Promise<Account> {
    const found = await this.findAccountByEmail(email);
    if (found) return found;
    try {
      return await this.createAccount(email);
    } catch (err) {
      if (!(err instanceof DuplicateEmailError)) throw err;
      const raced = await this.findAccountByEmail(email);
      if (!raced) throw err;
      return raced;
    }
  }

  /** Every account, oldest first. */
  async listAccounts(): Promise<Account[]> {
    const rows = await this.db.selectFrom('accounts').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toAccount);
  }

  /**
   * Sets how the account pays (`credits` or `track`; null: the deployment's default); returns
   * whether it exists. Throws `InvalidFieldError` for another value. Running servers see the
   * change when their key cache entries expire.
   */
  async setBillingMode(id: string, mode: BillingMode | null): Promise<boolean> {
    if (mode !== null && mode !== 'credits' && mode !== 'track') {
      throw new InvalidFieldError('billingMode', "billingMode must be 'credits', 'track' or null.");
    }
    const r = await this.db.updateTable('accounts').set({ billing_mode: mode }).where('id', '=', id).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Sets the account's routing data policy (fields left out are kept); returns whether it exists. */
  async setRoutingPolicy(id: string, policy: { requireZdr?: boolean; denyDataCollection?: boolean }): Promise<boolean> {
    const set: { require_zdr?: number; deny_data_collection?: number } = {};
    if (policy.requireZdr !== undefined) set.require_zdr = policy.requireZdr ? 1 : 0;
    if (policy.denyDataCollection !== undefined) set.deny_data_collection = policy.denyDataCollection ? 1 : 0;
    if (Object.keys(set).length === 0) return (await this.findAccountById(id)) !== undefined;
    const r = await this.db.updateTable('accounts').set(set).where('id', '=', id).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Enables or disables an account; returns whether it exists. */
  async setDisabled(id: string, disabled: boolean): Promise<boolean> {
    const r = await this.db
      .updateTable('accounts')
      .set({ disabled: disabled ? 1 : 0 })
      .where('id', '=', id)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    email: row.email,
    createdAt: Number(row.created_at),
    disabled: row.disabled === 1,
    balanceNano: Number(row.balance_nano),
    billingMode: row.billing_mode,
    requireZdr: row.require_zdr === 1,
    denyDataCollection: row.deny_data_collection === 1,
  };
}
