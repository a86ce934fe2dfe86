/**
 * Usage rows: one per generation, token counts, cost and metadata only. Written in batches by
 * `metering/usage-writer.ts`, one transaction per batch that also writes the generations'
 * ledger charges and the balances they move.
 */
import { SqliteAdapter, sql, type Kysely } from 'kysely';
import { CHARGE_REASON, generateLedgerId } from './ledger-repo.js';
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
  /**
   * What the generation cost, integer nano-USD ≥ 0. Stored as given; a value that is not a
   * non-negative integer is stored rounded (negative or non-finite: 0) rather than failing the
   * batch (a rejected batch would block the usage writer's queue).
   */
  costNano: number;
  /** True when the token counts were estimated (e.g. a client-aborted stream without upstream usage). */
  costEstimated: boolean;
  /**
   * True: also charge the account — a ledger `charge` row of −costNano (generation_id = id) and
   * the balance moved by it, in the same transaction. Ignored when costNano is 0. Not stored
   * on the usage row: a charge is the ledger row.
   */
  charge: boolean;
}

/** A usage row as stored: the record without the `charge` instruction. */
export type StoredUsage = Omit<UsageRecord, 'charge'>;

/** One generation, as `getGeneration` returns it. */
export interface Generation extends StoredUsage {
  /** What the ledger charged for it (positive nano-USD), 0 when it was not charged. */
  chargedNano: number;
}

export interface SumCostFilter {
  keyId?: string;
  accountId?: string;
  /** Epoch ms, inclusive. */
  since?: number;
}

export interface ReportQuery {
  /** Omitted: every account. */
  accountId?: string;
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
}

/** Usage of one account and one model on one UTC day. */
export interface ReportRow {
  accountId: string;
  /** The API key that made the requests. */
  keyId: string;
  /** UTC, `YYYY-MM-DD`. */
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  costNano: number;
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
  ['cost_nano', 'bigint'],
  ['cost_estimated', 'integer'],
] as const satisfies ReadonlyArray<readonly [keyof NewUsageRow, string]>;

const COLUMN_LIST = sql.raw(COLUMNS.map(([c]) => c).join(', '));
const SQLITE_EXTRACTS = sql.raw(COLUMNS.map((_, i) => `json_extract(value, '$[${i}]')`).join(', '));

const MS_PER_DAY = 86_400_000;

/** The better-sqlite3 handle under Kysely. */
export type SqliteHandle = import('better-sqlite3').Database;

/** One charge to write: [ledger id, account id, amount (negative), generation id, created at]. */
type ChargeTuple = [string, string, number, string, number];

export class UsageRepo {
  readonly #sqlite: boolean;
  readonly #handle: SqliteHandle | undefined;
  /** With the raw SQLite handle: prepared statements, run per row inside one transaction. */
  readonly #insertRows: ((rows: readonly UsageRecord[]) => void) | undefined;

  constructor(
    private readonly db: Kysely<DB>,
    sqlite?: SqliteHandle,
  ) {
    this.#sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    this.#handle = sqlite;
    if (sqlite) {
      const cols = COLUMNS.map(([c]) => c);
      const usage = sqlite.prepare(
        `insert into usage (${cols.join(', ')}) values (${cols.map(() => '?').join(', ')}) on conflict (id) do nothing`,
      );
      // The account must exist (no foreign key): a charge of an unknown account is not written.
      const charge = sqlite.prepare(
        `insert into ledger (id, account_id, kind, amount_nano, reason, generation_id, created_at) ` +
          `select ?, ?, 'charge', ?, '${CHARGE_REASON}', ?, ? where exists (select 1 from accounts where id = ?) ` +
          `on conflict (generation_id) do nothing`,
      );
      const balance = sqlite.prepare('update accounts set balance_nano = balance_nano + ? where id = ?');
      this.#insertRows = sqlite.transaction((rows: readonly UsageRecord[]) => {
        let deltas: Map<string, number> | undefined;
        for (const r of rows) {
          usage.run(toTuple(r));
          // Rows that do not charge (deployments in 'track' mode) cost no further statement.
          if (r.charge !== true) continue;
          const cost = costOf(r);
          if (cost === 0) continue;
          // Only a ledger row actually inserted moves the balance: a replayed batch changes nothing.
          if (charge.run(generateLedgerId(), r.accountId, -cost, r.id, r.createdAt, r.accountId).changes === 1) {
            deltas ??= new Map();
            deltas.set(r.accountId, (deltas.get(r.accountId) ?? 0) - cost);
          }
        }
        if (deltas) for (const [accountId, delta] of deltas) balance.run(delta, accountId);
      });
    }
  }

  /**
   * Inserts a batch in ONE transaction: the usage rows, the ledger charge of every row with
   * `charge` and a cost, and the balance changes of those charges. Idempotent on the
   * generation id: usage rows `ON CONFLICT (id) DO NOTHING`, charges unique per generation, and
   * balances moved only by charge rows actually inserted — so retrying a batch whose first
   * attempt did commit changes nothing.
   *
   * Cost per row stays a few microseconds, with a constant parameter count whatever the batch
   * size: given the raw SQLite handle, prepared statements run per row inside one transaction;
   * otherwise SQLite reads the rows from one JSON array (`json_each`) and PostgreSQL from one
   * array per column (`unnest`), usage, charges and balances in one statement. A batch without
   * charges is one insert statement.
   */
  async insertUsage(rows: readonly UsageRecord[]): Promise<void> {
    if (rows.length === 0) return;
    // A Kysely transaction open on this connection (e.g. a ledger append between two awaits)
    // would make the raw transaction a savepoint inside it, committed or rolled back with it:
    // go through Kysely then, which waits for that transaction to end.
    if (this.#insertRows && !this.#handle!.inTransaction) {
      this.#insertRows(rows);
      return;
    }
    const tuples = rows.map(toTuple);
    const charges = chargesOf(rows);
    if (this.#sqlite) {
      const insertUsage = sql`insert into usage (${COLUMN_LIST}) select ${SQLITE_EXTRACTS} from json_each(${JSON.stringify(tuples)}) where true on conflict (id) do nothing`;
      if (charges.length === 0) {
        await insertUsage.execute(this.db);
        return;
      }
      await this.db.transaction().execute(async (trx) => {
        await insertUsage.execute(trx);
        const { rows: inserted } = await sql<{ account_id: string; amount_nano: number }>`
          insert into ledger (id, account_id, kind, amount_nano, reason, generation_id, created_at)
          select json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'charge', json_extract(value, '$[2]'),
                 ${CHARGE_REASON}, json_extract(value, '$[3]'), json_extract(value, '$[4]')
          from json_each(${JSON.stringify(charges)})
          where exists (select 1 from accounts where id = json_extract(value, '$[1]'))
          on conflict (generation_id) do nothing
          returning account_id, amount_nano`.execute(trx);
        const deltas = new Map<string, number>();
        for (const r of inserted) deltas.set(r.account_id, (deltas.get(r.account_id) ?? 0) + Number(r.amount_nano));
        for (const [accountId, delta] of [...deltas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
          await trx
            .updateTable('accounts')
            .set((eb) => ({ balance_nano: eb('balance_nano', '+', delta) }))
            .where('id', '=', accountId)
            .execute();
        }
      });
      return;
    }
    const arrays = COLUMNS.map(([, type], i) => sql`${tuples.map((t) => t[i])}::${sql.raw(type)}[]`);
    const insertUsage = sql`insert into usage (${COLUMN_LIST}) select * from unnest(${sql.join(arrays)}) on conflict (id) do nothing`;
    if (charges.length === 0) {
      await insertUsage.execute(this.db);
      return;
    }
    // One statement, so one transaction. Charges of unknown accounts are skipped; `returning`
    // yields only the charge rows actually inserted, and only those move balances. The rows to
    // update are locked in id order first (`l`), so concurrent batches cannot deadlock on them;
    // FOR NO KEY UPDATE is what the UPDATE takes anyway.
    const col = (i: number) => charges.map((c) => c[i]);
    await sql`
      with u as (${insertUsage}),
      c as (
        insert into ledger (id, account_id, kind, amount_nano, reason, generation_id, created_at)
        select x.id, x.account_id, 'charge', x.amount_nano, ${CHARGE_REASON}, x.generation_id, x.created_at
        from unnest(${col(0)}::text[], ${col(1)}::text[], ${col(2)}::bigint[], ${col(3)}::text[], ${col(4)}::bigint[])
          as x(id, account_id, amount_nano, generation_id, created_at)
        where exists (select 1 from accounts a where a.id = x.account_id)
        on conflict (generation_id) do nothing
        returning account_id, amount_nano
      ),
      s as (select account_id, cast(sum(amount_nano) as bigint) as delta from c group by account_id),
      l as (select a.id from accounts a where a.id in (select account_id from s) order by a.id for no key update)
      update accounts set balance_nano = accounts.balance_nano + s.delta
      from s join l on l.id = s.account_id
      where accounts.id = s.account_id`.execute(this.db);
  }

  /** An account's usage, oldest first. For tests and small reports; not paginated. */
  async listUsage(accountId: string): Promise<StoredUsage[]> {
    const rows = await this.db
      .selectFrom('usage')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }

  /** One generation of this account, with what the ledger charged for it; undefined when it is not this account's. */
  async getGeneration(id: string, accountId: string): Promise<Generation | undefined> {
    const row = await this.db
      .selectFrom('usage as u')
      .leftJoin('ledger as l', 'l.generation_id', 'u.id')
      .selectAll('u')
      .select('l.amount_nano as charged_amount')
      .where('u.id', '=', id)
      .where('u.account_id', '=', accountId)
      .executeTakeFirst();
    if (!row) return undefined;
    const { charged_amount, ...usage } = row;
    return { ...fromRow(usage), chargedNano: charged_amount === null ? 0 : Math.abs(Number(charged_amount)) };
  }

  /**
   * Total cost (nano-USD) of the usage rows matching every given filter — charged or only
   * tracked. With a key and `since` it reads the (key_id, created_at) index: a key's spend in
   * its current limit window.
   */
  async sumCost(filter: SumCostFilter = {}): Promise<number> {
    let q = this.db.selectFrom('usage').select(sql<number>`cast(coalesce(sum(cost_nano), 0) as bigint)`.as('total'));
    if (filter.keyId !== undefined) q = q.where('key_id', '=', filter.keyId);
    if (filter.accountId !== undefined) q = q.where('account_id', '=', filter.accountId);
    if (filter.since !== undefined) q = q.where('created_at', '>=', filter.since);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.total);
  }

  /**
   * Usage between `from` (inclusive) and `to` (exclusive), grouped by account, UTC day and
   * model; ordered by day, account, model. The day is the integer `created_at / 86400000`
   * (the same integer division on SQLite and PostgreSQL for epoch ms ≥ 0), formatted here.
   */
  async report(query: ReportQuery): Promise<ReportRow[]> {
    const { accountId, from, to } = query;
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0) {
      throw new RangeError('report: from and to must be epoch milliseconds (integers ≥ 0).');
    }
    const day = sql<number>`created_at / ${sql.lit(MS_PER_DAY)}`;
    const total = (column: string) => sql<number>`cast(coalesce(sum(${sql.ref(column)}), 0) as bigint)`;
    let q = this.db
      .selectFrom('usage')
      .select([
        'account_id',
        'key_id',
        day.as('day'),
        'model',
        sql<number>`count(*)`.as('requests'),
        total('prompt_tokens').as('prompt_tokens'),
        total('completion_tokens').as('completion_tokens'),
        total('cached_tokens').as('cached_tokens'),
        total('reasoning_tokens').as('reasoning_tokens'),
        total('cost_nano').as('cost_nano'),
      ])
      .where('created_at', '>=', from)
      .where('created_at', '<', to);
    if (accountId !== undefined) q = q.where('account_id', '=', accountId);
    const rows = await q
      .groupBy(['account_id', 'key_id', day, 'model'])
      .orderBy(day)
      .orderBy('account_id')
      .orderBy('key_id')
      .orderBy('model')
      .execute();
    return rows.map((r) => ({
      accountId: r.account_id,
      keyId: r.key_id,
      day: new Date(Number(r.day) * MS_PER_DAY).toISOString().slice(0, 10),
      model: r.model,
      requests: Number(r.requests),
      promptTokens: Number(r.prompt_tokens),
      completionTokens: Number(r.completion_tokens),
      cachedTokens: Number(r.cached_tokens),
      reasoningTokens: Number(r.reasoning_tokens),
      costNano: Number(r.cost_nano),
    }));
  }
}

/** The cost to store and charge: a non-negative safe integer (see `UsageRecord.costNano`). */
function costOf(r: UsageRecord): number {
  const c = r.costNano;
  if (Number.isSafeInteger(c) && c >= 0) return c;
  return typeof c === 'number' && Number.isFinite(c) && c > 0 ? Math.min(Math.round(c), Number.MAX_SAFE_INTEGER) : 0;
}

function chargesOf(rows: readonly UsageRecord[]): ChargeTuple[] {
  const out: ChargeTuple[] = [];
  for (const r of rows) {
    if (r.charge !== true) continue;
    const cost = costOf(r);
    if (cost > 0) out.push([generateLedgerId(), r.accountId, -cost, r.id, r.createdAt]);
  }
  return out;
}

/** A row's values in `COLUMNS` order (built directly: this runs for every request). */
function toTuple(r: UsageRecord): Array<string | number> {
  return [
    r.id,
    r.keyId,
    r.accountId,
    r.model,
    r.provider,
    r.upstreamModel,
    r.promptTokens,
    r.completionTokens,
    r.cachedTokens,
    r.cacheWriteTokens,
    r.reasoningTokens,
    r.status,
    r.latencyMs,
    r.streamed ? 1 : 0,
    r.createdAt,
    costOf(r),
    r.costEstimated === true ? 1 : 0,
  ];
}

/** The same row as named columns: checks `toTuple`'s order once, when this module loads. */
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
    cost_nano: costOf(r),
    cost_estimated: r.costEstimated === true ? 1 : 0,
  };
}

function fromRow(r: UsageRow): StoredUsage {
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
    costNano: Number(r.cost_nano),
    costEstimated: r.cost_estimated === 1,
  };
}

{
  const sample: UsageRecord = {
    id: 'a', keyId: 'b', accountId: 'c', model: 'd', provider: 'e', upstreamModel: 'f',
    promptTokens: 1, completionTokens: 2, cachedTokens: 3, cacheWriteTokens: 4, reasoningTokens: 5,
    status: 6, latencyMs: 7, streamed: true, createdAt: 8, costNano: 9, costEstimated: true, charge: false,
  };
  const row = toRow(sample);
  const tuple = toTuple(sample);
  if (COLUMNS.some(([c], i) => row[c] !== tuple[i])) throw new Error('usage-repo: toTuple does not follow COLUMNS');
}
