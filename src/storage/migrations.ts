/**
 * Versioned schema migrations, kept in code (no migration folder to ship), applied by Kysely's
 * `Migrator`, which records them in `kysely_migration`. Names sort in application order; a
 * released migration is never edited — add a new one.
 *
 * Only portable column types are used (`text`, `integer`, `bigint`), so the same migration runs
 * on SQLite and PostgreSQL.
 *
 * @see https://kysely.dev/docs/migrations
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Database } from './database.js';

export const MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
        .addColumn('name', 'text')
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('last4', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('api_keys_account_id_idx').on('api_keys').column('account_id').execute();

      // Token counts and metadata only: no column here can hold request or response content.
      // No foreign keys: usage is written in hot batches and must outlive key/account changes.
      await db.schema
        .createTable('usage')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('upstream_model', 'text', (c) => c.notNull())
        .addColumn('prompt_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('completion_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('cached_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('cache_write_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('reasoning_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('latency_ms', 'integer', (c) => c.notNull())
        .addColumn('streamed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('usage_account_id_created_at_idx')
        .on('usage')
        .columns(['account_id', 'created_at'])
        .execute();
      await db.schema.createIndex('usage_key_id_created_at_idx').on('usage').columns(['key_id', 'created_at']).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('usage').execute();
      await db.schema.dropTable('api_keys').execute();
      await db.schema.dropTable('accounts').execute();
    },
  },

  '0002_billing': {
    // One column per ALTER: SQLite cannot add several in one statement. Adding a NOT NULL column
    // with a constant default fills existing rows (and rewrites nothing on PostgreSQL ≥ 11).
    up: atomic(async (db) => {
      // Cost per generation, in every billing mode.
      await db.schema.alterTable('usage').addColumn('cost_nano', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('usage').addColumn('cost_estimated', 'integer', (c) => c.notNull().defaultTo(0)).execute();

      await db.schema.alterTable('accounts').addColumn('balance_nano', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('accounts').addColumn('billing_mode', 'text').execute();

      await db.schema.alterTable('api_keys').addColumn('kind', 'text', (c) => c.notNull().defaultTo('inference')).execute();
      await db.schema.alterTable('api_keys').addColumn('spend_limit_nano', 'bigint').execute();
      await db.schema.alterTable('api_keys').addColumn('limit_reset', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('expires_at', 'bigint').execute();
      await db.schema.alterTable('api_keys').addColumn('allowed_models', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0)).execute();

      // No foreign key, like `usage`: charges are written in the hot usage batches, which check
      // that the account exists instead; accounts are never deleted.
      await db.schema
        .createTable('ledger')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('amount_nano', 'bigint', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('generation_id', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      // A generation is charged at most once (several NULLs are allowed on both databases).
      await db.schema.createIndex('ledger_generation_id_idx').on('ledger').column('generation_id').unique().execute();
      await db.schema
        .createIndex('ledger_account_id_created_at_idx')
        .on('ledger')
        .columns(['account_id', 'created_at'])
        .execute();
    }),
    down: atomic(async (db) => {
      await db.schema.dropTable('ledger').execute();
      for (const [table, column] of [
        ['api_keys', 'disabled'],
        ['api_keys', 'allowed_models'],
        ['api_keys', 'expires_at'],
        ['api_keys', 'limit_reset'],
        ['api_keys', 'spend_limit_nano'],
        ['api_keys', 'kind'],
        ['accounts', 'billing_mode'],
        ['accounts', 'balance_nano'],
        ['usage', 'cost_estimated'],
        ['usage', 'cost_nano'],
      ] as const) {
        await db.schema.alterTable(table).dropColumn(column).execute();
      }
    }),
  },

  '0003_key_rate_limits': {
    // Per-key overrides of the configured rate limits; null = the configured default.
    up: atomic(async (db) => {
      for (const column of ['rpm_limit', 'tpm_limit', 'concurrency_limit']) {
        await db.schema.alterTable('api_keys').addColumn(column, 'integer').execute();
      }
    }),
    down: atomic(async (db) => {
      for (const column of ['concurrency_limit', 'tpm_limit', 'rpm_limit']) {
        await db.schema.alterTable('api_keys').dropColumn(column).execute();
      }
    }),
  },

  '0004_audit_log': {
    // Who changed which account, key or credits, and when: ids and fixed words only (no email,
    // no key name, no amount, no free text). No foreign keys: rows outlive deleted keys, and
    // are never updated or deleted.
    up: atomic(async (db) => {
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'text', (c) => c.primaryKey().notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor_kind', 'text', (c) => c.notNull())
        .addColumn('actor_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('key_id', 'text')
        .addColumn('ledger_id', 'text')
        .execute();
      await db.schema.createIndex('audit_log_account_id_at_idx').on('audit_log').columns(['account_id', 'at']).execute();
      await db.schema.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();
    }),
    down: atomic(async (db) => {
      await db.schema.dropTable('audit_log').execute();
    }),
  },

  '0005_account_routing': {
    // An account's data policy for routing, which its requests cannot relax.
    up: atomic(async (db) => {
      await db.schema.alterTable('accounts').addColumn('require_zdr', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('accounts').addColumn('deny_data_collection', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    }),
    down: atomic(async (db) => {
      await db.schema.alterTable('accounts').dropColumn('deny_data_collection').execute();
      await db.schema.alterTable('accounts').dropColumn('require_zdr').execute();
    }),
  },
});

/**
 * Runs a multi-statement migration step in one transaction where Kysely does not already
 * (SQLite: its Migrator does not wrap DDL there, though SQLite's DDL is transactional), so a
 * failure half-way leaves the schema as it was.
 */
function atomic(step: (db: Kysely<any>) => Promise<void>): (db: Kysely<any>) => Promise<void> {
  return async (db) => {
    if (db.getExecutor().adapter.supportsTransactionalDdl) await step(db);
    else await db.transaction().execute(step);
  };
}

const provider: MigrationProvider = { getMigrations: async () => ({ ...MIGRATIONS }) };

/**
 * A Migrator for this database. On PostgreSQL the migration tables are pinned to the current
 * schema: Kysely otherwise looks for `kysely_migration` in every schema and would mistake
 * another schema's table for its own.
 */
export async function createMigrator(database: Database): Promise<Migrator> {
  let migrationTableSchema: string | undefined;
  if (database.dialect === 'postgres') {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(database.db);
    const schema = rows[0]?.schema;
    if (!schema) {
      throw new Error('PostgreSQL has no current schema: check that the search_path names an existing schema.');
    }
    migrationTableSchema = schema;
  }
  return new Migrator({
    db: database.db,
    provider,
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
}

/** Applies every pending migration; returns the names applied (empty when up to date). */
export async function migrateToLatest(database: Database): Promise<string[]> {
  const migrator = await createMigrator(database);
  let { error, results = [] } = await migrator.migrateToLatest();
  // Kysely looks for its bookkeeping tables by listing the tables of EVERY schema; on PostgreSQL a
  // schema that another client drops during that listing makes it fail with 3F000 ("schema does
  // not exist") before anything is applied. That is transient: look again.
  for (let retry = 0; retry < 3 && error !== undefined && isDroppedSchemaRace(error, results); retry++) {
    await new Promise((r) => setTimeout(r, 50 * (retry + 1)));
    ({ error, results = [] } = await migrator.migrateToLatest());
  }
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      failed ? `Database migration ${failed} failed: ${reason}` : `Database migration failed: ${reason}`,
      { cause: error },
    );
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

function isDroppedSchemaRace(error: unknown, results: readonly { status: string }[]): boolean {
  return (error as { code?: string } | null)?.code === '3F000' && results.every((r) => r.status !== 'Success');
}

/** Migration names in order, with whether each has been applied. */
export async function migrationStatus(database: Database): Promise<{ name: string; applied: boolean }[]> {
  const migrator = await createMigrator(database);
  const list = await migrator.getMigrations();
  return list.map((m) => ({ name: m.name, applied: m.executedAt !== undefined }));
}
