/** The repositories over one database, built together (the composition root's one call). */
import type { Kysely } from 'kysely';
import { AccountsRepo } from './accounts-repo.js';
import { AuditRepo } from './audit-repo.js';
import { KeysRepo } from './keys-repo.js';
import { LedgerRepo } from './ledger-repo.js';
import type { DB } from './schema.js';
import { UsageRepo, type SqliteHandle } from './usage-repo.js';

export interface Repositories {
  accounts: AccountsRepo;
  keys: KeysRepo;
  usage: UsageRepo;
  ledger: LedgerRepo;
  audit: AuditRepo;
}

/** `sqlite`: the raw SQLite handle, when there is one, for prepared-once usage inserts. */
export function createRepositories(db: Kysely<DB>, now: () => number = Date.now, sqlite?: SqliteHandle): Repositories {
  return {
    accounts: new AccountsRepo(db, now),
    keys: new KeysRepo(db, now),
    usage: new UsageRepo(db, sqlite),
    ledger: new LedgerRepo(db, now),
    audit: new AuditRepo(db, now),
  };
}

export { AccountsRepo, normalizeEmail, type Account } from './accounts-repo.js';
export {
  KeysRepo,
  type ApiKeyPatch,
  type ApiKeySummary,
  type KeyLookup,
  type KeySettings,
  type NewApiKey,
} from './keys-repo.js';
export {
  LedgerRepo,
  type AppendResult,
  type EntriesOptions,
  type LedgerEntry,
  type LedgerTotals,
  type NewLedgerEntry,
} from './ledger-repo.js';
export {
  UsageRepo,
  type Generation,
  type ReportQuery,
  type ReportRow,
  type StoredUsage,
  type SumCostFilter,
  type UsageRecord,
} from './usage-repo.js';
export {
  ADMIN_ACTOR,
  AUDIT_ACTIONS,
  AUDIT_ACTOR_KINDS,
  AuditRepo,
  CLI_ACTOR,
  managementKeyActor,
  type AuditActor,
  type AuditedTransaction,
  type AuditEntry,
  type AuditQuery,
  type NewAuditEntry,
} from './audit-repo.js';
export type { AuditAction, AuditActorKind, BillingMode, KeyKind, LedgerKind, LimitReset } from './schema.js';
export { AccountNotFoundError, DuplicateEmailError, InvalidEmailError, InvalidFieldError } from './errors.js';
