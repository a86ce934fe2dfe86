/**
 * `GET /metrics`: counters and gauges in Prometheus' text format. Aggregates only — no label
 * carries an id, a model name from a request, or anything a client sent — so the endpoint reveals
 * nothing about any account and needs no key.
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 */
export interface MetricSources {
  rateLimiter: { admitted: number; limited: number; failOpen: number; storeErrors: number };
  /** Spending control's counters when it is shared through Redis. */
  spend?: { failOpen: number; storeErrors: number } | undefined;
  usageRowsPending: () => number;
  breakers: () => { open: number; halfOpen: number };
}

interface Metric {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  value: number;
}

export function renderMetrics(src: MetricSources): string {
  const rl = src.rateLimiter;
  const b = src.breakers();
  const list: Metric[] = [
    { name: 'maxrouter_ratelimit_admitted_total', type: 'counter', help: 'Requests admitted by the rate limiter.', value: rl.admitted },
    { name: 'maxrouter_ratelimit_limited_total', type: 'counter', help: 'Requests refused with 429 by a rate limit.', value: rl.limited },
    {
      name: 'maxrouter_ratelimit_fail_open_total',
      type: 'counter',
      help: 'Requests admitted WITHOUT rate limits because the store (Redis) was unreachable.',
      value: rl.failOpen,
    },
    { name: 'maxrouter_ratelimit_store_errors_total', type: 'counter', help: 'Rate-limit store (Redis) failures.', value: rl.storeErrors },
    { name: 'maxrouter_usage_rows_pending', type: 'gauge', help: 'Usage rows recorded and not yet written.', value: src.usageRowsPending() },
    { name: 'maxrouter_circuit_breakers_open', type: 'gauge', help: 'Endpoints whose circuit breaker is open.', value: b.open },
    { name: 'maxrouter_circuit_breakers_half_open', type: 'gauge', help: 'Endpoints whose circuit breaker is half-open.', value: b.halfOpen },
  ];
  if (src.spend) {
    list.push(
      {
        name: 'maxrouter_spend_fail_open_total',
        type: 'counter',
        help: 'Requests admitted WITHOUT credit or key-spend checks because Redis was unreachable.',
        value: src.spend.failOpen,
      },
      { name: 'maxrouter_spend_store_errors_total', type: 'counter', help: 'Spending-control store (Redis) failures.', value: src.spend.storeErrors },
    );
  }
  return list.map((m) => `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n${m.name} ${m.value}\n`).join('');
}
