import type { UsageRecord } from '../storage/usage-repo.js';

export type { UsageRecord };

/** Where usage records go; `record` must never block or throw (UsageWriter satisfies it). */
export interface UsageSink {
  record(rec: UsageRecord): void;
}
