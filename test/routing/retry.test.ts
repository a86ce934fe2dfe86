import { afterAll, describe, expect, it } from 'vitest';
import { GatewayError, upstreamHttpError } from '../../src/ir/errors.js';
import { BreakerRegistry } from '../../src/routing/breaker.js';
import { AttemptSchedule, backoffMs, DEFAULT_RETRY_POLICY, RetryBudget, type Attempt } from '../../src/routing/router.js';
import { makeCatalog, manualClock, seeded } from './fixtures.js';

const catalog = makeCatalog();
afterAll(() => catalog.close());
const [A, B, C] = catalog.endpoints('m/multi');
const single = catalog.endpoints('m/single');

const at = (a: Attempt | undefined) => (a ? `${a.candidate.provider.id}#${a.number}${a.retry ? 'r' : ''}+${a.delayMs}` : 'none');
const unavailable = () => upstreamHttpError(503, 'overloaded');

describe('backoffMs', () => {
  it('is full jitter below min(4 s, 250 ms × 2^attempt)', () => {
    const random = seeded(9);
    for (let attempt = 0; attempt < 10; attempt++) {
      const ceiling = Math.min(4000, 250 * 2 ** attempt);
      let min = Infinity;
      let max = 0;
      for (let i = 0; i < 2000; i++) {
        const d = backoffMs(attempt, undefined, random);
        min = Math.min(min, d);
        max = Math.max(max, d);
      }
      expect(min).toBeGreaterThanOrEqual(0);
      expect(min).toBeLessThan(ceiling * 0.05); // the whole range is used
      expect(max).toBeLessThan(ceiling);
      expect(max).toBeGreaterThan(ceiling * 0.95);
    }
    expect(backoffMs(0, undefined, () => 0)).toBe(0);
    expect(backoffMs(2, undefined, () => 0.5)).toBe(500);
    expect(backoffMs(50, undefined, () => 0.999999)).toBe(3999);
  });

  it('honours retry-after exactly, capped by the remaining time', () => {
    expect(backoffMs(0, 2, () => 0.5)).toBe(2000);
    expect(backoffMs(0, 0, () => 0.5)).toBe(0);
    expect(backoffMs(3, 10, () => 0.5, { remainingMs: 4500 })).toBe(4500);
    expect(backoffMs(3, undefined, () => 0.999, { remainingMs: 100 })).toBe(100);
  });

  it('takes base and cap', () => {
    expect(backoffMs(1, undefined, () => 0.5, { baseMs: 100, capMs: 150 })).toBe(75);
  });
});

describe('RetryBudget', () => {
  it('bounds attempts per endpoint, in all, and time', () => {
    const clock = manualClock();
    const b = new RetryBudget({ attemptsPerEndpoint: 2, maxAttempts: 3, timeBudgetMs: 10_000 }, clock.now);
    expect(b.allows('a')).toBe(true);
    b.spend('a');
    b.spend('a');
    expect(b.allows('a')).toBe(false);
    expect(b.allows('b')).toBe(true);
    b.spend('b');
    expect(b.attempts).toBe(3);
    expect(b.allows('c')).toBe(false);
    b.refund('b');
    expect(b.allows('c')).toBe(true);
    clock.advance(10_000);
    expect(b.remainingMs()).toBe(0);
    expect(b.allows('c')).toBe(false);
  });

  it('gives a retry delay only when the retry fits', () => {
    const clock = manualClock();
    const b = new RetryBudget({}, clock.now);
    expect(b.policy).toEqual(DEFAULT_RETRY_POLICY);
    b.spend('a');
    expect(b.retryDelay('a', undefined, () => 0.5)).toBe(125);
    expect(b.retryDelay('a', 3, () => 0.5)).toBe(3000);
    expect(b.retryDelay('a', 30, () => 0.5)).toBeUndefined(); // retry-after longer than the time left
    clock.advance(29_000);
    expect(b.retryDelay('a', 1, () => 0.5)).toBeUndefined();
    expect(b.retryDelay('a', undefined, () => 0.5)).toBe(125);
    b.spend('a');
    expect(b.retryDelay('a', undefined, () => 0.5)).toBeUndefined(); // 2 attempts per endpoint
  });
});

describe('AttemptSchedule', () => {
  it('tries each candidate once without waiting, then retries those that failed, after a backoff', () => {
    const clock = manualClock();
    const s = new AttemptSchedule([A!, B!], { now: clock.now, random: () => 0.5 });
    const seen: string[] = [];
    for (let a = s.next(); a; a = s.next()) {
      seen.push(at(a));
      clock.advance(a.delayMs + 10);
      expect(s.failed(unavailable())).toBe('retry');
    }
    // Each retry is ready 125 ms after its endpoint's failure: alpha's waits 115 ms more, as
    // beta's attempt took 10 ms; beta's is ready by then, after alpha's wait and attempt.
    expect(seen).toEqual(['alpha#1+0', 'beta#2+0', 'alpha#3r+115', 'beta#4r+0']);
    expect(s.attempts).toBe(4);
  });

  it('retries a single endpoint (allow_fallbacks false) after retry-after', () => {
    const clock = manualClock();
    const s = new AttemptSchedule(single, { now: clock.now });
    expect(at(s.next())).toBe('alpha#1+0');
    s.failed(upstreamHttpError(429, 'slow down', 2));
    const retry = s.next();
    expect(at(retry)).toBe('alpha#2r+2000');
    clock.advance(2000);
    s.succeeded();
    expect(s.next()).toBeUndefined();
    expect(s.attempts).toBe(2);
  });

  it('does not retry after a failover error, and stops at a fatal one', () => {
    const s = new AttemptSchedule([A!, B!, C!], { now: manualClock().now });
    s.next();
    expect(s.failed(upstreamHttpError(401, 'bad key'))).toBe('failover');
    expect(at(s.next())).toBe('beta#2+0');
    expect(s.failed(upstreamHttpError(400, 'bad request'))).toBe('fatal');
    expect(s.next()).toBeUndefined();
  });

  it('moves on without counting an attempt the gateway could not translate', () => {
    const s = new AttemptSchedule([C!, A!], { now: manualClock().now });
    s.next();
    expect(s.failed(new GatewayError('MR_ERR_UNSUPPORTED_PARAMETER', "'logprobs' is not supported"))).toBe('unsupported');
    expect(at(s.next())).toBe('alpha#1+0');
    s.succeeded();
  });

  it('stops at maxAttempts and at the time budget', () => {
    const clock = manualClock();
    const s = new AttemptSchedule([A!, B!, C!], { now: clock.now, random: () => 0.5, policy: { maxAttempts: 4 } });
    let n = 0;
    for (let a = s.next(); a; a = s.next()) {
      n++;
      clock.advance(a.delayMs);
      s.failed(unavailable());
    }
    expect(n).toBe(4);

    const slow = new AttemptSchedule([A!, B!], { now: clock.now, random: () => 0.5 });
    slow.next();
    clock.advance(29_990);
    slow.failed(unavailable()); // alpha's retry would be ready after the budget
    expect(at(slow.next())).toBe('beta#2+0');
    clock.advance(20);
    slow.failed(unavailable());
    expect(slow.next()).toBeUndefined();
  });

  it('asks the breaker before each attempt and reports outcomes to it', () => {
    const clock = manualClock();
    const breakers = new BreakerRegistry({ now: clock.now, failureThreshold: 1 });
    const s = new AttemptSchedule([A!, B!], { now: clock.now, random: () => 0.5, breakers });
    expect(at(s.next())).toBe('alpha#1+0');
    s.failed(unavailable());
    expect(breakers.state(A!.key)).toBe('open');
    expect(at(s.next())).toBe('beta#2+0');
    s.failed(upstreamHttpError(404, 'no such model')); // the endpoint answered: a success for its breaker
    expect(breakers.state(B!.key)).toBe('closed');
    expect(s.next()).toBeUndefined();

    // alpha's breaker is open: its retry is skipped and costs no attempt.
    const t = new AttemptSchedule([A!], { now: clock.now, breakers });
    expect(t.next()).toBeUndefined();
    expect(t.attempts).toBe(0);
    expect(t.skipped).toEqual([A]);
    expect(t.unavailableError()).toMatchObject({ status: 503, reason: 'circuit_open', retryAfter: 30 });
  });

  it('sends one probe to a half-open endpoint and frees it when abandoned', () => {
    const clock = manualClock();
    const breakers = new BreakerRegistry({ now: clock.now, failureThreshold: 1 });
    breakers.get(A!.key).failure();
    clock.advance(30_000);
    const first = new AttemptSchedule([A!], { now: clock.now, breakers });
    const second = new AttemptSchedule([A!], { now: clock.now, breakers });
    expect(at(first.next())).toBe('alpha#1+0');
    expect(second.next()).toBeUndefined(); // the probe is taken
    first.abandoned();
    const third = new AttemptSchedule([A!], { now: clock.now, breakers });
    expect(at(third.next())).toBe('alpha#1+0');
    third.succeeded();
    expect(breakers.state(A!.key)).toBe('closed');
  });

  it('insists on one report per attempt', () => {
    const s = new AttemptSchedule([A!, B!], { now: manualClock().now });
    s.next();
    expect(() => s.next()).toThrow(/report the previous attempt/);
    expect(() => new AttemptSchedule([A!]).succeeded()).toThrow(/no attempt in progress/);
  });
});
