/**
 * Turns the end of a request into a usage record (token counts only) and an access-log line.
 * Synchronous and non-throwing: the usage sink queues, it never delays the response.
 */
import type { SpendControl } from '../billing/accounting.js';
import { computeCost } from '../billing/cost.js';
import { GatewayError } from '../ir/errors.js';
import { emptyUsage, type IRUsage } from '../ir/usage.js';
import type { MeterStart, RequestMeter } from '../gateway/context.js';
import type { AccessLog } from '../server/access-log.js';
import type { UsageSink } from './usage-record.js';

export function createMeterFactory(sink: UsageSink, log: AccessLog, accounting: SpendControl, now: () => number = Date.now) {
  return (start: MeterStart): RequestMeter => {
    let settled = false;
    const settle = (status: number, usage: IRUsage, costNano: number | undefined, estimated: boolean, errorCode?: string) => {
      if (settled) return;
      settled = true;
      const latencyMs = Math.round(performance.now() - start.started);
      let cost = 0;
      try {
        cost = costNano ?? computeCost(usage, start.route.prices);
      } catch {
        // Token counts beyond any price's range: recorded, not priced; the row says so.
        estimated = true;
      }
      accounting.settle(start.admission, start.generationId, cost);
      if (start.rateTickets) {
        const tokens = usage.promptTokens + usage.completionTokens;
        for (const t of start.rateTickets) void t.finish(tokens);
      }
      sink.record({
        id: start.generationId,
        keyId: start.key.keyId,
        accountId: start.key.accountId,
        model: start.route.modelId,
        provider: start.route.provider.id,
        upstreamModel: start.route.upstreamModel,
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
        cachedTokens: usage.cachedTokens,
        cacheWriteTokens: usage.cacheWriteTokens,
        reasoningTokens: usage.reasoningTokens,
        status,
        latencyMs,
        streamed: start.streamed,
        createdAt: now(),
        costNano: cost,
        costEstimated: estimated,
        charge: cost > 0 && start.key.billingMode === 'credits',
      });
      log.write({
        reqId: start.reqId,
        generationId: start.generationId,
        keyId: start.key.keyId,
        accountId: start.key.accountId,
        model: start.route.modelId,
        provider: start.route.provider.id,
        status,
        errorCode,
        streamed: start.streamed,
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
        latencyMs,
      });
    };
    return {
      finish: (status, usage, costNano, estimated = false) => settle(status, usage, costNano, estimated),
      fail: (status, err, usage, estimated = false) =>
        settle(
          status,
          usage ?? emptyUsage(),
          undefined,
          estimated,
          err instanceof GatewayError ? err.code : status === 499 ? 'MR_CLIENT_CLOSED' : 'MR_ERR_INTERNAL',
        ),
    };
  };
}
