/**
 * Every storage test runs against each database here:
 *
 *   for (const target of DATABASES) {
 *     describe.skipIf(target.skip)(target.name, () => { … await target.open() … });
 *   }
 *
 * SQLite: a fresh file in a temp dir per `open()`. PostgreSQL (when TEST_POSTGRES_URL is set):
 * a fresh schema `mr_test_<random>` per `open()`, selected through the connection's
 * `search_path`, dropped by `close()`, so parallel test files never see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/storage/database.js';

export interface TestDatabase {
  name: 'sqlite' | 'postgres';
  /** True when this database is not available here (the test block should skip). */
  skip: boolean;
  /** A fresh, empty database (not migrated). Its `close()` also deletes it. */
  open(): Promise<Database>;
  /** A fresh, empty database as a `database:` config URL, for a whole gateway; `drop()` deletes it. */
  openUrl(): Promise<{ url: string; drop: () => Promise<void> }>;
}

export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL || undefined;

const WARNED = Symbol.for('maxrouter.test.postgresSkipWarned');
if (!TEST_POSTGRES_URL && !(globalThis as Record<symbol, unknown>)[WARNED]) {
  (globalThis as Record<symbol, unknown>)[WARNED] = true;
  console.warn(
    '[maxrouter tests] TEST_POSTGRES_URL is not set: PostgreSQL storage tests are SKIPPED. ' +
      'Set it (e.g. TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test) to run them.',
  );
}

const sqlite: TestDatabase = {
  name: 'sqlite',
  skip: false,
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'mr-test-db-'));
    const database = await openDatabase(`sqlite:${join(dir, 'test.db')}`);
    return {
      ...database,
      async close() {
        await database.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  async openUrl() {
    const dir = await mkdtemp(join(tmpdir(), 'mr-test-db-'));
    return { url: `sqlite:${join(dir, 'test.db')}`, drop: () => rm(dir, { recursive: true, force: true }) };
  },
};

const postgres: TestDatabase = {
  name: 'postgres',
  skip: TEST_POSTGRES_URL === undefined,
  async open() {
    if (TEST_POSTGRES_URL === undefined) throw new Error('TEST_POSTGRES_URL is not set');
    const schema = `mr_test_${randomBytes(6).toString('hex')}`;
    await admin(`create schema ${schema}`);
    const url = new URL(TEST_POSTGRES_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    let database: Database;
    try {
      database = await openDatabase(url.toString());
    } catch (err) {
      await admin(`drop schema ${schema} cascade`);
      throw err;
    }
    return {
      ...database,
      async close() {
        await database.close();
        await admin(`drop schema if exists ${schema} cascade`);
      },
    };
  },
  async openUrl() {
    if (TEST_POSTGRES_URL === undefined) throw new Error('TEST_POSTGRES_URL is not set');
    const schema = `mr_test_${randomBytes(6).toString('hex')}`;
    await admin(`create schema ${schema}`);
    const url = new URL(TEST_POSTGRES_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return { url: url.toString(), drop: () => admin(`drop schema if exists ${schema} cascade`) };
  },
};

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export const DATABASES: readonly TestDatabase[] = [sqlite, postgres];
