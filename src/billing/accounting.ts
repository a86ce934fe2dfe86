/**
 * Spending control on the request path: credit balances, per-key spend limits, and in-flight
 * reservations, held in memory so that admitting a request costs no database round trip.
 *
 * For every account that pays with credits and every key with a spend limit, this process keeps
 *   available = balance read from the database − charges not yet written − reservations,
 * where a reservation is the worst-case cost of a request in flight (`worstCaseCost`). A request
 * is admitted only when the balance is positive and the worst case fits in what is available;
 * it then reserves that worst case, synchronously, so concurrent requests see each other at
 * once. When it ends, the reservation is released and the actual cost becomes a pending charge
 * until the usage writer has committed it (usage row, ledger row and balance in one
 * transaction). Consequence, the documented bound: the actual cost of an admitted request can
 * exceed its reservation only when its prompt is larger than estimated (images), so an account
 * is overdrawn by at most the cost that such requests add over their estimates — and by
 * nothing with text-only prompts.
 *
 * State is read on first use and refreshed every `refreshMs` (so a top-up made by another
 * process, e.g. the CLI, is seen within that time); refreshes never run while a usage batch is
 * being written, so a charge is never counted twice or not at all. This is one process's view:
 * several gateway instances share credits and key limits through `RedisAccounting`
 * (redis-accounting.ts, docs/billing.md "Several instances"). Callers type against
 * `SpendControl`, which both implement with the same refusals.
 */
import { GatewayError } from '../ir/errors.js';
import type { UsageRecord } from '../storage/usage-repo.js';
import { formatUsd } from './money.js';

export type BillingMode = 'credits' | 'track';
export type LimitReset = 'daily' | 'weekly' | 'monthly';

/** What spending control needs to know about the calling key (from the auth cache). */
export interface SpendSubject {
  keyId: string;
  accountId: string;
  billingMode: BillingMode;
  spendLimitNano: number | null;
  limitReset: LimitReset | null;
}

/** Where state comes from. */
export interface AccountingSource {
  /** The account's balance (the materialised sum of its ledger), nano-USD. */
  balance(accountId: string): Promise<number>;
  /** The key's total cost since `since` (epoch ms), nano-USD. */
  keySpend(keyId: string, since: number): Promise<number>;
}

export interface AccountingOptions {
  now?: () => number;
  /** How long database state is trusted before it is read again, ms (default 5 000). */
  refreshMs?: number;
}

/** The start (epoch ms, UTC) of the spend window that contains `now`. Weeks start on Monday. */
export function windowStart(reset: LimitReset | null, now: number): number {
  if (reset === null) return 0;
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  if (reset === 'daily') return Date.UTC(y, m, day);
  if (reset === 'monthly') return Date.UTC(y, m, 1);
  const sinceMonday = (d.getUTCDay() + 6) % 7;
  return Date.UTC(y, m, day - sinceMonday);
}

/** The end of that window (the next reset), or null for a limit that never resets. */
export function windowEnd(reset: LimitReset | null, now: number): number | null {
  if (reset === null) return null;
  const start = new Date(windowStart(reset, now));
  const y = start.getUTCFullYear();
  const m = start.getUTCMonth();
  const day = start.getUTCDate();
  if (reset === 'daily') return Date.UTC(y, m, day + 1);
  if (reset === 'weekly') return Date.UTC(y, m, day + 7);
  return Date.UTC(y, m + 1, 1);
}

interface Ledgered {
  /** From the database at `loadedAt`. */
  db: number;
  /** Charges settled here and not yet committed. */
  pending: number;
  /** Worst cases of requests in flight. */
  reserved: number;
  loaded: boolean;
  loadedAt: number;
  loading: Promise<void> | undefined;
  /** Set when the database value must be read again before it is trusted. */
  stale: boolean;
}

interface KeyState extends Ledgered {
  /** The window `db` and `pending` belong to. */
  window: number;
}

/**
 * A request's hold on its account's credits and its key's limit, from `admit`; pass it to
 * `settle` exactly once. Opaque: each implementation keeps its own state behind it.
 */
export interface Admission {
  /** The worst case reserved, nano-USD. */
  readonly reserved: number;
}

/**
 * Spending control as the request path, the usage writer and the management APIs use it:
 * `Accounting` (this process's memory) or `RedisAccounting` (shared by gateway instances).
 */
export interface SpendControl {
  /**
   * Admits a request whose cost can reach `worstCaseNano`, reserving it; or throws 402
   * (`MR_ERR_INSUFFICIENT_CREDITS`, reason `MR_ERR_INSUFFICIENT_CREDITS` or `MR_ERR_KEY_LIMIT`).
   */
  admit(subject: SpendSubject, worstCaseNano: number, describe: () => string): Promise<Admission>;
  /** Ends a request: releases its reservation; its cost stays pending until its usage row is written. Never throws. */
  settle(adm: Admission | undefined, generationId: string, costNano: number): void;
  /** Wraps the usage insert, so that committed charges leave the pending state exactly when they are written. */
  writeUsage(insert: (rows: UsageRecord[]) => Promise<void>): (rows: UsageRecord[]) => Promise<void>;
  /** Credits added (or removed) by this process, after the ledger transaction committed. */
  credited(accountId: string, amountNano: number): void;
  /** Forgets the key's spend read from the database (reservations and pending charges are kept). */
  invalidateKey(keyId: string): void;
  /** Forgets the account's balance read from the database (reservations and pending charges are kept). */
  invalidateAccount(accountId: string): void;
  /** The key's spend since `since` (epoch ms): the database plus this process's pending charges, nano-USD. */
  keySpent(subject: Pick<SpendSubject, 'keyId' | 'limitReset'>, since: number): Promise<number>;
  /** This process's charges of the account not written yet, nano-USD. */
  pendingFor(accountId: string): number;
}

/** Whether this caller's requests need admission at all (credits, or a key limit). */
export function spendApplies(subject: SpendSubject): boolean {
  return subject.billingMode === 'credits' || subject.spendLimitNano !== null;
}

/** The in-memory implementation's hold. */
class MemoryAdmission implements Admission {
  settled = false;
  constructor(
    readonly reserved: number,
    readonly account: Ledgered | undefined,
    readonly key: KeyState | undefined,
    readonly limitReset: LimitReset | null,
  ) {}
}

/** What a settled charge remembers until it is committed. */
interface PendingCharge {
  account: Ledgered | undefined;
  key: KeyState | undefined;
  keyWindow: number;
  /** Epoch ms when the request was settled (≈ its usage row's time). */
  at: number;
  cost: number;
}

export class Accounting implements SpendControl {
  readonly #source: AccountingSource;
  readonly #now: () => number;
  readonly #refreshMs: number;
  readonly #accounts = new Map<string, Ledgered>();
  readonly #keys = new Map<string, KeyState>();
  /** Generation id → charge settled here, until its usage row is committed. */
  readonly #pending = new Map<string, PendingCharge>();
  /** Serialises database reads with usage writes (see the module comment). */
  #lock: Promise<unknown> = Promise.resolve();

  constructor(source: AccountingSource, opts: AccountingOptions = {}) {
    this.#source = source;
    this.#now = opts.now ?? Date.now;
    this.#refreshMs = opts.refreshMs ?? 5_000;
  }

  /** Whether this caller's requests need admission at all (credits, or a key limit). */
  static applies(subject: SpendSubject): boolean {
    return spendApplies(subject);
  }

  /**
   * Admits a request whose cost can reach `worstCaseNano`, reserving it; or throws 402 naming
   * the limit. Waits for the database only the first time an account or key is seen.
   */
  async admit(subject: SpendSubject, worstCaseNano: number, describe: () => string): Promise<Admission> {
    const credits = subject.billingMode === 'credits';
    const account = credits ? this.#account(subject.accountId) : undefined;
    const key = subject.spendLimitNano !== null ? this.#key(subject) : undefined;
    if (account && !account.loaded) await account.loading;
    if (key && !key.loaded) await key.loading;

    if (key !== undefined && subject.spendLimitNano !== null) {
      const spent = key.db + key.pending + key.reserved;
      const left = subject.spendLimitNano - spent;
      if (left <= 0 || worstCaseNano > left) {
        throw keyLimitRefusal(subject, worstCaseNano, left, describe, this.#now());
      }
    }
    if (account !== undefined) {
      const balance = account.db - account.pending;
      const available = balance - account.reserved;
      if (balance <= 0 || worstCaseNano > available) {
        throw creditsRefusal(worstCaseNano, balance, available, describe);
      }
    }
    if (account) account.reserved += worstCaseNano;
    if (key) key.reserved += worstCaseNano;
    return new MemoryAdmission(worstCaseNano, account, key, subject.limitReset);
  }

  /**
   * Ends a request: releases its reservation and holds its cost as pending until `committed`
   * sees the usage row. `charged` says whether that row charges the ledger.
   */
  settle(adm: Admission | undefined, generationId: string, costNano: number): void {
    if (!(adm instanceof MemoryAdmission) || adm.settled) return;
    adm.settled = true;
    const { account, key } = adm;
    if (account) account.reserved -= adm.reserved;
    if (key) key.reserved -= adm.reserved;
    if (costNano <= 0) return;
    if (account) account.pending += costNano;
    if (key) {
      this.#roll(key, windowStart(adm.limitReset, this.#now()));
      key.pending += costNano;
    }
    this.#pending.set(generationId, { account, key, keyWindow: key?.window ?? 0, at: this.#now(), cost: costNano });
  }

  /**
   * Wraps the usage insert: the rows' charges move from pending to the database view only once
   * they are committed, and no refresh reads in between.
   */
  writeUsage(insert: (rows: UsageRecord[]) => Promise<void>): (rows: UsageRecord[]) => Promise<void> {
    return (rows) =>
      this.#exclusive(async () => {
        await insert(rows);
        for (const r of rows) this.#committed(r.id);
      });
  }

  /** Credits added (or removed) in this process: applied at once instead of at the next refresh. */
  credited(accountId: string, amountNano: number): void {
    const a = this.#accounts.get(accountId);
    if (a) {
      a.db += amountNano;
      a.stale = true;
    }
  }

  /**
   * Forgets cached state (e.g. after a key's limit changed), so that the next request waits for
   * a fresh read. Charges and reservations in flight are kept.
   */
  invalidateKey(keyId: string): void {
    const k = this.#keys.get(keyId);
    if (k) forget(k);
  }

  /** The same for an account (e.g. after a top-up made elsewhere, or a billing mode change). */
  invalidateAccount(accountId: string): void {
    const a = this.#accounts.get(accountId);
    if (a) forget(a);
  }

  /** The key's spend in its current window as this process sees it (committed + pending), nano-USD. */
  async keySpent(subject: Pick<SpendSubject, 'keyId' | 'limitReset'>, since: number): Promise<number> {
    const k = this.#keys.get(subject.keyId);
    const db = await this.#source.keySpend(subject.keyId, since);
    // Pending charges are not in the database yet.
    let pending = 0;
    if (k) for (const p of this.#pending.values()) if (p.key === k && p.at >= since) pending += p.cost;
    return db + pending;
  }

  /** Pending charges of an account (for reports that must include what is not written yet). */
  pendingFor(accountId: string): number {
    return this.#accounts.get(accountId)?.pending ?? 0;
  }

  #committed(generationId: string): void {
    const p = this.#pending.get(generationId);
    if (p === undefined) return;
    this.#pending.delete(generationId);
    // Runs inside the write lock, so no read is in progress; a read queued behind it sees the row.
    if (p.account) {
      p.account.pending -= p.cost;
      p.account.db -= p.cost;
    }
    // A charge of a window that has since rolled over is not part of the current one.
    if (p.key && p.key.window === p.keyWindow) {
      p.key.pending -= p.cost;
      p.key.db += p.cost;
    }
  }

  #account(accountId: string): Ledgered {
    let a = this.#accounts.get(accountId);
    if (a === undefined) {
      a = newState();
      this.#accounts.set(accountId, a);
    }
    this.#maybeLoad(a, async (state) => {
      // Pending charges stay pending: the database does not hold them yet.
      state.db = await this.#source.balance(accountId);
    });
    return a;
  }

  #key(subject: SpendSubject): KeyState {
    const window = windowStart(subject.limitReset, this.#now());
    let k = this.#keys.get(subject.keyId);
    if (k === undefined) {
      k = { ...newState(), window };
      this.#keys.set(subject.keyId, k);
    }
    this.#roll(k, window);
    const key = k;
    this.#maybeLoad(key, async (state) => {
      const spent = await this.#source.keySpend(subject.keyId, window);
      if (key.window === window) state.db = spent;
    });
    return key;
  }

  /** A key's window rolled over: what was spent belongs to the last one. */
  #roll(k: KeyState, window: number): void {
    if (k.window === window) return;
    k.window = window;
    k.db = 0;
    k.pending = 0;
    k.stale = true;
  }

  /**
   * Starts a (re)load when the state was never loaded, is stale or is older than `refreshMs`.
   * Only a first load is awaited by `admit` (and its failure fails the request); a refresh runs
   * in the background and a failed one is retried on the next request.
   */
  #maybeLoad<S extends Ledgered>(state: S, read: (state: S) => Promise<void>): void {
    const now = this.#now();
    if (state.loading || (state.loaded && !state.stale && now - state.loadedAt < this.#refreshMs)) return;
    state.stale = false;
    const loading = this.#exclusive(() => read(state)).then(
      () => {
        state.loading = undefined;
        state.loaded = true;
        state.loadedAt = this.#now();
      },
      (err: unknown) => {
        state.loading = undefined;
        state.stale = true;
        throw accountingUnavailable(err);
      },
    );
    state.loading = loading;
    loading.catch(() => {});
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }
}

function forget(s: Ledgered): void {
  s.stale = true;
  s.loaded = false;
}

function newState(): Ledgered {
  return { db: 0, pending: 0, reserved: 0, loaded: false, loadedAt: 0, loading: undefined, stale: true };
}

function insufficient(reason: 'MR_ERR_INSUFFICIENT_CREDITS' | 'MR_ERR_KEY_LIMIT', message: string): GatewayError {
  return new GatewayError('MR_ERR_INSUFFICIENT_CREDITS', message, { reason });
}

/**
 * The 402 of a key spend limit: `left` is the limit minus what the key spent in its window and
 * holds in flight (≤ 0: the limit is reached). Shared by both implementations.
 */
export function keyLimitRefusal(
  subject: Pick<SpendSubject, 'spendLimitNano' | 'limitReset'>,
  worstCaseNano: number,
  left: number,
  describe: () => string,
  now: number,
): GatewayError {
  const limit = subject.spendLimitNano ?? 0;
  return insufficient(
    'MR_ERR_KEY_LIMIT',
    left <= 0
      ? `This API key has reached its spend limit of $${formatUsd(limit)}${resetText(subject.limitReset, now)}.`
      : `This request may cost up to $${formatUsd(worstCaseNano)} (${describe()}), more than the $${formatUsd(left)} left of this API key's spend limit${resetText(subject.limitReset, now)}; lower max_tokens or raise the limit.`,
  );
}

/**
 * The 402 of credits: `balance` is the balance minus pending charges, `available` that minus
 * the reservations in flight. Shared by both implementations.
 */
export function creditsRefusal(worstCaseNano: number, balance: number, available: number, describe: () => string): GatewayError {
  if (balance <= 0) {
    return insufficient('MR_ERR_INSUFFICIENT_CREDITS', `The account has no credits left (balance $${formatUsd(balance)}); add credits to continue.`);
  }
  return insufficient(
    'MR_ERR_INSUFFICIENT_CREDITS',
    `This request may cost up to $${formatUsd(worstCaseNano)} (${describe()}), more than the $${formatUsd(Math.max(0, available))} of credits available; lower max_tokens or add credits.`,
  );
}

/** 500: the database could not be read for a first (or forced) load. */
export function accountingUnavailable(cause: unknown): GatewayError {
  const e = new GatewayError('MR_ERR_INTERNAL', 'Spending limits cannot be checked right now.');
  e.cause = cause;
  return e;
}

function resetText(reset: LimitReset | null, now: number): string {
  const end = windowEnd(reset, now);
  return end === null ? '' : ` (${reset}; it resets at ${new Date(end).toISOString()})`;
}
