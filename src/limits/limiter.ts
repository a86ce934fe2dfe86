/**
 * The rate limiter the gateway calls once per request, before it goes upstream:
 *
 *   const ticket = await limiter.admit({ keyId, accountId, providerId, estimatedTokens, limits });
 *   reply.headers(ticket.headers());
 *   … relay …
 *   void ticket.finish(usage?.total_tokens);
 *
 * Requests-per-minute and tokens-per-minute limits of the key, the account and the provider are
 * checked and charged in ONE atomic `consume` (requests cost 1, tokens the estimate), then the
 * concurrency slots are taken. A request refused at any step is charged nothing: slots already
 * taken are released and the consumed requests and tokens are refunded. `admit` throws only
 * `RateLimitedError` (429) and, when the store is down and the limiter fails closed,
 * `RateStoreUnavailableError` (503).
 */
import { RateLimitedError, RateStoreUnavailableError, type LimitKind, type LimitScope } from './errors.js';
import { drainMs } from './gcra.js';
import { rateLimitHeaders, type LimitState } from './headers.js';
import type { RateCheck, RateCheckResult, RateDecision, RateStore } from './store.js';

export { RateLimitedError, RateStoreUnavailableError } from './errors.js';
export type { LimitKind, LimitName, LimitScope } from './errors.js';

/** Limits of one scope; undefined means unlimited. */
export interface Limits {
  /** Requests per minute. */
  rpm?: number;
  /** Tokens (prompt + output) per minute. */
  tpm?: number;
  /** Requests in flight at once. */
  concurrency?: number;
}

export interface ProviderLimits {
  rpm?: number;
  concurrency?: number;
}

export interface AdmitRequest {
  keyId: string;
  accountId: string;
  providerId: string;
  /** Tokens the request is expected to use: prompt estimate + requested output (see tokens.ts). */
  estimatedTokens: number;
  limits: { key: Limits; account: Limits; provider: ProviderLimits };
}

export interface RateLimiterOptions {
  store: RateStore;
  /** When the store is unreachable: 'open' admits without limits, 'closed' refuses (503). */
  onStoreFailure: 'open' | 'closed';
  /** Called (at most once per `warningIntervalMs`) when the store is unreachable; for the log. */
  onWarning?: (message: string, error: RateStoreUnavailableError) => void;
  /** Default 10 000 ms. */
  warningIntervalMs?: number;
  /** How long a concurrency slot is held without renewal (a crashed instance's slots come back after it). Default 60 000 ms. */
  leaseMs?: number;
  /** How often an open ticket renews its slots. Default `leaseMs / 3`. */
  renewEveryMs?: number;
  /** The period of rpm and tpm. Default 60 000 ms ("per minute"); tests shorten it. */
  periodMs?: number;
  /** Clock for the warning interval. Default `Date.now`. */
  now?: () => number;
}

export interface RateLimiterStats {
  /** Requests admitted under limits (including requests that had none). */
  admitted: number;
  /** Requests refused with RateLimitedError. */
  limited: number;
  /** Requests admitted without limits because the store was unreachable ('open'). */
  failOpen: number;
  /** Store failures seen by `admit` (both modes). */
  storeErrors: number;
  /** Store failures after admission (renew, release, reconciliation); best effort, not retried. */
  backgroundErrors: number;
  /** Slots whose lease had expired when renewed. */
  leasesLost: number;
}

/** What an admitted request holds until it finishes. */
export interface RateTicket {
  /** True when admitted without limits because the store was unreachable. */
  readonly failOpen: boolean;
  /** OpenAI's `x-ratelimit-*` headers for the limits that exist (empty when none). */
  headers(): Record<string, string>;
  /**
   * Reconciles tokens (charges `actualTokens − estimate`, or refunds it) and releases the
   * concurrency slots. `undefined` keeps the estimate. Idempotent; never rejects.
   */
  finish(actualTokens: number | undefined): Promise<void>;
}

type Unit = 'requests' | 'tokens';

interface PlannedCheck {
  scope: LimitScope;
  kind: LimitKind;
  unit: Unit;
  check: RateCheck;
}

interface PlannedSlot {
  scope: LimitScope;
  key: string;
  limit: number;
}

interface HeldLease {
  key: string;
  token: string;
}

const SCOPE_TAG: Record<LimitScope, string> = { key: 'key', account: 'acct', provider: 'prov' };

/** The store key of one limit: `<scope>:<id>:<rpm|tpm|conc>`, ids only. */
export function limitKey(scope: LimitScope, id: string, what: 'rpm' | 'tpm' | 'conc'): string {
  return `${SCOPE_TAG[scope]}:${encodeURIComponent(id)}:${what}`;
}

/** A usable limit value, or undefined for unlimited (undefined, null, NaN, ±Infinity, < 0). */
function limitValue(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function tokenCount(v: number | undefined): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0;
}

export class RateLimiter {
  readonly stats: RateLimiterStats = { admitted: 0, limited: 0, failOpen: 0, storeErrors: 0, backgroundErrors: 0, leasesLost: 0 };
  readonly store: RateStore;
  readonly onStoreFailure: 'open' | 'closed';
  private readonly onWarning: ((message: string, error: RateStoreUnavailableError) => void) | undefined;
  private readonly warningIntervalMs: number;
  readonly leaseMs: number;
  private readonly renewEveryMs: number;
  readonly periodMs: number;
  private readonly now: () => number;
  private lastWarningAt: number | undefined;

  constructor(opts: RateLimiterOptions) {
    this.store = opts.store;
    this.onStoreFailure = opts.onStoreFailure;
    this.onWarning = opts.onWarning;
    this.warningIntervalMs = opts.warningIntervalMs ?? 10_000;
    this.leaseMs = opts.leaseMs ?? 60_000;
    // setInterval treats anything above 2^31 − 1 ms as 1 ms.
    this.renewEveryMs = Math.min(2_147_483_647, Math.max(1, opts.renewEveryMs ?? Math.floor(this.leaseMs / 3)));
    this.periodMs = opts.periodMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  async admit(req: AdmitRequest): Promise<RateTicket> {
    const tokens = tokenCount(req.estimatedTokens);
    const checks = this.plannedChecks(req, tokens);
    const slots = this.plannedSlots(req);

    let decision: RateDecision | undefined;
    if (checks.length > 0) {
      try {
        decision = await this.store.consume(checks.map((c) => c.check));
      } catch (err) {
        return this.storeFailed(err);
      }
      if (!decision.allowed) {
        this.stats.limited++;
        throw this.rateRefusal(checks, decision, tokens);
      }
    }

    const leases: HeldLease[] = [];
    if (slots.length > 0) {
      const settled = await Promise.allSettled(slots.map((s) => this.store.acquire(s.key, s.limit, this.leaseMs)));
      let refused: PlannedSlot | undefined;
      let failure: unknown;
      let failed = false;
      settled.forEach((s, i) => {
        const slot = slots[i] as PlannedSlot;
        if (s.status === 'rejected') {
          if (!failed) failure = s.reason;
          failed = true;
        } else if (s.value.ok) leases.push({ key: slot.key, token: s.value.token });
        else refused ??= slot;
      });
      if (failed || refused !== undefined) {
        // Charge nothing for a refused request: give back the slots and the consumed budget.
        await this.undo(leases, decision === undefined ? [] : checks);
        if (failed) return this.storeFailed(failure);
        this.stats.limited++;
        const slot = refused as PlannedSlot;
        throw new RateLimitedError({
          scope: slot.scope,
          kind: 'concurrent requests',
          limit: slot.limit,
          retryAfterSeconds: 1,
          exceedsLimit: slot.limit < 1,
          headers: decision === undefined ? {} : headersOf(checks, refunded(checks, decision.results)),
        });
      }
    }

    this.stats.admitted++;
    const tpm = checks.filter((c) => c.unit === 'tokens').map((c) => c.check);
    return new Ticket(this, false, decision === undefined ? {} : headersOf(checks, decision.results), tpm, tokens, leases);
  }

  // -- internals shared with Ticket --------------------------------------------------------------

  /** Best effort: failures are counted, never thrown. */
  background(op: Promise<unknown>): Promise<void> {
    return op.then(
      () => undefined,
      () => {
        this.stats.backgroundErrors++;
      },
    );
  }

  renewEvery(): number {
    return this.renewEveryMs;
  }

  private plannedChecks(req: AdmitRequest, tokens: number): PlannedCheck[] {
    const out: PlannedCheck[] = [];
    const add = (scope: LimitScope, id: string, limits: Limits | ProviderLimits | undefined) => {
      const rpm = limitValue(limits?.rpm);
      if (rpm !== undefined) {
        out.push({ scope, kind: 'requests per minute', unit: 'requests', check: { key: limitKey(scope, id, 'rpm'), limit: rpm, periodMs: this.periodMs, cost: 1 } });
      }
      const tpm = limitValue((limits as Limits | undefined)?.tpm);
      if (tpm !== undefined) {
        out.push({ scope, kind: 'tokens per minute', unit: 'tokens', check: { key: limitKey(scope, id, 'tpm'), limit: tpm, periodMs: this.periodMs, cost: tokens } });
      }
    };
    add('key', req.keyId, req.limits?.key);
    add('account', req.accountId, req.limits?.account);
    add('provider', req.providerId, { rpm: req.limits?.provider?.rpm });
    return out;
  }

  private plannedSlots(req: AdmitRequest): PlannedSlot[] {
    const out: PlannedSlot[] = [];
    const add = (scope: LimitScope, id: string, v: number | undefined) => {
      const limit = limitValue(v);
      if (limit !== undefined) out.push({ scope, key: limitKey(scope, id, 'conc'), limit });
    };
    add('key', req.keyId, req.limits?.key?.concurrency);
    add('account', req.accountId, req.limits?.account?.concurrency);
    add('provider', req.providerId, req.limits?.provider?.concurrency);
    return out;
  }

  private rateRefusal(checks: PlannedCheck[], decision: RateDecision, tokens: number): RateLimitedError {
    const index = decision.refusedIndex ?? 0;
    const c = checks[index] as PlannedCheck;
    const retryMs = decision.exceedsLimit ? c.check.periodMs : (decision.retryAfterMs ?? 1_000);
    return new RateLimitedError({
      scope: c.scope,
      kind: c.kind,
      limit: c.check.limit,
      retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1_000)),
      exceedsLimit: decision.exceedsLimit,
      headers: headersOf(checks, decision.results),
      ...(c.unit === 'tokens' ? { requestedTokens: tokens } : {}),
    });
  }

  private async undo(leases: HeldLease[], consumed: PlannedCheck[]): Promise<void> {
    await Promise.all([
      ...leases.map((l) => this.background(this.store.release(l.key, l.token))),
      ...consumed.filter((c) => c.check.cost > 0).map((c) => this.background(this.store.adjust({ ...c.check, cost: -c.check.cost }))),
    ]);
  }

  private storeFailed(err: unknown): RateTicket {
    const error = err instanceof RateStoreUnavailableError ? err : new RateStoreUnavailableError(err);
    this.stats.storeErrors++;
    if (this.onStoreFailure === 'closed') {
      this.warn('Rate-limit store unreachable: refusing requests with 503 until it is back', error);
      throw error;
    }
    this.stats.failOpen++;
    this.warn('Rate-limit store unreachable: admitting requests WITHOUT rate limits until it is back', error);
    return new Ticket(this, true, {}, [], 0, []);
  }

  private warn(message: string, error: RateStoreUnavailableError): void {
    if (this.onWarning === undefined) return;
    const t = this.now();
    if (this.lastWarningAt !== undefined && t - this.lastWarningAt < this.warningIntervalMs) return;
    this.lastWarningAt = t;
    try {
      this.onWarning(`${message} (store failures so far: ${this.stats.storeErrors}, admitted without limits: ${this.stats.failOpen}).`, error);
    } catch {
      // A failing log callback must not fail the request.
    }
  }
}

/** Results as they are once the refused request's own charge has been refunded. */
function refunded(checks: PlannedCheck[], results: RateCheckResult[]): RateCheckResult[] {
  return results.map((r, i) => {
    const c = (checks[i] as PlannedCheck).check;
    return {
      ...r,
      remaining: Math.min(Math.floor(c.limit), r.remaining + c.cost),
      resetMs: Math.max(0, r.resetMs - drainMs(c.cost, c.limit, c.periodMs)),
    };
  });
}

function headersOf(checks: PlannedCheck[], results: RateCheckResult[]): Record<string, string> {
  const requests: LimitState[] = [];
  const tokens: LimitState[] = [];
  results.forEach((r, i) => {
    const unit = (checks[i] as PlannedCheck).unit;
    (unit === 'requests' ? requests : tokens).push({ limit: r.limit, remaining: r.remaining, resetMs: r.resetMs });
  });
  return rateLimitHeaders(requests, tokens);
}

class Ticket implements RateTicket {
  private finishing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limiter: RateLimiter,
    readonly failOpen: boolean,
    private readonly headerValues: Record<string, string>,
    private readonly tpmChecks: RateCheck[],
    private readonly estimate: number,
    private readonly leases: HeldLease[],
  ) {
    if (leases.length > 0) {
      this.timer = setInterval(() => this.renew(), limiter.renewEvery());
      this.timer.unref();
    }
  }

  headers(): Record<string, string> {
    return { ...this.headerValues };
  }

  finish(actualTokens: number | undefined): Promise<void> {
    if (this.finishing !== undefined) return this.finishing;
    if (this.timer !== undefined) clearInterval(this.timer);
    const { store } = this.limiter;
    const ops: Promise<void>[] = this.leases.map((l) => this.limiter.background(store.release(l.key, l.token)));
    if (typeof actualTokens === 'number' && Number.isFinite(actualTokens) && actualTokens >= 0) {
      const delta = Math.ceil(actualTokens) - this.estimate;
      if (delta !== 0) {
        for (const c of this.tpmChecks) ops.push(this.limiter.background(store.adjust({ ...c, cost: delta })));
      }
    }
    this.finishing = Promise.all(ops).then(() => undefined);
    return this.finishing;
  }

  private renew(): void {
    const { store } = this.limiter;
    for (const l of this.leases) {
      void this.limiter.background(
        store.renew(l.key, l.token, this.limiter.leaseMs).then((held) => {
          if (!held && this.finishing === undefined) this.limiter.stats.leasesLost++;
        }),
      );
    }
  }
}
