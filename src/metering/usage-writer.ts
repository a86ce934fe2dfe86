/**
 * Batched usage writes, off the request path. `record()` is synchronous: it appends to an
 * in-memory queue and returns. A drain loop writes the queue in batches of up to `maxBatch`
 * rows, one multi-row INSERT each, a few milliseconds after the first row arrives (or at once
 * when a full batch is waiting). One write is in flight at a time; rows that arrive meanwhile
 * form the next batch.
 *
 * Usage is billing data, so it is never dropped:
 * - a failed write keeps its rows at the head of the queue and is retried with exponential
 *   backoff (`retryBaseMs` doubling up to `retryMaxMs`), each failure reported to `onError`;
 * - `maxQueue` is a soft bound: past it, rows are still kept (memory grows) and a
 *   `UsageQueueOverflowError` carrying the overflow count goes to `onError` (on the first
 *   overflow and every 1 000th after), and a pending batching delay is cut short. Dropping
 *   rows would lose money silently; an operator can act on the alert instead.
 * - `flush()` drains everything (call it at shutdown, after the server stops accepting).
 *
 * Errors passed to `onError` are the insert's own error or an overflow error; no row is ever
 * attached to them, and this module logs nothing itself.
 */
import type { UsageRecord } from '../storage/usage-repo.js';

export type InsertUsageFn = (rows: UsageRecord[]) => Promise<void>;

export interface UsageWriterOptions {
  /** Rows per INSERT (default 500). */
  maxBatch?: number;
  /** Delay between the first queued row and its write, ms (default 5). */
  flushIntervalMs?: number;
  /** Soft queue bound; see the module comment (default 100 000). */
  maxQueue?: number;
  /** First retry delay after a failed write, ms (default 50). */
  retryBaseMs?: number;
  /** Largest retry delay, ms (default 5 000). */
  retryMaxMs?: number;
  /** Write failures and overflow alerts. Default: `process.emitWarning` with the message only. */
  onError?: (err: Error) => void;
}

/** The queue passed `maxQueue`; rows are kept anyway. */
export class UsageQueueOverflowError extends Error {
  /** Rows recorded while the queue was over its bound, since the writer started. */
  readonly overflowCount: number;
  readonly queued: number;
  constructor(overflowCount: number, queued: number, maxQueue: number) {
    super(
      `Usage queue is over its bound of ${maxQueue} rows (${queued} queued, ${overflowCount} rows over bound so far); ` +
        'rows are kept, but the database is not keeping up.',
    );
    this.name = 'UsageQueueOverflowError';
    this.overflowCount = overflowCount;
    this.queued = queued;
  }
}

function defaultOnError(err: Error): void {
  process.emitWarning(`usage writer: ${err.name}: ${err.message}`);
}

export class UsageWriter {
  readonly #insert: InsertUsageFn;
  readonly #maxBatch: number;
  readonly #flushIntervalMs: number;
  readonly #maxQueue: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #onError: (err: Error) => void;

  #queue: UsageRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #inFlight = 0;
  #failures = 0;
  #overflowCount = 0;

  constructor(insert: InsertUsageFn, opts: UsageWriterOptions = {}) {
    this.#insert = insert;
    this.#maxBatch = Math.max(1, opts.maxBatch ?? 500);
    this.#flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 5);
    this.#maxQueue = Math.max(1, opts.maxQueue ?? 100_000);
    this.#retryBaseMs = Math.max(0, opts.retryBaseMs ?? 50);
    this.#retryMaxMs = Math.max(this.#retryBaseMs, opts.retryMaxMs ?? 5_000);
    this.#onError = opts.onError ?? defaultOnError;
  }

  /** Rows recorded and not yet written (including a batch in flight or awaiting retry). */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  /** Queues one row. Never waits for, or fails because of, the database. */
  record(row: UsageRecord): void {
    this.#queue.push(row);
    if (this.#queue.length > this.#maxQueue) {
      this.#overflowCount++;
      if (this.#overflowCount === 1 || this.#overflowCount % 1000 === 0) {
        this.#report(new UsageQueueOverflowError(this.#overflowCount, this.#queue.length, this.#maxQueue));
      }
      this.#startDrain();
      return;
    }
    if (this.#draining !== undefined) return; // the running loop picks it up
    if (this.#queue.length >= this.#maxBatch) this.#startDrain();
    else if (this.#timer === undefined) this.#timer = setTimeout(() => this.#startDrain(), this.#flushIntervalMs);
  }

  /** Writes everything queued so far, retrying failed writes until they succeed. */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#draining !== undefined) {
      await this.#startDrain();
    }
  }

  #startDrain(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#draining === undefined) {
      this.#draining = this.#drain().finally(() => {
        this.#draining = undefined;
      });
    }
    return this.#draining;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      let batch: UsageRecord[];
      if (this.#queue.length <= this.#maxBatch) {
        batch = this.#queue;
        this.#queue = [];
      } else {
        batch = this.#queue.splice(0, this.#maxBatch);
      }
      this.#inFlight = batch.length;
      try {
        await this.#insert(batch);
        this.#failures = 0;
      } catch (err) {
        // Keep the rows, in order, ahead of anything recorded meanwhile.
        this.#queue = batch.concat(this.#queue);
        this.#failures++;
        this.#report(err instanceof Error ? err : new Error(String(err)));
        await sleep(Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (this.#failures - 1)));
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  #report(err: Error): void {
    try {
      this.#onError(err);
    } catch {
      // A faulty error handler must not stop the writer.
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
