/**
 * GCRA (generic cell rate algorithm) arithmetic, shared by the in-memory store and mirrored line
 * for line by the Redis Lua scripts in `store.ts`.
 *
 * A limit of `limit` units per `periodMs` has the emission interval `T = periodMs / limit` and
 * the burst tolerance `periodMs`. Classic GCRA keeps the theoretical arrival time TAT and admits a
 * cost `c` at time `now` when `max(TAT, now) + c·T − periodMs ≤ now`. We store the same state in
 * the leaky-bucket form: the bucket's `level` (in units) and the time `at` it was computed, so
 * that TAT = at + level·T. This keeps every stored number small (a level is at most a few times
 * the limit) instead of an epoch timestamp in which a sub-millisecond interval — 150M tokens per
 * minute is 0.4 µs per token — would drown in floating-point rounding.
 *
 * At `now` the level has drained to `max(0, level − (now − at)·limit/periodMs)`; a cost fits when
 * `drained + cost ≤ limit`. Times are milliseconds (fractions allowed), levels are units.
 */

/** Slack, in units, for comparisons of float levels (a level is a sum of many small terms). */
export const LEVEL_EPSILON = 1e-6;
/** Slack, in ms, taken off before rounding a wait up, so 6000.000000001 ms stays 6000 ms. */
const MS_EPSILON = 1e-6;

/** A bucket's stored state. */
export interface BucketState {
  /** Units in the bucket when it was last written. */
  level: number;
  /** When (ms) `level` was computed. */
  at: number;
}

/** How one check fares at one moment. */
export interface CheckOutcome {
  /** `ok`: the cost fits now; `wait`: it fits after `retryAfterMs`; `never`: cost > limit. */
  status: 'ok' | 'wait' | 'never';
  /** The level after charging the cost (only meaningful when `ok`). */
  newLevel: number;
  /** Units that could still be consumed now (after this cost when `ok`). */
  remaining: number;
  /** Ms until the bucket is empty again (after this cost when `ok`). */
  resetMs: number;
  /** Ms until this cost would fit (`wait` only). */
  retryAfterMs?: number;
}

/** Ms needed to drain `units` at `limit` per `periodMs`, rounded up. */
export function drainMs(units: number, limit: number, periodMs: number): number {
  if (units <= 0 || limit <= 0) return 0;
  return Math.max(0, Math.ceil((units * periodMs) / limit - MS_EPSILON));
}

/** The level of `state` drained to `now` (0 for no state). */
export function drainedLevel(state: BucketState | undefined, now: number, limit: number, periodMs: number): number {
  if (state === undefined) return 0;
  const elapsed = Math.max(0, now - state.at);
  return Math.max(0, state.level - (elapsed * limit) / periodMs);
}

/** Whether `cost` fits in a bucket at `level`, and the numbers a client is told either way. */
export function evaluate(level: number, limit: number, periodMs: number, cost: number): CheckOutcome {
  const remainingAt = (l: number) => Math.max(0, Math.floor(limit - l + LEVEL_EPSILON));
  if (cost > limit) {
    return { status: 'never', newLevel: level, remaining: remainingAt(level), resetMs: drainMs(level, limit, periodMs) };
  }
  const after = level + cost;
  if (after <= limit + LEVEL_EPSILON) {
    return { status: 'ok', newLevel: after, remaining: remainingAt(after), resetMs: drainMs(after, limit, periodMs) };
  }
  return {
    status: 'wait',
    newLevel: level,
    remaining: remainingAt(level),
    resetMs: drainMs(level, limit, periodMs),
    retryAfterMs: Math.max(1, drainMs(after - limit, limit, periodMs)),
  };
}

/** How long a bucket at `level` must be kept: until it has drained, plus `marginMs`. */
export function bucketTtlMs(level: number, limit: number, periodMs: number, marginMs: number): number {
  const drain = limit > 0 ? drainMs(level, limit, periodMs) : Math.ceil(periodMs);
  return Math.max(1, drain + Math.ceil(marginMs));
}

/** Throws a RangeError for a check no store can evaluate (a programming or configuration error). */
export function validateCheck(c: { key: string; limit: number; periodMs: number; cost: number }, allowNegativeCost: boolean): void {
  if (typeof c.key !== 'string' || c.key.length === 0) throw new RangeError('A rate check needs a non-empty key.');
  if (!Number.isFinite(c.limit) || c.limit < 0) throw new RangeError('A rate limit must be a finite number ≥ 0.');
  if (!Number.isFinite(c.periodMs) || c.periodMs <= 0) throw new RangeError('A rate period must be a finite number > 0.');
  if (!Number.isFinite(c.cost) || (!allowNegativeCost && c.cost < 0)) {
    throw new RangeError(allowNegativeCost ? 'An adjustment must be finite.' : 'A cost must be a finite number ≥ 0.');
  }
}
