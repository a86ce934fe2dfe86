/**
 * Draining the HTTP side at shutdown: stop accepting, let what is in flight finish up to a
 * deadline, then end what is left.
 *
 * What Fastify's `app.close()` does here (`return503OnClosing`, `forceCloseConnections: 'idle'`,
 * see app.ts): it closes the listening socket (new connections are refused), answers 503 with
 * `Connection: close` to requests still arriving on open keep-alive connections, closes the idle
 * connections once, and resolves only when every connection has closed — so it waits for open
 * streams however long they run. Node does not close a keep-alive connection that becomes idle
 * after `close()`: it would linger until the keep-alive timeout (72 s), so idle connections are
 * closed every 50 ms while draining.
 *
 * At the deadline the upstream calls still running are failed with a shutdown error. The gateway's
 * own error paths then do the rest: a stream gets an OpenAI-shaped error event after its last
 * complete frame and ends normally, a request still waiting for its provider gets a 503, and each
 * request's usage is recorded (estimated for a stream cut short). Connections still open a moment
 * later (a client not reading) are destroyed.
 */
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../ir/errors.js';
import type { Catalog } from '../routing/catalog.js';

export interface DrainOptions {
  /** How long in-flight requests may run on, ms. */
  graceMs: number;
  /** Fails every upstream call still running with `reason` (see `failUpstreamCalls`). */
  cutUpstreams: (reason: GatewayError) => Promise<void>;
  /** After the cut, how long responses get to end before their connections are destroyed, ms. */
  cutGraceMs?: number;
}

export interface DrainResult {
  /** False when everything finished before the deadline. */
  deadlineReached: boolean;
  /** Connections still open at the deadline. */
  openAtDeadline: number;
}

/** The error that ends a request still running at the shutdown deadline (503: retry elsewhere). */
export function shutdownError(): GatewayError {
  return new GatewayError(
    'MR_ERR_UPSTREAM_UNAVAILABLE',
    'The gateway is shutting down and ended this request at its shutdown deadline; retry it.',
    // Not an upstream failure: never retried here, never counted against an endpoint.
    { reason: 'shutdown' },
  );
}

export async function drainHttp(app: FastifyInstance, opts: DrainOptions): Promise<DrainResult> {
  const server = app.server;
  const closed = app.close();
  const reaper = setInterval(() => server.closeIdleConnections(), 50);
  try {
    if (await settlesWithin(closed, opts.graceMs)) {
      await closed; // rethrows a failed close
      return { deadlineReached: false, openAtDeadline: 0 };
    }
    const openAtDeadline = await connectionCount(server);
    const cutGraceMs = opts.cutGraceMs ?? 1000;
    await settlesWithin(opts.cutUpstreams(shutdownError()), cutGraceMs);
    if (!(await settlesWithin(closed, cutGraceMs))) server.closeAllConnections();
    await closed;
    return { deadlineReached: true, openAtDeadline };
  } finally {
    clearInterval(reaper);
  }
}

/**
 * Fails every upstream call in flight (and any queued) with `reason`, by destroying each
 * provider's connection pool. The pool is private to `UpstreamClient`, so it is reached
 * defensively: a client without one is skipped, and the drain's last step (destroying client
 * connections, which aborts their upstream calls) still ends those requests.
 */
export async function failUpstreamCalls(catalog: Catalog, reason: Error): Promise<void> {
  await Promise.all(
    [...catalog.providers.values()].map(async (p) => {
      const pool = (p.client as unknown as { pool?: { destroy?: (err: Error) => Promise<void> } }).pool;
      if (typeof pool?.destroy === 'function') await pool.destroy(reason).catch(() => undefined);
    }),
  );
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    p.then(done, done);
  });
}

function connectionCount(server: Server): Promise<number> {
  return new Promise((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)));
}
