/**
 * The composition root: config → database (migrated) → secret → repositories → authenticator,
 * usage writer, catalog → Fastify app → listen. `stop()` closes in the reverse order and
 * flushes pending usage.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { KeyAuthenticator } from '../auth/authenticator.js';
import { Accounting, type SpendControl } from '../billing/accounting.js';
import { RedisAccounting } from '../billing/redis-accounting.js';
import { Redis } from 'ioredis';
import { loadOrCreateSecret } from '../auth/secret.js';
import type { Config } from '../config/schema.js';
import { createMeterFactory } from '../metering/request-meter.js';
import { UsageWriter } from '../metering/usage-writer.js';
import { Catalog } from '../routing/catalog.js';
import { BreakerRegistry } from '../routing/breaker.js';
import { Router } from '../routing/router.js';
import { MemoryRateStore, RedisRateStore } from '../limits/store.js';
import { RateLimiter } from '../limits/limiter.js';
import { openDatabase, type Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import { createRepositories, type Repositories } from '../storage/repositories.js';
import { sql } from 'kysely';
import { AccessLog } from './access-log.js';
import { buildApp } from './app.js';
import { drainHttp, failUpstreamCalls, settlesWithin, shutdownError } from './drain.js';
import { createLogging, flushLogger } from './logger.js';
import { loadTlsMaterial } from './tls.js';
import { renderMetrics } from './metrics.js';

export interface RunningGateway {
  app: FastifyInstance;
  url: string;
  database: Database;
  repos: Repositories;
  authenticator: KeyAuthenticator;
  accounting: SpendControl;
  usageWriter: UsageWriter;
  catalog: Catalog;
  router: Router;
  limiter: RateLimiter;
  logger: Logger;
  /**
   * Graceful shutdown: `/healthz` turns 503 and new connections are refused at once; requests
   * and streams in flight get up to `shutdown.graceMs` to finish, then are ended (see drain.ts);
   * then usage is flushed, the database closed and the log flushed. Idempotent.
   */
  stop(opts?: StopOptions): Promise<void>;
  /**
   * Stop waiting (a second signal while draining): ends every request now, flushes usage for at
   * most a second, flushes the log. The caller exits right after; the database is left as is.
   */
  abort(): Promise<void>;
}

export interface StopOptions {
  /** What asked for the shutdown, for the log line (e.g. `SIGTERM`). */
  signal?: string;
}

export interface StartOptions {
  /** Log destination (tests capture it); stdout by default. */
  logDestination?: NodeJS.WritableStream;
  /** Listen at all (false: `app.inject` only). Default true. */
  listen?: boolean;
  /** The clock (epoch ms) for key expiry, spend windows and usage times; tests control it. */
  now?: () => number;
}

export async function startGateway(config: Config, opts: StartOptions = {}): Promise<RunningGateway> {
  // Certificate problems stop the start before anything is opened.
  const tls = config.listen.tls ? await loadTlsMaterial(config.listen.tls) : undefined;
  const { logger, destination } = createLogging(config.log.level, opts.logDestination);
  // The data dir holds the server secret and, by default, the database: owner-only.
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const database = await openDatabase(config.database, { dataDir: config.dataDir });
  let catalog: Catalog | undefined;
  try {
    await migrateToLatest(database);
    const secret = await loadOrCreateSecret({ secret: config.secret, dataDir: config.dataDir });
    const now = opts.now ?? Date.now;
    const repos = createRepositories(database.db, now, database.sqlite);
    const authenticator = new KeyAuthenticator(repos.keys, secret, { now, defaultBillingMode: config.billing.mode });
    const spendSource = {
      balance: (accountId: string) => repos.ledger.balance(accountId),
      keySpend: (keyId: string, since: number) => repos.usage.sumCost({ keyId, since }),
    };
    // Credits and key spend limits: shared through Redis when configured (several instances),
    // else held in this process.
    let billingRedis: Redis | undefined;
    let accounting: SpendControl;
    if (config.redis) {
      billingRedis = new Redis(config.redis, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 200, lazyConnect: false });
      billingRedis.on('error', () => {}); // reported through onWarning; never an unhandled 'error'
      const client = billingRedis;
      await new Promise<void>((resolve) => {
        if (client.status === 'ready') return resolve();
        const timer = setTimeout(resolve, 5_000);
        client.once('ready', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      accounting = new RedisAccounting(spendSource, {
        redis: billingRedis,
        onStoreFailure: config.limits.redisFailure,
        now,
        refreshMs: config.billing.refreshMs,
        onWarning: (message, err) => logger.warn({ errorName: err.name, failureMode: config.limits.redisFailure }, message),
      });
    } else {
      accounting = new Accounting(spendSource, { now, refreshMs: config.billing.refreshMs });
    }
    const usageWriter = new UsageWriter(accounting.writeUsage((rows) => repos.usage.insertUsage(rows)), {
      // Fewer, larger batches: each statement has a fixed cost; a crash loses at most this window.
      flushIntervalMs: 20,
      maxBatch: 1000,
      onError: (err) => logger.error({ errorName: err.name }, 'usage write failed; rows kept for retry'),
    });
    catalog = new Catalog(config);
    const router = new Router(catalog, {
      retryPolicy: config.retries,
      breakers: new BreakerRegistry({ ...config.circuitBreaker, now }),
    });
    // Rate limits: shared through Redis when configured, else in this process's memory.
    const rateStore = config.redis ? new RedisRateStore({ url: config.redis }) : new MemoryRateStore();
    // Start with Redis connected when it is there; if it is not, the failure mode applies until it is.
    if (rateStore instanceof RedisRateStore && !(await rateStore.ready(5_000))) {
      logger.warn({ failureMode: config.limits.redisFailure }, 'Redis is not reachable at start; rate limits follow limits.redisFailure until it is');
    }
    const limiter = new RateLimiter({
      store: rateStore,
      onStoreFailure: config.limits.redisFailure,
      onWarning: (message, err) =>
        logger.warn({ errorName: err.name, failureMode: config.limits.redisFailure }, `rate-limit store unavailable: ${message}`),
    });
    // Limits and credits kept in memory multiply with the number of instances: say so when the
    // deployment looks like one of several (a shared PostgreSQL) and has no Redis.
    const enforcesSomething =
      Object.keys(config.limits.key).length > 0 || Object.keys(config.limits.account).length > 0 || config.billing.mode === 'credits';
    if (!config.redis && database.dialect === 'postgres' && enforcesSomething) {
      logger.warn(
        'rate limits and credits are enforced per instance (no redis configured): with several instances they multiply; set redis: to share them',
      );
    }
    let draining = false;
    // Into the process's own log stream, lines go in batches (≤ 50 ms); a stream a caller passed
    // (tests) gets each line at once.
    const accessLog = new AccessLog(logger, destination, { batchMs: opts.logDestination ? 0 : 50 });
    const app = buildApp({
      gateway: {
        catalog,
        authenticate: (h) => authenticator.authenticate(h),
        meter: createMeterFactory(usageWriter, accessLog, accounting, now),
        accounting,
        router,
        limiter,
        rateDefaults: { key: config.limits.key, account: config.limits.account },
      },
      accessLog,
      logger,
      bodyLimit: config.limits.bodyBytes,
      http: config.http,
      ...(tls ? { tls } : {}),
      accountApi: { repos, authenticator, secret, now },
      ...(config.admin.key ? { adminApi: { repos, authenticator, secret, now, adminKey: config.admin.key } } : {}),
      metrics: () =>
        renderMetrics({
          rateLimiter: limiter.stats,
          spend: accounting instanceof RedisAccounting ? accounting.stats : undefined,
          usageRowsPending: () => usageWriter.pending,
          breakers: () => {
            let open = 0;
            let halfOpen = 0;
            for (const [, b] of router.breakers.entries()) {
              if (b.state === 'open') open++;
              else if (b.state === 'half-open') halfOpen++;
            }
            return { open, halfOpen };
          },
        }),
      health: async () => {
        if (draining) throw new Error('draining');
        await sql`select 1`.execute(database.db);
      },
    });
    let url = '';
    if (opts.listen !== false) {
      await app.listen({ host: config.listen.host, port: config.listen.port });
      const addr = app.server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
    } else {
      await app.ready();
    }
    const cat = catalog;
    let stopping: Promise<void> | undefined;
    return {
      app,
      url,
      database,
      repos,
      authenticator,
      accounting,
      usageWriter,
      catalog: cat,
      router,
      limiter,
      logger,
      stop: (stopOpts: StopOptions = {}) =>
        (stopping ??= (async () => {
          draining = true;
          const started = performance.now();
          const graceMs = config.shutdown.graceMs;
          logger.info({ signal: stopOpts.signal, graceMs }, 'draining');
          logger.flush();
          const drained = await drainHttp(app, { graceMs, cutUpstreams: (reason) => failUpstreamCalls(cat, reason) });
          await usageWriter.flush();
          await rateStore.close().catch(() => undefined);
          if (accounting instanceof RedisAccounting) await accounting.close().catch(() => undefined);
          billingRedis?.disconnect();
          accessLog.flush();
          // After a cut the pools are destroyed, and closing a destroyed pool rejects.
          await (drained.deadlineReached ? cat.close().catch(() => undefined) : cat.close());
          await database.close();
          logger.info({ ms: Math.round(performance.now() - started), ...drained }, 'shutdown complete');
          await flushLogger(logger);
        })()),
      abort: async () => {
        draining = true;
        await settlesWithin(failUpstreamCalls(cat, shutdownError()), 200);
        app.server.closeAllConnections();
        await new Promise((resolve) => setImmediate(resolve)); // let the closes settle their usage
        await settlesWithin(usageWriter.flush(), 1000);
        accessLog.flush();
        await settlesWithin(flushLogger(logger), 200);
      },
    };
  } catch (err) {
    await catalog?.close();
    await database.close();
    throw err;
  }
}
