/**
 * The audit log: one row per change to an account, a key or an account's credits, made through
 * the admin API, the management API (a management key) or the `maxrouter` CLI. A row says who
 * (the actor's kind, and the key id when the actor is a management key), what (an action from a
 * fixed list) and on which ids (account, key, ledger row), and when. Ids only: never an email, a
 * key name, an amount or any other text — the account, key and ledger rows hold those. Rows are
 * never updated or deleted; they outlive the keys they name.
 *
 * `transaction(work)` runs a change and its audit row in ONE database transaction, so a change
 * is never stored without its row (nor a row without its change).
 */
import { sql, type Kysely } from 'kysely';
import { randomBase62 } from '../auth/api-key.js';
import { AccountsRepo } from './accounts-repo.js';
import { InvalidFieldError } from './errors.js';
import { KeysRepo } from './keys-repo.js';
import type { AuditAction, AuditActorKind, AuditLogRow, DB } from './schema.js';

export type { AuditAction, AuditActorKind } from './schema.js';

export const AUDIT_ACTOR_KINDS: readonly AuditActorKind[] = ['admin', 'management_key', 'cli'];

export const AUDIT_ACTIONS: readonly AuditAction[] = [
  'account.created',
  'account.disabled',
  'account.enabled',
  'account.billing_mode_changed',
  'account.routing_changed',
  'key.created',
  'key.revoked',
  'key.deleted',
  'key.updated',
  'credits.added',
  'credits.adjusted',
];

/** Most entries one `entries()` call returns. */
export const MAX_AUDIT_ENTRIES_LIMIT = 1000;

/** What an id stored here looks like (`acc_…`, `key_…`, `led_…`): never free text. */
const ID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;

/** Who made a change. `id` is the management key's id, and null for the admin API and the CLI. */
export interface AuditActor {
  kind: AuditActorKind;
  id: string | null;
}

/** The admin API (one operator key: no id). */
export const ADMIN_ACTOR: AuditActor = Object.freeze({ kind: 'admin', id: null });
/** The `maxrouter` CLI (whoever can read the config and reach the database: no id). */
export const CLI_ACTOR: AuditActor = Object.freeze({ kind: 'cli', id: null });
/** The management API, called with this management key. */
export function managementKeyActor(keyId: string): AuditActor {
  return { kind: 'management_key', id: keyId };
}

export interface NewAuditEntry {
  actor: AuditActor;
  action: AuditAction;
  /** The account changed, or whose key or credits changed. */
  accountId: string;
  /** Required for `key.*` actions, absent otherwise. */
  keyId?: string | null;
  /** Required for `credits.*` actions (the ledger row written), absent otherwise. */
  ledgerId?: string | null;
}

export interface AuditEntry {
  id: string;
  /** Epoch ms. */
  at: number;
  actorKind: AuditActorKind;
  actorId: string | null;
  action: AuditAction;
  accountId: string;
  keyId: string | null;
  ledgerId: string | null;
}

export interface AuditQuery {
  /** Only this account's entries; all accounts without it. */
  accountId?: string;
  /** 1 to 1000. */
  limit: number;
  /** Cursor: the id of the last entry of the previous page; only older entries are returned. */
  before?: string;
}

/** The repositories a change and its audit row share, bound to one transaction. */
export interface AuditedTransaction {
  accounts: AccountsRepo;
  keys: KeysRepo;
  audit: AuditRepo;
}

/** A new audit id, `aud_` + 16 base62 characters. */
export function generateAuditId(): string {
  return 'aud_' + randomBase62(16);
}

export class AuditRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Appends one entry. Throws `InvalidFieldError` for an unknown actor kind or action, an id that
   * is not id-shaped, or ids that do not fit the action (a key action without a key id, a
   * credits action without a ledger id, a management-key actor without its id).
   */
  async record(input: NewAuditEntry): Promise<AuditEntry> {
    const entry = validate(input, this.now());
    await this.db
      .insertInto('audit_log')
      .values({
        id: entry.id,
        at: entry.at,
        actor_kind: entry.actorKind,
        actor_id: entry.actorId,
        action: entry.action,
        account_id: entry.accountId,
        key_id: entry.keyId,
        ledger_id: entry.ledgerId,
      })
      .execute();
    return entry;
  }

  /** Entries newest first (ties by id), a page at a time; one account's or everyone's. */
  async entries(query: AuditQuery): Promise<AuditEntry[]> {
    const { limit, before, accountId } = query;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_ENTRIES_LIMIT) {
      throw new InvalidFieldError('limit', `limit must be an integer from 1 to ${MAX_AUDIT_ENTRIES_LIMIT}.`);
    }
    let q = this.db.selectFrom('audit_log').selectAll();
    if (accountId !== undefined) q = q.where('account_id', '=', accountId);
    if (before !== undefined) {
      q = q.where(sql<boolean>`(at, id) < (select c.at, c.id from audit_log c where c.id = ${before})`);
    }
    const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toEntry);
  }

  /**
   * Runs `work` in one transaction with repositories bound to it: what it changes through
   * `accounts` and `keys` and what it records through `audit` commit together or not at all.
   * (Not for ledger appends, which run their own transaction: record those right after.)
   */
  async transaction<T>(work: (tx: AuditedTransaction) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) =>
      work({ accounts: new AccountsRepo(trx, this.now), keys: new KeysRepo(trx, this.now), audit: new AuditRepo(trx, this.now) }),
    );
  }
}

function validId(field: string, v: unknown): string {
  if (typeof v !== 'string' || !ID_SHAPE.test(v)) {
    throw new InvalidFieldError(field, `${field} must be an id (1 to 64 letters, digits, '_' or '-').`);
  }
  return v;
}

function validate(input: NewAuditEntry, at: number): AuditEntry {
  const { actor, action } = input;
  if (!AUDIT_ACTIONS.includes(action)) throw new InvalidFieldError('action', `action must be one of ${AUDIT_ACTIONS.join(', ')}.`);
  if (typeof actor !== 'object' || actor === null || !AUDIT_ACTOR_KINDS.includes(actor.kind)) {
    throw new InvalidFieldError('actor.kind', `actor.kind must be one of ${AUDIT_ACTOR_KINDS.join(', ')}.`);
  }
  let actorId: string | null = null;
  if (actor.kind === 'management_key') actorId = validId('actor.id', actor.id);
  else if (actor.id !== null && actor.id !== undefined) {
    throw new InvalidFieldError('actor.id', `actor.id must be null for the ${actor.kind} actor.`);
  }
  const accountId = validId('accountId', input.accountId);
  const isKey = action.startsWith('key.');
  const isCredits = action.startsWith('credits.');
  let keyId: string | null = null;
  if (isKey) keyId = validId('keyId', input.keyId);
  else if (input.keyId !== null && input.keyId !== undefined) throw new InvalidFieldError('keyId', `keyId must be absent for ${action}.`);
  let ledgerId: string | null = null;
  if (isCredits) ledgerId = validId('ledgerId', input.ledgerId);
  else if (input.ledgerId !== null && input.ledgerId !== undefined) {
    throw new InvalidFieldError('ledgerId', `ledgerId must be absent for ${action}.`);
  }
  return { id: generateAuditId(), at, actorKind: actor.kind, actorId, action, accountId, keyId, ledgerId };
}

function toEntry(row: AuditLogRow): AuditEntry {
  return {
    id: row.id,
    at: Number(row.at),
    actorKind: row.actor_kind,
    actorId: row.actor_id,
    action: row.action,
    accountId: row.account_id,
    keyId: row.key_id,
    ledgerId: row.ledger_id,
  };
}
