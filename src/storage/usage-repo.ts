/**
 * Usage rows: one per generation, token counts and metadata only. Written in batches by
 * `metering/usage-writer.ts` as multi-row inserts.
 */
import type { Kysely } from 'kysely';
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

const COLUMNS_PER_ROW = 15;
/**
 * Rows per INSERT statement: bound parameters stay under SQLite's 32 766 (and PostgreSQL's
 * 65 535). Batches up to this size are one statement; larger ones are split inside one
 * transaction, so a batch is still all-or-nothing.
 */
export const MAX_ROWS_PER_INSERT = Math.floor(32_766 / COLUMNS_PER_ROW);

export class UsageRepo {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * Inserts rows as one multi-row INSERT. Idempotent on the generation id (`ON CONFLICT DO
   * NOTHING`), so retrying a batch whose first attempt did commit cannot fail or double-count.
   */
  async insertUsage(rows: readonly UsageRecord[]): Promise<void> {
    if (rows.length === 0) return;
    if (rows.length <= MAX_ROWS_PER_INSERT) {
      await insertChunk(this.db, rows);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += MAX_ROWS_PER_INSERT) {
        await insertChunk(trx, rows.slice(i, i + MAX_ROWS_PER_INSERT));
      }
    });
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

async function insertChunk(db: Kysely<DB>, rows: readonly UsageRecord[]): Promise<void> {
  await db
    .insertInto('usage')
    .values(rows.map(toRow))
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
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
