/** The repositories over one database, built together (the composition root's one call). */
import type { Kysely } from 'kysely';
import { AccountsRepo } from './accounts-repo.js';
import { KeysRepo } from './keys-repo.js';
import type { DB } from './schema.js';
import { UsageRepo, type SqliteHandle } from './usage-repo.js';

export interface Repositories {
  accounts: AccountsRepo;
  keys: KeysRepo;
  usage: UsageRepo;
}

/** `sqlite`: the raw SQLite handle, when there is one, for prepared-once usage inserts. */
export function createRepositories(db: Kysely<DB>, now: () => number = Date.now, sqlite?: SqliteHandle): Repositories {
  return { accounts: new AccountsRepo(db, now), keys: new KeysRepo(db, now), usage: new UsageRepo(db, sqlite) };
}

export { AccountsRepo, normalizeEmail, type Account } from './accounts-repo.js';
export { KeysRepo, type ApiKeySummary, type KeyLookup, type NewApiKey } from './keys-repo.js';
export { UsageRepo, type UsageRecord } from './usage-repo.js';
export { DuplicateEmailError, InvalidEmailError } from './errors.js';
