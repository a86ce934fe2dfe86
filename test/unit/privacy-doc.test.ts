/**
 * docs/privacy.md lists every table and column the system stores and every log field; this test
 * fails when the migrated schema or the access-log allowlist and the document disagree.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { ACCESS_LOG_FIELDS } from '../../src/server/access-log.js';
import { openDatabase } from '../../src/storage/database.js';
import { migrateToLatest } from '../../src/storage/migrations.js';

const doc = readFileSync(resolve(fileURLToPath(import.meta.url), '../../../docs/privacy.md'), 'utf8');

function tableRows(section: string): string[][] {
  const body = doc.split(`## ${section}`)[1]!.split('\n## ')[0]!;
  return body
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
    .slice(1)
    .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
}

describe('docs/privacy.md', () => {
  it('lists exactly the columns of every table the migrations create', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mr-privacy-'));
    const database = await openDatabase(`sqlite:${join(dir, 'db.sqlite')}`);
    try {
      await migrateToLatest(database);
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'`.execute(database.db);
      const actual: string[] = [];
      for (const { name } of tables.rows) {
        const cols = await sql<{ name: string }>`select name from pragma_table_info(${name})`.execute(database.db);
        for (const c of cols.rows) actual.push(`${name}.${c.name}`);
      }
      const documented = tableRows('Database').map(([table, column]) => `${table}.${column}`);
      expect(documented.sort()).toEqual(actual.sort());
    } finally {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists exactly the access-log fields', () => {
    expect(tableRows('Logs').map(([field]) => field).sort()).toEqual([...ACCESS_LOG_FIELDS].sort());
  });
});
