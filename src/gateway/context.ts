import type { FastifyRequest } from 'fastify';
import type { Catalog, Route } from '../routing/catalog.js';
import type { IRUsage } from '../ir/usage.js';

import type { AuthedKey } from '../auth/authenticator.js';
import type { RawJsonObject } from '../server/json-body.js';
import type { Router } from '../routing/router.js';
import type { RateLimiter, RateTicket } from '../limits/limiter.js';
import type { RateLimitDefaults } from './rate-limits.js';
import type { Admission, SpendControl } from '../billing/accounting.js';

export type { AuthedKey };

export interface MeterStart {
  generationId: string;
  key: AuthedKey;
  /** The endpoint serving the request; updated as fallbacks are tried. */
  route: Route;
  streamed: boolean;
  /** `performance.now()` when the request arrived. */
  started: number;
  reqId: string;
  /** The request's hold on its account's credits and key limit, if any. */
  admission?: Admission | undefined;
  /** Rate-limit tickets to finish with the request's actual tokens (key/account, provider). */
  rateTickets?: RateTicket[];
}

/** Records the outcome of one request exactly once: a usage row and an access-log line. */
export interface RequestMeter {
  /**
   * `costNano`: the cost already computed for the response (else computed from the route's
   * prices); `estimated`: the token counts are an estimate, not the provider's report.
   */
  finish(status: number, usage: IRUsage, costNano?: number, estimated?: boolean): void;
  fail(status: number, err?: unknown, usage?: IRUsage, estimated?: boolean): void;
}

/** What the endpoint handlers need; built once by the server. */
export interface GatewayContext {
  catalog: Catalog;
  /** Resolves the caller from the Authorization header or throws a 401 GatewayError. */
  authenticate(authorization: string | undefined): Promise<AuthedKey>;
  meter(start: MeterStart): RequestMeter;
  /** Credits, key spend limits and reservations (in memory, or shared through Redis). */
  accounting: SpendControl;
  /** Endpoint planning, circuit breakers and health (per process). */
  router: Router;
  /** Rate limits (in memory, or shared through Redis) and their configured defaults. */
  limiter: RateLimiter;
  rateDefaults: RateLimitDefaults;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set once the request has a meter: its outcome is recorded there, not by the error handler. */
    metered: boolean;
    /** The layout of the JSON body's bytes (set by the body parser), for forwarding them. */
    rawJson: RawJsonObject | undefined;
  }
}

/** Starts metering a request and marks it, so the error handler does not log it twice. */
export function meterRequest(ctx: GatewayContext, request: FastifyRequest, start: MeterStart): RequestMeter {
  request.metered = true;
  return ctx.meter(start);
}
