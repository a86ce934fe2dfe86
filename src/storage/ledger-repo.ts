/**
 * The credits ledger: one row per credit movement, never updated or deleted. An account's
 * `balance_nano` is the sum of its rows, kept in step by writing both in ONE transaction:
 * operator top-ups and adjustments here, generation charges in `UsageRepo.insertUsage`.
 * Amounts are integer nano-USD (1e-9 USD).
 */
import { sql, type Kysely } from 'kysely';
import { randomBase62 } from '../auth/api-key.js';
import { AccountNotFoundError, InvalidFieldError } from './errors.js';
import type { DB, LedgerKind, LedgerRow } from './schema.js';

/** Longest accepted `reason`, in UTF-16 code units. */
export const MAX_REASON_LENGTH = 200;
/** The `reason` of every charge row. */
export const CHARGE_REASON = 'generation';
/** Most entries one `entries()` call returns. */
export const MAX_ENTRIES_LIMIT = 1000;

/** Control characters and line/paragraph separators: a reason is one line of plain text. */
const UNPRINTABLE = /[\p{Cc}\p{Zl}\p{Zp}]/u;

/** A new ledger id, `led_` + 16 base62 characters. */
export function generateLedgerId(): string {
  return 'led_' + randomBase62(16);
}

export interface LedgerEntry {
  id: string;
  accountId: string;
  kind: LedgerKind;
  /** Nano-USD: positive adds credit, negative removes it. */
  amountNano: number;
  reason: string;
  /** The charged generation, for charges; null otherwise. */
  generationId: string | null;
  /** Epoch ms. */
  createdAt: number;
}

/** An operator's credit movement. Charges are written only by usage inserts. */
export interface NewLedgerEntry {
  accountId: string;
  kind: 'topup' | 'adjustment';
  /** Nano-USD, a non-zero safe integer; a top-up must be positive, an adjustment may be either. */
  amountNano: number;
  /** Short operator text (e.g. "invoice 2024-113"), 1–200 characters, one line. Never content. */
  reason: string;
}

export interface AppendResult {
  entry: LedgerEntry;
  /** The account's balance right after this entry, nano-USD. */
  balanceNano: number;
}

export interface LedgerTotals {
  /** Sum of the positive rows (top-ups and positive adjustments), nano-USD. */
  creditsNano: number;
  /** What charges took, as a positive number (−sum of the charge rows), nano-USD. */
  chargesNano: number;
  /** `accounts.balance_nano`. */
  balanceNano: number;
}

export interface EntriesOptions {
  /** 1 to 1000. */
  limit: number;
  /**
   * Cursor: the id of the last entry of the previous page; only older entries are returned
   * (an id that is not this account's entry gives an empty page).
   */
  before?: string;
}

export class LedgerRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Adds a top-up or adjustment and its amount to the account's balance, in one transaction.
   * Throws `InvalidFieldError` (kind, amountNano, reason) before touching the database, and
   * `AccountNotFoundError` for an unknown account. A balance may go negative through a
   * negative adjustment; it must stay a safe integer.
   */
  async append(input: NewLedgerEntry): Promise<AppendResult> {
    const entry = this.#validate(input);
    const balanceNano = await this.db.transaction().execute(async (trx) => {
      // The update first: on PostgreSQL it locks the account row, so concurrent appends queue.
      const updated = await trx
        .updateTable('accounts')
        .set((eb) => ({ balance_nano: eb('balance_nano', '+', entry.amountNano) }))
        .where('id', '=', entry.accountId)
        .returning('balance_nano')
        .executeTakeFirst();
      if (!updated) throw new AccountNotFoundError(entry.accountId);
      const balance = Number(updated.balance_nano);
      if (!Number.isSafeInteger(balance)) {
        throw new InvalidFieldError('amountNano', 'The balance would leave the range of safe integers (about ±9 million USD).');
      }
      await trx
        .insertInto('ledger')
        .values({
          id: entry.id,
          account_id: entry.accountId,
          kind: entry.kind,
          amount_nano: entry.amountNano,
          reason: entry.reason,
          generation_id: null,
          created_at: entry.createdAt,
        })
        .execute();
      return balance;
    });
    return { entry, balanceNano };
  }

  /** The account's balance (`accounts.balance_nano`), nano-USD; 0 for an unknown account. */
  async balance(accountId: string): Promise<number> {
    const row = await this.db.selectFrom('accounts').select('balance_nano').where('id', '=', accountId).executeTakeFirst();
    return row ? Number(row.balance_nano) : 0;
  }

  /** The account's entries, newest first (ties by id), a page at a time. */
  async entries(accountId: string, opts: EntriesOptions): Promise<LedgerEntry[]> {
    const { limit, before } = opts;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ENTRIES_LIMIT) {
      throw new InvalidFieldError('limit', `limit must be an integer from 1 to ${MAX_ENTRIES_LIMIT}.`);
    }
    let q = this.db.selectFrom('ledger').selectAll().where('account_id', '=', accountId);
    if (before !== undefined) {
      // Row-value comparison (SQLite ≥ 3.15, PostgreSQL): strictly after the cursor in the order below.
      q = q.where(
        sql<boolean>`(created_at, id) < (select c.created_at, c.id from ledger c where c.id = ${before} and c.account_id = ${accountId})`,
      );
    }
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toEntry);
  }

  /**
   * Credits, charges and balance of an account, read in one statement (one snapshot);
   * undefined for an unknown account.
   */
  async totals(accountId: string): Promise<LedgerTotals | undefined> {
    const row = await this.db
      .selectFrom('accounts as a')
      .select([
        'a.balance_nano',
        sql<number>`(select cast(coalesce(sum(case when l.amount_nano > 0 then l.amount_nano else 0 end), 0) as bigint) from ledger l where l.account_id = a.id)`.as(
          'credits',
        ),
        sql<number>`(select cast(coalesce(sum(case when l.kind = 'charge' then -l.amount_nano else 0 end), 0) as bigint) from ledger l where l.account_id = a.id)`.as(
          'charges',
        ),
      ])
      .where('a.id', '=', accountId)
      .executeTakeFirst();
    if (!row) return undefined;
    return { creditsNano: Number(row.credits), chargesNano: Number(row.charges), balanceNano: Number(row.balance_nano) };
  }

  /** SUM of the account's ledger rows, nano-USD (what `balance_nano` must equal). */
  async sumLedger(accountId: string): Promise<number> {
    const row = await this.db
      .selectFrom('ledger')
      .select(sql<number>`cast(coalesce(sum(amount_nano), 0) as bigint)`.as('total'))
      .where('account_id', '=', accountId)
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }

  #validate(input: NewLedgerEntry): LedgerEntry {
    const { accountId, kind, amountNano, reason } = input;
    if (typeof accountId !== 'string' || accountId === '') throw new InvalidFieldError('accountId', 'accountId is required.');
    if (kind !== 'topup' && kind !== 'adjustment') {
      throw new InvalidFieldError('kind', "kind must be 'topup' or 'adjustment' (charges are written with usage).");
    }
    if (!Number.isSafeInteger(amountNano) || amountNano === 0) {
      throw new InvalidFieldError('amountNano', 'amountNano must be a non-zero integer number of nano-USD.');
    }
    if (kind === 'topup' && amountNano < 0) {
      throw new InvalidFieldError('amountNano', 'A top-up must be positive; use an adjustment to remove credit.');
    }
    const text = typeof reason === 'string' ? reason.trim() : '';
    if (text === '' || text.length > MAX_REASON_LENGTH || UNPRINTABLE.test(text)) {
      throw new InvalidFieldError(
        'reason',
        `reason must be 1 to ${MAX_REASON_LENGTH} characters of one-line text, without control characters.`,
      );
    }
    return {
      id: generateLedgerId(),
      accountId,
      kind,
      amountNano,
      reason: text,
      generationId: null,
      createdAt: this.now(),
    };
  }
}

function toEntry(r: LedgerRow): LedgerEntry {
  return {
    id: r.id,
    accountId: r.account_id,
    kind: r.kind,
    amountNano: Number(r.amount_nano),
    reason: r.reason,
    generationId: r.generation_id,
    createdAt: Number(r.created_at),
  };
}
