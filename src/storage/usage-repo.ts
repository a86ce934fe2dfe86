/**
 * Usage rows: one per generation, token counts and metadata only. Written in batches by
 * `metering/usage-writer.ts`, one statement per batch.
 */
import { SqliteAdapter, sql, type Kysely } from 'kysely';
import type { DB, NewUsageRow, UsageRow } from './schema.js';

/** One generation's usage, as the gateway records it. */
export interface UsageRecord {
  /** The generation id returned to the client. */
  id: string;
  keyId: string;
  accountId: string;
  /** The model id the client asked for. */
  model: string;
  /** The provider id (from config) that served it. */
  provider: string;
  /** The model id at that provider. */
  upstreamModel: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
  /** HTTP status returned to the client. */
  status: number;
  latencyMs: number;
  streamed: boolean;
  /** Epoch ms. */
  createdAt: number;
}

/** Columns in insert order, with their PostgreSQL array element types. */
const COLUMNS = [
  ['id', 'text'],
  ['key_id', 'text'],
  ['account_id', 'text'],
  ['model', 'text'],
  ['provider', 'text'],
  ['upstream_model', 'text'],
  ['prompt_tokens', 'integer'],
  ['completion_tokens', 'integer'],
  ['cached_tokens', 'integer'],
  ['cache_write_tokens', 'integer'],
  ['reasoning_tokens', 'integer'],
  ['status', 'integer'],
  ['latency_ms', 'integer'],
  ['streamed', 'integer'],
  ['created_at', 'bigint'],
] as const satisfies ReadonlyArray<readonly [keyof NewUsageRow, string]>;

const COLUMN_LIST = sql.raw(COLUMNS.map(([c]) => c).join(', '));
const SQLITE_EXTRACTS = sql.raw(COLUMNS.map((_, i) => `json_extract(value, '$[${i}]')`).join(', '));

/** The better-sqlite3 handle under Kysely. */
export type SqliteHandle = import('better-sqlite3').Database;

export class UsageRepo {
  readonly #sqlite: boolean;
  /** With the raw SQLite handle: one prepared statement, run per row inside one transaction. */
  readonly #insertRows: ((rows: Array<Array<string | number>>) => void) | undefined;

  constructor(
    private readonly db: Kysely<DB>,
    sqlite?: SqliteHandle,
  ) {
    this.#sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    if (sqlite) {
      const cols = COLUMNS.map(([c]) => c);
      const stmt = sqlite.prepare(
        `insert into usage (${cols.join(', ')}) values (${cols.map(() => '?').join(', ')}) on conflict (id) do nothing`,
      );
      this.#insertRows = sqlite.transaction((rows: Array<Array<string | number>>) => {
        for (const r of rows) stmt.run(r);
      });
    }
  }

  /**
   * Inserts rows with ONE statement whatever their number, with a constant parameter count, so
   * the cost per row is a few microseconds (no per-value query building): SQLite reads the rows
   * from one JSON array (`json_each`), PostgreSQL from one array per column (`unnest`). Given the
   * raw SQLite handle, one prepared statement runs per row inside one transaction (cheaper still).
   * Idempotent on the generation id (`ON CONFLICT DO NOTHING`), so retrying a batch whose first
   * attempt did commit cannot fail or double-count.
   */
  async insertUsage(rows: readonly UsageRecord[]): Promise<void> {
    if (rows.length === 0) return;
    const tuples = rows.map(toTuple);
    if (this.#insertRows) {
      this.#insertRows(tuples);
      return;
    }
    if (this.#sqlite) {
      await sql`insert into usage (${COLUMN_LIST}) select ${SQLITE_EXTRACTS} from json_each(${JSON.stringify(tuples)}) where true on conflict (id) do nothing`.execute(
        this.db,
      );
      return;
    }
    const arrays = COLUMNS.map(([, type], i) => sql`${tuples.map((t) => t[i])}::${sql.raw(type)}[]`);
    await sql`insert into usage (${COLUMN_LIST}) select * from unnest(${sql.join(arrays)}) on conflict (id) do nothing`.execute(this.db);
  }

  /** An account's usage, oldest first. For tests and small reports; not paginated. */
  async listUsage(accountId: string): Promise<UsageRecord[]> {
    const rows = await this.db
      .selectFrom('usage')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }
}

function toTuple(r: UsageRecord): Array<string | number> {
  const row = toRow(r);
  return COLUMNS.map(([c]) => row[c] as string | number);
}

function toRow(r: UsageRecord): NewUsageRow {
  return {
    id: r.id,
    key_id: r.keyId,
    account_id: r.accountId,
    model: r.model,
    provider: r.provider,
    upstream_model: r.upstreamModel,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    cached_tokens: r.cachedTokens,
    cache_write_tokens: r.cacheWriteTokens,
    reasoning_tokens: r.reasoningTokens,
    status: r.status,
    latency_ms: r.latencyMs,
    streamed: r.streamed ? 1 : 0,
    created_at: r.createdAt,
  };
}

function fromRow(r: UsageRow): UsageRecord {
  return {
    id: r.id,
    keyId: r.key_id,
    accountId: r.account_id,
    model: r.model,
    provider: r.provider,
    upstreamModel: r.upstream_model,
    promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens,
    cachedTokens: r.cached_tokens,
    cacheWriteTokens: r.cache_write_tokens,
    reasoningTokens: r.reasoning_tokens,
    status: r.status,
    latencyMs: r.latency_ms,
    streamed: r.streamed === 1,
    createdAt: Number(r.created_at),
  };
}
