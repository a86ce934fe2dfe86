/**
 * The routing brain: which endpoints may serve a request, in which order, and how often each may
 * be tried. Pure and synchronous — no I/O; the clock and the random source are injected — so
 * that every decision is testable. The relay drives it:
 *
 *   controls = parseRequestControls(body, accountDefaults)            // 400 on a bad control
 *   plan = router.plan(controls.models, controls.provider, 'chat')   // 400/403/404/503
 *   schedule = new AttemptSchedule(plan.candidates, { breakers: router.breakers })
 *   for (let a = schedule.next(); a; a = schedule.next()) {
 *     await sleep(a.delayMs)                                         // 0 for a first attempt
 *     try { …send withoutRequestControls(body) to a.candidate…; schedule.succeeded();
 *           router.health.record(a.candidate.key, { ttfbMs, durationMs, completionTokens }); return }
 *     catch (err) { lastError = err; if (client gone) schedule.abandoned(), stop;
 *                   if (schedule.failed(err) === 'fatal') throw err }
 *   }
 *   throw lastError ?? schedule.unavailableError()
 *
 * See docs/routing.md.
 */
import { GatewayError } from '../ir/errors.js';
import { BreakerRegistry, classifyFailure, type FailureKind } from './breaker.js';
import type { Catalog, EndpointRoute } from './catalog.js';
import { HealthRegistry } from './health.js';
import { defaultProviderControls, type ProviderControls } from './request-controls.js';

/** An endpoint to try: a Route (model, provider runtime, upstream model, prices) plus its endpoint config. */
export type Candidate = EndpointRoute;

export type ExclusionReason =
  /** Not in `provider.only`. */
  | 'only'
  /** In `provider.ignore`. */
  | 'ignore'
  /** `allow_fallbacks: false` with `order`: the provider is not in `order`. */
  | 'not_in_order'
  /** The endpoint is not `zdr: true` and the request or account requires ZDR. */
  | 'zdr'
  /** The endpoint allows data collection and the request or account denies it. */
  | 'data_collection'
  /** A price above `provider.max_price`. */
  | 'max_price'
  /** Its circuit breaker is open (or half-open with its one probe in flight). */
  | 'breaker_open'
  /** `allow_fallbacks: false`: not the chosen endpoint, or a model after the first. */
  | 'fallbacks_disabled';

export interface Exclusion {
  /** The client model id. */
  model: string;
  /** The provider id. */
  provider: string;
  /** The endpoint's position in the model's `endpoints`. */
  endpoint: number;
  /** The endpoint's breaker and health key (`EndpointRoute.key`). */
  key: string;
  reason: ExclusionReason;
}

export interface RoutePlan {
  /** The endpoints to try, in order; never empty (`plan` throws instead). */
  candidates: Candidate[];
  excluded: Exclusion[];
}

/** The subset of the catalog the router reads. */
export type RouterCatalog = Pick<Catalog, 'endpoints' | 'providers'>;

export interface RouterOptions {
  retryPolicy?: Partial<RetryPolicy>;
  breakers?: BreakerRegistry;
  health?: HealthRegistry;
  /** Uniform in [0, 1); default `Math.random`. */
  random?: () => number;
}

type Stage = 'selection' | 'policy' | 'price' | 'breaker';

const STAGE_OF: Record<ExclusionReason, Stage | undefined> = {
  only: 'selection',
  ignore: 'selection',
  not_in_order: 'selection',
  zdr: 'policy',
  data_collection: 'policy',
  max_price: 'price',
  breaker_open: 'breaker',
  fallbacks_disabled: undefined,
};

const STAGE_RANK: Record<Stage, number> = { selection: 0, policy: 1, price: 2, breaker: 3 };

export class Router {
  readonly breakers: BreakerRegistry;
  readonly health: HealthRegistry;
  /** Retries and fallbacks of each request (from the config's `retries`). */
  readonly retryPolicy: Readonly<RetryPolicy>;
  readonly #catalog: RouterCatalog;
  readonly #random: () => number;

  constructor(catalog: RouterCatalog, options: RouterOptions = {}) {
    this.#catalog = catalog;
    this.breakers = options.breakers ?? new BreakerRegistry();
    this.health = options.health ?? new HealthRegistry();
    this.#random = options.random ?? Math.random;
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retryPolicy };
  }

  /**
   * The endpoints to try for a request, in order, and those left out with the reason.
   *
   * For each model of `modelIds` (the first is the request's `model`): its endpoints minus those
   * `only`/`ignore` rule out, those the data policy (`zdr`, `dataCollection`) or `maxPrice` rule
   * out, and those whose breaker is open; ordered by `order` (listed providers first, in that
   * order), then by `sort`, else by weighted random choice among endpoints with a closed breaker
   * preceded by a half-open one whose probe is free. With `allowFallbacks: false` only the first model counts, and
   * only its endpoints in `order` (without `order`: the single endpoint ordered first).
   *
   * Throws (nothing is ever sent to an endpoint that was ruled out):
   * - 400 `MR_ERR_INVALID_REQUEST`: no model, or an unknown provider id in `order`/`only`/`ignore`;
   * - 404 `MR_ERR_MODEL_NOT_FOUND` / 400: an unknown model, or one of the other kind, as `Catalog.resolve`;
   * - 503 `MR_ERR_UPSTREAM_UNAVAILABLE` (reason `circuit_open`, with `retryAfter`): what was left
   *   after the request's own rules has open breakers only;
   * - 403 `MR_ERR_FORBIDDEN` (reason `data_policy`): no endpoint satisfies the data policy;
   * - 404 `MR_ERR_NOT_FOUND` (reason `max_price` or `provider_preferences`): no endpoint within
   *   the price ceiling, or none allowed by `only`/`ignore`/`order`.
   * The message names every endpoint left out and why.
   */
  plan(modelIds: readonly string[], controls: ProviderControls = defaultProviderControls(), kind: 'chat' | 'embedding' = 'chat'): RoutePlan {
    if (modelIds.length === 0) {
      throw new GatewayError('MR_ERR_INVALID_REQUEST', "'model' is required and must be a string.", { param: 'model' });
    }
    const order = this.#providerIds(controls.order, 'order');
    const only = this.#providerIds(controls.only, 'only');
    const ignore = this.#providerIds(controls.ignore, 'ignore');
    // Every model is looked up first, so that an unknown one is a 404 whatever else happens.
    const models = modelIds.map((id, i) => ({ id, routes: this.#catalog.endpoints(id, kind, i === 0 ? 'model' : 'models') }));

    const candidates: Candidate[] = [];
    const excluded: Exclusion[] = [];
    /** The furthest stage at which a considered model lost its last endpoint. */
    let emptiedAt: Stage | undefined;
    const orderIndex = (c: Candidate) => order?.indexOf(c.provider.id) ?? -1;

    models.forEach(({ id, routes }, modelIndex) => {
      const exclude = (c: Candidate, reason: ExclusionReason) =>
        excluded.push({ model: id, provider: c.provider.id, endpoint: c.index, key: c.key, reason });
      if (modelIndex > 0 && !controls.allowFallbacks) {
        for (const c of routes) exclude(c, 'fallbacks_disabled');
        return;
      }
      const kept: Candidate[] = [];
      let furthest: Stage = 'selection';
      for (const c of routes) {
        const reason = this.#exclusion(c, controls, only, ignore, order);
        if (reason === undefined) {
          kept.push(c);
          continue;
        }
        exclude(c, reason);
        const stage = STAGE_OF[reason]!;
        if (STAGE_RANK[stage] > STAGE_RANK[furthest]) furthest = stage;
      }
      if (kept.length === 0) {
        if (emptiedAt === undefined || STAGE_RANK[furthest] > STAGE_RANK[emptiedAt]) emptiedAt = furthest;
        return;
      }
      const listed = kept.filter((c) => orderIndex(c) >= 0).sort((a, b) => orderIndex(a) - orderIndex(b) || a.index - b.index);
      const rest = this.#arrange(
        kept.filter((c) => orderIndex(c) < 0),
        controls,
      );
      if (controls.allowFallbacks) {
        candidates.push(...listed, ...rest);
      } else if (order) {
        candidates.push(...listed); // `rest` is empty: #exclusion left out the providers not in `order`
      } else {
        candidates.push(rest[0]!);
        for (const c of rest.slice(1)) exclude(c, 'fallbacks_disabled');
      }
    });

    if (candidates.length === 0) throw this.#noCandidateError(modelIds, controls, excluded, emptiedAt ?? 'selection');
    return { candidates, excluded };
  }

  /** Why `c` may not serve the request, or undefined when it may. */
  #exclusion(
    c: Candidate,
    controls: ProviderControls,
    only: readonly string[] | undefined,
    ignore: readonly string[] | undefined,
    order: readonly string[] | undefined,
  ): ExclusionReason | undefined {
    const p = c.provider.id;
    if (only && !only.includes(p)) return 'only';
    if (ignore?.includes(p)) return 'ignore';
    if (!controls.allowFallbacks && order && !order.includes(p)) return 'not_in_order';
    if (controls.zdr && c.endpoint.zdr !== true) return 'zdr';
    if (controls.dataCollection === 'deny' && c.endpoint.dataCollection !== 'deny') return 'data_collection';
    const max = controls.maxPrice;
    if (max) {
      const pr = c.pricing;
      if (max.prompt !== undefined && (pr?.input ?? 0) > max.prompt) return 'max_price';
      if (max.completion !== undefined && (pr?.output ?? 0) > max.completion) return 'max_price';
      if (max.request !== undefined && (pr?.request ?? 0) > max.request) return 'max_price';
    }
    if (!this.breakers.available(c.key)) return 'breaker_open';
    return undefined;
  }

  /**
   * Endpoints not placed by `order`: by `sort`, else weighted random. A half-open endpoint whose
   * single probe is free goes first: the next request is its probe (and falls back to the others
   * if the probe fails), so a recovered endpoint gets its share back after one cool-down instead
   * of waiting for every other endpoint to fail.
   */
  #arrange(list: Candidate[], controls: ProviderControls): Candidate[] {
    if (list.length <= 1) return list;
    const closed = list.filter((c) => this.breakers.state(c.key) === 'closed');
    const probing = list.filter((c) => this.breakers.state(c.key) !== 'closed');
    const arrange = (group: Candidate[]) => (controls.sort ? this.#sorted(group, controls.sort) : weightedOrder(group, this.#random));
    return [...arrange(probing), ...arrange(closed)];
  }

  #sorted(list: Candidate[], sort: 'price' | 'latency' | 'throughput'): Candidate[] {
    const byIndex = (a: Candidate, b: Candidate) => a.index - b.index;
    if (sort === 'price') {
      const price = (c: Candidate) => c.prices.input + c.prices.output;
      return [...list].sort((a, b) => price(a) - price(b) || a.prices.request - b.prices.request || byIndex(a, b));
    }
    // Endpoints without statistics yet go last, in config order.
    const value = (c: Candidate): number | undefined => {
      const s = this.health.stats(c.key);
      return sort === 'latency' ? s.latencyMs : s.throughput;
    };
    const sign = sort === 'latency' ? 1 : -1;
    return [...list].sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      if (va === undefined || vb === undefined) return (va === undefined ? 1 : 0) - (vb === undefined ? 1 : 0) || byIndex(a, b);
      return sign * (va - vb) || byIndex(a, b);
    });
  }

  /** Provider ids as configured; an unknown id is a 400 (a typo in `ignore` must not pass silently). */
  #providerIds(ids: readonly string[] | undefined, field: 'order' | 'only' | 'ignore'): string[] | undefined {
    if (!ids) return undefined;
    const known = this.#catalog.providers;
    return ids.map((id, i) => {
      if (known.has(id)) return id;
      const folded = [...known.keys()].filter((k) => k.toLowerCase() === id.toLowerCase());
      if (folded.length === 1) return folded[0]!;
      throw new GatewayError(
        'MR_ERR_INVALID_REQUEST',
        `'provider.${field}[${i}]': unknown provider '${id}'. Provider names are this gateway's provider ids, as reported in x-maxrouter-provider.`,
        { param: `provider.${field}[${i}]` },
      );
    });
  }

  #noCandidateError(modelIds: readonly string[], controls: ProviderControls, excluded: Exclusion[], stage: Stage): GatewayError {
    const considered = excluded.filter((e) => e.reason !== 'fallbacks_disabled');
    const which = modelIds.length === 1 || !controls.allowFallbacks ? `model '${modelIds[0]!}'` : `the models ${modelIds.map((m) => `'${m}'`).join(', ')}`;
    const details = describeExclusions(considered, controls);
    if (stage === 'breaker') {
      const waits = considered
        .filter((e) => e.reason === 'breaker_open')
        .map((e) => this.breakers.peek(e.key)?.retryInMs() ?? 0);
      const retryAfter = Math.max(1, Math.ceil(Math.min(...waits) / 1000));
      return new GatewayError(
        'MR_ERR_UPSTREAM_UNAVAILABLE',
        `No endpoint of ${which} is available: ${details}. The circuit breaker of an endpoint opens after repeated upstream failures and admits a trial request after a cool-down; retry later.`,
        { reason: 'circuit_open', retryAfter },
      );
    }
    if (stage === 'policy') {
      const param =
        controls.policySource.zdr === 'request' && considered.some((e) => e.reason === 'zdr')
          ? 'provider.zdr'
          : controls.policySource.dataCollection === 'request' && considered.some((e) => e.reason === 'data_collection')
            ? 'provider.data_collection'
            : null;
      return new GatewayError(
        'MR_ERR_FORBIDDEN',
        `No endpoint of ${which} satisfies the data policy, so the request was not sent to any provider: ${details}.`,
        { reason: 'data_policy', param },
      );
    }
    if (stage === 'price') {
      return new GatewayError('MR_ERR_NOT_FOUND', `No endpoint of ${which} is within provider.max_price: ${details}.`, {
        reason: 'max_price',
        param: 'provider.max_price',
      });
    }
    const first = considered[0];
    const param = first?.reason === 'ignore' ? 'provider.ignore' : first?.reason === 'only' ? 'provider.only' : first ? 'provider.order' : null;
    return new GatewayError('MR_ERR_NOT_FOUND', `No endpoint of ${which} is allowed by the request's provider preferences: ${details}.`, {
      reason: 'provider_preferences',
      param,
    });
  }

}

/**
 * Weighted random order (successive draws without replacement): the first endpoint is chosen
 * with probability weight / total weight, the next among the rest likewise, and so on.
 */
export function weightedOrder<T extends { endpoint: { weight: number } }>(list: readonly T[], random: () => number): T[] {
  const pool = [...list];
  const out: T[] = [];
  while (pool.length > 1) {
    const total = pool.reduce((s, c) => s + c.endpoint.weight, 0);
    let r = random() * total;
    let pick = pool.length - 1;
    for (let i = 0; i < pool.length; i++) {
      r -= pool[i]!.endpoint.weight;
      if (r < 0) {
        pick = i;
        break;
      }
    }
    out.push(pool.splice(pick, 1)[0]!);
  }
  out.push(...pool);
  return out;
}

const REASON_LABEL: Record<ExclusionReason, string> = {
  only: 'not in provider.only',
  ignore: 'in provider.ignore',
  not_in_order: 'not in provider.order (allow_fallbacks is false)',
  zdr: 'zdr',
  data_collection: 'data_collection: deny',
  max_price: 'above provider.max_price',
  breaker_open: 'circuit breaker open',
  fallbacks_disabled: 'allow_fallbacks is false',
};

/** `zdr (required by the request) excluded openai, groq for 'm'; in provider.ignore: azure for 'm'`. */
export function describeExclusions(excluded: readonly Exclusion[], controls: ProviderControls): string {
  const byReason = new Map<ExclusionReason, Map<string, string[]>>();
  for (const e of excluded) {
    let byModel = byReason.get(e.reason);
    if (!byModel) byReason.set(e.reason, (byModel = new Map()));
    const providers = byModel.get(e.model) ?? [];
    if (!providers.includes(e.provider)) providers.push(e.provider);
    byModel.set(e.model, providers);
  }
  const parts: string[] = [];
  for (const [reason, byModel] of byReason) {
    const where = [...byModel].map(([model, providers]) => `${providers.join(', ')} for '${model}'`).join('; ');
    if (reason === 'zdr' || reason === 'data_collection') {
      const source = reason === 'zdr' ? controls.policySource.zdr : controls.policySource.dataCollection;
      const by = source === 'account' ? "this account's data policy" : 'the request';
      const what = reason === 'zdr' ? 'zdr: true (zero data retention)' : 'data_collection: deny';
      parts.push(`${what}, required by ${by}, excluded ${where}`);
    } else {
      parts.push(`${REASON_LABEL[reason]}: ${where}`);
    }
  }
  return parts.join('; ') || 'no endpoint';
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

export interface RetryPolicy {
  /** Attempts on one endpoint, the first included. Default 2 (one retry). */
  attemptsPerEndpoint: number;
  /** Attempts in all, across endpoints and models. Default 5. */
  maxAttempts: number;
  /** Time from the first attempt after which no attempt starts, ms. Default 30 000. */
  timeBudgetMs: number;
  /** Backoff base, ms: the n-th retry (n from 0) waits a random time below min(cap, base × 2^n). Default 250. */
  baseMs: number;
  /** Backoff cap, ms. Default 4 000. */
  capMs: number;
  /**
   * The longest `retry-after` honoured by waiting, ms (default 4 000): an upstream that asks for
   * longer is not retried here (the request fails over, or the 429 with its `retry-after` goes
   * back to the client, which can wait without holding a connection).
   */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attemptsPerEndpoint: 2,
  maxAttempts: 5,
  timeBudgetMs: 30_000,
  baseMs: 250,
  capMs: 4_000,
  maxRetryAfterMs: 4_000,
});

/**
 * The wait before retry number `attempt` (0 for the first retry), ms: exponential backoff with
 * full jitter — uniform in [0, min(capMs, baseMs × 2^attempt)) — or, when the upstream sent
 * `retry-after`, exactly that many seconds; never more than `remainingMs`.
 */
export function backoffMs(
  attempt: number,
  retryAfterSeconds: number | undefined,
  random: () => number,
  opts: { baseMs?: number; capMs?: number; remainingMs?: number } = {},
): number {
  const base = opts.baseMs ?? DEFAULT_RETRY_POLICY.baseMs;
  const cap = opts.capMs ?? DEFAULT_RETRY_POLICY.capMs;
  const remaining = Math.max(0, opts.remainingMs ?? Infinity);
  if (retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0) {
    return Math.min(retryAfterSeconds * 1000, remaining);
  }
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(0, Math.floor(attempt)), 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(Math.floor(r * ceiling), remaining);
}

/** The last policy completed with the defaults: every request of a router passes the same object. */
let completed: { from: Partial<RetryPolicy>; policy: Readonly<RetryPolicy> } | undefined;

function completePolicy(policy: Partial<RetryPolicy>): Readonly<RetryPolicy> {
  if (completed?.from !== policy) completed = { from: policy, policy: Object.freeze({ ...DEFAULT_RETRY_POLICY, ...policy }) };
  return completed.policy;
}

/** Counts attempts (per endpoint and in all) and time against a `RetryPolicy`. */
export class RetryBudget {
  readonly policy: Readonly<RetryPolicy>;
  readonly #now: () => number;
  readonly #start: number;
  readonly #perEndpoint = new Map<string, number>();
  #attempts = 0;

  constructor(policy: Partial<RetryPolicy> = {}, now: () => number = Date.now) {
    this.policy = completePolicy(policy);
    this.#now = now;
    this.#start = now();
  }

  /** Attempts spent in all. */
  get attempts(): number {
    return this.#attempts;
  }

  attemptsOn(key: string): number {
    return this.#perEndpoint.get(key) ?? 0;
  }

  elapsedMs(): number {
    return this.#now() - this.#start;
  }

  remainingMs(): number {
    return Math.max(0, this.policy.timeBudgetMs - this.elapsedMs());
  }

  /** Whether an attempt on `key` may start now. */
  allows(key: string): boolean {
    return (
      this.#attempts < this.policy.maxAttempts &&
      this.attemptsOn(key) < this.policy.attemptsPerEndpoint &&
      this.elapsedMs() < this.policy.timeBudgetMs
    );
  }

  /** Counts an attempt on `key`. */
  spend(key: string): void {
    this.#attempts++;
    this.#perEndpoint.set(key, this.attemptsOn(key) + 1);
  }

  /** Takes back an attempt on `key` that was not sent after all. */
  refund(key: string): void {
    const n = this.attemptsOn(key);
    if (n === 0) return;
    this.#attempts--;
    this.#perEndpoint.set(key, n - 1);
  }

  /**
   * The wait before `key` may be retried after a retryable failure, ms; undefined when it may
   * not be: its attempts or all attempts are spent, the time is up, or `retry-after` asks for a
   * longer wait than the time left (waiting would only end in the same error later).
   */
  retryDelay(key: string, retryAfterSeconds: number | undefined, random: () => number): number | undefined {
    if (this.#attempts >= this.policy.maxAttempts || this.attemptsOn(key) >= this.policy.attemptsPerEndpoint) return undefined;
    const remaining = this.remainingMs();
    if (remaining <= 0) return undefined;
    if (retryAfterSeconds !== undefined && (retryAfterSeconds * 1000 >= remaining || retryAfterSeconds * 1000 > this.policy.maxRetryAfterMs)) {
      return undefined;
    }
    const delay = backoffMs(this.attemptsOn(key) - 1, retryAfterSeconds, random, {
      baseMs: this.policy.baseMs,
      capMs: this.policy.capMs,
      remainingMs: remaining,
    });
    return delay < remaining ? delay : undefined;
  }
}

export interface Attempt {
  candidate: Candidate;
  /** 1 for the request's first attempt; the value of `x-maxrouter-attempts` if this one answers. */
  number: number;
  /** Wait this long before sending, ms (0 unless this is a retry of an endpoint that failed). */
  delayMs: number;
  /** This endpoint was tried before in this request. */
  retry: boolean;
}

interface Pending {
  candidate: Candidate;
  /** Clock time before which it may not be sent. */
  notBefore: number;
  retry: boolean;
  seq: number;
}

export interface AttemptScheduleOptions {
  /** Breakers to consult before each attempt and to report outcomes to (usually `router.breakers`). */
  breakers?: BreakerRegistry;
  policy?: Partial<RetryPolicy>;
  now?: () => number;
  random?: () => number;
}

/**
 * The attempts of one request over a plan's candidates: each candidate once, in plan order and
 * without waiting; then candidates that failed with a retryable error again, earliest-ready
 * first, each after its backoff (counted from its failure) — within the `RetryBudget`.
 * Before each attempt the endpoint's breaker is asked (`allow()`, which reserves a half-open
 * probe); a candidate it refuses is skipped and costs no attempt. Exactly one of `succeeded`,
 * `failed` or `abandoned` reports each attempt, and is passed on to the breaker.
 */
export class AttemptSchedule {
  readonly budget: RetryBudget;
  readonly #breakers: BreakerRegistry | undefined;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #pending: Pending[];
  readonly #skipped: Candidate[] = [];
  #current: Candidate | undefined;
  #seq = 0;
  #done = false;

  constructor(candidates: readonly Candidate[], options: AttemptScheduleOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#breakers = options.breakers;
    this.budget = new RetryBudget(options.policy, this.#now);
    this.#pending = candidates.map((candidate) => ({ candidate, notBefore: 0, retry: false, seq: this.#seq++ }));
  }

  /** Attempts made so far (skipped candidates not counted). */
  get attempts(): number {
    return this.budget.attempts;
  }

  /** Candidates skipped because their breaker refused them. */
  get skipped(): readonly Candidate[] {
    return this.#skipped;
  }

  /** The next attempt, or undefined when there is none left (the caller then fails with the last error). */
  next(): Attempt | undefined {
    if (this.#current) throw new Error('AttemptSchedule: report the previous attempt before asking for the next');
    if (this.#done) return undefined;
    const now = this.#now();
    while (this.#pending.length > 0) {
      let at = 0;
      for (let i = 1; i < this.#pending.length; i++) {
        const p = this.#pending[i]!;
        const best = this.#pending[at]!;
        if (p.notBefore < best.notBefore || (p.notBefore === best.notBefore && p.seq < best.seq)) at = i;
      }
      const p = this.#pending.splice(at, 1)[0]!;
      const key = p.candidate.key;
      if (!this.budget.allows(key)) continue;
      const delayMs = Math.max(0, p.notBefore - now);
      if (delayMs > 0 && delayMs >= this.budget.remainingMs()) continue;
      if (this.#breakers && !this.#breakers.get(key).allow()) {
        this.#skipped.push(p.candidate);
        continue;
      }
      this.budget.spend(key);
      this.#current = p.candidate;
      return { candidate: p.candidate, number: this.budget.attempts, delayMs, retry: p.retry };
    }
    return undefined;
  }

  /**
   * The attempt answered (2xx). `judged: false` leaves the breaker's verdict to the caller: a
   * stream is judged when it ends, since one that fails after its first byte is a failure of
   * the endpoint (a half-open probe stays reserved until then).
   */
  succeeded(judged = true): void {
    const c = this.#take();
    if (judged) this.#breakers?.get(c.key).success();
    this.#done = true;
  }

  /**
   * The attempt failed with `err`; returns its kind (`classifyFailure`). `fatal` ends the
   * schedule (the error belongs to the client); `retry` queues this endpoint again if the budget
   * allows; `failover` and `unsupported` move on. Breakers count `retry` and `failover` as
   * failures; a fatal upstream answer (a client error) proves the endpoint works and counts as a
   * success; `unsupported` was never sent and gives no verdict.
   */
  failed(err: unknown): FailureKind {
    const c = this.#take();
    const kind = classifyFailure(err);
    const breaker = this.#breakers?.get(c.key);
    if (kind === 'unsupported') {
      breaker?.release();
      this.budget.refund(c.key);
      return kind;
    }
    if (kind === 'fatal') {
      if (err instanceof GatewayError && err.upstreamStatus !== undefined) breaker?.success();
      else breaker?.release();
      this.#done = true;
      return kind;
    }
    breaker?.failure();
    if (kind === 'retry') {
      const retryAfter = err instanceof GatewayError ? err.retryAfter : undefined;
      const delay = this.budget.retryDelay(c.key, retryAfter, this.#random);
      if (delay !== undefined) this.#pending.push({ candidate: c, notBefore: this.#now() + delay, retry: true, seq: this.#seq++ });
    }
    return kind;
  }

  /** The attempt ended without a verdict (the client went away): no outcome for the breaker; the schedule ends. */
  abandoned(): void {
    const c = this.#take();
    this.#breakers?.get(c.key).release();
    this.#done = true;
  }

  /** The error when no attempt could be made at all: every candidate's breaker refused it. */
  unavailableError(): GatewayError {
    const providers = [...new Set(this.#skipped.map((c) => c.provider.id))];
    const waits = this.#skipped.map((c) => this.#breakers?.peek(c.key)?.retryInMs() ?? 0);
    const retryAfter = Math.max(1, Math.ceil(Math.min(Infinity, ...waits) / 1000) || 1);
    return new GatewayError(
      'MR_ERR_UPSTREAM_UNAVAILABLE',
      `No endpoint is available: the circuit breaker of ${providers.join(', ') || 'every endpoint'} is open after repeated upstream failures; retry later.`,
      { reason: 'circuit_open', retryAfter },
    );
  }

  #take(): Candidate {
    const c = this.#current;
    if (!c) throw new Error('AttemptSchedule: no attempt in progress');
    this.#current = undefined;
    return c;
  }
}
