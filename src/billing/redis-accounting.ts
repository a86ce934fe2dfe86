/**
 * Spending control shared by several gateway instances over one database: credit balances and
 * per-key spend limits with worst-case reservations, like `Accounting`, but with every number
 * that admission reads kept in Redis and every check-and-reserve done in one Lua script, so
 * that two instances can never both spend the same credit.
 *
 * Per account (credits mode) and per key (with a spend limit), under `prefix`:
 *
 *   a:<account>:bal         the database balance, seeded from `source.balance()`, then moved by
 *                           every charge committed (DECRBY); deleted to force a fresh read
 *   k:<key>:spent:<window>  the key's spend since the window start (epoch ms), seeded from
 *                           `source.keySpend()`, then moved by every charge committed (INCRBY)
 *   …:holds                 hash: `r:<hold>` → worst case of a request in flight, `p:<hold>` →
 *                           cost of a settled request whose usage row is not written yet, and
 *                           the sums `#r` and `#p`
 *   …:exp                   sorted set: the same fields scored by their lease expiry (Redis
 *                           server time, ms); expired holds are pruned before every admission
 *   …:applied               the sum of all charges committed through Redis (seeding, below)
 *   …:gen                   bumped by every invalidation and top-up (seeding, below)
 *   a:<account>:sync, k:<key>:sync:<window>
 *                           "resynced recently" markers that live `refreshMs`
 *
 * Admission is  bal − #p ≤ 0 or worst case > bal − #p − #r  → 402, and for a key
 * limit − spent − #p − #r;  otherwise the worst case becomes a hold, in the same script.
 *
 * Seeding without ever over-estimating (the race between reading the database and writing the
 * value while another instance commits a batch or a top-up): a seed first reads `applied` (a0)
 * and `gen` (g0), then reads the database, then in one script writes
 *   bal = db − (applied − a0)        (spent = db + (applied − a0) for a key)
 * unless `gen` moved, in which case it starts over. A charge is committed to the database
 * before its script runs, so a charge whose script ran before a0 is in `db`, one whose script
 * runs after the seed moves the seeded value itself, and one whose script ran in between is
 * subtracted by the difference — at worst twice when the database read already saw it (a
 * transient under-estimate, gone at the next resync). A top-up cannot be handled that way
 * (adding it twice would over-estimate), so `credited` and the invalidations delete the value
 * and bump `gen`: a seed that overlaps them is discarded, the next use reads the database again.
 *
 * Leases: every hold expires `leaseMs` after it was last renewed; this process renews its own
 * holds (in-flight reservations and pending charges) every `renewEveryMs` and re-adds any that
 * Redis lost, so a long stream keeps its reservation, a crashed instance's holds disappear
 * after at most `leaseMs`, and a restarted Redis gets this instance's holds back.
 *
 * Keys and values hold ids, window starts and integer amounts only (never request content), and
 * every key written has a TTL. The leases use the Redis server's clock; `now` is used for spend
 * windows only (it must be the clock that dates the usage rows).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GatewayError } from '../ir/errors.js';
import type { UsageRecord } from '../storage/usage-repo.js';
import {
  accountingUnavailable,
  creditsRefusal,
  keyLimitRefusal,
  spendApplies,
  windowStart,
  type AccountingSource,
  type Admission,
  type LimitReset,
  type SpendControl,
  type SpendSubject,
} from './accounting.js';

export interface RedisAccountingOptions {
  /**
   * The connection (not closed by `close()`). Commands should fail fast when Redis is away: e.g.
   * `enableOfflineQueue: false`, `maxRetriesPerRequest: 0`, `commandTimeout: 200`.
   */
  redis: Redis;
  /** When Redis cannot be reached: 'open' admits without limits (and warns), 'closed' answers 503. */
  onStoreFailure: 'open' | 'closed';
  /** Prefix of every key (default `mr:bill:`). */
  prefix?: string;
  /** The clock for spend windows (epoch ms); the usage rows' clock. Default `Date.now`. */
  now?: () => number;
  /** How often the values read from the database are read again, per account and key, across all instances (default 5 000 ms). */
  refreshMs?: number;
  /** How long a hold lives without renewal (default 600 000 ms). */
  leaseMs?: number;
  /** How often this process renews its holds (default leaseMs / 3, at most 10 000 ms). */
  renewEveryMs?: number;
  /** TTL of the seeded values and counters, refreshed on use (default 3 600 000 ms). */
  valueTtlMs?: number;
  /** Called (at most once per `warningIntervalMs`) when Redis is unreachable; for the log. */
  onWarning?: (message: string, error: SpendStoreUnavailableError) => void;
  /** Default 10 000 ms. */
  warningIntervalMs?: number;
}

export interface RedisAccountingStats {
  /** Requests admitted under the shared limits. */
  admitted: number;
  /** Requests refused with 402. */
  refused: number;
  /** Requests admitted without limits because Redis was unreachable ('open'). */
  failOpen: number;
  /** Redis failures seen by `admit` (both modes). */
  storeErrors: number;
  /** Redis or database failures after admission (settle, commit, renewal, resync, invalidation); not thrown. */
  backgroundErrors: number;
  /** Database reads that (re)seeded a value. */
  seeds: number;
  /** Holds Redis no longer had when this process renewed them (re-added). */
  leasesLost: number;
}

/**
 * Redis could not be reached or did not answer in time. Rendered as 503 (code `MR_ERR_INTERNAL`
 * with status 503 and `retry-after: 1`, as the rate limiter's store error) when admission fails
 * closed; the original error is kept as `cause`.
 */
export class SpendStoreUnavailableError extends GatewayError {
  constructor(cause?: unknown) {
    super('MR_ERR_INTERNAL', 'Spending limits cannot be checked right now. Retry shortly.', { status: 503, retryAfter: 1 });
    this.name = 'SpendStoreUnavailableError';
    if (cause !== undefined) this.cause = cause;
  }
}

// ---------------------------------------------------------------------------------------------
// Lua
// ---------------------------------------------------------------------------------------------

/*
 * Amounts are integers below 2^53, exact in Lua's doubles; they are handed to Redis as decimal
 * strings (`num`), never in exponent notation. Scripts that read TIME rely on effect
 * replication (the default since Redis 5, the only mode since 7).
 */
const LUA_PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(x) return string.format('%d', x) end
local function prune(h, e)
  local gone = redis.call('ZRANGEBYSCORE', e, '-inf', now)
  if #gone == 0 then return end
  for _, f in ipairs(gone) do
    local v = redis.call('HGET', h, f)
    if v then
      redis.call('HDEL', h, f)
      redis.call('HINCRBY', h, '#' .. string.sub(f, 1, 1), num(-tonumber(v)))
    end
  end
  redis.call('ZREMRANGEBYSCORE', e, '-inf', now)
end
`;

/**
 * KEYS: [bal, holds, exp, sync] if ARGV[1] = '1' (credits), then [spent, holds, exp, sync] if
 * ARGV[2] = '1' (key limit). ARGV: 3 worst case, 4 limit, 5 hold id, 6 lease ms, 7 holds TTL,
 * 8 value TTL, 9 refresh ms.
 * Returns {-1, which (1 account, 2 key, 3 both)} when a value must be seeded first; else
 * {status, x, y, resync}: 1 admitted; 2 key refused, x = left; 3 credits refused,
 * x = balance, y = available; resync = which values are due for a re-read (same bits).
 */
const LUA_ADMIT = `${LUA_PRELUDE}
local a, k
local i = 1
if ARGV[1] == '1' then a = {KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]}; i = i + 4 end
if ARGV[2] == '1' then k = {KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]} end
local bal, spent
local need = 0
if a then
  bal = redis.call('GET', a[1])
  if not bal then need = need + 1 end
end
if k then
  spent = redis.call('GET', k[1])
  if not spent then need = need + 2 end
end
if need > 0 then return {-1, need, 0, 0} end
local resync = 0
if a then
  redis.call('PEXPIRE', a[1], ARGV[8])
  if redis.call('SET', a[4], '1', 'NX', 'PX', ARGV[9]) then resync = resync + 1 end
end
if k then
  redis.call('PEXPIRE', k[1], ARGV[8])
  if redis.call('SET', k[4], '1', 'NX', 'PX', ARGV[9]) then resync = resync + 2 end
end
local function held(h)
  local s = redis.call('HMGET', h, '#r', '#p')
  return tonumber(s[1] or '0'), tonumber(s[2] or '0')
end
local worst = tonumber(ARGV[3])
if k then
  prune(k[2], k[3])
  local r, p = held(k[2])
  local left = tonumber(ARGV[4]) - tonumber(spent) - p - r
  if left <= 0 or worst > left then return {2, left, 0, resync} end
end
if a then
  prune(a[2], a[3])
  local r, p = held(a[2])
  local balance = tonumber(bal) - p
  local available = balance - r
  if balance <= 0 or worst > available then return {3, balance, available, resync} end
end
local field = 'r:' .. ARGV[5]
local expiry = num(now + tonumber(ARGV[6]))
local function hold(c)
  redis.call('HSET', c[2], field, ARGV[3])
  redis.call('HINCRBY', c[2], '#r', ARGV[3])
  redis.call('ZADD', c[3], expiry, field)
  redis.call('PEXPIRE', c[2], ARGV[7])
  redis.call('PEXPIRE', c[3], ARGV[7])
end
if a then hold(a) end
if k then hold(k) end
return {1, 0, 0, resync}
`;

/**
 * A request ended: its reservation `r:<hold>` is replaced by its cost `p:<hold>` (nothing when
 * the cost is 0). KEYS: [holds, exp] per cell. ARGV: hold id, cost, lease ms, holds TTL.
 */
const LUA_SETTLE = `${LUA_PRELUDE}
local rf = 'r:' .. ARGV[1]
local pf = 'p:' .. ARGV[1]
local cost = tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local h, e = KEYS[i], KEYS[i + 1]
  local v = redis.call('HGET', h, rf)
  if v then
    redis.call('HDEL', h, rf)
    redis.call('HINCRBY', h, '#r', num(-tonumber(v)))
    redis.call('ZREM', e, rf)
  end
  if cost > 0 then
    if not redis.call('HGET', h, pf) then
      redis.call('HSET', h, pf, ARGV[2])
      redis.call('HINCRBY', h, '#p', ARGV[2])
    end
    redis.call('ZADD', e, num(now + tonumber(ARGV[3])), pf)
    redis.call('PEXPIRE', h, ARGV[4])
    redis.call('PEXPIRE', e, ARGV[4])
  end
end
return 1
`;

/**
 * Charges committed to the database (one call per usage batch). KEYS: [value, applied, holds,
 * exp] per cell. ARGV: 1 value TTL, then per cell: sign (-1: balance, 1: spend), amount,
 * number of holds, the hold ids. The value moves only when it exists (a missing one is read
 * from the database, which has the charge); `applied` always moves (see the seeding rule).
 */
const LUA_COMMIT = `
local function num(x) return string.format('%d', x) end
local j = 2
for i = 1, #KEYS, 4 do
  local value, applied, h, e = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  local sign = ARGV[j]
  local amount = ARGV[j + 1]
  local n = tonumber(ARGV[j + 2])
  if tonumber(amount) > 0 then
    if redis.call('EXISTS', value) == 1 then
      if sign == '-1' then redis.call('DECRBY', value, amount) else redis.call('INCRBY', value, amount) end
    end
    redis.call('INCRBY', applied, amount)
    redis.call('PEXPIRE', applied, ARGV[1])
  end
  for m = 1, n do
    local id = ARGV[j + 2 + m]
    for _, pre in ipairs({'r', 'p'}) do
      local f = pre .. ':' .. id
      local v = redis.call('HGET', h, f)
      if v then
        redis.call('HDEL', h, f)
        redis.call('HINCRBY', h, '#' .. pre, num(-tonumber(v)))
        redis.call('ZREM', e, f)
      end
    end
  end
  j = j + 3 + n
end
return 1
`;

/** Seeding, step 1. KEYS: applied, gen. ARGV: value TTL. Returns {applied, gen}. */
const LUA_MARK = `
redis.call('SET', KEYS[1], '0', 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '0', 'NX')
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
`;

/**
 * Seeding, step 3. KEYS: value, applied, gen, sync. ARGV: 1 database value, 2 applied at
 * step 1, 3 gen at step 1, 4 sign (-1 balance, 1 spend), 5 value TTL, 6 '1' overwrite /
 * '0' only when missing, 7 refresh ms. Returns 1, or 0 when `gen` moved (start over).
 */
const LUA_SEED = `
local function num(x) return string.format('%d', x) end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 0 end
local applied = tonumber(redis.call('GET', KEYS[2]) or '0')
local delta = applied - tonumber(ARGV[2])
if delta < 0 then delta = applied end
local v = num(tonumber(ARGV[1]) + tonumber(ARGV[4]) * delta)
if ARGV[6] == '1' then
  redis.call('SET', KEYS[1], v, 'PX', ARGV[5])
else
  redis.call('SET', KEYS[1], v, 'NX', 'PX', ARGV[5])
end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[7])
return 1
`;

/** Forget seeded values. KEYS: gen, then the values. ARGV: value TTL. */
const LUA_INVALIDATE = `
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

/**
 * Renew this process's holds of one cell, re-adding those Redis lost. KEYS: holds, exp. ARGV:
 * lease ms, holds TTL, then field, amount pairs. Returns how many were re-added.
 */
const LUA_RENEW = `${LUA_PRELUDE}
local h, e = KEYS[1], KEYS[2]
local expiry = num(now + tonumber(ARGV[1]))
local lost = 0
for i = 3, #ARGV, 2 do
  local f = ARGV[i]
  if redis.call('HEXISTS', h, f) == 0 then
    redis.call('HSET', h, f, ARGV[i + 1])
    redis.call('HINCRBY', h, '#' .. string.sub(f, 1, 1), ARGV[i + 1])
    lost = lost + 1
  end
  redis.call('ZADD', e, expiry, f)
end
redis.call('PEXPIRE', h, ARGV[2])
redis.call('PEXPIRE', e, ARGV[2])
return lost
`;

type Reply = Array<number | string | null>;

interface Scripts {
  mrSpendAdmit(numKeys: number, ...args: Array<string | number>): Promise<Reply>;
  mrSpendSettle(numKeys: number, ...args: Array<string | number>): Promise<number>;
  mrSpendCommit(numKeys: number, ...args: Array<string | number>): Promise<number>;
  mrSpendMark(applied: string, gen: string, ttl: number): Promise<Reply>;
  mrSpendSeed(value: string, applied: string, gen: string, sync: string, ...args: Array<string | number>): Promise<number>;
  mrSpendInvalidate(numKeys: number, ...args: Array<string | number>): Promise<number>;
  mrSpendRenew(holds: string, exp: string, ...args: Array<string | number>): Promise<number>;
}

const SCRIPTS: ReadonlyArray<[keyof Scripts, string, number | undefined]> = [
  ['mrSpendAdmit', LUA_ADMIT, undefined],
  ['mrSpendSettle', LUA_SETTLE, undefined],
  ['mrSpendCommit', LUA_COMMIT, undefined],
  ['mrSpendMark', LUA_MARK, 2],
  ['mrSpendSeed', LUA_SEED, 4],
  ['mrSpendInvalidate', LUA_INVALIDATE, undefined],
  ['mrSpendRenew', LUA_RENEW, 2],
];

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/** One account's credits, or one key's spend in one window, and the Redis keys behind it. */
interface Cell {
  kind: 'account' | 'key';
  id: string;
  /** The key's window start; 0 for an account. */
  window: number;
  /** `bal` or `spent:<window>`. */
  value: string;
  applied: string;
  gen: string;
  holds: string;
  exp: string;
  sync: string;
}

/** This implementation's hold. */
class RedisAdmission implements Admission {
  settled = false;
  constructor(
    readonly reserved: number,
    /** '' when admitted without a hold (Redis unreachable, failing open). */
    readonly holdId: string,
    /** The account whose credits it holds (credits mode). */
    readonly accountId: string | undefined,
    /** The key whose limit it holds (a spend limit). */
    readonly keyId: string | undefined,
    readonly limitReset: LimitReset | null,
  ) {}
}

/** A hold of this process, as renewals re-assert it. */
interface LocalHold {
  /** `r:<hold>` (in flight) or `p:<hold>` (pending charge). */
  field: string;
  amount: number;
  accountId: string | undefined;
  keyId: string | undefined;
}

/** A charge settled here whose usage row is not written yet. */
interface PendingCharge {
  holdId: string;
  accountId: string | undefined;
  keyId: string | undefined;
  /** The key's window when the request was settled (≈ its usage row's time). */
  keyWindow: number;
  /** Epoch ms when settled. */
  at: number;
  cost: number;
  /** The settle script, which must run before the commit script. */
  settling: Promise<void>;
}

/** One cell's part of a commit script. */
interface CommitOp {
  cell: Cell;
  amount: number;
  holdIds: string[];
}

/** A commit script that failed, retried until `leaseMs` after it first failed. */
interface UnsentCommit {
  ops: CommitOp[];
  since: number;
}

/** Attempts at seeding before giving up (only invalidations that keep racing make it retry). */
const MAX_SEED_ATTEMPTS = 5;
/** Values whose completed seeds are remembered (see `admit`). */
const MAX_SEEDED_REMEMBERED = 10_000;
/** Holds outlive their last renewal's lease by this much (the hash and sorted set TTL). */
const HOLDS_TTL_MARGIN_MS = 60_000;

function newHoldId(): string {
  return randomBytes(8).toString('hex');
}

/** What a usage row is charged and counted (the usage repository's normalisation). */
function amountOf(costNano: number): number {
  if (Number.isSafeInteger(costNano) && costNano >= 0) return costNano;
  return typeof costNano === 'number' && Number.isFinite(costNano) && costNano > 0 ? Math.min(Math.round(costNano), Number.MAX_SAFE_INTEGER) : 0;
}

export class RedisAccounting implements SpendControl {
  readonly stats: RedisAccountingStats = { admitted: 0, refused: 0, failOpen: 0, storeErrors: 0, backgroundErrors: 0, seeds: 0, leasesLost: 0 };
  readonly onStoreFailure: 'open' | 'closed';
  readonly #source: AccountingSource;
  readonly #redis: Redis;
  readonly #scripts: Scripts;
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #refreshMs: number;
  readonly #leaseMs: number;
  readonly #renewEveryMs: number;
  readonly #valueTtlMs: number;
  readonly #holdsTtlMs: number;
  readonly #onWarning: ((message: string, error: SpendStoreUnavailableError) => void) | undefined;
  readonly #warningIntervalMs: number;
  #lastWarningAt: number | undefined;
  /** Hold id → this process's hold (in flight or pending), for renewals. */
  readonly #held = new Map<string, LocalHold>();
  /** Generation id → charge settled here, until its usage row is committed. */
  readonly #pending = new Map<string, PendingCharge>();
  readonly #pendingByAccount = new Map<string, number>();
  /** Seeds in progress, by value key (concurrent requests share one database read). */
  readonly #seeding = new Map<string, Promise<void>>();
  /** Seeds completed, by value key (a request that raced one retries without reading again). */
  readonly #seeded = new Map<string, number>();
  /** Windows this process used per key (what `invalidateKey` deletes). */
  readonly #keyWindows = new Map<string, Set<number>>();
  #unsent: UnsentCommit[] = [];
  /** Background Redis writes not finished yet (`idle()` waits for them). */
  readonly #background = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(source: AccountingSource, opts: RedisAccountingOptions) {
    this.#source = source;
    this.#redis = opts.redis;
    this.onStoreFailure = opts.onStoreFailure;
    this.#prefix = opts.prefix ?? 'mr:bill:';
    this.#now = opts.now ?? Date.now;
    this.#refreshMs = Math.max(1, Math.floor(opts.refreshMs ?? 5_000));
    this.#leaseMs = Math.max(1, Math.floor(opts.leaseMs ?? 600_000));
    this.#renewEveryMs = Math.max(1, Math.floor(opts.renewEveryMs ?? Math.min(this.#leaseMs / 3, 10_000)));
    this.#valueTtlMs = Math.max(1, Math.floor(opts.valueTtlMs ?? 3_600_000));
    this.#holdsTtlMs = this.#leaseMs + HOLDS_TTL_MARGIN_MS;
    this.#onWarning = opts.onWarning;
    this.#warningIntervalMs = opts.warningIntervalMs ?? 10_000;
    for (const [name, lua, numberOfKeys] of SCRIPTS) {
      if (!(name in this.#redis)) this.#redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
      // Loaded up front, so that the first EVALSHA of each script cannot fail with NOSCRIPT and
      // be re-sent behind later commands (the order of settle and commit matters).
      this.#redis.script('LOAD', lua).catch(() => undefined);
    }
    this.#scripts = this.#redis as unknown as Scripts;
  }

  /** Whether this caller's requests need admission at all (credits, or a key limit). */
  static applies(subject: SpendSubject): boolean {
    return spendApplies(subject);
  }

  async admit(subject: SpendSubject, worstCaseNano: number, describe: () => string): Promise<Admission> {
    // Redis counts in integers: a fraction rounds up, anything unbounded is refused as too dear.
    const worst = Number.isFinite(worstCaseNano) ? Math.min(Math.max(0, Math.ceil(worstCaseNano)), Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER;
    const credits = subject.billingMode === 'credits';
    const limit = subject.spendLimitNano;
    const account = credits ? this.#accountCell(subject.accountId) : undefined;
    const key = limit !== null ? this.#keyCell(subject.keyId, windowStart(subject.limitReset, this.#now())) : undefined;
    if (account === undefined && key === undefined) return new RedisAdmission(worstCaseNano, '', undefined, undefined, subject.limitReset);
    if (key) this.#rememberWindow(key);
    const holdId = newHoldId();
    const keys: string[] = [];
    if (account) keys.push(account.value, account.holds, account.exp, account.sync);
    if (key) keys.push(key.value, key.holds, key.exp, key.sync);
    const args = [
      account ? '1' : '0',
      key ? '1' : '0',
      worst,
      limit ?? 0,
      holdId,
      this.#leaseMs,
      this.#holdsTtlMs,
      this.#valueTtlMs,
      this.#refreshMs,
    ];
    for (let attempt = 0; ; attempt++) {
      const seededBefore = [account, key].map((c) => (c ? (this.#seeded.get(c.value) ?? 0) : 0));
      let reply: Reply;
      try {
        reply = await this.#call(() => this.#scripts.mrSpendAdmit(keys.length, ...keys, ...args));
      } catch (err) {
        return this.#storeFailed(err, subject, worstCaseNano);
      }
      const status = Number(reply[0]);
      if (status === -1) {
        if (attempt >= MAX_SEED_ATTEMPTS) throw accountingUnavailable(new Error('spend state could not be seeded'));
        const need = Number(reply[1]);
        const seeds: Promise<void>[] = [];
        // A seed that completed while the script ran already wrote the value: just try again.
        if (account && need & 1 && (this.#seeded.get(account.value) ?? 0) === seededBefore[0]) seeds.push(this.#seed(account, false));
        if (key && need & 2 && (this.#seeded.get(key.value) ?? 0) === seededBefore[1]) seeds.push(this.#seed(key, false));
        try {
          await Promise.all(seeds);
        } catch (err) {
          if (err instanceof SpendStoreUnavailableError) return this.#storeFailed(err, subject, worstCaseNano);
          throw err;
        }
        continue;
      }
      const resync = Number(reply[3]);
      if (account && resync & 1) this.#resync(account);
      if (key && resync & 2) this.#resync(key);
      if (status === 2) {
        this.stats.refused++;
        throw keyLimitRefusal(subject, worstCaseNano, Number(reply[1]), describe, this.#now());
      }
      if (status === 3) {
        this.stats.refused++;
        throw creditsRefusal(worstCaseNano, Number(reply[1]), Number(reply[2]), describe);
      }
      this.stats.admitted++;
      const adm = new RedisAdmission(worstCaseNano, holdId, account?.id, key?.id, subject.limitReset);
      this.#held.set(holdId, { field: `r:${holdId}`, amount: worst, accountId: adm.accountId, keyId: adm.keyId });
      this.#startRenewing();
      return adm;
    }
  }

  settle(adm: Admission | undefined, generationId: string, costNano: number): void {
    if (!(adm instanceof RedisAdmission) || adm.settled) return;
    adm.settled = true;
    const cost = costNano > 0 ? amountOf(costNano) : 0;
    const { holdId, accountId, keyId } = adm;
    let settling: Promise<void> = Promise.resolve();
    if (holdId !== '') {
      this.#held.delete(holdId);
      if (cost > 0) this.#held.set(holdId, { field: `p:${holdId}`, amount: cost, accountId, keyId });
      const keys = this.#holdKeys(accountId, keyId);
      settling = this.#inBackground(this.#scripts.mrSpendSettle(keys.length, ...keys, holdId, cost, this.#leaseMs, this.#holdsTtlMs));
    }
    if (cost <= 0) return;
    const now = this.#now();
    this.#pending.set(generationId, { holdId, accountId, keyId, keyWindow: windowStart(adm.limitReset, now), at: now, cost, settling });
    if (accountId !== undefined) this.#pendingByAccount.set(accountId, (this.#pendingByAccount.get(accountId) ?? 0) + cost);
  }

  writeUsage(insert: (rows: UsageRecord[]) => Promise<void>): (rows: UsageRecord[]) => Promise<void> {
    return async (rows) => {
      await insert(rows);
      // Committed: never fail the batch from here (a retry would charge nothing twice, but the
      // usage writer would stall behind an unreachable Redis).
      await this.#committed(rows);
    };
  }

  /**
   * The ledger changed through this process (a top-up or an adjustment, already committed):
   * every instance reads the balance again on its next request. Resolves when Redis has it.
   */
  credited(accountId: string, _amountNano: number): Promise<void> {
    return this.invalidateAccount(accountId);
  }

  /** Every instance reads the key's spend again on its next request. Holds are kept. */
  invalidateKey(keyId: string): Promise<void> {
    // The current window of every reset kind (another instance may have used any), and the
    // windows this process used.
    const now = this.#now();
    const windows = new Set<number>(this.#keyWindows.get(keyId));
    for (const reset of [null, 'daily', 'weekly', 'monthly'] as const) windows.add(windowStart(reset, now));
    const values = [...windows].map((w) => this.#keyCell(keyId, w).value);
    return this.#inBackground(this.#invalidate(this.#keyCell(keyId, 0).gen, values));
  }

  /** Every instance reads the account's balance again on its next request. Holds are kept. */
  invalidateAccount(accountId: string): Promise<void> {
    const cell = this.#accountCell(accountId);
    return this.#inBackground(this.#invalidate(cell.gen, [cell.value]));
  }

  /** The key's spend since `since`: the database plus charges settled here and not yet written. */
  async keySpent(subject: Pick<SpendSubject, 'keyId' | 'limitReset'>, since: number): Promise<number> {
    const db = await this.#source.keySpend(subject.keyId, since);
    let pending = 0;
    for (const p of this.#pending.values()) if (p.keyId === subject.keyId && p.at >= since) pending += p.cost;
    return db + pending;
  }

  /** Charges of the account settled here and not yet written (other instances' are not included). */
  pendingFor(accountId: string): number {
    return this.#pendingByAccount.get(accountId) ?? 0;
  }

  /**
   * Reads the subject's balance and window spend from the database now and replaces the shared
   * values (the periodic resync, on demand). Rejects on a database or Redis failure.
   */
  async refresh(subject: SpendSubject): Promise<void> {
    const jobs: Promise<void>[] = [];
    if (subject.billingMode === 'credits') jobs.push(this.#seed(this.#accountCell(subject.accountId), true));
    if (subject.spendLimitNano !== null) jobs.push(this.#seed(this.#keyCell(subject.keyId, windowStart(subject.limitReset, this.#now())), true));
    await Promise.all(jobs);
  }

  /** Waits until the background work started so far (settles, resyncs, invalidations, renewals) is done. */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  /** Stops renewing holds and waits for background writes. The Redis connection is the caller's. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.idle();
  }

  // -- internals ---------------------------------------------------------------------------------

  #accountCell(accountId: string): Cell {
    const base = `${this.#prefix}a:${encodeURIComponent(accountId)}:`;
    return {
      kind: 'account',
      id: accountId,
      window: 0,
      value: `${base}bal`,
      applied: `${base}applied`,
      gen: `${base}gen`,
      holds: `${base}holds`,
      exp: `${base}exp`,
      sync: `${base}sync`,
    };
  }

  #keyCell(keyId: string, window: number): Cell {
    const base = `${this.#prefix}k:${encodeURIComponent(keyId)}:`;
    return {
      kind: 'key',
      id: keyId,
      window,
      value: `${base}spent:${window}`,
      applied: `${base}applied`,
      gen: `${base}gen`,
      holds: `${base}holds`,
      exp: `${base}exp`,
      sync: `${base}sync:${window}`,
    };
  }

  /** [holds, exp] of the account and of the key. */
  #holdKeys(accountId: string | undefined, keyId: string | undefined): string[] {
    const keys: string[] = [];
    if (accountId !== undefined) {
      const a = this.#accountCell(accountId);
      keys.push(a.holds, a.exp);
    }
    if (keyId !== undefined) {
      const k = this.#keyCell(keyId, 0);
      keys.push(k.holds, k.exp);
    }
    return keys;
  }

  #rememberWindow(cell: Cell): void {
    let windows = this.#keyWindows.get(cell.id);
    if (windows === undefined) {
      windows = new Set();
      this.#keyWindows.set(cell.id, windows);
    }
    if (windows.has(cell.window)) return;
    windows.add(cell.window);
    // The current window and the one before are enough to forget.
    if (windows.size > 2) windows.delete(Math.min(...windows));
  }

  /** Reads the database and writes the value (see the module comment); shared by concurrent callers. */
  #seed(cell: Cell, force: boolean): Promise<void> {
    const running = this.#seeding.get(cell.value);
    if (running) return running;
    const seeding = this.#doSeed(cell, force).finally(() => {
      this.#seeding.delete(cell.value);
      // Bounded: forgetting costs at most one more database read.
      if (this.#seeded.size >= MAX_SEEDED_REMEMBERED) this.#seeded.clear();
      this.#seeded.set(cell.value, (this.#seeded.get(cell.value) ?? 0) + 1);
    });
    this.#seeding.set(cell.value, seeding);
    return seeding;
  }

  async #doSeed(cell: Cell, force: boolean): Promise<void> {
    for (let attempt = 0; attempt < MAX_SEED_ATTEMPTS; attempt++) {
      const [applied, gen] = await this.#call(() => this.#scripts.mrSpendMark(cell.applied, cell.gen, this.#valueTtlMs));
      let db: number;
      try {
        db = cell.kind === 'account' ? await this.#source.balance(cell.id) : await this.#source.keySpend(cell.id, cell.window);
      } catch (err) {
        throw accountingUnavailable(err);
      }
      if (!Number.isSafeInteger(db)) throw accountingUnavailable(new Error('the database returned an amount that is not a safe integer'));
      this.stats.seeds++;
      const written = await this.#call(() =>
        this.#scripts.mrSpendSeed(
          cell.value,
          cell.applied,
          cell.gen,
          cell.sync,
          db,
          String(applied ?? '0'),
          String(gen ?? '0'),
          cell.kind === 'account' ? -1 : 1,
          this.#valueTtlMs,
          force ? '1' : '0',
          this.#refreshMs,
        ),
      );
      if (Number(written) === 1) return;
    }
    throw accountingUnavailable(new Error('spend state kept changing while it was read'));
  }

  /** A periodic re-read that this instance claimed: in the background, failures counted. */
  #resync(cell: Cell): void {
    if (this.#seeding.has(cell.value)) return;
    void this.#inBackground(this.#seed(cell, true));
  }

  #invalidate(gen: string, values: string[]): Promise<number> {
    return this.#scripts.mrSpendInvalidate(1 + values.length, gen, ...values, this.#valueTtlMs);
  }

  /** After a batch committed: release its holds and move the shared values by its charges. */
  async #committed(rows: readonly UsageRecord[]): Promise<void> {
    const ops = new Map<string, CommitOp>();
    const op = (cell: Cell): CommitOp => {
      let o = ops.get(cell.value);
      if (o === undefined) {
        o = { cell, amount: 0, holdIds: [] };
        ops.set(cell.value, o);
      }
      return o;
    };
    const settling: Promise<void>[] = [];
    for (const r of rows) {
      const p = this.#pending.get(r.id);
      if (p === undefined) {
        // Not settled here with a hold (e.g. the account turned to credits while it ran): the
        // balance still moves by the charge written.
        const cost = amountOf(r.costNano);
        if (r.charge === true && cost > 0) op(this.#accountCell(r.accountId)).amount += cost;
        continue;
      }
      this.#pending.delete(r.id);
      if (p.holdId !== '') this.#held.delete(p.holdId);
      settling.push(p.settling);
      if (p.accountId !== undefined) {
        const left = (this.#pendingByAccount.get(p.accountId) ?? 0) - p.cost;
        if (left > 0) this.#pendingByAccount.set(p.accountId, left);
        else this.#pendingByAccount.delete(p.accountId);
        const o = op(this.#accountCell(p.accountId));
        o.amount += p.cost;
        if (p.holdId !== '') o.holdIds.push(p.holdId);
      }
      if (p.keyId !== undefined) {
        const o = op(this.#keyCell(p.keyId, p.keyWindow));
        o.amount += p.cost;
        if (p.holdId !== '') o.holdIds.push(p.holdId);
      }
    }
    // The settle scripts were sent first and normally have run; a re-sent one must not land after the commit.
    if (settling.length > 0) await Promise.all(settling);
    const batch = [...ops.values()].filter((o) => o.amount > 0 || o.holdIds.length > 0);
    const retry = this.#unsent;
    this.#unsent = [];
    const since = Date.now();
    for (const u of retry) await this.#sendCommit(u.ops, u.since);
    if (batch.length > 0) await this.#sendCommit(batch, since);
  }

  async #sendCommit(ops: CommitOp[], since: number): Promise<void> {
    const keys: string[] = [];
    const args: Array<string | number> = [this.#valueTtlMs];
    for (const o of ops) {
      keys.push(o.cell.value, o.cell.applied, o.cell.holds, o.cell.exp);
      args.push(o.cell.kind === 'account' ? '-1' : '1', o.amount, o.holdIds.length, ...o.holdIds);
    }
    try {
      await this.#call(() => this.#scripts.mrSpendCommit(keys.length, ...keys, ...args));
    } catch {
      this.stats.backgroundErrors++;
      // The holds still stand for the charges until their leases end; past that, a resync
      // (every refreshMs) has read them from the database. Re-sending twice only under-estimates.
      if (Date.now() - since < this.#leaseMs) this.#unsent.push({ ops, since });
    }
  }

  #startRenewing(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => this.#renew(), this.#renewEveryMs);
    this.#timer.unref();
  }

  /** Extends the leases of this process's holds; re-adds holds Redis lost. */
  #renew(): void {
    if (this.#held.size === 0 && this.#unsent.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const cells = new Map<string, { holds: string; exp: string; args: Array<string | number> }>();
    const add = (cell: Cell, h: LocalHold) => {
      let c = cells.get(cell.holds);
      if (c === undefined) {
        c = { holds: cell.holds, exp: cell.exp, args: [this.#leaseMs, this.#holdsTtlMs] };
        cells.set(cell.holds, c);
      }
      c.args.push(h.field, h.amount);
    };
    for (const h of this.#held.values()) {
      if (h.accountId !== undefined) add(this.#accountCell(h.accountId), h);
      if (h.keyId !== undefined) add(this.#keyCell(h.keyId, 0), h);
    }
    for (const c of cells.values()) {
      void this.#inBackground(
        this.#scripts.mrSpendRenew(c.holds, c.exp, ...c.args).then((lost) => {
          this.stats.leasesLost += Number(lost);
        }),
      );
    }
    if (this.#unsent.length > 0) {
      const retry = this.#unsent;
      this.#unsent = [];
      void this.#inBackground((async () => {
        for (const u of retry) await this.#sendCommit(u.ops, u.since);
      })());
    }
  }

  /** Runs a Redis command; any failure becomes `SpendStoreUnavailableError`. */
  async #call<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw err instanceof SpendStoreUnavailableError ? err : new SpendStoreUnavailableError(err);
    }
  }

  /** A write nobody waits for: counted when it fails, tracked for `idle()`. Never rejects. */
  #inBackground(op: Promise<unknown>): Promise<void> {
    const p: Promise<void> = op.then(
      () => undefined,
      () => {
        this.stats.backgroundErrors++;
      },
    );
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
    return p;
  }

  #storeFailed(err: unknown, subject: SpendSubject, worstCaseNano: number): Admission {
    const error = err instanceof SpendStoreUnavailableError ? err : new SpendStoreUnavailableError(err);
    this.stats.storeErrors++;
    if (this.onStoreFailure === 'closed') {
      this.#warn('Spending-limit store (Redis) unreachable: refusing requests that need credits or a key limit with 503 until it is back', error);
      throw error;
    }
    this.stats.failOpen++;
    this.#warn('Spending-limit store (Redis) unreachable: admitting requests WITHOUT checking credits or key limits until it is back', error);
    return new RedisAdmission(
      worstCaseNano,
      '',
      subject.billingMode === 'credits' ? subject.accountId : undefined,
      subject.spendLimitNano !== null ? subject.keyId : undefined,
      subject.limitReset,
    );
  }

  #warn(message: string, error: SpendStoreUnavailableError): void {
    if (this.#onWarning === undefined) return;
    const t = this.#now();
    if (this.#lastWarningAt !== undefined && t - this.#lastWarningAt < this.#warningIntervalMs) return;
    this.#lastWarningAt = t;
    try {
      this.#onWarning(`${message} (store failures so far: ${this.stats.storeErrors}, admitted without checks: ${this.stats.failOpen}).`, error);
    } catch {
      // A failing log callback must not fail the request.
    }
  }
}
