/**
 * A circuit breaker per endpoint (provider + provider model, see `EndpointRoute.key`), so that a
 * failing upstream is skipped instead of being tried, and waited for, by every request.
 *
 *   closed ── N consecutive failures ──▶ open ── cool-down elapsed ──▶ half-open
 *     ▲                                   ▲                               │ one probe at a time
 *     └──────────── probe succeeded ──────┼───────── probe failed ────────┘
 *
 * The cool-down doubles each time the breaker opens again without having closed in between,
 * up to a maximum; a successful probe resets it. Pure and synchronous: time comes from an
 * injected clock. See docs/routing.md.
 */
import { GatewayError } from '../ir/errors.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open a closed breaker. Default 5. */
  failureThreshold: number;
  /** The first cool-down, ms. Default 30 000. */
  coolDownMs: number;
  /** The longest cool-down (it doubles on repeated opens), ms. Default 300 000. */
  maxCoolDownMs: number;
  /**
   * A half-open probe that was reserved and never reported is given up after this long, ms, so
   * that a lost report cannot keep the endpoint out of service forever. Default 600 000 (longer
   * than any default upstream timeout).
   */
  probeTimeoutMs: number;
  /** The clock, ms. Default `Date.now`. */
  now: () => number;
}

export const DEFAULT_BREAKER_OPTIONS: Readonly<BreakerOptions> = Object.freeze({
  failureThreshold: 5,
  coolDownMs: 30_000,
  maxCoolDownMs: 300_000,
  probeTimeoutMs: 600_000,
  now: Date.now,
});

export class CircuitBreaker {
  readonly options: Readonly<BreakerOptions>;
  #state: BreakerState = 'closed';
  #failures = 0;
  /** Opens since the breaker was last closed (1 after the first open). */
  #opens = 0;
  #openUntil = 0;
  /** When the half-open probe was reserved; undefined while none is in flight. */
  #probeSince: number | undefined;

  constructor(options: Partial<BreakerOptions> = {}) {
    this.options = { ...DEFAULT_BREAKER_OPTIONS, ...options };
  }

  /** The state now: an open breaker whose cool-down has elapsed reads as half-open. */
  get state(): BreakerState {
    this.#tick();
    return this.#state;
  }

  /** Whether `allow()` would let a request through now (without reserving anything). */
  get available(): boolean {
    this.#tick();
    return this.#state === 'closed' || (this.#state === 'half-open' && this.#probeSince === undefined);
  }

  /** Consecutive failures counted while closed. */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Ms until an open breaker admits a probe (0 when not open). */
  retryInMs(): number {
    this.#tick();
    return this.#state === 'open' ? Math.max(0, this.#openUntil - this.options.now()) : 0;
  }

  /**
   * May a request be sent now? Closed: yes. Open: no. Half-open: yes for exactly one request —
   * the probe, which is reserved until `success()`, `failure()` or `release()` — and no for the
   * others meanwhile.
   */
  allow(): boolean {
    this.#tick();
    if (this.#state === 'closed') return true;
    if (this.#state === 'open' || this.#probeSince !== undefined) return false;
    this.#probeSince = this.options.now();
    return true;
  }

  /** The upstream answered (a client error counts: the endpoint works). Closes a half-open breaker. */
  success(): void {
    this.#tick();
    if (this.#state === 'open') return; // a late answer to a request sent before the breaker opened
    this.#state = 'closed';
    this.#failures = 0;
    this.#opens = 0;
    this.#probeSince = undefined;
  }

  /** The upstream failed (see `isBreakerFailure`). Opens the breaker at the threshold, or again when half-open. */
  failure(): void {
    this.#tick();
    if (this.#state === 'open') return;
    if (this.#state === 'half-open') {
      this.#open();
      return;
    }
    this.#failures++;
    if (this.#failures >= this.options.failureThreshold) this.#open();
  }

  /** The reserved probe ended without a verdict (e.g. the client went away first): another may go. */
  release(): void {
    if (this.#state === 'half-open') this.#probeSince = undefined;
  }

  #open(): void {
    this.#opens++;
    const { coolDownMs, maxCoolDownMs } = this.options;
    const coolDown = Math.min(maxCoolDownMs, coolDownMs * 2 ** Math.min(this.#opens - 1, 30));
    this.#state = 'open';
    this.#openUntil = this.options.now() + coolDown;
    this.#probeSince = undefined;
    this.#failures = 0;
  }

  #tick(): void {
    const now = this.options.now();
    if (this.#state === 'open' && now >= this.#openUntil) this.#state = 'half-open';
    if (this.#probeSince !== undefined && now - this.#probeSince >= this.options.probeTimeoutMs) this.#probeSince = undefined;
  }
}

/** The breakers of all endpoints, created on first use; every one shares the same options. */
export class BreakerRegistry {
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly options: Partial<BreakerOptions>;

  constructor(options: Partial<BreakerOptions> = {}) {
    this.options = options;
  }

  get(key: string): CircuitBreaker {
    let b = this.#breakers.get(key);
    if (!b) {
      b = new CircuitBreaker(this.options);
      this.#breakers.set(key, b);
    }
    return b;
  }

  /** The breaker of `key` if it was ever used (an unused one is closed). */
  peek(key: string): CircuitBreaker | undefined {
    return this.#breakers.get(key);
  }

  state(key: string): BreakerState {
    return this.#breakers.get(key)?.state ?? 'closed';
  }

  /** Whether a request to `key` would be let through now, without reserving a probe. */
  available(key: string): boolean {
    return this.#breakers.get(key)?.available ?? true;
  }

  /** Every breaker used so far, with its key (for metrics and the admin API). */
  entries(): IterableIterator<[string, CircuitBreaker]> {
    return this.#breakers.entries();
  }
}

/**
 * What a failed attempt means for the request and its endpoint:
 * - `retry`: the endpoint failed in a way that may pass — connection errors, timeouts, an
 *   unreadable answer, 408, 429 and 5xx. Counts against the breaker; the next endpoint is tried,
 *   and this one may be retried after a backoff.
 * - `failover`: the upstream rejected the gateway's own credentials (401, 403). Counts against
 *   the breaker; the next endpoint is tried, this one is not retried.
 * - `unsupported`: the gateway could not translate the request for this endpoint's provider type
 *   (`MR_ERR_UNSUPPORTED_PARAMETER`, raised before anything is sent). Not a failure of the
 *   endpoint; the next one, perhaps of another type, is tried.
 * - `fatal`: anything else — a client error the upstream reported (400, 404, 413, 422, …) or an
 *   error raised by the gateway itself. Not the endpoint's fault: it goes back to the client as is.
 */
export type FailureKind = 'retry' | 'failover' | 'unsupported' | 'fatal';

export function classifyFailure(err: unknown): FailureKind {
  if (!(err instanceof GatewayError)) return 'fatal';
  // The gateway's own shutdown ends requests: nothing to retry, nothing wrong with the endpoint.
  if (err.reason === 'shutdown') return 'fatal';
  // This gateway's cap on a provider (providers[].limits): try the next endpoint, no penalty.
  if (err.code === 'MR_ERR_RATE_LIMITED' && err.upstreamStatus === undefined) return 'unsupported';
  const status = err.upstreamStatus;
  if (status !== undefined) {
    if (status === 401 || status === 403) return 'failover';
    if (status === 408 || status === 429 || status >= 500) return 'retry';
    return 'fatal';
  }
  switch (err.code) {
    case 'MR_ERR_UPSTREAM_TIMEOUT':
    case 'MR_ERR_UPSTREAM_UNAVAILABLE':
    case 'MR_ERR_UPSTREAM_ERROR':
    case 'MR_ERR_UPSTREAM_BAD_RESPONSE':
    case 'MR_ERR_UPSTREAM_RATE_LIMITED':
      return 'retry';
    case 'MR_ERR_UPSTREAM_AUTH':
      return 'failover';
    case 'MR_ERR_UNSUPPORTED_PARAMETER':
      return 'unsupported';
    default:
      return 'fatal';
  }
}

/** Whether an error counts as a failure of the endpoint for its breaker (`retry` and `failover`). */
export function isBreakerFailure(err: unknown): boolean {
  const kind = classifyFailure(err);
  return kind === 'retry' || kind === 'failover';
}
