import { describe, expect, it } from 'vitest';
import { GatewayError, upstreamHttpError } from '../../src/ir/errors.js';
import { BreakerRegistry, CircuitBreaker, classifyFailure, isBreakerFailure } from '../../src/routing/breaker.js';
import { manualClock } from './fixtures.js';

function breaker(opts: Partial<ConstructorParameters<typeof CircuitBreaker>[0]> = {}) {
  const clock = manualClock();
  return { clock, b: new CircuitBreaker({ now: clock.now, ...opts }) };
}

function open(b: CircuitBreaker): void {
  for (let i = 0; i < 5; i++) b.failure();
  expect(b.state).toBe('open');
}

describe('circuit breaker', () => {
  it('stays closed below the threshold and opens at 5 consecutive failures', () => {
    const { b } = breaker();
    for (let i = 0; i < 4; i++) {
      b.failure();
      expect(b.state).toBe('closed');
      expect(b.allow()).toBe(true);
    }
    expect(b.consecutiveFailures).toBe(4);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
    expect(b.available).toBe(false);
  });

  it('counts consecutive failures only: a success resets the count', () => {
    const { b } = breaker();
    for (let i = 0; i < 4; i++) b.failure();
    b.success();
    expect(b.consecutiveFailures).toBe(0);
    for (let i = 0; i < 4; i++) b.failure();
    expect(b.state).toBe('closed');
  });

  it('honours a custom threshold', () => {
    const { b } = breaker({ failureThreshold: 2 });
    b.failure();
    b.failure();
    expect(b.state).toBe('open');
  });

  it('turns half-open after the cool-down and admits exactly one probe', () => {
    const { b, clock } = breaker();
    open(b);
    clock.advance(29_999);
    expect(b.state).toBe('open');
    expect(b.retryInMs()).toBe(1);
    expect(b.allow()).toBe(false);
    clock.advance(1);
    expect(b.state).toBe('half-open');
    expect(b.available).toBe(true);
    expect(b.allow()).toBe(true); // the probe
    expect(b.available).toBe(false);
    expect(b.allow()).toBe(false);
    expect(b.allow()).toBe(false);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(true);
  });

  it('re-opens when the probe fails, doubling the cool-down up to 5 minutes', () => {
    const { b, clock } = breaker();
    open(b);
    const coolDowns: number[] = [];
    for (let i = 0; i < 6; i++) {
      const until = b.retryInMs();
      coolDowns.push(until);
      clock.advance(until);
      expect(b.allow()).toBe(true);
      b.failure();
      expect(b.state).toBe('open');
    }
    expect(coolDowns).toEqual([30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
  });

  it('starts again from the first cool-down after a successful probe', () => {
    const { b, clock } = breaker();
    open(b);
    clock.advance(30_000);
    b.allow();
    b.failure(); // 60 s now
    clock.advance(60_000);
    b.allow();
    b.success();
    open(b);
    expect(b.retryInMs()).toBe(30_000);
  });

  it('release() frees the probe without a verdict', () => {
    const { b, clock } = breaker();
    open(b);
    clock.advance(30_000);
    expect(b.allow()).toBe(true);
    b.release();
    expect(b.state).toBe('half-open');
    expect(b.allow()).toBe(true);
  });

  it('gives up a probe that was never reported after probeTimeoutMs', () => {
    const { b, clock } = breaker({ probeTimeoutMs: 5_000 });
    open(b);
    clock.advance(30_000);
    expect(b.allow()).toBe(true);
    clock.advance(4_999);
    expect(b.allow()).toBe(false);
    clock.advance(1);
    expect(b.allow()).toBe(true);
  });

  it('ignores late outcomes while open', () => {
    const { b, clock } = breaker();
    open(b);
    b.success();
    expect(b.state).toBe('open');
    b.failure();
    clock.advance(30_000);
    expect(b.state).toBe('half-open'); // the late failure did not extend the cool-down
  });
});

describe('breaker registry', () => {
  it('creates breakers on first use with shared options; unused keys are closed and available', () => {
    const clock = manualClock();
    const r = new BreakerRegistry({ now: clock.now, failureThreshold: 1 });
    expect(r.peek('a:x')).toBeUndefined();
    expect(r.state('a:x')).toBe('closed');
    expect(r.available('a:x')).toBe(true);
    r.get('a:x').failure();
    expect(r.state('a:x')).toBe('open');
    expect(r.available('a:x')).toBe(false);
    expect(r.get('a:x')).toBe(r.peek('a:x'));
    expect([...r.entries()].map(([k]) => k)).toEqual(['a:x']);
  });
});

describe('classifyFailure', () => {
  it('retries connection errors, timeouts, 408, 429 and 5xx; fails over on the gateway credentials; returns client errors', () => {
    const cases: Array<[unknown, string]> = [
      [upstreamHttpError(500, 'x'), 'retry'],
      [upstreamHttpError(502, 'x'), 'retry'],
      [upstreamHttpError(503, 'x'), 'retry'],
      [upstreamHttpError(529, 'x'), 'retry'],
      [upstreamHttpError(429, 'x', 3), 'retry'],
      [upstreamHttpError(408, 'x'), 'retry'],
      [new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', 'timed out'), 'retry'],
      [new GatewayError('MR_ERR_UPSTREAM_UNAVAILABLE', 'refused'), 'retry'],
      [new GatewayError('MR_ERR_UPSTREAM_ERROR', 'reset'), 'retry'],
      [new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', 'not JSON'), 'retry'],
      [upstreamHttpError(401, 'x'), 'failover'],
      [upstreamHttpError(403, 'x'), 'failover'],
      [new GatewayError('MR_ERR_UNSUPPORTED_PARAMETER', 'n > 1'), 'unsupported'],
      [upstreamHttpError(400, 'x'), 'fatal'],
      [upstreamHttpError(404, 'x'), 'fatal'],
      [upstreamHttpError(413, 'x'), 'fatal'],
      [upstreamHttpError(422, 'x'), 'fatal'],
      [new GatewayError('MR_ERR_INVALID_REQUEST', 'bad'), 'fatal'],
      [new Error('bug'), 'fatal'],
      ['string', 'fatal'],
    ];
    for (const [err, kind] of cases) expect(classifyFailure(err), String((err as Error).message ?? err)).toBe(kind);
  });

  it('counts retry and failover kinds against the breaker, nothing else', () => {
    expect(isBreakerFailure(upstreamHttpError(503, 'x'))).toBe(true);
    expect(isBreakerFailure(upstreamHttpError(429, 'x'))).toBe(true);
    expect(isBreakerFailure(upstreamHttpError(401, 'x'))).toBe(true);
    expect(isBreakerFailure(upstreamHttpError(400, 'x'))).toBe(false);
    expect(isBreakerFailure(new GatewayError('MR_ERR_UNSUPPORTED_PARAMETER', 'x'))).toBe(false);
  });
});
