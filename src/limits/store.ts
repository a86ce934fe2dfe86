/**
 * Where rate-limit state lives: `MemoryRateStore` for one gateway instance, `RedisRateStore` for
 * many sharing one Redis. Both implement `RateStore` with the same semantics (see `gcra.ts`):
 *
 * - `consume` evaluates every check of one call at one instant and charges all of them or none.
 * - `adjust` charges more (or refunds) afterwards, never below an empty bucket.
 * - `acquire` / `renew` / `release` hold concurrency slots as leases that expire by themselves,
 *   so slots held by a crashed instance come back after `leaseMs`.
 *
 * Keys and values hold ids, numbers and random lease tokens only, never request content.
 * See docs/rate-limits.md for the Redis layout and the failure behaviour.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { RateStoreUnavailableError } from './errors.js';
import { bucketTtlMs, drainedLevel, evaluate, validateCheck, type BucketState } from './gcra.js';

export { RateStoreUnavailableError } from './errors.js';

/** One rate limit to charge: `cost` units against `limit` units per `periodMs`. */
export interface RateCheck {
  /** The bucket's key (ids only); the store may prefix it. */
  key: string;
  /** Units per period; 0 refuses every positive cost. */
  limit: number;
  periodMs: number;
  /** Units this call costs (≥ 0 for `consume`; `adjust` also takes negative values). */
  cost: number;
}

/** How one check of a `consume` call fared. */
export interface RateCheckResult {
  key: string;
  limit: number;
  /** Units that could still be consumed now (after this call's charge when it was admitted). */
  remaining: number;
  /** Ms until the bucket is fully replenished (empty). */
  resetMs: number;
  /** True when this check alone would have admitted the cost now. */
  ok: boolean;
  /** Ms until this check's cost would fit; only when `!ok` and the cost is not above the limit. */
  retryAfterMs?: number;
  /** The cost is larger than the limit: it can never fit, waiting does not help. */
  exceedsLimit: boolean;
}

export interface RateDecision {
  /** Every check admitted, and every check was charged. When false, nothing was charged. */
  allowed: boolean;
  /** One result per check, in the order given. */
  results: RateCheckResult[];
  /**
   * When refused: the index of the check that refused — the first whose cost exceeds its limit,
   * else the one with the longest wait (the binding one).
   */
  refusedIndex?: number;
  /** When refused and every cost can fit: ms after which every check fits (the longest wait). */
  retryAfterMs?: number;
  /** When refused because some cost exceeds its limit. */
  exceedsLimit: boolean;
}

export interface LeaseResult {
  ok: boolean;
  /** The lease's token ('' when refused); pass it to `renew` and `release`. */
  token: string;
  /** Leases held on the key now (including this one when `ok`). */
  current: number;
}

/** 'up': the store answers; 'down': it cannot be reached (Redis only). */
export type RateStoreStatus = 'up' | 'down';

export interface RateStore {
  readonly status: RateStoreStatus;
  /** Calls `listener` on every change of `status`; returns a function that removes it. */
  onStatusChange(listener: (status: RateStoreStatus) => void): () => void;
  /**
   * Admits all checks and charges them, or none. `now` (ms) is honoured by the memory store
   * only; the Redis store always uses the Redis server's clock.
   */
  consume(checks: readonly RateCheck[], now?: number): Promise<RateDecision>;
  /** Adds `cost` (may be negative) to a bucket without admission; never below empty. */
  adjust(check: RateCheck): Promise<void>;
  /** Takes a concurrency slot on `key` for `leaseMs` if fewer than `limit` are held. */
  acquire(key: string, limit: number, leaseMs: number): Promise<LeaseResult>;
  /** Extends a held lease to `leaseMs` from now; false when the lease has been lost. */
  renew(key: string, token: string, leaseMs: number): Promise<boolean>;
  /** Gives a slot back (a no-op for an unknown or expired token). */
  release(key: string, token: string): Promise<void>;
  close(): Promise<void>;
}

function newLeaseToken(): string {
  return randomBytes(16).toString('hex');
}

function validateLease(key: string, limit: number, leaseMs: number): void {
  if (typeof key !== 'string' || key.length === 0) throw new RangeError('A lease needs a non-empty key.');
  if (!Number.isFinite(limit) || limit < 0) throw new RangeError('A concurrency limit must be a finite number ≥ 0.');
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw new RangeError('A lease duration must be a finite number > 0.');
}

/** Folds per-check results into a decision (the same rule for both stores). */
function decide(results: RateCheckResult[]): RateDecision {
  let refusedIndex: number | undefined;
  let retryAfterMs: number | undefined;
  let exceedsLimit = false;
  results.forEach((r, i) => {
    if (r.ok) return;
    if (r.exceedsLimit) {
      if (!exceedsLimit) refusedIndex = i;
      exceedsLimit = true;
      return;
    }
    if (!exceedsLimit && (retryAfterMs === undefined || (r.retryAfterMs ?? 0) > retryAfterMs)) {
      retryAfterMs = r.retryAfterMs ?? 1;
      refusedIndex = i;
    }
  });
  const allowed = refusedIndex === undefined;
  const decision: RateDecision = { allowed, results, exceedsLimit };
  if (!allowed) {
    decision.refusedIndex = refusedIndex;
    if (!exceedsLimit) decision.retryAfterMs = retryAfterMs;
  }
  return decision;
}

// ---------------------------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------------------------

export interface MemoryRateStoreOptions {
  /** The clock (ms); tests inject one. Default `Date.now`. */
  clock?: () => number;
}

interface MemoryBucket extends BucketState {
  expiresAt: number;
}

/**
 * State in this process only: correct for one gateway instance. Calls run synchronously inside
 * one event-loop turn, which makes each `consume` atomic. Expired buckets and leases are swept
 * every 1 024 calls.
 */
export class MemoryRateStore implements RateStore {
  readonly status: RateStoreStatus = 'up';
  private readonly clock: () => number;
  private readonly buckets = new Map<string, MemoryBucket>();
  private readonly leases = new Map<string, Map<string, number>>();
  private calls = 0;

  constructor(opts: MemoryRateStoreOptions = {}) {
    this.clock = opts.clock ?? Date.now;
  }

  onStatusChange(): () => void {
    return () => {};
  }

  /** Buckets and lease sets currently held (for tests and metrics). */
  get size(): number {
    return this.buckets.size + this.leases.size;
  }

  async consume(checks: readonly RateCheck[], now?: number): Promise<RateDecision> {
    for (const c of checks) validateCheck(c, false);
    const t = now ?? this.clock();
    this.maybeSweep(t);
    const levels = new Map<string, number>();
    const newLevels: number[] = [];
    const results: RateCheckResult[] = checks.map((c, i) => {
      const level = levels.get(c.key) ?? drainedLevel(this.buckets.get(c.key), t, c.limit, c.periodMs);
      const o = evaluate(level, c.limit, c.periodMs, c.cost);
      newLevels[i] = o.newLevel;
      if (o.status === 'ok') levels.set(c.key, o.newLevel);
      const r: RateCheckResult = { key: c.key, limit: c.limit, remaining: o.remaining, resetMs: o.resetMs, ok: o.status === 'ok', exceedsLimit: o.status === 'never' };
      if (o.retryAfterMs !== undefined) r.retryAfterMs = o.retryAfterMs;
      return r;
    });
    const decision = decide(results);
    if (decision.allowed) {
      checks.forEach((c, i) => {
        if (c.cost > 0) this.write(c, newLevels[i] ?? 0, t);
      });
    }
    return decision;
  }

  async adjust(check: RateCheck): Promise<void> {
    validateCheck(check, true);
    const t = this.clock();
    const level = drainedLevel(this.buckets.get(check.key), t, check.limit, check.periodMs) + check.cost;
    if (level <= 0) this.buckets.delete(check.key);
    else this.write(check, level, t);
  }

  async acquire(key: string, limit: number, leaseMs: number): Promise<LeaseResult> {
    validateLease(key, limit, leaseMs);
    const t = this.clock();
    this.maybeSweep(t);
    const held = this.liveLeases(key, t);
    if (held.size >= limit) return { ok: false, token: '', current: held.size };
    const token = newLeaseToken();
    held.set(token, t + leaseMs);
    this.leases.set(key, held);
    return { ok: true, token, current: held.size };
  }

  async renew(key: string, token: string, leaseMs: number): Promise<boolean> {
    validateLease(key, 0, leaseMs);
    const held = this.leases.get(key);
    if (held === undefined || !held.has(token)) return false;
    held.set(token, this.clock() + leaseMs);
    return true;
  }

  async release(key: string, token: string): Promise<void> {
    const held = this.leases.get(key);
    if (held === undefined) return;
    held.delete(token);
    if (held.size === 0) this.leases.delete(key);
  }

  async close(): Promise<void> {
    this.buckets.clear();
    this.leases.clear();
  }

  private write(c: RateCheck, level: number, t: number): void {
    this.buckets.set(c.key, { level, at: t, expiresAt: t + bucketTtlMs(level, c.limit, c.periodMs, 0) });
  }

  /** The key's unexpired leases (expired ones are dropped, as Redis does on every acquire). */
  private liveLeases(key: string, t: number): Map<string, number> {
    const held = this.leases.get(key) ?? new Map<string, number>();
    for (const [token, expiresAt] of held) if (expiresAt <= t) held.delete(token);
    if (held.size === 0) this.leases.delete(key);
    return held;
  }

  private maybeSweep(t: number): void {
    if (++this.calls % 1024 !== 0) return;
    for (const [key, b] of this.buckets) if (b.expiresAt <= t) this.buckets.delete(key);
    for (const key of [...this.leases.keys()]) this.liveLeases(key, t);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/*
 * The Lua scripts mirror gcra.ts. Each takes the time from the Redis server (TIME), so gateway
 * instances with skewed clocks agree; Redis ≥ 5 replicates script effects, which makes TIME
 * before writes safe. A bucket is a string "<at ms> <level>" (both %.17g, exact round trip);
 * a lease set is a sorted set of random tokens scored by expiry (ms). Every write sets a TTL.
 */

const LUA_PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local EPS = 1e-6
local function drainMs(units, limit, period)
  if units <= 0 or limit <= 0 then return 0 end
  local ms = math.ceil(units * period / limit - 1e-6)
  if ms < 0 then return 0 end
  return ms
end
local function remainingAt(level, limit)
  local r = math.floor(limit - level + EPS)
  if r < 0 then return 0 end
  return r
end
local function drained(key, limit, period)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local sp = string.find(v, ' ', 1, true)
  if not sp then return 0 end
  local at = tonumber(string.sub(v, 1, sp - 1))
  local level = tonumber(string.sub(v, sp + 1))
  if not at or not level then return 0 end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed * limit / period
  if level < 0 then return 0 end
  return level
end
local function store(key, level, limit, period, margin)
  local drain
  if limit > 0 then drain = drainMs(level, limit, period) else drain = math.ceil(period) end
  local ttl = drain + math.ceil(margin)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', key, string.format('%.17g %.17g', now, level), 'PX', ttl)
end
`;

/**
 * KEYS: one bucket per check. ARGV[1]: TTL margin (ms); then limit, period (ms), cost per check.
 * Returns {allowed, then per check: status (1 ok, 0 wait, -1 never), remaining, resetMs, retryMs}.
 */
const LUA_CONSUME = `${LUA_PRELUDE}
local margin = tonumber(ARGV[1])
local levels = {}
local newLevels = {}
local out = {1}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[3 * i - 1])
  local period = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local level = levels[key]
  if level == nil then level = drained(key, limit, period) end
  local after = level + cost
  local status, remaining, reset, retry
  if cost > limit then
    status, remaining, reset, retry = -1, remainingAt(level, limit), drainMs(level, limit, period), -1
    newLevels[i] = level
    out[1] = 0
  elseif after <= limit + EPS then
    status, remaining, reset, retry = 1, remainingAt(after, limit), drainMs(after, limit, period), -1
    newLevels[i] = after
    levels[key] = after
  else
    retry = drainMs(after - limit, limit, period)
    if retry < 1 then retry = 1 end
    status, remaining, reset = 0, remainingAt(level, limit), drainMs(level, limit, period)
    newLevels[i] = level
    out[1] = 0
  end
  out[#out + 1] = status
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
if out[1] == 1 then
  for i = 1, #KEYS do
    if tonumber(ARGV[3 * i + 1]) > 0 then
      store(KEYS[i], newLevels[i], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), margin)
    end
  end
end
return out
`;

/** KEYS[1]: bucket. ARGV: margin, limit, period, cost (may be negative). */
const LUA_ADJUST = `${LUA_PRELUDE}
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local level = drained(KEYS[1], limit, period) + tonumber(ARGV[4])
if level <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
store(KEYS[1], level, limit, period, tonumber(ARGV[1]))
return 1
`;

/** Sets the lease key's TTL to cover its longest lease plus the margin. */
const LUA_LEASE_TTL = `
local function leaseTtl(key, margin)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    local ttl = math.ceil(tonumber(last[2]) - now + margin)
    if ttl < 1 then ttl = 1 end
    redis.call('PEXPIRE', key, ttl)
  end
end
`;

/** KEYS[1]: lease set. ARGV: limit, leaseMs, token, margin. Returns {ok, current}. */
const LUA_ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
${LUA_LEASE_TTL}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local current = redis.call('ZCARD', KEYS[1])
if current >= tonumber(ARGV[1]) then return {0, current} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
leaseTtl(KEYS[1], tonumber(ARGV[4]))
return {1, current + 1}
`;

/** KEYS[1]: lease set. ARGV: token, leaseMs, margin. Returns 1 when renewed, 0 when lost. */
const LUA_RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
${LUA_LEASE_TTL}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
leaseTtl(KEYS[1], tonumber(ARGV[3]))
return 1
`;

interface ScriptedRedis {
  mrRateConsume(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number[]>;
  mrRateAdjust(key: string, margin: number, limit: number, periodMs: number, cost: number): Promise<number>;
  mrLeaseAcquire(key: string, limit: number, leaseMs: number, token: string, margin: number): Promise<[number, number]>;
  mrLeaseRenew(key: string, token: string, leaseMs: number, margin: number): Promise<number>;
}

export interface RedisRateStoreOptions {
  /** Redis URL (redis:// or rediss://). Default redis://127.0.0.1:6379. Ignored with `client`. */
  url?: string;
  /** Use this client instead of creating one (it is not closed by `close()`); its options are kept. */
  client?: Redis;
  /** Prepended to every key. Default 'mr:rl:'. */
  prefix?: string;
  /** A command without an answer after this many ms fails. Default 200. */
  commandTimeoutMs?: number;
  /** Gives up one connection attempt after this many ms (then retries). Default 2 000. */
  connectTimeoutMs?: number;
  /** Longest pause between reconnection attempts, in ms. Default 1 000. */
  maxReconnectDelayMs?: number;
  /** Added to every key's TTL beyond the time its state matters. Default 1 000 ms. */
  ttlMarginMs?: number;
  /** Further ioredis options (override the ones above). */
  redisOptions?: RedisOptions;
}

/**
 * Shared state in Redis (standalone or Sentinel; a Cluster would need all keys of one call in
 * one slot). It never hangs a request: the offline queue is off, a command is not retried after a
 * disconnect, and each command times out after `commandTimeoutMs`; every failure is reported as
 * `RateStoreUnavailableError`. ioredis keeps reconnecting in the background, so service resumes
 * on its own when Redis is back; `status` and `onStatusChange` tell whether it is reachable.
 */
export class RedisRateStore implements RateStore {
  readonly client: Redis;
  readonly prefix: string;
  private readonly scripts: ScriptedRedis;
  private readonly ownsClient: boolean;
  private readonly marginMs: number;
  private readonly listeners = new Set<(status: RateStoreStatus) => void>();
  private current: RateStoreStatus = 'down';
  private closed = false;

  constructor(opts: RedisRateStoreOptions = {}) {
    this.prefix = opts.prefix ?? 'mr:rl:';
    this.marginMs = opts.ttlMarginMs ?? 1_000;
    const maxDelay = opts.maxReconnectDelayMs ?? 1_000;
    if (opts.client) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      this.client = new Redis(opts.url ?? 'redis://127.0.0.1:6379', {
        commandTimeout: opts.commandTimeoutMs ?? 200,
        connectTimeout: opts.connectTimeoutMs ?? 2_000,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        retryStrategy: (times: number) => Math.min(times * 100, maxDelay) + Math.floor(Math.random() * 50),
        ...opts.redisOptions,
      });
      this.ownsClient = true;
    }
    // Without an 'error' listener an unreachable Redis would crash the process.
    this.client.on('error', () => this.setStatus('down'));
    this.client.on('close', () => this.setStatus('down'));
    this.client.on('end', () => this.setStatus('down'));
    this.client.on('ready', () => this.setStatus('up'));
    if (this.client.status === 'ready') this.current = 'up';
    this.client.defineCommand('mrRateConsume', { lua: LUA_CONSUME });
    this.client.defineCommand('mrRateAdjust', { lua: LUA_ADJUST, numberOfKeys: 1 });
    this.client.defineCommand('mrLeaseAcquire', { lua: LUA_ACQUIRE, numberOfKeys: 1 });
    this.client.defineCommand('mrLeaseRenew', { lua: LUA_RENEW, numberOfKeys: 1 });
    this.scripts = this.client as unknown as ScriptedRedis;
  }

  get status(): RateStoreStatus {
    return this.current;
  }

  onStatusChange(listener: (status: RateStoreStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves true once connected, false after `timeoutMs` without a connection. */
  async ready(timeoutMs = 5_000): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(this.client.status === 'ready');
      }, timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  async consume(checks: readonly RateCheck[]): Promise<RateDecision> {
    for (const c of checks) validateCheck(c, false);
    if (checks.length === 0) return { allowed: true, results: [], exceedsLimit: false };
    const keys = checks.map((c) => this.prefix + c.key);
    const args: (string | number)[] = [this.marginMs];
    for (const c of checks) args.push(c.limit, c.periodMs, c.cost);
    const reply = await this.run(() => this.scripts.mrRateConsume(keys.length, ...keys, ...args));
    const results = checks.map((c, i): RateCheckResult => {
      const at = 1 + i * 4;
      const status = Number(reply[at]);
      const r: RateCheckResult = {
        key: c.key,
        limit: c.limit,
        remaining: Number(reply[at + 1]),
        resetMs: Number(reply[at + 2]),
        ok: status === 1,
        exceedsLimit: status === -1,
      };
      if (status === 0) r.retryAfterMs = Number(reply[at + 3]);
      return r;
    });
    // reply[0] (allowed) equals "every status is 1", which is what decide() derives.
    return decide(results);
  }

  async adjust(check: RateCheck): Promise<void> {
    validateCheck(check, true);
    if (check.cost === 0) return;
    await this.run(() => this.scripts.mrRateAdjust(this.prefix + check.key, this.marginMs, check.limit, check.periodMs, check.cost));
  }

  async acquire(key: string, limit: number, leaseMs: number): Promise<LeaseResult> {
    validateLease(key, limit, leaseMs);
    const token = newLeaseToken();
    const [ok, current] = await this.run(() => this.scripts.mrLeaseAcquire(this.prefix + key, limit, leaseMs, token, this.marginMs));
    return Number(ok) === 1 ? { ok: true, token, current: Number(current) } : { ok: false, token: '', current: Number(current) };
  }

  async renew(key: string, token: string, leaseMs: number): Promise<boolean> {
    validateLease(key, 0, leaseMs);
    const renewed = await this.run(() => this.scripts.mrLeaseRenew(this.prefix + key, token, leaseMs, this.marginMs));
    return Number(renewed) === 1;
  }

  async release(key: string, token: string): Promise<void> {
    if (token === '') return;
    await this.run(() => this.client.zrem(this.prefix + key, token));
  }

  /** Closes the connection it created (waits briefly for pending commands); idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    if (!this.ownsClient) return;
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.client.quit().catch(() => undefined),
        new Promise((resolve) => {
          timer = setTimeout(resolve, 1_000);
        }),
      ]);
      clearTimeout(timer);
    }
    this.client.disconnect();
  }

  private async run<T>(command: () => Promise<T>): Promise<T> {
    if (this.closed) throw new RateStoreUnavailableError(new Error('The rate store is closed.'));
    try {
      const result = await command();
      if (this.client.status === 'ready') this.setStatus('up');
      return result;
    } catch (err) {
      // A reply error (e.g. OOM, LOADING, READONLY) means Redis answered; anything else — a
      // timeout, a closed connection, no connection yet — means it is unreachable.
      if ((err as { name?: string } | null)?.name !== 'ReplyError') this.setStatus('down');
      throw new RateStoreUnavailableError(err);
    }
  }

  private setStatus(status: RateStoreStatus): void {
    if (status === this.current) return;
    this.current = status;
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch {
        // A listener's failure must not break the store.
      }
    }
  }
}
