/**
 * The two errors the rate limiter lets out. Both are `GatewayError`s, so the app's error handler
 * renders them without special cases: 429 with `retry-after`, and 503. Messages name limits and
 * scopes only, never ids or request content.
 */
import { GatewayError } from '../ir/errors.js';

export type LimitScope = 'key' | 'account' | 'provider';
export type LimitKind = 'requests per minute' | 'tokens per minute' | 'concurrent requests';
/** E.g. 'key requests per minute', 'account tokens per minute', 'provider concurrent requests'. */
export type LimitName = `${LimitScope} ${LimitKind}`;

export interface RateLimitedDetails {
  scope: LimitScope;
  kind: LimitKind;
  /** The limit's value (requests, tokens or concurrent requests). */
  limit: number;
  /** Whole seconds after which the request would fit (≥ 1). */
  retryAfterSeconds: number;
  /** True when the request's cost is larger than the limit itself: waiting never helps. */
  exceedsLimit: boolean;
  /** `x-ratelimit-*` headers to send with the 429 (only for the limits that exist). */
  headers: Record<string, string>;
  /** The tokens the request was estimated at (for tokens-per-minute refusals). */
  requestedTokens?: number;
}

/** 429: a rate or concurrency limit refused the request. Nothing was charged for it. */
export class RateLimitedError extends GatewayError {
  readonly limitName: LimitName;
  readonly scope: LimitScope;
  readonly kind: LimitKind;
  readonly limit: number;
  readonly retryAfterSeconds: number;
  readonly exceedsLimit: boolean;
  readonly headers: Record<string, string>;

  constructor(d: RateLimitedDetails) {
    const limitName: LimitName = `${d.scope} ${d.kind}`;
    super('MR_ERR_RATE_LIMITED', rateLimitedMessage(d), { retryAfter: d.retryAfterSeconds, reason: limitName });
    this.name = 'RateLimitedError';
    this.limitName = limitName;
    this.scope = d.scope;
    this.kind = d.kind;
    this.limit = d.limit;
    this.retryAfterSeconds = d.retryAfterSeconds;
    this.exceedsLimit = d.exceedsLimit;
    this.headers = d.headers;
  }
}

const SCOPE_WORDS: Record<LimitScope, string> = {
  key: "this API key's",
  account: "this account's",
  provider: "the upstream provider's",
};

function rateLimitedMessage(d: RateLimitedDetails): string {
  const whose = SCOPE_WORDS[d.scope];
  if (d.exceedsLimit && d.kind !== 'tokens per minute') {
    return `Rate limit: ${whose} limit of ${d.limit} ${d.kind} allows no requests.`;
  }
  if (d.kind === 'concurrent requests') {
    return `Rate limit reached: ${whose} limit of ${d.limit} concurrent requests. Retry when a request has finished.`;
  }
  if (d.exceedsLimit) {
    const asked = d.requestedTokens !== undefined ? `about ${d.requestedTokens} tokens` : 'more than the limit';
    return `Request too large: it needs ${asked}, more than ${whose} limit of ${d.limit} ${d.kind}. Send less input or ask for fewer output tokens (max_tokens).`;
  }
  return `Rate limit reached: ${whose} limit of ${d.limit} ${d.kind}. Retry after ${d.retryAfterSeconds}s.`;
}

/**
 * The rate-limit store (Redis) cannot be reached or did not answer in time. Rendered as 503 when
 * the limiter fails closed; the original error is kept as `cause` (never logged by message).
 */
export class RateStoreUnavailableError extends GatewayError {
  constructor(cause?: unknown) {
    super('MR_ERR_INTERNAL', 'Rate limiting is temporarily unavailable. Retry shortly.', { status: 503, retryAfter: 1 });
    this.name = 'RateStoreUnavailableError';
    if (cause !== undefined) this.cause = cause;
  }
}
