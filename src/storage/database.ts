/**
 * Opens the database named by the config's `database` URL: `sqlite:PATH` (the default,
 * `sqlite:./data/maxrouter.db`) or `postgres://…` / `postgresql://…`.
 *
 * @see https://kysely.dev/docs/dialects
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { DB } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

/** An open database: the Kysely instance, which dialect it speaks, and how to close it. */
export interface Database {
  db: Kysely<DB>;
  dialect: DialectName;
  /** The SQLite handle under Kysely, for the few statements that are prepared once (usage inserts). */
  sqlite?: SqliteDatabase.Database;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Used only for a bare `sqlite:` URL, which means `<dataDir>/maxrouter.db`. */
  dataDir?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

const PG_INT8_OID = 20;

/**
 * PostgreSQL returns `bigint` (int8) as a string by default. Every int8 here is an epoch-ms
 * timestamp or a count, far below 2^53, so parse to a number: the same type SQLite gives back.
 */
function parseInt8(value: string): number {
  return Number(value);
}

const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === PG_INT8_OID && format !== 'binary'
      ? parseInt8
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export async function openDatabase(url: string, opts: OpenDatabaseOptions = {}): Promise<Database> {
  if (url.startsWith('sqlite:')) return openSqlite(sqlitePath(url, opts.dataDir));
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgres(url, opts);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new Error(
    `Unsupported database URL${scheme ? ` scheme '${scheme}:'` : ''}: ` +
      'use sqlite:PATH (e.g. sqlite:./data/maxrouter.db, sqlite::memory:) or postgres://USER@HOST:PORT/DB.',
  );
}

/** The file path (or `:memory:`) of a `sqlite:` URL; relative paths resolve against the cwd. */
export function sqlitePath(url: string, dataDir?: string): string {
  let path = url.slice('sqlite:'.length);
  if (path.startsWith('//')) path = path.slice(2); // sqlite:///abs/path and sqlite://./rel
  if (path === ':memory:') return path;
  if (path === '') {
    if (dataDir === undefined) throw new Error('The sqlite: database URL needs a path, e.g. sqlite:./data/maxrouter.db.');
    return resolve(join(dataDir, 'maxrouter.db'));
  }
  return resolve(path);
}

function openSqlite(path: string): Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    // Owner-only from the start: the file holds emails and key hashes, and SQLite gives the WAL
    // and shared-memory files it creates beside it the database file's permissions. An existing
    // file keeps the mode its operator chose.
    closeSync(openSync(path, 'a', 0o600));
  }
  const sqlite = new SqliteDatabase(path, { timeout: 5000 });
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
  } catch (err) {
    sqlite.close();
    throw err;
  }
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { db, dialect: 'sqlite', sqlite, close: () => db.destroy() };
}

function openPostgres(url: string, opts: OpenDatabaseOptions): Database {
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10, types: pgTypes });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The pool drops the client and the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: 'postgres', close: () => db.destroy() };
}
