/**
 * OpenAI's rate-limit response headers:
 *
 *   x-ratelimit-limit-requests      x-ratelimit-limit-tokens
 *   x-ratelimit-remaining-requests  x-ratelimit-remaining-tokens
 *   x-ratelimit-reset-requests      x-ratelimit-reset-tokens
 *
 * "reset" is the time until the limit is back to its initial state (the bucket is empty), in
 * Go's duration format as OpenAI sends it: "20ms", "1s", "8.64s", "6m0s", "1h2m3.5s".
 * @see https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
 */

/** A limit's state as reported to the client. */
export interface LimitState {
  limit: number;
  remaining: number;
  resetMs: number;
}

/** `ms` (rounded up to whole ms) as a Go duration string, the format of OpenAI's reset headers. */
export function formatResetDuration(ms: number): string {
  const total = Number.isFinite(ms) ? Math.max(0, Math.ceil(ms)) : 0;
  if (total === 0) return '0s';
  if (total < 1_000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1_000);
  const fraction = String(millis % 1_000).padStart(3, '0').replace(/0+$/, '');
  const seconds = fraction === '' ? `${whole}s` : `${whole}.${fraction}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/**
 * The tightest of several limits: the one with the least remaining, then the smaller limit, then
 * the later reset. Undefined for none.
 */
export function tightest(states: readonly LimitState[]): LimitState | undefined {
  let best: LimitState | undefined;
  for (const s of states) {
    if (
      best === undefined ||
      s.remaining < best.remaining ||
      (s.remaining === best.remaining && (s.limit < best.limit || (s.limit === best.limit && s.resetMs > best.resetMs)))
    ) {
      best = s;
    }
  }
  return best;
}

/** The header trio for requests and/or tokens, each from the tightest limit; none for no limits. */
export function rateLimitHeaders(requests: readonly LimitState[], tokens: readonly LimitState[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const r = tightest(requests);
  if (r !== undefined) {
    headers['x-ratelimit-limit-requests'] = String(r.limit);
    headers['x-ratelimit-remaining-requests'] = String(r.remaining);
    headers['x-ratelimit-reset-requests'] = formatResetDuration(r.resetMs);
  }
  const t = tightest(tokens);
  if (t !== undefined) {
    headers['x-ratelimit-limit-tokens'] = String(t.limit);
    headers['x-ratelimit-remaining-tokens'] = String(t.remaining);
    headers['x-ratelimit-reset-tokens'] = formatResetDuration(t.resetMs);
  }
  return headers;
}
